//! Address types as libnetwork writes them: CIDR strings (Go's
//! `net.IPNet.String()`, host bits kept), bare IP strings and MAC strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with a prefix length, keeping the host bits ("10.0.0.5/24").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A malformed address string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// No `/` separating the address from the prefix length.
    #[error("invalid CIDR {0:?}: missing prefix length")]
    MissingPrefix(String),
    /// The part before the `/` is not an IPv4 or IPv6 address.
    #[error("invalid CIDR {0:?}: not an IP address before the slash")]
    CidrAddress(String),
    /// The prefix length is not a number in 0..=32 (IPv4) or 0..=128 (IPv6).
    #[error("invalid CIDR {0:?}: prefix length out of range for the address family")]
    Prefix(String),
    /// Not an IPv4 or IPv6 address.
    #[error("invalid IP address {0:?}")]
    Ip(String),
    /// Not six hexadecimal octets separated by `:` or `-`.
    #[error("invalid MAC address {0:?}")]
    Mac(String),
}

impl IpNet {
    /// Builds a CIDR; `None` when the prefix is longer than the family allows.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        (prefix <= max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    /// The address, host bits included.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether the address is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The same prefix with the host bits cleared ("10.0.0.5/24" → "10.0.0.0/24").
    pub fn network(&self) -> IpNet {
        let host_bits = u32::from(max_prefix(self.addr) - self.prefix);
        let clear = |bits: u128| bits.checked_shr(host_bits).map_or(0, |b| b << host_bits);
        let addr = match self.addr {
            // host_bits <= 32 here, so the cleared value fits back into 32 bits.
            IpAddr::V4(a) => IpAddr::V4((clear(u128::from(u32::from(a))) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6(clear(u128::from(a)).into()),
        };
        IpNet {
            addr,
            prefix: self.prefix,
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

impl FromStr for IpNet {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<IpNet, AddrError> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| AddrError::MissingPrefix(s.into()))?;
        let addr: IpAddr = addr.parse().map_err(|_| AddrError::CidrAddress(s.into()))?;
        // u8::from_str accepts a leading '+'; Go's ParseCIDR does not.
        let digits_only = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|_| digits_only)
            .ok_or_else(|| AddrError::Prefix(s.into()))?;
        IpNet::new(addr, prefix).ok_or_else(|| AddrError::Prefix(s.into()))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A 48-bit MAC address, written lowercase with colons like Go's `net.HardwareAddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<MacAddr, AddrError> {
        let bad = || AddrError::Mac(s.into());
        let separator = if s.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut parts = s.split(separator);
        for octet in &mut octets {
            // from_str_radix alone would accept "+a".
            let part = parts
                .next()
                .filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
            let part = part.ok_or_else(bad)?;
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(IpNet);
string_serde!(MacAddr);

/// Parses a bare IP address with an error that names the value.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, AddrError> {
    s.parse().map_err(|_| AddrError::Ip(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_keeps_host_bits_and_round_trips() {
        let net: IpNet = "10.0.0.5/24".parse().unwrap();
        assert_eq!(net.addr(), "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(net.prefix(), 24);
        assert!(net.is_ipv4());
        assert_eq!(net.to_string(), "10.0.0.5/24");
        assert_eq!(net.network().to_string(), "10.0.0.0/24");
        let v6: IpNet = "fd00:1::7/64".parse().unwrap();
        assert_eq!(v6.network().to_string(), "fd00:1::/64");
        assert_eq!("0.0.0.0/0".parse::<IpNet>().unwrap().network().prefix(), 0);
        assert_eq!(
            "10.1.2.3/32"
                .parse::<IpNet>()
                .unwrap()
                .network()
                .to_string(),
            "10.1.2.3/32"
        );
    }

    #[test]
    fn cidr_errors_name_the_value_and_the_problem() {
        let cases = [
            (
                "10.0.0.5",
                "invalid CIDR \"10.0.0.5\": missing prefix length",
            ),
            (
                "10.0.0/24",
                "invalid CIDR \"10.0.0/24\": not an IP address before the slash",
            ),
            (
                "/24",
                "invalid CIDR \"/24\": not an IP address before the slash",
            ),
            (
                "10.0.0.5/33",
                "invalid CIDR \"10.0.0.5/33\": prefix length out of range for the address family",
            ),
            (
                "fd00::1/129",
                "invalid CIDR \"fd00::1/129\": prefix length out of range for the address family",
            ),
            (
                "10.0.0.5/",
                "invalid CIDR \"10.0.0.5/\": prefix length out of range for the address family",
            ),
            (
                "10.0.0.5/+8",
                "invalid CIDR \"10.0.0.5/+8\": prefix length out of range for the address family",
            ),
            (
                "10.0.0.5/999",
                "invalid CIDR \"10.0.0.5/999\": prefix length out of range for the address family",
            ),
            (
                "010.0.0.5/8",
                "invalid CIDR \"010.0.0.5/8\": not an IP address before the slash",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(
                input.parse::<IpNet>().unwrap_err().to_string(),
                message,
                "{input}"
            );
        }
    }

    #[test]
    fn mac_accepts_colons_dashes_and_any_case() {
        let mac: MacAddr = "02:42:AC:11:00:0a".parse().unwrap();
        assert_eq!(mac.0, [0x02, 0x42, 0xac, 0x11, 0x00, 0x0a]);
        assert_eq!(mac.to_string(), "02:42:ac:11:00:0a");
        assert_eq!("02-42-ac-11-00-0a".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn mac_rejects_wrong_shapes() {
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:0a:ff",
            "2:42:ac:11:00:0a",
            "02:42:ac:11:00:zz",
            "02:42-ac:11:00:0a",
            "+2:42:ac:11:00:0a",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>().unwrap_err(),
                AddrError::Mac(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn serde_uses_the_string_forms() {
        let net: IpNet = serde_json::from_str("\"192.168.1.7/16\"").unwrap();
        assert_eq!(serde_json::to_string(&net).unwrap(), "\"192.168.1.7/16\"");
        let err = serde_json::from_str::<IpNet>("\"192.168.1.7\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid CIDR \"192.168.1.7\": missing prefix length"),
            "{err}"
        );
        assert!(serde_json::from_str::<IpNet>("24").is_err());
        let mac: MacAddr = serde_json::from_str("\"aa:bb:cc:dd:ee:ff\"").unwrap();
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"aa:bb:cc:dd:ee:ff\""
        );
    }
}
