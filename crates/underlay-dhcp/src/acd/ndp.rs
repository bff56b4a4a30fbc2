//! Neighbor Discovery frames (RFC 4861) for DAD and unsolicited advertisements.

use std::net::Ipv6Addr;

use crate::checksum;
use crate::frame::{ethernet_header, mac_at};

pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// RFC 4861 section 6.1.1/7.1.1: ND messages are sent with, and only accepted at, hop limit 255.
const HOP_LIMIT: u8 = 255;
pub(crate) const TYPE_NS: u8 = 135;
pub(crate) const TYPE_NA: u8 = 136;
const OPT_TARGET_LLADDR: u8 = 2;
/// RFC 7527 section 4.1.
const OPT_NONCE: u8 = 14;
const FLAG_OVERRIDE: u8 = 0x20;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An NS or NA as the prober needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nd {
    pub(crate) kind: u8,
    pub(crate) eth_src: [u8; 6],
    pub(crate) ip_src: Ipv6Addr,
    pub(crate) target: Ipv6Addr,
    pub(crate) target_mac: Option<[u8; 6]>,
    pub(crate) nonce: Option<Vec<u8>>,
}

/// ff02::1:ffXX:XXXX for the low 24 bits of `addr` (RFC 4291 section 2.7.1).
pub(crate) fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// 33:33 and the low 32 bits of the group (RFC 2464 section 7).
fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A DAD probe (RFC 4862 section 5.4.2): NS from :: to the solicited-node group, no source
/// link-layer option (forbidden with an unspecified source), with a nonce (RFC 7527).
pub(crate) fn dad_ns(mac: [u8; 6], target: Ipv6Addr, nonce: [u8; 6]) -> Vec<u8> {
    let mut options = vec![OPT_NONCE, 1];
    options.extend_from_slice(&nonce);
    let group = solicited_node(target);
    frame(
        mac,
        multicast_mac(group),
        Ipv6Addr::UNSPECIFIED,
        group,
        TYPE_NS,
        0,
        target,
        &options,
    )
}

/// An unsolicited NA from the address itself to all nodes, Override set, with our MAC.
pub(crate) fn unsolicited_na(mac: [u8; 6], address: Ipv6Addr) -> Vec<u8> {
    let mut options = vec![OPT_TARGET_LLADDR, 1];
    options.extend_from_slice(&mac);
    frame(
        mac,
        multicast_mac(ALL_NODES),
        address,
        ALL_NODES,
        TYPE_NA,
        FLAG_OVERRIDE,
        address,
        &options,
    )
}

#[allow(clippy::too_many_arguments)]
fn frame(
    mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    flags: u8,
    target: Ipv6Addr,
    options: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0, flags, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(options);
    let sum = checksum::add(
        checksum::pseudo_v6(src, dst, NEXT_HEADER_ICMPV6, icmp.len() as u32),
        &icmp,
    );
    icmp[2..4].copy_from_slice(&checksum::finish(sum).to_be_bytes());

    let mut frame = ethernet_header(dst_mac, mac, ETHERTYPE_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[NEXT_HEADER_ICMPV6, HOP_LIMIT]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(&icmp);
    frame
}

/// A valid NS or NA (RFC 4861 sections 7.1.1/7.1.2: hop limit 255, code 0, checksum, at least
/// 24 bytes, well-formed options); `None` for anything else.
pub(crate) fn parse(frame: &[u8]) -> Option<Nd> {
    let ip = frame.get(14..54)?;
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype != ETHERTYPE_IPV6
        || ip[0] >> 4 != 6
        || ip[6] != NEXT_HEADER_ICMPV6
        || ip[7] != HOP_LIMIT
    {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let icmp = frame.get(54..54 + len)?;
    let (src, dst) = (addr_at(ip, 8), addr_at(ip, 24));
    let kind = icmp.first().copied()?;
    if len < 24 || !matches!(kind, TYPE_NS | TYPE_NA) || icmp[1] != 0 {
        return None;
    }
    let sum = checksum::add(
        checksum::pseudo_v6(src, dst, NEXT_HEADER_ICMPV6, len as u32),
        icmp,
    );
    if checksum::finish(sum) != 0 {
        return None;
    }
    let mut nd = Nd {
        kind,
        eth_src: mac_at(frame, 6),
        ip_src: src,
        target: addr_at(icmp, 8),
        target_mac: None,
        nonce: None,
    };
    read_options(&icmp[24..], &mut nd)?;
    Some(nd)
}

fn read_options(mut options: &[u8], nd: &mut Nd) -> Option<()> {
    while !options.is_empty() {
        let len = usize::from(*options.get(1)?) * 8;
        // RFC 4861 section 4.6: a zero-length option makes the whole packet invalid.
        if len == 0 || len > options.len() {
            return None;
        }
        match options[0] {
            OPT_TARGET_LLADDR if len == 8 => nd.target_mac = Some(mac_at(options, 2)),
            OPT_NONCE => nd.nonce = Some(options[2..len].to_vec()),
            _ => {}
        }
        options = &options[len..];
    }
    Some(())
}

fn addr_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[at..at + 16]);
    Ipv6Addr::from(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Captured from Linux: the DAD NS its kernel sent for fd00:213::1 from 02:aa:00:00:00:01
    /// (see tests/contract/captures.rs for how).
    const KERNEL_DAD_NS: &str = concat!(
        "3333ff00000102aa0000000186dd6000000000203aff00000000000000000000000000000000",
        "ff0200000000000000000001ff0000018700296f00000000fd0002130000000000000000000000010e016b3056c18228"
    );

    #[test]
    fn dad_ns_is_byte_identical_to_the_kernels() {
        let mac = [0x02, 0xaa, 0, 0, 0, 1];
        let target: Ipv6Addr = "fd00:213::1".parse().unwrap();
        let nonce = [0x6b, 0x30, 0x56, 0xc1, 0x82, 0x28];
        assert_eq!(dad_ns(mac, target, nonce), hex(KERNEL_DAD_NS));
    }

    #[test]
    fn kernel_dad_ns_parses_with_its_nonce() {
        let nd = parse(&hex(KERNEL_DAD_NS)).expect("valid NS");
        assert_eq!((nd.kind, nd.ip_src), (TYPE_NS, Ipv6Addr::UNSPECIFIED));
        assert_eq!(
            nd.nonce.as_deref(),
            Some(&[0x6b, 0x30, 0x56, 0xc1, 0x82, 0x28][..])
        );
    }

    #[test]
    fn solicited_node_group_takes_the_low_24_bits() {
        let addr: Ipv6Addr = "2001:db8::12:3456:789a".parse().unwrap();
        assert_eq!(
            solicited_node(addr),
            "ff02::1:ff56:789a".parse::<Ipv6Addr>().unwrap()
        );
    }
}
