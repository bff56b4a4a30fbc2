//! A sans-IO DHCPv6 client (RFC 8415) for one address in one IA_NA.
//!
//! The same shape as [`crate::v4`]: call [`Client6::poll`] at [`Client6::deadline`] (and after
//! every [`Client6::handle`]), send what it returns from port 546 to port 547 on the link, feed
//! every datagram received on port 546 to [`Client6::handle`] with its source address, and act
//! on [`Client6::next_event`].
//!
//! ```text
//!  INIT ──SOLICIT──► SOLICITING ──ADVERTISE──► REQUESTING ──REPLY──► BOUND ──T1──► RENEWING ──T2──► REBINDING
//!               │ REPLY + Rapid Commit ─────────────────────────────────▲                       valid lifetime
//!               └── GaveUp (timeout) ◄── (timeout)                       │ decline() ──► DECLINING ──► SOLICITING
//! ```
//!
//! Deviations from RFC 8415, all for a container connect that must finish in seconds: the first
//! SOLICIT is not delayed by up to SOL_MAX_DELAY (1 s), the first usable ADVERTISE is taken
//! instead of collecting ADVERTISEs for the first retransmission time, and the retransmission
//! times are shorter by default ([`Retry6`]). A REPLY to RENEW/REBIND with NoBinding drops the
//! lease and solicits again instead of sending a REQUEST: the server lost its state, and with the
//! same DUID and IAID it normally hands out the same address again.

mod build;
mod client;
mod config;
mod ignored;
mod lease;
mod wire;

use std::fmt;
use std::net::Ipv6Addr;

pub use client::Client6;
pub use config::{Config6, Retry6};
pub use ignored::Ignored6;
pub use lease::Lease6;

/// UDP port servers and relays listen on.
pub const SERVER_PORT: u16 = 547;
/// UDP port clients listen on.
pub const CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 section 7.1).
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// A datagram to send from port 546 (from a link-local address) to port 547.
///
/// `dst` is [`ALL_SERVERS`], or the server's unicast address when it sent the Server Unicast
/// option (RFC 8415 section 21.12) and the message may be unicast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit6 {
    pub payload: Vec<u8>,
    pub dst: Ipv6Addr,
}

/// What the caller must act on; the same meanings as [`crate::v4::Event4`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event6 {
    /// A new lease: configure its address (replacing any other this client held).
    Bound(Lease6),
    /// The same address, new lifetimes.
    Renewed(Lease6),
    /// A server refused (NoAddrsAvail, NotOnLink, NoBinding); any lease is gone: remove its
    /// address. The client solicits again.
    Rejected(Status6),
    /// The valid lifetime ran out, or the server set it to 0: remove the address. The client
    /// solicits again.
    Expired(Lease6),
    /// No lease within [`Retry6::timeout`]; the client stays idle until [`Client6::restart`].
    GaveUp,
    /// [`Client6::decline`] was called for this address.
    Declined(Ipv6Addr),
}

/// A DHCPv6 Status Code option (RFC 8415 section 21.13).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Status6 {
    pub code: u16,
    pub message: String,
}

impl Status6 {
    pub const SUCCESS: u16 = 0;
    pub const UNSPEC_FAIL: u16 = 1;
    pub const NO_ADDRS_AVAIL: u16 = 2;
    pub const NO_BINDING: u16 = 3;
    pub const NOT_ON_LINK: u16 = 4;
    pub const USE_MULTICAST: u16 = 5;

    pub(crate) fn new(code: u16, message: &str) -> Status6 {
        Status6 {
            code,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Status6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            0 => "Success",
            1 => "UnspecFail",
            2 => "NoAddrsAvail",
            3 => "NoBinding",
            4 => "NotOnLink",
            5 => "UseMulticast",
            _ => "status",
        };
        write!(f, "{name} ({}) {:?}", self.code, self.message)
    }
}

/// The client's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State6 {
    Init,
    Soliciting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
    Declining,
    Releasing,
}
