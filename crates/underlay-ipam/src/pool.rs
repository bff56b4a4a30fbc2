use std::net::IpAddr;

use crate::{IpamError, Subnet};

/// Offsets at or above this are never handed out by the allocator (they are still valid for
/// static requests). It keeps allocation offsets inside a signed 64-bit integer, and no network
/// of containers needs more than 2^62 dynamic addresses: for IPv6 subnets wider than /66 the
/// allocator uses the low end of the subnet only.
pub const MAX_DYNAMIC_OFFSET: u128 = 1 << 62;

/// A set of addresses to allocate from: a subnet, optionally narrowed to an `ip-range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Key of the pool in the store (one per network and family).
    pub id: String,
    pub subnet: Subnet,
    pub range: Option<Subnet>,
}

impl Pool {
    /// A pool; `range` must lie inside `subnet`.
    pub fn new(
        id: impl Into<String>,
        subnet: Subnet,
        range: Option<Subnet>,
    ) -> Result<Self, IpamError> {
        if let Some(range) = range {
            if !(subnet.contains(range.addr()) && range.prefix() >= subnet.prefix()) {
                return Err(IpamError::RangeOutsideSubnet {
                    range: range.to_string(),
                    subnet: subnet.to_string(),
                });
            }
        }
        Ok(Pool {
            id: id.into(),
            subnet,
            range,
        })
    }

    /// The allocation window as offsets into the subnet, both ends included; `None` when the
    /// window holds no usable address.
    pub fn window(&self) -> Option<(u128, u128)> {
        let (first, last) = self.usable();
        let (lo, hi) = match self.range {
            Some(range) => {
                let start = self.subnet.offset_of(range.addr())?;
                (start.max(first), (start + range.last_offset()).min(last))
            }
            None => (first, last),
        };
        let hi = hi.min(MAX_DYNAMIC_OFFSET - 1);
        (lo <= hi).then_some((lo, hi))
    }

    /// Checks that `ip` may be requested statically and returns its offset.
    pub fn check_static(&self, ip: IpAddr) -> Result<u128, IpamError> {
        let subnet = self.subnet.to_string();
        let offset = self.subnet.offset_of(ip).ok_or(IpamError::OutsideSubnet {
            ip,
            subnet: subnet.clone(),
        })?;
        if let Some(range) = self.range.filter(|r| !r.contains(ip)) {
            return Err(IpamError::OutsideRange {
                ip,
                range: range.to_string(),
            });
        }
        let (first, last) = self.usable();
        if offset < first {
            return Err(IpamError::NetworkAddress { ip, subnet });
        }
        if offset > last {
            return Err(IpamError::BroadcastAddress { ip, subnet });
        }
        Ok(offset)
    }

    /// The window text for error messages.
    pub fn window_text(&self) -> String {
        self.range.unwrap_or(self.subnet).to_string()
    }

    /// First and last usable offsets of the subnet: IPv4 skips the network and broadcast
    /// addresses (except /31 and /32, RFC 3021); IPv6 skips the subnet-router anycast address.
    fn usable(&self) -> (u128, u128) {
        let last = self.subnet.last_offset();
        match (self.subnet.is_ipv4(), self.subnet.host_bits()) {
            (true, 0 | 1) => (0, last),
            (true, _) => (1, last - 1),
            (false, 0) => (0, 0),
            (false, _) => (1, last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str, range: Option<&str>) -> Pool {
        Pool::new(
            "p",
            subnet.parse().unwrap(),
            range.map(|r| r.parse().unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn v4_window_skips_network_and_broadcast() {
        assert_eq!(pool("10.0.0.0/24", None).window(), Some((1, 254)));
        assert_eq!(
            pool("10.0.0.0/24", Some("10.0.0.128/25")).window(),
            Some((128, 254))
        );
        assert_eq!(
            pool("10.0.0.0/24", Some("10.0.0.0/30")).window(),
            Some((1, 3))
        );
        assert_eq!(pool("10.0.0.0/31", None).window(), Some((0, 1)));
        assert_eq!(pool("10.0.0.0/32", None).window(), Some((0, 0)));
    }

    #[test]
    fn v6_window_is_capped() {
        assert_eq!(
            pool("2001:db8::/64", None).window(),
            Some((1, MAX_DYNAMIC_OFFSET - 1))
        );
        assert_eq!(pool("2001:db8::/120", None).window(), Some((1, 255)));
    }

    #[test]
    fn range_must_be_inside_subnet() {
        let err = Pool::new(
            "p",
            "10.0.0.0/24".parse().unwrap(),
            Some("10.0.1.0/25".parse().unwrap()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ip range 10.0.1.0/25 is not inside subnet 10.0.0.0/24"
        );
        assert!(Pool::new(
            "p",
            "10.0.0.0/24".parse().unwrap(),
            Some("10.0.0.0/23".parse().unwrap())
        )
        .is_err());
    }

    #[test]
    fn static_checks_name_the_address() {
        let p = pool("10.0.0.0/24", Some("10.0.0.128/25"));
        assert_eq!(p.check_static("10.0.0.130".parse().unwrap()).unwrap(), 130);
        let msg = |ip: &str| p.check_static(ip.parse().unwrap()).unwrap_err().to_string();
        assert_eq!(
            msg("10.0.1.1"),
            "address 10.0.1.1 is not in subnet 10.0.0.0/24"
        );
        assert_eq!(
            msg("10.0.0.5"),
            "address 10.0.0.5 is not in ip range 10.0.0.128/25"
        );
        assert_eq!(
            msg("10.0.0.255"),
            "address 10.0.0.255 is the broadcast address of 10.0.0.0/24"
        );
        let whole = pool("10.0.0.0/24", None);
        assert!(whole.check_static("10.0.0.0".parse().unwrap()).is_err());
    }
}
