//! The messages the client sends, encoded with dhcproto.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode, UnknownOption, MAGIC};
use dhcproto::{Decodable, Decoder, Encodable};

use super::Config4;

/// RFC 1542 section 3.1.1: relay agents may drop BOOTP messages shorter than 300 bytes.
const MIN_MESSAGE: usize = 300;
/// Option 57: the frame the driver reads holds a 1500-byte IP packet.
const MAX_MESSAGE_SIZE: u16 = 1500;

/// What varies between the client's messages.
pub(crate) struct Outgoing {
    pub(crate) kind: MessageType,
    pub(crate) xid: u32,
    pub(crate) secs: u16,
    /// Our address while renewing/rebinding/releasing, else 0.0.0.0.
    pub(crate) ciaddr: Ipv4Addr,
    /// Option 50.
    pub(crate) requested: Option<Ipv4Addr>,
    /// Option 54.
    pub(crate) server: Option<Ipv4Addr>,
}

pub(crate) fn encode(config: &Config4, out: &Outgoing) -> Vec<u8> {
    let mut msg = blank(out.xid, out.ciaddr, config.chaddr);
    msg.set_secs(out.secs);
    // The flag only matters while we have no address to receive a unicast reply on.
    if config.broadcast && out.ciaddr.is_unspecified() {
        msg.set_flags(Flags::default().set_broadcast());
    }
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(out.kind));
    if !config.client_id.is_empty() {
        opts.insert(DhcpOption::ClientIdentifier(config.client_id.clone()));
    }
    if let Some(requested) = out.requested {
        opts.insert(DhcpOption::RequestedIpAddress(requested));
    }
    if let Some(server) = out.server {
        opts.insert(DhcpOption::ServerIdentifier(server));
    }
    if asks_for_configuration(out.kind) {
        insert_requests(config, &mut msg);
    }
    // Encoding into a Vec only fails on usize overflow; the message is a few hundred bytes.
    let mut payload = msg.to_vec().expect("a dhcpv4 message encodes into a vec");
    if payload.len() < MIN_MESSAGE {
        payload.resize(MIN_MESSAGE, 0);
    }
    payload
}

/// A BOOTREQUEST header with our xid, ciaddr and chaddr. Decoding a template avoids dhcproto's
/// constructors, which draw a random xid from the thread RNG (this crate takes all randomness
/// from its caller's seed).
fn blank(xid: u32, ciaddr: Ipv4Addr, chaddr: [u8; 6]) -> Message {
    let mut header = [0u8; 240];
    header[..3].copy_from_slice(&[1, 1, 6]); // BOOTREQUEST, Ethernet, 6-byte address
    header[4..8].copy_from_slice(&xid.to_be_bytes());
    header[12..16].copy_from_slice(&ciaddr.octets());
    header[28..34].copy_from_slice(&chaddr);
    header[236..].copy_from_slice(&MAGIC);
    Message::decode(&mut Decoder::new(&header)).expect("a 240-byte bootp header decodes")
}

/// DECLINE and RELEASE carry no parameter requests (RFC 2131 table 5).
fn asks_for_configuration(kind: MessageType) -> bool {
    matches!(kind, MessageType::Discover | MessageType::Request)
}

fn insert_requests(config: &Config4, msg: &mut Message) {
    let opts = msg.opts_mut();
    let params = config.params().into_iter().map(OptionCode::from).collect();
    opts.insert(DhcpOption::ParameterRequestList(params));
    opts.insert(DhcpOption::MaxMessageSize(MAX_MESSAGE_SIZE));
    if let Some(hostname) = config.hostname.as_ref().filter(|h| !h.is_empty()) {
        opts.insert(DhcpOption::Hostname(hostname.clone()));
    }
    if let Some(vendor) = config.vendor_class.as_ref().filter(|v| !v.is_empty()) {
        opts.insert(DhcpOption::ClassIdentifier(vendor.as_bytes().to_vec()));
    }
    for (code, value) in &config.extra_options {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(*code),
            value.clone(),
        )));
    }
}
