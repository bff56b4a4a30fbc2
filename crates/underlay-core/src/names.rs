//! Validated names and addresses: interface names and MAC addresses.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A Linux interface name: 1 to 15 bytes (`IFNAMSIZ` - 1), no `/`, no whitespace, not `.`/`..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A unique name to create a link under before renaming it: `ul` + 12 random hex digits
    /// (14 bytes, within IFNAMSIZ).
    pub fn temporary() -> Result<IfName, Error> {
        Ok(IfName(format!("ul{}", random_hex(6)?)))
    }

    /// For names built by underlay itself that are valid by construction.
    pub(crate) fn new_unchecked(name: String) -> IfName {
        debug_assert!(name.parse::<IfName>().is_ok(), "{name}");
        IfName(name)
    }
}

impl FromStr for IfName {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        let bad =
            |reason: &str| Error::invalid(format!("invalid interface name {name:?}: {reason}"));
        if name.is_empty() {
            return Err(bad("it is empty"));
        }
        if name.len() > 15 {
            return Err(bad(&format!(
                "it is {} bytes long, the kernel allows 15",
                name.len()
            )));
        }
        if name.contains('/') || name.contains(':') || name.chars().any(char::is_whitespace) {
            return Err(bad("it may not contain '/', ':' or whitespace"));
        }
        if name == "." || name == ".." {
            return Err(bad("it is reserved"));
        }
        Ok(IfName(name.to_string()))
    }
}

impl TryFrom<String> for IfName {
    type Error = Error;
    fn try_from(name: String) -> Result<Self, Error> {
        name.parse()
    }
}

impl From<IfName> for String {
    fn from(name: IfName) -> String {
        name.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A unicast Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random, locally administered, unicast address (bit 1 of the first octet set, bit 0
    /// clear), as Docker and the CNI plugins generate.
    pub fn random() -> Result<Self, Error> {
        let mut bytes = [0u8; 6];
        random_bytes(&mut bytes)?;
        bytes[0] = (bytes[0] & 0xfe) | 0x02;
        Ok(MacAddr(bytes))
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::invalid(format!("invalid MAC address {text:?}: {reason}"));
        let parts: Vec<&str> = text.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(bad("expected six hex octets like 02:42:ac:11:00:02"));
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(&parts) {
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad("not hexadecimal"))?;
        }
        if bytes[0] & 1 == 1 {
            return Err(bad("it is a multicast address"));
        }
        if bytes == [0; 6] {
            return Err(bad("it is all zeros"));
        }
        Ok(MacAddr(bytes))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        text.parse()
    }
}

impl From<MacAddr> for String {
    fn from(mac: MacAddr) -> String {
        mac.to_string()
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

/// Fills `buf` from the kernel's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| Error::Io(format!("reading /dev/urandom: {e}")))
}

/// `bytes` random bytes as lowercase hex (IDs like Docker's 64-character network IDs).
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    random_bytes(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert!("eth0".parse::<IfName>().is_ok());
        assert!("a23456789012345".parse::<IfName>().is_ok());
        let long = "a234567890123456"
            .parse::<IfName>()
            .unwrap_err()
            .to_string();
        assert_eq!(long, "invalid interface name \"a234567890123456\": it is 16 bytes long, the kernel allows 15");
        for bad in ["", "a/b", "a b", ".", ".."] {
            assert!(bad.parse::<IfName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mac_addresses() {
        let mac: MacAddr = "02:42:AC:11:00:02".parse().unwrap();
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        assert!("01:00:5e:00:00:01"
            .parse::<MacAddr>()
            .unwrap_err()
            .to_string()
            .contains("multicast"));
        assert!("00:00:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:42:ac:11:00".parse::<MacAddr>().is_err());
        assert!("02:42:ac:11:00:zz".parse::<MacAddr>().is_err());
        for _ in 0..20 {
            let r = MacAddr::random().unwrap();
            assert_eq!(r.0[0] & 0x03, 0x02, "{r}");
        }
    }
}
