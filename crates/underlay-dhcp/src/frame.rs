//! Ethernet + IPv4 + UDP framing for DHCPv4 over a packet socket.
//!
//! Until it has an address the client cannot use an ordinary UDP socket: it must send from
//! 0.0.0.0 and receive replies addressed to an address it does not have yet (or broadcast), so the
//! driver sends and receives whole Ethernet frames. These functions build and check them.

use std::net::Ipv4Addr;

use thiserror::Error;

use crate::checksum;

const ETHERNET_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_UDP: u8 = 17;
/// The TTL dhcpcd and the Linux kernel default to.
const TTL: u8 = 64;

/// A UDP datagram in an Ethernet frame, as [`parse_udp4`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp4<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Why a received frame is not a usable UDP/IPv4 datagram.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame is truncated: {len} bytes, {needed} needed")]
    Truncated { len: usize, needed: usize },
    #[error("ethertype {0:#06x} is not ipv4")]
    NotIpv4(u16),
    #[error("ip version {0} is not 4")]
    BadVersion(u8),
    #[error("ipv4 header length {0} words is below 5")]
    BadHeaderLength(u8),
    #[error("ipv4 total length {total} does not fit a {available}-byte packet")]
    BadTotalLength { total: usize, available: usize },
    #[error("ipv4 fragment (flags and offset {0:#06x}) is not handled")]
    Fragment(u16),
    #[error("ipv4 header checksum does not verify")]
    BadHeaderChecksum,
    #[error("ip protocol {0} is not udp")]
    NotUdp(u8),
    #[error("udp length {len} does not fit a {available}-byte ip payload")]
    BadUdpLength { len: usize, available: usize },
    #[error("udp checksum does not verify")]
    BadUdpChecksum,
}

/// Builds an Ethernet frame carrying one UDP datagram: IPv4 without options, TTL 64, DF clear,
/// identification 0, both checksums filled in.
pub fn udp4_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp = udp_datagram(src, dst, src_port, dst_port, payload);
    let mut frame = ethernet_header(dst_mac, src_mac, ETHERTYPE_IPV4);
    frame.extend_from_slice(&ipv4_header(src, dst, udp.len()));
    frame.extend_from_slice(&udp);
    frame
}

pub(crate) fn ethernet_header(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut header = Vec::with_capacity(1514);
    header.extend_from_slice(&dst);
    header.extend_from_slice(&src);
    header.extend_from_slice(&ethertype.to_be_bytes());
    header
}

fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> [u8; IPV4_HEADER] {
    let total = (IPV4_HEADER + payload_len) as u16;
    let mut header = [0u8; IPV4_HEADER];
    header[0] = 0x45;
    header[2..4].copy_from_slice(&total.to_be_bytes());
    header[8] = TTL;
    header[9] = PROTO_UDP;
    header[12..16].copy_from_slice(&src.octets());
    header[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::of(&header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    header
}

fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (UDP_HEADER + payload.len()) as u16;
    let mut udp = Vec::with_capacity(len as usize);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let sum = checksum::finish(checksum::add(
        checksum::pseudo_v4(src, dst, PROTO_UDP, len),
        &udp,
    ));
    // RFC 768: a computed zero is sent as all ones; zero on the wire means "no checksum".
    let sum = if sum == 0 { 0xffff } else { sum };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    udp
}

/// Checks an Ethernet frame down to the UDP payload: ethertype, IPv4 header length, total length
/// (Ethernet padding after it is ignored), no fragments, header checksum, UDP length and UDP
/// checksum (0 = none sent).
pub fn parse_udp4(frame: &[u8]) -> Result<Udp4<'_>, FrameError> {
    parse(frame, true)
}

/// [`parse_udp4`] without the UDP checksum check, for a frame the kernel marks as having no
/// checksum yet (`TP_STATUS_CSUMNOTREADY`): it was sent from this host with the checksum left
/// to offload (a veth peer in another namespace), so the field on the wire was never filled in.
pub fn parse_udp4_offloaded(frame: &[u8]) -> Result<Udp4<'_>, FrameError> {
    parse(frame, false)
}

fn parse(frame: &[u8], verify_udp: bool) -> Result<Udp4<'_>, FrameError> {
    need(frame, ETHERNET_HEADER + IPV4_HEADER)?;
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype != ETHERTYPE_IPV4 {
        return Err(FrameError::NotIpv4(ethertype));
    }
    let (ip, ip_payload) = split_ipv4(&frame[ETHERNET_HEADER..])?;
    let (src, dst) = (ipv4_at(ip, 12), ipv4_at(ip, 16));
    let (src_port, dst_port, payload) = check_udp(src, dst, ip_payload, verify_udp)?;
    Ok(Udp4 {
        src_mac: mac_at(frame, 6),
        dst_mac: mac_at(frame, 0),
        src,
        dst,
        src_port,
        dst_port,
        payload,
    })
}

/// Returns the IPv4 header and its payload, after checking the header.
fn split_ipv4(packet: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let version = packet[0] >> 4;
    if version != 4 {
        return Err(FrameError::BadVersion(version));
    }
    let ihl = packet[0] & 0x0f;
    if ihl < 5 {
        return Err(FrameError::BadHeaderLength(ihl));
    }
    let header_len = usize::from(ihl) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < header_len || total > packet.len() {
        return Err(FrameError::BadTotalLength {
            total,
            available: packet.len(),
        });
    }
    let fragment = u16::from_be_bytes([packet[6], packet[7]]);
    // More-fragments set, or a non-zero offset: DHCP messages fit one frame.
    if fragment & 0x3fff != 0 {
        return Err(FrameError::Fragment(fragment));
    }
    if checksum::of(&packet[..header_len]) != 0 {
        return Err(FrameError::BadHeaderChecksum);
    }
    if packet[9] != PROTO_UDP {
        return Err(FrameError::NotUdp(packet[9]));
    }
    Ok((&packet[..header_len], &packet[header_len..total]))
}

fn check_udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    udp: &[u8],
    verify: bool,
) -> Result<(u16, u16, &[u8]), FrameError> {
    if udp.len() < UDP_HEADER {
        return Err(FrameError::BadUdpLength {
            len: udp.len(),
            available: udp.len(),
        });
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if len < UDP_HEADER || len > udp.len() {
        return Err(FrameError::BadUdpLength {
            len,
            available: udp.len(),
        });
    }
    let udp = &udp[..len];
    let sent = u16::from_be_bytes([udp[6], udp[7]]);
    let sum = checksum::add(checksum::pseudo_v4(src, dst, PROTO_UDP, len as u16), udp);
    if verify && sent != 0 && checksum::finish(sum) != 0 {
        return Err(FrameError::BadUdpChecksum);
    }
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    Ok((port(0), port(2), &udp[UDP_HEADER..]))
}

pub(crate) fn need(frame: &[u8], needed: usize) -> Result<(), FrameError> {
    if frame.len() < needed {
        return Err(FrameError::Truncated {
            len: frame.len(),
            needed,
        });
    }
    Ok(())
}

pub(crate) fn mac_at(bytes: &[u8], at: usize) -> [u8; 6] {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[at..at + 6]);
    mac
}

pub(crate) fn ipv4_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}
