//! Ranges and range sets with the reference plugin's defaults, and its round-robin walk.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::HostLocalError;
use crate::Subnet;

/// One `ranges` entry of a host-local configuration.
///
/// Defaults are the reference plugin's: `range_start` is the first address after the network
/// address, `range_end` the last address before the IPv4 broadcast address (the last address of
/// the subnet for IPv6), and `gateway` the first address after the network address. The gateway
/// is never handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub subnet: Subnet,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

impl Range {
    /// The whole subnet, with every default.
    pub fn new(subnet: Subnet) -> Self {
        Range {
            subnet,
            range_start: None,
            range_end: None,
            gateway: None,
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.subnet)?;
        if self.range_start.is_some() || self.range_end.is_some() {
            let start = self
                .range_start
                .map(|ip| ip.to_string())
                .unwrap_or_default();
            let end = self.range_end.map(|ip| ip.to_string()).unwrap_or_default();
            write!(f, " [{start}-{end}]")?;
        }
        Ok(())
    }
}

/// A range with its defaults filled in, as numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Canon {
    pub subnet: Subnet,
    pub v4: bool,
    pub start: u128,
    pub end: u128,
    pub gateway: u128,
}

impl Canon {
    fn new(range: &Range) -> Result<Self, HostLocalError> {
        let subnet = range.subnet;
        let invalid = |reason: String| HostLocalError::InvalidRange {
            range: range.to_string(),
            reason,
        };
        let v4 = subnet.is_ipv4();
        if subnet.host_bits() < 2 {
            return Err(invalid(format!(
                "subnet {subnet} is too small to allocate from"
            )));
        }
        let mapped = matches!(subnet.addr(), IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
        if mapped && subnet.prefix() >= 96 {
            return Err(invalid(
                "IPv4-mapped IPv6 subnets are not supported (use the IPv4 subnet)".into(),
            ));
        }
        let network = to_u128(subnet.addr());
        let last = network + subnet.last_offset();
        let broadcast = v4.then_some(last);
        let check = |what: &str, ip: IpAddr| -> Result<u128, HostLocalError> {
            if !subnet.contains(ip) {
                return Err(invalid(format!("{what} {ip} is not in subnet {subnet}")));
            }
            Ok(to_u128(ip))
        };
        let gateway = match range.gateway {
            Some(ip) => check("gateway", ip)?,
            None => network + 1,
        };
        let start = match range.range_start {
            Some(ip) => check("rangeStart", ip)?,
            None => network + 1,
        };
        let end = match range.range_end {
            Some(ip) => check("rangeEnd", ip)?,
            None => broadcast.map_or(last, |b| b - 1),
        };
        for (what, value) in [("rangeStart", start), ("rangeEnd", end)] {
            let ip = from_u128(v4, value);
            if value == network {
                return Err(invalid(format!("{what} {ip} is the network address")));
            }
            if Some(value) == broadcast {
                return Err(invalid(format!("{what} {ip} is the broadcast address")));
            }
        }
        if start > end {
            return Err(invalid(format!(
                "rangeStart {} is after rangeEnd {}",
                from_u128(v4, start),
                from_u128(v4, end)
            )));
        }
        Ok(Canon {
            subnet,
            v4,
            start,
            end,
            gateway,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.v4 && (self.start..=self.end).contains(&to_u128(ip))
    }

    pub fn gateway(&self) -> IpAddr {
        from_u128(self.v4, self.gateway)
    }

    fn describe(&self) -> String {
        format!(
            "{} [{}-{}]",
            self.subnet,
            from_u128(self.v4, self.start),
            from_u128(self.v4, self.end)
        )
    }
}

/// The ranges of one range set (one entry of the configuration's `ranges`), validated.
#[derive(Debug, Clone)]
pub(crate) struct RangeSet {
    pub ranges: Vec<Canon>,
}

impl RangeSet {
    pub fn new(index: usize, ranges: &[Range]) -> Result<Self, HostLocalError> {
        let invalid = |reason: String| HostLocalError::InvalidRangeSet { index, reason };
        if ranges.is_empty() {
            return Err(invalid("it has no range".into()));
        }
        let ranges = ranges
            .iter()
            .map(Canon::new)
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                if a.v4 != b.v4 {
                    return Err(invalid(format!(
                        "ranges {} and {} are of different families",
                        a.describe(),
                        b.describe()
                    )));
                }
                if a.start <= b.end && b.start <= a.end {
                    return Err(invalid(format!(
                        "ranges {} and {} overlap",
                        a.describe(),
                        b.describe()
                    )));
                }
            }
        }
        Ok(RangeSet { ranges })
    }

    pub fn range_for(&self, ip: IpAddr) -> Option<&Canon> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    pub fn describe(&self) -> String {
        let ranges: Vec<String> = self.ranges.iter().map(Canon::describe).collect();
        ranges.join(", ")
    }

    /// Every address of the set once, in the reference's round-robin order: starting right
    /// after `last` when `last` lies in one of the ranges (so `last` itself comes last), else
    /// at the first range's start; moving to the next range's start after a range's end and
    /// wrapping from the last range to the first; never yielding a range's gateway.
    pub fn candidates(&self, last: Option<IpAddr>) -> Candidates<'_> {
        let total = self
            .ranges
            .iter()
            .fold(0u128, |sum, r| sum.saturating_add(r.end - r.start + 1));
        let (range, value) = match last.and_then(|ip| {
            self.ranges
                .iter()
                .position(|r| r.contains(ip))
                .map(|k| (k, to_u128(ip)))
        }) {
            Some((k, value)) => self.step(k, value),
            None => (0, self.ranges[0].start),
        };
        Candidates {
            set: self,
            range,
            value,
            remaining: total,
        }
    }

    fn step(&self, range: usize, value: u128) -> (usize, u128) {
        if value >= self.ranges[range].end {
            let next = (range + 1) % self.ranges.len();
            (next, self.ranges[next].start)
        } else {
            (range, value + 1)
        }
    }
}

/// See [`RangeSet::candidates`].
pub(crate) struct Candidates<'a> {
    set: &'a RangeSet,
    range: usize,
    value: u128,
    remaining: u128,
}

impl Iterator for Candidates<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        while self.remaining > 0 {
            self.remaining -= 1;
            let (range, value) = (self.range, self.value);
            (self.range, self.value) = self.set.step(range, value);
            let r = &self.set.ranges[range];
            if value != r.gateway {
                return Some(from_u128(r.v4, value));
            }
        }
        None
    }
}

/// The text the reference plugin names an address's file with (Go's `net.IP.String()`): dotted
/// quad for IPv4 (including IPv4-mapped IPv6 addresses, which Go prints as IPv4), RFC 5952
/// compressed lowercase form for IPv6 (the longest run of two or more zero groups, the leftmost
/// on a tie, becomes `::`), which is also what Rust prints for every other IPv6 address.
pub fn go_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
    }
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub(crate) fn from_u128(v4: bool, value: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}
