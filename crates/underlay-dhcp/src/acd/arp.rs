//! ARP frames (RFC 826) for probing and announcing IPv4 addresses.

use std::net::Ipv4Addr;

use crate::frame::{ethernet_header, ipv4_at, mac_at};

pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const OP_REQUEST: u16 = 1;
/// Ethernet frames are at least 60 bytes before the FCS; an ARP frame is 42.
const MIN_FRAME: usize = 60;

/// An ARP packet as the prober needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arp {
    pub(crate) op: u16,
    pub(crate) sender_mac: [u8; 6],
    pub(crate) sender_ip: Ipv4Addr,
    pub(crate) target_ip: Ipv4Addr,
}

/// RFC 5227 section 2.1.1: an ARP request with sender IP 0.0.0.0 and target hardware address 0,
/// so no neighbour caches a mapping for an address we may not get.
pub(crate) fn probe(mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    request(mac, Ipv4Addr::UNSPECIFIED, target)
}

/// RFC 5227 section 2.3: sender and target IP are both the announced address.
pub(crate) fn announcement(mac: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    request(mac, address, address)
}

fn request(mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = ethernet_header(BROADCAST_MAC, mac, ETHERTYPE_ARP);
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]); // Ethernet, IPv4, address lengths
    frame.extend_from_slice(&OP_REQUEST.to_be_bytes());
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&sender_ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target_ip.octets());
    frame.resize(MIN_FRAME, 0);
    frame
}

/// An Ethernet/IPv4 ARP request or reply; `None` for anything else.
pub(crate) fn parse(frame: &[u8]) -> Option<Arp> {
    let arp = frame.get(14..42)?;
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype != ETHERTYPE_ARP || arp[..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    if op != 1 && op != 2 {
        return None;
    }
    Some(Arp {
        op,
        sender_mac: mac_at(arp, 8),
        sender_ip: ipv4_at(arp, 14),
        target_ip: ipv4_at(arp, 24),
    })
}
