//! The messages the client sends, encoded with dhcproto.

use std::net::Ipv6Addr;
use std::time::Duration;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, UnknownOption, IANA, ORO,
};
use dhcproto::{Decodable, Decoder, Encodable};

use super::Config6;

/// RFC 4704 section 4.1: S = 1 asks the server to update the AAAA record.
const FQDN_FLAG_S: u8 = 0x01;

/// What varies between the client's messages.
pub(crate) struct Outgoing<'a> {
    pub(crate) kind: MessageType,
    pub(crate) xid: u32,
    pub(crate) elapsed: Duration,
    pub(crate) server: Option<&'a [u8]>,
    /// Address put in the IA_NA (a hint, or the address renewed, declined, released).
    pub(crate) address: Option<Ipv6Addr>,
}

pub(crate) fn encode(config: &Config6, out: &Outgoing<'_>) -> Vec<u8> {
    let mut msg = blank(out.kind, out.xid);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::ClientId(config.duid.clone()));
    if let Some(server) = out.server {
        opts.insert(DhcpOption::ServerId(server.to_vec()));
    }
    opts.insert(DhcpOption::ElapsedTime(elapsed_hundredths(out.elapsed)));
    opts.insert(DhcpOption::IANA(ia_na(config.iaid, out.address)));
    if asks_for_configuration(out.kind) {
        insert_requests(config, out.kind, opts);
    }
    // Encoding into a Vec only fails on usize overflow; the message is a few hundred bytes.
    msg.to_vec().expect("a dhcpv6 message encodes into a vec")
}

/// A message with our xid. Decoding a 4-byte header avoids dhcproto's constructors, which draw
/// a random xid from the thread RNG (this crate takes all randomness from its caller's seed).
fn blank(kind: MessageType, xid: u32) -> Message {
    let xid = xid.to_be_bytes();
    let header = [u8::from(kind), xid[1], xid[2], xid[3]];
    Message::decode(&mut Decoder::new(&header)).expect("a 4-byte dhcpv6 header decodes")
}

fn asks_for_configuration(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::Solicit | MessageType::Request | MessageType::Renew | MessageType::Rebind
    )
}

fn insert_requests(config: &Config6, kind: MessageType, opts: &mut DhcpOptions) {
    let oro = ORO {
        opts: vec![OptionCode::DomainNameServers, OptionCode::DomainSearchList],
    };
    opts.insert(DhcpOption::ORO(oro));
    if kind == MessageType::Solicit && config.rapid_commit {
        opts.insert(DhcpOption::RapidCommit);
    }
    if let Some(fqdn) = config.hostname.as_deref().and_then(fqdn_option) {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::ClientFqdn,
            fqdn,
        )));
    }
}

/// RFC 8415 section 21.9: hundredths of a second, 0xffff when longer.
fn elapsed_hundredths(elapsed: Duration) -> u16 {
    u16::try_from(elapsed.as_millis() / 10).unwrap_or(u16::MAX)
}

/// T1 and T2 are 0 in client messages (RFC 8415 section 21.4); lifetimes in IAADDR are 0 too.
fn ia_na(iaid: u32, address: Option<Ipv6Addr>) -> IANA {
    let mut opts = DhcpOptions::new();
    if let Some(addr) = address {
        opts.insert(DhcpOption::IAAddr(IAAddr {
            addr,
            preferred_life: 0,
            valid_life: 0,
            opts: DhcpOptions::new(),
        }));
    }
    IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts,
    }
}

/// Flags, then the name in DNS wire format; a name without a dot is sent as a partial name
/// (no root label, RFC 4704 section 4.2). `None` for a name DNS cannot carry.
pub(crate) fn fqdn_option(hostname: &str) -> Option<Vec<u8>> {
    let qualified = hostname.contains('.');
    let name = hostname.trim_end_matches('.');
    let mut data = vec![FQDN_FLAG_S];
    for label in name.split('.') {
        let valid = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return None;
        }
        data.push(label.len() as u8);
        data.extend_from_slice(label.as_bytes());
    }
    if qualified {
        data.push(0);
    }
    (data.len() <= 256).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_is_partial_without_a_dot_and_absent_when_invalid() {
        assert_eq!(fqdn_option("web-1"), Some(b"\x01\x05web-1".to_vec()));
        assert_eq!(
            fqdn_option("web.corp"),
            Some(b"\x01\x03web\x04corp\x00".to_vec())
        );
        assert_eq!(fqdn_option("bad_name"), None);
        assert_eq!(fqdn_option(""), None);
        assert_eq!(fqdn_option(&"a".repeat(64)), None);
    }

    #[test]
    fn elapsed_time_is_in_hundredths_and_saturates() {
        assert_eq!(elapsed_hundredths(Duration::from_millis(1234)), 123);
        assert_eq!(elapsed_hundredths(Duration::from_secs(1000)), u16::MAX);
    }
}
