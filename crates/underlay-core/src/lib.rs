//! The underlay engine: the model (networks, endpoints), validation, the state, and the
//! attach/detach use cases with rollback on failure and crash recovery.
//!
//! Front-ends (CLI, CNI, Docker plugin) build a request ([`CreateNetwork`], [`Connect`]...),
//! call one [`Engine`] method and map the [`Error`] to their own protocol. Nothing here names a
//! front-end.

mod attach;
pub mod crash;
mod engine;
mod error;
mod inspect;
mod link;
mod model;
mod names;
mod parents;
mod plumbing;
mod recover;
mod request;
mod state;
mod target;

pub use engine::{Engine, RepairReport};
pub use error::Error;
pub use inspect::{inspect_json, list_json};
pub use link::{default_route, plumb_link, LinkKind, LinkPlan};
pub use model::{Driver, Endpoint, Family, IpConfig, Network, NetworkSpec, Parent, Phase};
pub use names::{IfName, MacAddr};
pub use request::{vlan_link_name, Connect, CreateNetwork, Disconnect};
pub use state::{State, DEFAULT_STATE_DIR};
pub use target::Target;
