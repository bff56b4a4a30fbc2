//! Address management for underlay: subnets, pools, allocation and reservation stores.
//!
//! The allocator is pure logic over a [`Store`]. A store only has to offer an atomic
//! "reserve this address if nobody holds it" (compare-and-swap shaped, so a remote store such as
//! etcd can implement it with a transaction) plus look-ups. Allocation never trusts a candidate:
//! it asks the store to reserve it and moves on when somebody else won the race.

mod alloc;
mod error;
mod hostlocal;
mod pool;
mod sqlite;
mod store;
mod subnet;

pub use alloc::{allocate, reserve_in_subnet, reserve_static};
pub use error::IpamError;
pub use hostlocal::{
    go_ip_string, HostLocal, HostLocalError, HostLocalReservation, HostLocalStore, OpStats, Range,
    DEFAULT_DATA_DIR,
};
pub use pool::Pool;
pub use sqlite::SqliteStore;
pub use store::{Reservation, Store, StoreError};
pub use subnet::Subnet;
