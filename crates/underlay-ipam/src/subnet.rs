use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::IpamError;

/// A network prefix with no host bits set, e.g. `10.0.0.0/24` or `2001:db8::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// Builds a subnet, refusing host bits and prefixes longer than the family allows.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpamError> {
        let text = format!("{addr}/{prefix}");
        if prefix > max_prefix(addr) {
            return Err(IpamError::InvalidCidr {
                text,
                reason: format!("prefix length must be at most {}", max_prefix(addr)),
            });
        }
        let subnet = Subnet { addr, prefix };
        if to_u128(addr) & !subnet.mask() != 0 {
            let network = from_u128(addr, to_u128(addr) & subnet.mask());
            return Err(IpamError::InvalidCidr {
                text,
                reason: format!("host bits are set (the network is {network}/{prefix})"),
            });
        }
        Ok(subnet)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Number of host bits.
    pub fn host_bits(&self) -> u32 {
        u32::from(max_prefix(self.addr) - self.prefix)
    }

    /// Whether `ip` lies in this subnet (same family and prefix).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && to_u128(ip) & self.mask() == to_u128(self.addr)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// Offset of `ip` from the network address; `None` outside the subnet.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        self.contains(ip).then(|| to_u128(ip) - to_u128(self.addr))
    }

    /// The address at `offset` from the network address.
    pub fn nth(&self, offset: u128) -> IpAddr {
        from_u128(self.addr, to_u128(self.addr) + offset)
    }

    /// The highest offset in the subnet (the v4 broadcast address's offset).
    pub fn last_offset(&self) -> u128 {
        match self.host_bits() {
            128 => u128::MAX,
            bits => (1u128 << bits) - 1,
        }
    }

    fn mask(&self) -> u128 {
        let bits = self.host_bits();
        let width = u32::from(max_prefix(self.addr));
        let full = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        if bits == 128 {
            0
        } else {
            full & !((1u128 << bits) - 1)
        }
    }
}

impl FromStr for Subnet {
    type Err = IpamError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| IpamError::InvalidCidr {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| invalid("expected ADDRESS/PREFIX"))?;
        let addr: IpAddr = addr.parse().map_err(|_| invalid("not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix length is not a number"))?;
        Subnet::new(addr, prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = IpamError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Subnet> for String {
    fn from(subnet: Subnet) -> String {
        subnet.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// An address of the same family as `like` with numeric value `value`.
fn from_u128(like: IpAddr, value: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s: Subnet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(s.to_string(), "10.0.0.0/24");
        assert_eq!(s.last_offset(), 255);
        assert_eq!(s.nth(7).to_string(), "10.0.0.7");
        let v6: Subnet = "2001:db8:babe:cafe::/64".parse().unwrap();
        assert_eq!(v6.host_bits(), 64);
        assert_eq!(v6.nth(1).to_string(), "2001:db8:babe:cafe::1");
    }

    #[test]
    fn refuses_bad_cidrs_naming_them() {
        for (text, needle) in [
            (
                "10.0.0.5/24",
                "host bits are set (the network is 10.0.0.0/24)",
            ),
            ("10.0.0.0/33", "at most 32"),
            ("10.0.0.0", "ADDRESS/PREFIX"),
            ("10.0.0.x/24", "not an IP"),
            ("10.0.0.0/x", "not a number"),
        ] {
            let err = text.parse::<Subnet>().unwrap_err().to_string();
            assert!(err.contains(text) && err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn containment_and_overlap() {
        let a: Subnet = "10.0.0.0/24".parse().unwrap();
        let b: Subnet = "10.0.0.128/25".parse().unwrap();
        let c: Subnet = "10.0.1.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(!a.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(a.offset_of("10.0.0.9".parse().unwrap()), Some(9));
        assert_eq!(a.offset_of("10.0.1.9".parse().unwrap()), None);
        let all: Subnet = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(all.last_offset(), u128::MAX);
    }
}
