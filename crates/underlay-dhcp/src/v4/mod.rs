//! A sans-IO DHCPv4 client (RFC 2131), one lease per client.
//!
//! The caller owns the sockets and the clock. It calls [`Client4::poll`] at
//! [`Client4::deadline`] (and after every [`Client4::handle`]) and sends what it returns, feeds
//! every UDP payload that arrives on port 68 to [`Client4::handle`], and drains
//! [`Client4::next_event`] to configure or remove the address.
//!
//! ```text
//!  INIT ──DISCOVER──► SELECTING ──OFFER──► REQUESTING ──ACK──► BOUND ──T1──► RENEWING ──T2──► REBINDING
//!   ▲  ▲                 │ timeout            │ NAK/timeout      ▲  │ decline()    │ ACK         │ ACK
//!   │  └── GaveUp ◄──────┴────────────────────┘                  └──┼──────────────┴─────────────┘
//!   └──────────── Nak / Expired / Declined (after decline_wait) ◄───┘
//! INIT-REBOOT ──REQUEST(50)──► REBOOTING ──ACK──► BOUND;  NAK or no answer ──► INIT
//! ```

mod build;
mod client;
mod config;
mod ignored;
mod lease;
mod wire;

use std::net::Ipv4Addr;

pub use client::Client4;
pub use config::{Config4, Retry4, DEFAULT_PARAMS};
pub use ignored::Ignored;
pub use lease::{Lease4, Route4};

/// UDP port servers send from.
pub const SERVER_PORT: u16 = 67;
/// UDP port clients listen on.
pub const CLIENT_PORT: u16 = 68;

/// A datagram to send from port 68 to port 67.
///
/// While the client holds no address `src` is 0.0.0.0 and `dst` 255.255.255.255: the driver sends
/// those as raw frames ([`crate::frame::udp4_frame`]) to the broadcast MAC. When renewing, `src`
/// is the leased address and `dst` the server (unicast); when rebinding `dst` is the broadcast
/// address again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit4 {
    pub payload: Vec<u8>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// What the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event4 {
    /// A new lease: configure its address (replacing any other this client held).
    Bound(Lease4),
    /// The same address, new times and options.
    Renewed(Lease4),
    /// A server refused the request; any lease this client held is gone: remove its address.
    /// The client starts over with a DISCOVER.
    Nak,
    /// The lease ran out: remove its address. The client starts over with a DISCOVER.
    Expired(Lease4),
    /// No lease within [`Retry4::timeout`]; the client stays idle until [`Client4::restart`].
    GaveUp,
    /// [`Client4::decline`] was called for this address; a DISCOVER follows after
    /// [`Retry4::decline_wait`].
    Declined(Ipv4Addr),
}

/// The RFC 2131 client states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State4 {
    Init,
    Selecting,
    Requesting,
    InitReboot,
    Rebooting,
    Bound,
    Renewing,
    Rebinding,
}
