//! Address types used on the wire: CIDR addresses, MAC addresses and
//! `ip[/prefix]` requests.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address with a prefix length, keeping the host bits ("10.1.2.3/24").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A malformed address string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// Not `address/prefix` with a valid address and prefix length.
    #[error("invalid CIDR address {0:?}")]
    Cidr(String),
    /// Not an IPv4 or IPv6 address.
    #[error("invalid IP address {0:?}")]
    Ip(String),
    /// Not a 6-byte MAC address.
    #[error("invalid MAC address {0:?}")]
    Mac(String),
}

impl IpNet {
    /// Builds a CIDR; `None` when the prefix is longer than the family allows.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        (prefix <= max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    /// The address (with host bits).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The maximum prefix length for the family (32 or 128).
    pub fn max_prefix(&self) -> u8 {
        max_prefix(self.addr)
    }

    /// Whether this is an IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        from_bits(self.addr, to_bits(self.addr) & self.mask_bits())
    }

    /// The last address of the network (all host bits set).
    pub fn last(&self) -> IpAddr {
        from_bits(
            self.addr,
            to_bits(self.addr) | !self.mask_bits() & family_bits(self.addr),
        )
    }

    /// Whether host bits are set (i.e. this is not a network address).
    pub fn has_host_bits(&self) -> bool {
        self.network() != self.addr
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && to_bits(ip) & self.mask_bits() == to_bits(self.addr) & self.mask_bits()
    }

    fn mask_bits(&self) -> u128 {
        let width = u32::from(max_prefix(self.addr));
        let host = width - u32::from(self.prefix);
        let all = family_bits(self.addr);
        if host >= 128 {
            0
        } else {
            (all >> host) << host
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn family_bits(addr: IpAddr) -> u128 {
    if addr.is_ipv4() {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    }
}

/// The address as an integer (IPv4 in the low 32 bits).
pub fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_bits`] for the family of `like`.
pub fn from_bits(like: IpAddr, bits: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// The next address (wrapping within the family).
pub fn next_ip(addr: IpAddr) -> IpAddr {
    from_bits(addr, to_bits(addr).wrapping_add(1) & family_bits(addr))
}

/// The previous address (wrapping within the family).
pub fn prev_ip(addr: IpAddr) -> IpAddr {
    from_bits(addr, to_bits(addr).wrapping_sub(1) & family_bits(addr))
}

/// Parses an IP, turning IPv4-mapped IPv6 into IPv4 like Go's `To4()`.
pub fn parse_ip(s: &str) -> Result<IpAddr, AddrError> {
    let ip: IpAddr = s.parse().map_err(|_| AddrError::Ip(s.to_string()))?;
    Ok(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpNet {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<IpNet, AddrError> {
        let bad = || AddrError::Cidr(s.to_string());
        let (ip, len) = s.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        IpNet::new(ip, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A MAC address (6 bytes), written lowercase with colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<MacAddr, AddrError> {
        let bad = || AddrError::Mac(s.to_string());
        let sep = if s.contains('-') { '-' } else { ':' };
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (slot, part) in out.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A requested address: `ip` or `ip/prefix` (the `ips` capability and `args.cni.ips`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRequest {
    /// The address.
    pub ip: IpAddr,
    /// The prefix length, when given.
    pub prefix: Option<u8>,
}

impl IpRequest {
    /// The request as a CIDR, when it has a prefix.
    pub fn cidr(&self) -> Option<IpNet> {
        self.prefix.and_then(|p| IpNet::new(self.ip, p))
    }
}

impl FromStr for IpRequest {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<IpRequest, AddrError> {
        if s.contains('/') {
            let net: IpNet = s.parse()?;
            return Ok(IpRequest {
                ip: canonical(net.addr()),
                prefix: Some(net.prefix()),
            });
        }
        Ok(IpRequest {
            ip: parse_ip(s)?,
            prefix: None,
        })
    }
}

impl fmt::Display for IpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{}", self.ip, p),
            None => write!(f, "{}", self.ip),
        }
    }
}

macro_rules! serde_via_str {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

serde_via_str!(IpNet, "a CIDR address string");
serde_via_str!(MacAddr, "a MAC address string");
serde_via_str!(IpRequest, "an IP address string, optionally with /prefix");

/// Serde helpers for a plain `IpAddr` field with canonical (IPv4-mapped → IPv4) parsing.
pub(crate) mod ip_serde {
    use super::*;

    /// Deserializes an optional IP address.
    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => parse_ip(s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_and_math() {
        let n: IpNet = "10.1.2.3/24".parse().unwrap();
        assert_eq!(n.to_string(), "10.1.2.3/24");
        assert!(n.has_host_bits());
        assert_eq!(n.network(), parse_ip("10.1.2.0").unwrap());
        assert_eq!(n.last(), parse_ip("10.1.2.255").unwrap());
        assert!(n.contains(parse_ip("10.1.2.200").unwrap()));
        assert!(!n.contains(parse_ip("10.1.3.1").unwrap()));
        assert!(!n.contains(parse_ip("::1").unwrap()));
        let z: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(z.contains(parse_ip("8.8.8.8").unwrap()));
        let v6: IpNet = "fd00::/64".parse().unwrap();
        assert!(!v6.has_host_bits());
        assert_eq!(v6.last(), parse_ip("fd00::ffff:ffff:ffff:ffff").unwrap());
        let all6: IpNet = "::/0".parse().unwrap();
        assert!(all6.contains(parse_ip("fd00::1").unwrap()));
    }

    #[test]
    fn cidr_rejects_garbage() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "x/24",
            "10.0.0.0/",
            "10.0.0.0/+4",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn next_prev_wrap() {
        assert_eq!(
            next_ip(parse_ip("10.0.0.255").unwrap()),
            parse_ip("10.0.1.0").unwrap()
        );
        assert_eq!(
            prev_ip(parse_ip("0.0.0.0").unwrap()),
            parse_ip("255.255.255.255").unwrap()
        );
        assert_eq!(
            parse_ip("::ffff:10.0.0.1").unwrap(),
            parse_ip("10.0.0.1").unwrap()
        );
    }

    #[test]
    fn mac_parse() {
        let m: MacAddr = "0A-0b-0c-0d-0e-0f".parse().unwrap();
        assert_eq!(m.to_string(), "0a:0b:0c:0d:0e:0f");
        assert!("0a:0b:0c:0d:0e".parse::<MacAddr>().is_err());
        assert!("0a:0b:0c:0d:0e:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn ip_request_forms() {
        let r: IpRequest = "10.0.0.5".parse().unwrap();
        assert_eq!(r.prefix, None);
        let r: IpRequest = "10.0.0.5/24".parse().unwrap();
        assert_eq!(r.cidr().unwrap().to_string(), "10.0.0.5/24");
        assert!("nope".parse::<IpRequest>().is_err());
    }
}
