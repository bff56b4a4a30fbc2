//! DHCP for underlay: sans-IO DHCPv4 and DHCPv6 clients, stable client identities, and the
//! frames for address conflict detection.
//!
//! # Design
//!
//! Nothing here opens a socket, starts a thread, sleeps, reads a clock or draws entropy. Each
//! protocol is a state machine in the style of smoltcp's DHCP socket:
//!
//! - time is an input: every call takes `now` as an [`Instant`] (milliseconds since an epoch the
//!   caller picks; the lease keeper uses Unix time so persisted leases compare directly);
//! - `poll(now)` returns what to send now, `handle(now, bytes)` takes what was received,
//!   `deadline()` says when to call `poll` next, and `next_event()` reports what the caller must
//!   do to the interface (add or remove an address);
//! - randomness (transaction ids, retransmission jitter, DAD nonces) comes from a small
//!   generator seeded by the caller, so tests that step time see exact, repeatable schedules;
//! - a received message that is ignored comes back as an `Err` that says why (for logs); no
//!   input can make the crate panic, which a fuzz-style test checks on many thousands of inputs.
//!
//! The socket driver and lease keeper live elsewhere; what they need from this crate:
//!
//! - [`identity`]: the MAC, DHCPv4 client id, DUID and IAID of an endpoint, derived from its
//!   network and endpoint names so that they survive restarts;
//! - [`v4`]: the DHCPv4 client ([`v4::Client4`]) and its leases;
//! - [`v6`]: the DHCPv6 IA_NA client ([`v6::Client6`]);
//! - [`frame`]: Ethernet/IPv4/UDP frames, since an unconfigured DHCPv4 client must use a packet
//!   socket;
//! - [`acd`]: ARP probes and IPv6 DAD before configuring an address, and announcements after.
//!
//! DHCP messages are encoded and decoded with `dhcproto`; received messages first pass through
//! this crate's own option walker, because `dhcproto`'s decoders assume well-formed input (see
//! the notes in `v4::wire` and `v6::wire`).

pub mod acd;
pub mod frame;
pub mod identity;
pub mod time;
pub mod v4;
pub mod v6;

mod checksum;
mod rng;

pub use time::{Duration, Instant, INFINITE};
