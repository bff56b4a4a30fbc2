//! Contract tests: the public API, driven the way the socket driver and the lease keeper will
//! drive it, with time stepped explicitly and fake servers built on dhcproto.

mod fake4;
mod v4_acquire;

mod acd;
mod captures;
mod fake6;
mod frame;
mod fuzz;
mod identity;
mod v4_lease;
mod v6;
