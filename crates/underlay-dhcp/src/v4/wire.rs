//! Reading a received DHCPv4 message defensively, then decoding it with dhcproto.
//!
//! dhcproto's option decoder is not safe on hostile input: several option decoders
//! `debug_assert!` on lengths or compute `len - n` (options 80, 81, 94, 151-155), `chaddr()`
//! slices by an unchecked `hlen`, and one undecodable option silently ends the option list. So
//! this module walks the option TLVs itself (RFC 3396 concatenation, option overload), and hands
//! dhcproto only the options the client uses, one at a time; an option that fails to decode is
//! dropped alone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, DhcpOptions, Message, OptionCode, MAGIC};
use dhcproto::{Decodable, Decoder};

use super::Ignored;

/// Fixed BOOTP header (236 bytes) plus the magic cookie.
const HEADER: usize = 240;
const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;
const OPT_OVERLOAD: u8 = 52;

/// The options the client reads; nothing else reaches dhcproto's decoder.
const WANTED: [u8; 13] = [1, 3, 6, 15, 26, 51, 53, 54, 58, 59, 61, 119, 121];

/// The parts of a reply the client looks at.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) op: u8,
    pub(crate) xid: u32,
    pub(crate) hlen: u8,
    pub(crate) chaddr: [u8; 16],
    pub(crate) yiaddr: Ipv4Addr,
    pub(crate) opts: DhcpOptions,
    /// Raw value of option 53 (the decoded enum hides a wrong length).
    pub(crate) message_type: Option<u8>,
}

pub(crate) fn parse(payload: &[u8]) -> Result<Reply, Ignored> {
    if payload.len() < HEADER {
        return Err(malformed(format!(
            "{} bytes is shorter than the 240-byte header",
            payload.len()
        )));
    }
    let header = Message::decode(&mut Decoder::new(&payload[..HEADER]))
        .map_err(|e| malformed(format!("header: {e}")))?;
    if payload[236..240] != MAGIC {
        return Err(malformed("no dhcp magic cookie".to_string()));
    }
    let raw = raw_options(payload)?;
    let message_type = match raw.get(&53).map(Vec::as_slice) {
        Some([kind]) => Some(*kind),
        Some(other) => return Err(malformed(format!("option 53 has length {}", other.len()))),
        None => None,
    };
    let mut chaddr = [0u8; 16];
    chaddr.copy_from_slice(&payload[28..44]);
    Ok(Reply {
        op: payload[0],
        xid: header.xid(),
        hlen: payload[2],
        chaddr,
        yiaddr: header.yiaddr(),
        opts: decode_wanted(&raw),
        message_type,
    })
}

fn malformed(reason: String) -> Ignored {
    Ignored::Malformed(reason)
}

/// Every option's bytes by code, the instances of one code concatenated in order (RFC 3396),
/// from the options field, then `file` and `sname` when option 52 says they carry options.
fn raw_options(payload: &[u8]) -> Result<BTreeMap<u8, Vec<u8>>, Ignored> {
    let mut raw = BTreeMap::new();
    walk(&payload[HEADER..], &mut raw)?;
    let overload = raw
        .get(&OPT_OVERLOAD)
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    if overload & 1 != 0 {
        walk(&payload[FILE], &mut raw)?;
    }
    if overload & 2 != 0 {
        walk(&payload[SNAME], &mut raw)?;
    }
    Ok(raw)
}

fn walk(mut area: &[u8], raw: &mut BTreeMap<u8, Vec<u8>>) -> Result<(), Ignored> {
    while let Some((&code, rest)) = area.split_first() {
        match code {
            0 => area = rest,
            255 => return Ok(()),
            _ => {
                let (&len, rest) = rest
                    .split_first()
                    .ok_or_else(|| malformed(format!("option {code} has no length byte")))?;
                let len = usize::from(len);
                if rest.len() < len {
                    return Err(malformed(format!(
                        "option {code} length {len} runs past the end"
                    )));
                }
                raw.entry(code).or_default().extend_from_slice(&rest[..len]);
                area = &rest[len..];
            }
        }
    }
    Ok(())
}

fn decode_wanted(raw: &BTreeMap<u8, Vec<u8>>) -> DhcpOptions {
    let mut opts = DhcpOptions::new();
    for (code, data) in raw.iter().filter(|(code, _)| WANTED.contains(code)) {
        if let Some(opt) = decode_one(*code, data) {
            opts.insert(opt);
        }
    }
    opts
}

/// Re-frames one (possibly concatenated) option as 255-byte chunks, which dhcproto joins again.
fn decode_one(code: u8, data: &[u8]) -> Option<DhcpOption> {
    let mut framed = Vec::with_capacity(data.len() + 2 * (data.len() / 255 + 1));
    if data.is_empty() {
        framed.extend_from_slice(&[code, 0]);
    }
    for chunk in data.chunks(255) {
        framed.push(code);
        framed.push(chunk.len() as u8);
        framed.extend_from_slice(chunk);
    }
    let opt = DhcpOption::decode(&mut Decoder::new(&framed)).ok()?;
    (OptionCode::from(&opt) == OptionCode::from(code)).then_some(opt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(options: &[u8]) -> Vec<u8> {
        let mut payload = vec![0u8; HEADER];
        payload[0] = 2;
        payload[236..240].copy_from_slice(&MAGIC);
        payload.extend_from_slice(options);
        payload
    }

    #[test]
    fn repeated_options_are_concatenated() {
        let payload = message(&[6, 4, 10, 0, 0, 1, 53, 1, 5, 6, 4, 10, 0, 0, 2, 255]);
        let reply = parse(&payload).unwrap();
        let dns = reply.opts.get(OptionCode::DomainNameServer);
        let want = vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        assert_eq!(dns, Some(&DhcpOption::DomainNameServer(want)));
        assert_eq!(reply.message_type, Some(5));
    }

    #[test]
    fn overloaded_file_field_carries_options() {
        let mut payload = message(&[52, 1, 1, 53, 1, 2, 255]);
        payload[FILE.start..FILE.start + 7].copy_from_slice(&[1, 4, 255, 255, 255, 0, 255]);
        let reply = parse(&payload).unwrap();
        let mask = DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(reply.opts.get(OptionCode::SubnetMask), Some(&mask));
    }

    #[test]
    fn option_that_fails_to_decode_is_dropped_alone() {
        // Option 15 (domain name) that is not UTF-8, before the mask.
        let payload = message(&[15, 2, 0xff, 0xfe, 1, 4, 255, 255, 0, 0, 255]);
        let reply = parse(&payload).unwrap();
        assert!(reply.opts.get(OptionCode::DomainName).is_none());
        assert!(reply.opts.get(OptionCode::SubnetMask).is_some());
    }

    #[test]
    fn truncated_option_and_short_header_are_malformed() {
        assert!(matches!(
            parse(&message(&[6, 8, 1, 2])),
            Err(Ignored::Malformed(_))
        ));
        assert!(matches!(parse(&message(&[6])), Err(Ignored::Malformed(_))));
        assert!(matches!(parse(&[2u8; 100]), Err(Ignored::Malformed(_))));
        let mut no_cookie = message(&[255]);
        no_cookie[236] = 0;
        assert!(matches!(parse(&no_cookie), Err(Ignored::Malformed(_))));
    }

    #[test]
    fn options_that_trip_dhcproto_asserts_are_never_decoded() {
        // Rapid commit with a length, FQDN shorter than 3, status code of length 0.
        let payload = message(&[80, 1, 0, 81, 1, 0, 151, 0, 94, 1, 1, 255]);
        assert!(parse(&payload).unwrap().opts.is_empty());
    }
}
