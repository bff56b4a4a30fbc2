//! The underlay engine: the model (networks, endpoints), validation, the state, and the
//! attach/detach use cases with rollback on failure and crash recovery.
//!
//! Front-ends (CLI, CNI, Docker plugin) build a request ([`CreateNetwork`], [`Connect`]...),
//! call one [`Engine`] method and map the [`Error`] to their own protocol. Nothing here names a
//! front-end.

mod addressing;
mod attach;
mod build;
pub mod crash;
mod engine;
mod error;
pub mod events;
mod handoff;
mod health;
mod host_access;
mod identity;
mod inspect;
pub mod leases;
mod link;
mod model;
mod names;
mod parents;
mod plumbing;
mod probe;
mod recover;
mod repair;
mod request;
mod state;
mod supervise;
mod target;

pub use addressing::{Addressing, IpamDriver, Ipv6Mode, DEFAULT_DHCP_TIMEOUT, DEFAULT_PROBE};
pub use engine::{Engine, RepairReport};
pub use error::Error;
pub use handoff::{CreateHandoff, Handoff, PrepareAddress, Prepared, PENDING_LIFETIME_SECS};
pub use health::{network_health, Health, HealthState};
pub use inspect::{inspect_json, list_json};
pub use link::{configure_link, create_link, default_route, plumb_link, LinkKind, LinkPlan};
pub use model::{
    Driver, Endpoint, Family, HostAccess, IpConfig, Network, NetworkSpec, Parent, Phase,
};
pub use names::{IfName, MacAddr};
pub use request::{vlan_link_name, Connect, CreateNetwork, Disconnect};
pub use state::{State, DEFAULT_STATE_DIR};
pub use supervise::ParentsSeen;
pub use target::Target;
