//! A DHCPv6 lease.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::wire::{IaAddr, IaNa, Reply6};
use crate::time::{scale, Instant, INFINITE};

/// One address from an IA_NA and the configuration that came with it.
///
/// Times are relative to `acquired`, the instant the first message of the exchange that got the
/// REPLY was sent. Lifetimes of 0xffffffff are [`INFINITE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    pub address: Ipv6Addr,
    pub preferred: Duration,
    pub valid: Duration,
    pub t1: Duration,
    pub t2: Duration,
    pub server_duid: Vec<u8>,
    /// Where the REPLY came from (the server's or a relay's link-local address).
    pub server_addr: Ipv6Addr,
    /// The server's Server Unicast option: RENEW, DECLINE and RELEASE go there.
    pub server_unicast: Option<Ipv6Addr>,
    pub dns: Vec<Ipv6Addr>,
    pub search: Vec<String>,
    pub acquired: Instant,
}

impl Lease6 {
    pub fn expires_at(&self) -> Instant {
        self.acquired + self.valid
    }

    pub fn renew_at(&self) -> Instant {
        self.acquired + self.t1
    }

    pub fn rebind_at(&self) -> Instant {
        self.acquired + self.t2
    }
}

pub(crate) fn lifetime(secs: u32) -> Duration {
    if secs == u32::MAX {
        INFINITE
    } else {
        Duration::from_secs(u64::from(secs))
    }
}

/// The address to take from an IA_NA: `prefer` when it is still offered, else the first usable.
/// RFC 8415 section 21.6: an address whose preferred lifetime exceeds its valid lifetime is
/// discarded; a valid lifetime of 0 means the address is withdrawn.
pub(crate) fn pick(ia: &IaNa, prefer: Option<Ipv6Addr>) -> Option<&IaAddr> {
    let usable = |a: &&IaAddr| {
        a.valid > 0
            && a.preferred <= a.valid
            && a.status.as_ref().is_none_or(|s| s.code == 0)
            && is_unicast(a.addr)
    };
    ia.addrs
        .iter()
        .filter(usable)
        .find(|a| Some(a.addr) == prefer)
        .or_else(|| ia.addrs.iter().find(usable))
}

fn is_unicast(addr: Ipv6Addr) -> bool {
    !addr.is_unspecified() && !addr.is_loopback() && !addr.is_multicast()
}

/// Builds the lease. T1 or T2 of 0 leave the choice to the client (RFC 8415 section 21.4):
/// 0.5 and 0.8 of the preferred lifetime.
pub(crate) fn build(
    reply: &Reply6,
    ia: &IaNa,
    addr: &IaAddr,
    from: Ipv6Addr,
    acquired: Instant,
) -> Lease6 {
    let preferred = lifetime(addr.preferred);
    let t2 = match ia.t2 {
        0 => scale(preferred, 4, 5),
        t2 => lifetime(t2),
    };
    let t1 = match ia.t1 {
        0 => scale(preferred, 1, 2),
        t1 => lifetime(t1),
    };
    Lease6 {
        address: addr.addr,
        preferred,
        valid: lifetime(addr.valid),
        t1: t1.min(t2),
        t2,
        server_duid: reply.server_id.clone().unwrap_or_default(),
        server_addr: from,
        server_unicast: reply.unicast,
        dns: reply.dns.clone(),
        search: reply.search.clone(),
        acquired,
    }
}
