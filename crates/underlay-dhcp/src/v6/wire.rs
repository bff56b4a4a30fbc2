//! Reading a received DHCPv6 message defensively.
//!
//! dhcproto's DHCPv6 option decoder computes `len - 2`, `len - 4` and `len - 11` for the Status
//! Code, Vendor Class, Vendor Options and Authentication options (an underflow panic on short
//! options), recurses without a depth bound through Relay Message and IA options, and stops at
//! the first option it cannot decode. So the option TLVs are walked here, the IA_NA and Status
//! Code options (the ones whose contents decide what the client does) are read here, and
//! dhcproto decodes the DNS options one at a time.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, Message};
use dhcproto::{Decodable, Decoder};

use super::{Ignored6, Status6};

const OPT_CLIENT_ID: u16 = 1;
const OPT_SERVER_ID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_UNICAST: u16 = 12;
const OPT_STATUS: u16 = 13;
const OPT_RAPID_COMMIT: u16 = 14;
const OPT_DNS: u16 = 23;
const OPT_DOMAIN_LIST: u16 = 24;

/// The parts of an ADVERTISE or REPLY the client looks at.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reply6 {
    pub(crate) kind: u8,
    pub(crate) xid: u32,
    pub(crate) client_id: Option<Vec<u8>>,
    pub(crate) server_id: Option<Vec<u8>>,
    /// Top-level Status Code.
    pub(crate) status: Option<Status6>,
    /// The first IA_NA whose IAID is ours.
    pub(crate) ia: Option<IaNa>,
    pub(crate) rapid_commit: bool,
    pub(crate) unicast: Option<Ipv6Addr>,
    pub(crate) dns: Vec<Ipv6Addr>,
    pub(crate) search: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct IaNa {
    pub(crate) t1: u32,
    pub(crate) t2: u32,
    pub(crate) status: Option<Status6>,
    pub(crate) addrs: Vec<IaAddr>,
}

#[derive(Debug, Clone)]
pub(crate) struct IaAddr {
    pub(crate) addr: Ipv6Addr,
    pub(crate) preferred: u32,
    pub(crate) valid: u32,
    pub(crate) status: Option<Status6>,
}

pub(crate) fn parse(payload: &[u8], iaid: u32) -> Result<Reply6, Ignored6> {
    if payload.len() < 4 {
        return Err(malformed(format!(
            "{} bytes is shorter than the 4-byte header",
            payload.len()
        )));
    }
    let header = Message::decode(&mut Decoder::new(&payload[..4]))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let mut reply = Reply6 {
        kind: payload[0],
        xid: header.xid_num(),
        ..Reply6::default()
    };
    for (code, data) in tlvs(&payload[4..])? {
        read_option(&mut reply, code, data, iaid)?;
    }
    Ok(reply)
}

fn malformed(reason: String) -> Ignored6 {
    Ignored6::Malformed(reason)
}

/// Splits options into (code, data); an option that runs past the end is malformed.
fn tlvs(mut area: &[u8]) -> Result<Vec<(u16, &[u8])>, Ignored6> {
    let mut out = Vec::new();
    while !area.is_empty() {
        if area.len() < 4 {
            return Err(malformed(format!(
                "{} stray bytes after the last option",
                area.len()
            )));
        }
        let code = u16::from_be_bytes([area[0], area[1]]);
        let len = usize::from(u16::from_be_bytes([area[2], area[3]]));
        let data = area
            .get(4..4 + len)
            .ok_or_else(|| malformed(format!("option {code} length {len} runs past the end")))?;
        out.push((code, data));
        area = &area[4 + len..];
    }
    Ok(out)
}

fn read_option(reply: &mut Reply6, code: u16, data: &[u8], iaid: u32) -> Result<(), Ignored6> {
    match code {
        OPT_CLIENT_ID => reply.client_id = Some(data.to_vec()),
        OPT_SERVER_ID => reply.server_id = Some(data.to_vec()),
        OPT_STATUS => reply.status = Some(status(data)?),
        OPT_RAPID_COMMIT => reply.rapid_commit = true,
        OPT_UNICAST => {
            reply.unicast =
                Some(ipv6(data).ok_or_else(|| malformed("server unicast is not 16 bytes".into()))?)
        }
        OPT_IA_NA if reply.ia.is_none() => reply.ia = ia_na(data, iaid)?,
        OPT_DNS => {
            if let Some(DhcpOption::DomainNameServers(list)) = decode_one(code, data) {
                reply.dns = list;
            }
        }
        OPT_DOMAIN_LIST => {
            if let Some(DhcpOption::DomainSearchList(names)) = decode_one(code, data) {
                reply.search = names
                    .iter()
                    .map(|n| n.to_string().trim_end_matches('.').to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
            }
        }
        _ => {}
    }
    Ok(())
}

fn decode_one(code: u16, data: &[u8]) -> Option<DhcpOption> {
    let mut framed = Vec::with_capacity(data.len() + 4);
    framed.extend_from_slice(&code.to_be_bytes());
    framed.extend_from_slice(&(data.len() as u16).to_be_bytes());
    framed.extend_from_slice(data);
    DhcpOption::decode(&mut Decoder::new(&framed)).ok()
}

fn status(data: &[u8]) -> Result<Status6, Ignored6> {
    if data.len() < 2 {
        return Err(malformed(format!(
            "status code option of {} bytes",
            data.len()
        )));
    }
    let code = u16::from_be_bytes([data[0], data[1]]);
    Ok(Status6 {
        code,
        message: String::from_utf8_lossy(&data[2..]).into_owned(),
    })
}

fn ipv6(data: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(data).ok().map(Ipv6Addr::from)
}

fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// An IA_NA (RFC 8415 section 21.4) if its IAID is ours; `None` for another IAID.
fn ia_na(data: &[u8], iaid: u32) -> Result<Option<IaNa>, Ignored6> {
    if data.len() < 12 {
        return Err(malformed(format!("ia_na option of {} bytes", data.len())));
    }
    if be32(data, 0) != iaid {
        return Ok(None);
    }
    let mut ia = IaNa {
        t1: be32(data, 4),
        t2: be32(data, 8),
        ..IaNa::default()
    };
    for (code, inner) in tlvs(&data[12..])? {
        match code {
            OPT_STATUS => ia.status = Some(status(inner)?),
            OPT_IAADDR => ia.addrs.push(ia_addr(inner)?),
            _ => {}
        }
    }
    Ok(Some(ia))
}

fn ia_addr(data: &[u8]) -> Result<IaAddr, Ignored6> {
    if data.len() < 24 {
        return Err(malformed(format!("iaaddr option of {} bytes", data.len())));
    }
    let addr = ipv6(&data[..16]).unwrap_or(Ipv6Addr::UNSPECIFIED);
    let mut out = IaAddr {
        addr,
        preferred: be32(data, 16),
        valid: be32(data, 20),
        status: None,
    };
    for (code, inner) in tlvs(&data[24..])? {
        if code == OPT_STATUS {
            out.status = Some(status(inner)?);
        }
    }
    Ok(out)
}
