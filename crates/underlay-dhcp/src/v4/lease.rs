//! A DHCPv4 lease and how it is read from a DHCPACK.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, DhcpOptions, OptionCode};

use super::wire::Reply;
use super::Ignored;
use crate::time::{scale, Instant, INFINITE};

/// RFC 791: every host accepts 576-byte datagrams, and RFC 2132 section 5.1 puts the smallest
/// legal MTU at 68.
const MIN_MTU: u16 = 68;
const INFINITE_SECS: u32 = u32::MAX;

/// An address lease and the configuration that came with it.
///
/// Times are relative to `acquired`, the instant the first REQUEST of the exchange that got the
/// ACK was sent (RFC 2131 section 4.4.1: measured from the request, so the lease ends no later
/// than the server thinks). An infinite lease has `lease_time`, `t1` and `t2` equal to
/// [`INFINITE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease4 {
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// Server identifier (option 54).
    pub server: Ipv4Addr,
    /// Option 3 as sent.
    pub routers: Vec<Ipv4Addr>,
    /// Option 121 when present (RFC 3442: then option 3 is ignored for routing; 0.0.0.0/0 in it is
    /// the default route), else a default route via the first router.
    pub routes: Vec<Route4>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    /// Option 26 when at least 68.
    pub mtu: Option<u16>,
    pub acquired: Instant,
    pub lease_time: Duration,
    /// Renewal time: option 58, else half the lease.
    pub t1: Duration,
    /// Rebinding time: option 59, else 7/8 of the lease.
    pub t2: Duration,
}

/// A route that came with a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route4 {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    /// 0.0.0.0 = on-link (RFC 3442 section 3).
    pub gateway: Ipv4Addr,
}

impl Lease4 {
    /// When the lease ends ("never" for an infinite lease).
    pub fn expires_at(&self) -> Instant {
        self.acquired + self.lease_time
    }

    /// When the client starts renewing with its server.
    pub fn renew_at(&self) -> Instant {
        self.acquired + self.t1
    }

    /// When the client starts asking any server.
    pub fn rebind_at(&self) -> Instant {
        self.acquired + self.t2
    }

    pub fn is_infinite(&self) -> bool {
        self.lease_time == INFINITE
    }
}

/// Reads the lease out of an ACK. The subnet mask and the lease time are required: RFC 2131
/// table 3 makes the lease time a MUST in an ACK, and without a mask the client would have to
/// guess a prefix (a classful guess or a /32 with on-link router routes), which can silently
/// break routing; an ACK without them is ignored and the REQUEST retransmitted.
pub(crate) fn from_ack(
    reply: &Reply,
    server: Ipv4Addr,
    acquired: Instant,
) -> Result<Lease4, Ignored> {
    let address = usable_address(reply.yiaddr)?;
    let prefix = prefix_of(&reply.opts)?;
    if !is_host_of_subnet(address, prefix) {
        return Err(Ignored::BadAddress(address));
    }
    let lease_time = match reply.opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(secs)) => seconds(*secs),
        _ => {
            return Err(Ignored::MissingOption {
                message: "DHCPACK",
                code: 51,
            })
        }
    };
    let (t1, t2) = timers(&reply.opts, lease_time);
    let routers = routers(&reply.opts);
    Ok(Lease4 {
        address,
        prefix,
        server,
        routes: routes(&reply.opts, &routers),
        routers,
        dns: addresses(reply.opts.get(OptionCode::DomainNameServer)),
        domain: domain(&reply.opts),
        search: search(&reply.opts),
        mtu: mtu(&reply.opts),
        acquired,
        lease_time,
        t1,
        t2,
    })
}

/// Refuses addresses a host cannot hold: 0.0.0.0/8, loopback, multicast, class E, broadcast.
pub(crate) fn usable_address(address: Ipv4Addr) -> Result<Ipv4Addr, Ignored> {
    let first = address.octets()[0];
    let usable = first != 0 && !address.is_loopback() && !address.is_multicast() && first < 240;
    if usable {
        Ok(address)
    } else {
        Err(Ignored::BadAddress(address))
    }
}

/// False for the network and broadcast addresses of subnets that have them (prefix up to /30).
fn is_host_of_subnet(address: Ipv4Addr, prefix: u8) -> bool {
    if prefix >= 31 {
        return true;
    }
    let host_bits = u32::from(address) & (u32::MAX >> prefix);
    host_bits != 0 && host_bits != u32::MAX >> prefix
}

fn prefix_of(opts: &DhcpOptions) -> Result<u8, Ignored> {
    let mask = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => *mask,
        _ => {
            return Err(Ignored::MissingOption {
                message: "DHCPACK",
                code: 1,
            })
        }
    };
    let bits = u32::from(mask);
    // A contiguous mask is ones then zeros: its complement plus one is a power of two.
    if (!bits).wrapping_add(1) & !bits != 0 || bits == 0 {
        return Err(Ignored::BadSubnetMask(mask));
    }
    Ok(bits.count_ones() as u8)
}

fn seconds(secs: u32) -> Duration {
    if secs == INFINITE_SECS {
        INFINITE
    } else {
        Duration::from_secs(u64::from(secs))
    }
}

/// T1 and T2 from options 58/59 when they are consistent (T1 <= T2 <= lease), else the
/// RFC 2131 section 4.4.5 defaults of 1/2 and 7/8 of the lease.
fn timers(opts: &DhcpOptions, lease: Duration) -> (Duration, Duration) {
    let t2 = match opts.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(secs)) if seconds(*secs) <= lease => seconds(*secs),
        _ => scale(lease, 7, 8),
    };
    let t1 = match opts.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(secs)) if seconds(*secs) <= t2 => seconds(*secs),
        _ => scale(lease, 1, 2).min(t2),
    };
    (t1, t2)
}

fn routers(opts: &DhcpOptions) -> Vec<Ipv4Addr> {
    addresses(opts.get(OptionCode::Router))
        .into_iter()
        .filter(|router| !router.is_unspecified())
        .collect()
}

fn routes(opts: &DhcpOptions, routers: &[Ipv4Addr]) -> Vec<Route4> {
    if let Some(DhcpOption::ClasslessStaticRoute(routes)) =
        opts.get(OptionCode::ClasslessStaticRoute)
    {
        return routes
            .iter()
            .map(|(net, gateway)| Route4 {
                dst: net.network(),
                prefix: net.prefix_len(),
                gateway: *gateway,
            })
            .collect();
    }
    routers
        .first()
        .map(|router| Route4 {
            dst: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            gateway: *router,
        })
        .into_iter()
        .collect()
}

fn addresses(opt: Option<&DhcpOption>) -> Vec<Ipv4Addr> {
    match opt {
        Some(DhcpOption::DomainNameServer(list)) | Some(DhcpOption::Router(list)) => list.clone(),
        _ => Vec::new(),
    }
}

/// Option 15 without the NUL padding and trailing dot some servers send.
fn domain(opts: &DhcpOptions) -> Option<String> {
    match opts.get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(name)) => {
            let name = name
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .trim_end_matches('.');
            (!name.is_empty()).then(|| name.to_string())
        }
        _ => None,
    }
}

fn search(opts: &DhcpOptions) -> Vec<String> {
    match opts.get(OptionCode::DomainSearch) {
        Some(DhcpOption::DomainSearch(names)) => names
            .iter()
            .map(|name| name.to_string().trim_end_matches('.').to_string())
            .filter(|name| !name.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn mtu(opts: &DhcpOptions) -> Option<u16> {
    match opts.get(OptionCode::InterfaceMtu) {
        Some(DhcpOption::InterfaceMtu(mtu)) if *mtu >= MIN_MTU => Some(*mtu),
        _ => None,
    }
}
