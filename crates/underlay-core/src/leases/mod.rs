//! DHCP leases: what the engine asks of the lease keeper, and the keeper itself.
//!
//! The lease keeper (`underlay dhcp-daemon`, or in-process in a long-running front-end) is the
//! only DHCP speaker. It runs each exchange inside the container's netns, probes the offered
//! address, persists the lease, renews it at T1, rebinds at T2, and re-applies a changed lease
//! to the link. Engines reach it through [`Leases`]: a unix-socket client in short-lived
//! processes, a direct call in the daemon.

mod client;
mod hex;
mod keeper;
mod proto;
mod server;

pub use client::{KeeperClient, DEFAULT_KEEPER_SOCKET};
pub use keeper::{Keeper, KeeperDefaults};
pub use proto::{
    ApplyPolicy, KeeperError, KeeperErrorKind, KeeperRequest, KeeperResponse, Lease4Info,
    Lease6Info, LeaseReply, LeaseRequest, LeaseSummary, RawOption, Route4Info,
};
pub use server::serve;

use crate::Error;

/// The lease keeper as the engine sees it.
pub trait Leases {
    /// Runs a DHCP exchange for `request` and keeps the lease until [`Leases::release`].
    fn acquire(&mut self, request: &LeaseRequest) -> Result<LeaseReply, Error>;
    /// Gives the lease of `key` back to its server and forgets it; `Ok(false)` when there was
    /// none.
    fn release(&mut self, key: &str) -> Result<bool, Error>;
    /// The lease's link is moving into `netns`, where it is found by `alias`.
    fn relocate(&mut self, key: &str, netns: &str, alias: &str) -> Result<(), Error>;
}

/// The lease key of an engine endpoint.
pub fn endpoint_key(endpoint_id: &str) -> String {
    format!("endpoint/{endpoint_id}")
}
