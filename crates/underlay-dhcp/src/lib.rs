//! DHCP for underlay: sans-IO DHCPv4 and DHCPv6 clients, stable client identities, and the
//! frames for address conflict detection.
//!
//! Nothing here opens a socket, starts a thread, sleeps or reads a clock.
//! (design notes are completed below)

pub mod frame;
pub mod identity;
pub mod time;
pub mod v4;
pub mod v6;

mod checksum;
mod rng;

pub use time::{Duration, Instant, INFINITE};
