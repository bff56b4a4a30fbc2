//! Stable per-endpoint identities: a MAC address, a DHCPv4 client identifier and a DHCPv6 DUID
//! and IAID, all derived from the (network, endpoint) names.
//!
//! The same endpoint name on the same network always presents the same identity, so a DHCP server
//! hands it the same address after a container restart (a random MAC would make the server see a
//! new client each time). The DHCPv4 client identifier follows RFC 4361 (type 255, IAID, DUID), so
//! the v4 and v6 servers see one client, and two ipvlan endpoints that share their parent's MAC
//! still get different leases.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Domain separation: the hash of these names is used for nothing else.
const DOMAIN: &[u8] = b"underlay-dhcp identity v1\0";
/// DUID type 4, DUID-UUID (RFC 6355 section 4).
const DUID_UUID: u16 = 4;
/// RFC 4361 section 6.1: client identifier type 255 means "IAID and DUID follow".
const CLIENT_ID_TYPE_DUID: u8 = 0xff;
/// RFC 8415 section 11.1: a DUID is at most 128 octets after its 2-octet type.
const MAX_DUID_LEN: usize = 130;
/// RFC 2132 section 9.14: a client identifier has at least 2 octets; an option holds 255.
const CLIENT_ID_LEN: std::ops::RangeInclusive<usize> = 2..=255;

/// What a DHCP client presents to servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Unicast, locally administered MAC for the endpoint's link.
    pub mac: [u8; 6],
    /// DHCPv4 option 61 value (RFC 4361: `0xff`, IAID, DUID).
    pub client_id: Vec<u8>,
    /// DHCPv6 DUID (DUID-UUID unless overridden).
    pub duid: Vec<u8>,
    /// Identity association id shared by the v4 client id and the v6 IA_NA.
    pub iaid: u32,
}

/// A user-given hex identifier that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier {input:?} has a bad character {found:?} at position {position}")]
    BadCharacter {
        input: String,
        found: char,
        position: usize,
    },
    #[error("identifier {input:?} has an odd number of hex digits")]
    OddLength { input: String },
    #[error("identifier {input:?} has a group {group:?} that is not two hex digits")]
    BadGroup { input: String, group: String },
    #[error("client identifier {input:?} is {len} bytes, expected 2 to 255")]
    ClientIdLength { input: String, len: usize },
    #[error("duid {input:?} is {len} bytes, expected 3 to 130")]
    DuidLength { input: String, len: usize },
}

/// The identity of `endpoint` on `network`; the same names always give the same identity.
///
/// The names are length-prefixed before hashing, so ("a", "bc") and ("ab", "c") differ.
pub fn derive_identity(network: &str, endpoint: &str) -> Identity {
    let hash = identity_hash(network, endpoint);
    let mac = local_unicast_mac(&hash[0..6]);
    let duid = duid_uuid(&hash[6..22]);
    let iaid = u32::from_be_bytes([hash[22], hash[23], hash[24], hash[25]]);
    let client_id = rfc4361_client_id(iaid, &duid);
    Identity {
        mac,
        client_id,
        duid,
        iaid,
    }
}

impl Identity {
    /// This identity with user-given values in place of the derived ones.
    ///
    /// A DUID override without a client-id override also changes the client id, which embeds the
    /// DUID (RFC 4361), so the v4 and v6 servers keep seeing one client.
    pub fn with_overrides(
        mut self,
        mac: Option<[u8; 6]>,
        client_id: Option<Vec<u8>>,
        duid: Option<Vec<u8>>,
    ) -> Identity {
        if let Some(mac) = mac {
            self.mac = mac;
        }
        if let Some(duid) = duid {
            self.duid = duid;
            self.client_id = rfc4361_client_id(self.iaid, &self.duid);
        }
        if let Some(client_id) = client_id {
            self.client_id = client_id;
        }
        self
    }
}

fn identity_hash(network: &str, endpoint: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    for name in [network, endpoint] {
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name.as_bytes());
    }
    hasher.finalize().into()
}

fn local_unicast_mac(bytes: &[u8]) -> [u8; 6] {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(bytes);
    // Bit 0 of the first octet is the group bit (must be clear), bit 1 the local bit (set).
    mac[0] = (mac[0] & !0x01) | 0x02;
    mac
}

/// A DUID-UUID whose UUID carries version 8 and the RFC 9562 variant: RFC 9562 appendix B.2 names
/// version 8 for name-based UUIDs built from SHA-256 (version 5 would claim SHA-1).
fn duid_uuid(bytes: &[u8]) -> Vec<u8> {
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(bytes);
    uuid[6] = (uuid[6] & 0x0f) | 0x80;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let mut duid = DUID_UUID.to_be_bytes().to_vec();
    duid.extend_from_slice(&uuid);
    duid
}

fn rfc4361_client_id(iaid: u32, duid: &[u8]) -> Vec<u8> {
    let mut id = vec![CLIENT_ID_TYPE_DUID];
    id.extend_from_slice(&iaid.to_be_bytes());
    id.extend_from_slice(duid);
    id
}

/// Parses a user-given DHCPv4 client identifier: `"ff:00:01:..."` or `"ff0001..."`.
pub fn parse_client_id(input: &str) -> Result<Vec<u8>, IdentityError> {
    let bytes = parse_hex(input)?;
    if !CLIENT_ID_LEN.contains(&bytes.len()) {
        return Err(IdentityError::ClientIdLength {
            input: input.to_string(),
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

/// Parses a user-given DHCPv6 DUID: a 2-byte type and 1 to 128 bytes, in either hex form.
pub fn parse_duid(input: &str) -> Result<Vec<u8>, IdentityError> {
    let bytes = parse_hex(input)?;
    if !(3..=MAX_DUID_LEN).contains(&bytes.len()) {
        return Err(IdentityError::DuidLength {
            input: input.to_string(),
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

/// Parses hex bytes written as colon-separated pairs (`"ff:00"`) or one run (`"ff00"`).
pub fn parse_hex(input: &str) -> Result<Vec<u8>, IdentityError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(IdentityError::Empty);
    }
    if let Some((position, found)) = trimmed
        .char_indices()
        .find(|(_, c)| !c.is_ascii_hexdigit() && *c != ':')
    {
        return Err(IdentityError::BadCharacter {
            input: input.to_string(),
            found,
            position,
        });
    }
    if trimmed.contains(':') {
        parse_groups(input, trimmed)
    } else {
        parse_run(input, trimmed)
    }
}

fn parse_groups(input: &str, trimmed: &str) -> Result<Vec<u8>, IdentityError> {
    trimmed
        .split(':')
        .map(|group| match group.len() {
            2 => Ok(hex_byte(group.as_bytes())),
            _ => Err(IdentityError::BadGroup {
                input: input.to_string(),
                group: group.to_string(),
            }),
        })
        .collect()
}

fn parse_run(input: &str, trimmed: &str) -> Result<Vec<u8>, IdentityError> {
    if !trimmed.len().is_multiple_of(2) {
        return Err(IdentityError::OddLength {
            input: input.to_string(),
        });
    }
    Ok(trimmed.as_bytes().chunks(2).map(hex_byte).collect())
}

/// Two ASCII hex digits, already checked by the caller.
fn hex_byte(pair: &[u8]) -> u8 {
    let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    digit(pair[0]) << 4 | digit(pair[1])
}

/// Formats bytes as colon-separated lowercase hex pairs, the form [`parse_hex`] reads back.
pub fn format_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
