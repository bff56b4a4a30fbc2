//! ARP probes and IPv6 DAD.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use underlay_dhcp::acd::{announcements, Conflict, ProbeConfig, Prober};
use underlay_dhcp::Instant;

use crate::captures::*;

const OURS: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 3];
const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 1));
const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 0, 0, 0, 0, 0, 1));

fn prober(targets: &[IpAddr]) -> Prober {
    Prober::new(OURS, targets, ProbeConfig::default(), 11, Instant(0))
}

/// An Ethernet/IPv4 ARP packet.
fn arp(
    op: u16,
    eth_src: [u8; 6],
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip.octets());
    f
}

fn ipv4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => unreachable!(),
    }
}

#[test]
fn probes_are_sent_on_schedule_and_the_verdict_comes_at_the_wait_bound() {
    let mut p = prober(&[V4, V6]);
    let mut sent = Vec::new();
    while let Some(at) = p.deadline() {
        let frames = p.poll(at);
        if !frames.is_empty() {
            sent.push((at.0, frames.len()));
        }
    }
    assert_eq!(sent, [(0, 2), (50, 2), (100, 2)]);
    assert!(!p.done(Instant(199)));
    assert!(p.done(Instant(200)));
    assert!(p.conflicts().is_empty());
    assert!(p.poll(Instant(300)).is_empty());
}

#[test]
fn probe_frames_are_well_formed() {
    let mut p = prober(&[V4, V6]);
    let frames = p.poll(Instant(0));
    let arp_probe = &frames[0];
    assert_eq!(arp_probe.len(), 60);
    assert_eq!(&arp_probe[..6], &[0xff; 6]);
    assert_eq!(&arp_probe[6..12], &OURS);
    assert_eq!(&arp_probe[20..22], &[0, 1], "request");
    assert_eq!(&arp_probe[22..28], &OURS, "sender hardware address");
    assert_eq!(&arp_probe[28..32], &[0, 0, 0, 0], "sender ip 0.0.0.0");
    assert_eq!(&arp_probe[32..38], &[0; 6]);
    assert_eq!(&arp_probe[38..42], &[10, 213, 0, 1]);

    let ns = &frames[1];
    assert_eq!(
        &ns[..6],
        &[0x33, 0x33, 0xff, 0x00, 0x00, 0x01],
        "solicited-node multicast mac"
    );
    assert_eq!(ns[21], 255, "hop limit");
    assert_eq!(&ns[22..38], &[0; 16], "from ::");
    let group: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
    assert_eq!(&ns[38..54], &group.octets());
    assert_eq!(ns[54], 135);
    assert_eq!(
        &ns[78..80],
        &[14, 1],
        "nonce option, no source link-layer option"
    );
    assert_eq!(ns.len(), 14 + 40 + 32);
}

#[test]
fn our_dad_ns_matches_the_kernels_apart_from_the_nonce() {
    // The prober draws its own nonces, so compare everything else, and check our checksum with
    // a separate computation (the byte-exact comparison with the kernel's nonce is a unit test).
    let kernel = hex(KERNEL_DAD_NS);
    let mut p = Prober::new(MAC_A, &[V6], ProbeConfig::default(), 5, Instant(0));
    let ours = p.poll(Instant(0)).remove(0);
    assert_eq!(ours.len(), kernel.len());
    assert_eq!(
        ours[..56],
        kernel[..56],
        "ethernet, ipv6 header, icmp type and code"
    );
    assert_eq!(
        ours[58..80],
        kernel[58..80],
        "reserved, target, nonce option header"
    );
    assert_eq!(icmpv6_sum(&ours), 0xffff, "checksum verifies");
    assert_eq!(icmpv6_sum(&kernel), 0xffff);
}

/// The one's complement sum over the pseudo-header and the ICMPv6 message, computed plainly.
fn icmpv6_sum(frame: &[u8]) -> u16 {
    let icmp = &frame[54..];
    let mut bytes = frame[22..54].to_vec();
    bytes.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 58]);
    bytes.extend_from_slice(icmp);
    let mut sum: u64 = bytes
        .chunks(2)
        .map(|w| u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[test]
fn our_announcement_na_is_byte_identical_to_the_kernels_na() {
    let frames = announcements(MAC_A, &[V6]);
    assert_eq!(frames, [hex(KERNEL_NA)]);
}

#[test]
fn arp_announcement_has_sender_and_target_equal() {
    let frames = announcements(OURS, &[V4]);
    let f = &frames[0];
    assert_eq!((&f[..6], &f[20..22]), (&[0xff; 6][..], &[0, 1][..]));
    assert_eq!(&f[28..32], &[10, 213, 0, 1]);
    assert_eq!(&f[38..42], &[10, 213, 0, 1]);
}

#[test]
fn kernel_arp_reply_is_a_conflict_with_the_replying_mac() {
    let mut p = prober(&[V4]);
    p.poll(Instant(0));
    p.handle(&hex(KERNEL_ARP_REPLY));
    assert_eq!(
        p.conflicts(),
        [Conflict {
            address: V4,
            mac: MAC_A
        }]
    );
    assert!(p.done(Instant(1)), "every target is in conflict");
    assert_eq!(p.deadline(), None);
}

#[test]
fn arp_request_from_the_owner_is_a_conflict() {
    let mut p = prober(&[V4]);
    let other = [2, 0xdd, 0, 0, 0, 4];
    p.handle(&arp(
        1,
        other,
        other,
        ipv4(V4),
        Ipv4Addr::new(10, 213, 0, 9),
    ));
    assert_eq!(
        p.conflicts(),
        [Conflict {
            address: V4,
            mac: other
        }]
    );
}

#[test]
fn simultaneous_probe_from_another_mac_is_a_conflict_but_our_own_is_not() {
    let mut p = prober(&[V4]);
    let ours = p.poll(Instant(0)).remove(0);
    p.handle(&ours);
    assert!(p.conflicts().is_empty(), "our looped-back probe");
    let other = [2, 0xdd, 0, 0, 0, 4];
    p.handle(&arp(1, other, other, Ipv4Addr::UNSPECIFIED, ipv4(V4)));
    assert_eq!(
        p.conflicts(),
        [Conflict {
            address: V4,
            mac: other
        }]
    );
}

#[test]
fn arp_about_other_addresses_is_not_a_conflict() {
    let mut p = prober(&[V4]);
    let other = [2, 0xdd, 0, 0, 0, 4];
    p.handle(&arp(
        2,
        other,
        other,
        Ipv4Addr::new(10, 213, 0, 2),
        ipv4(V4),
    ));
    p.handle(&arp(
        1,
        other,
        other,
        Ipv4Addr::new(10, 213, 0, 2),
        ipv4(V4),
    ));
    p.handle(&arp(
        1,
        other,
        other,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(10, 213, 0, 7),
    ));
    assert!(p.conflicts().is_empty());
}

#[test]
fn kernel_na_is_a_conflict_with_the_target_link_layer_address() {
    let mut p = prober(&[V6]);
    p.poll(Instant(0));
    p.handle(&hex(KERNEL_NA));
    assert_eq!(
        p.conflicts(),
        [Conflict {
            address: V6,
            mac: MAC_A
        }]
    );
}

#[test]
fn another_nodes_dad_ns_is_a_conflict_and_our_looped_back_ns_is_not() {
    let mut p = prober(&[V6]);
    for at in [0, 50, 100] {
        for frame in p.poll(Instant(at)) {
            p.handle(&frame);
        }
    }
    assert!(
        p.conflicts().is_empty(),
        "our own NS, each with one of our nonces"
    );
    p.handle(&hex(KERNEL_DAD_NS));
    assert_eq!(
        p.conflicts(),
        [Conflict {
            address: V6,
            mac: MAC_A
        }]
    );
}

#[test]
fn our_ns_with_another_nonce_is_a_conflict_even_from_our_mac() {
    // An ipvlan sibling shares our MAC but not our nonce.
    let mut p = prober(&[V6]);
    let mut sibling = Prober::new(OURS, &[V6], ProbeConfig::default(), 99, Instant(0));
    p.poll(Instant(0));
    p.handle(&sibling.poll(Instant(0)).remove(0));
    assert_eq!(
        p.conflicts(),
        [Conflict {
            address: V6,
            mac: OURS
        }]
    );
}

#[test]
fn nd_with_a_bad_checksum_or_hop_limit_is_ignored() {
    let mut p = prober(&[V6]);
    let mut bad_sum = hex(KERNEL_NA);
    bad_sum[57] ^= 1;
    p.handle(&bad_sum);
    let mut hop = hex(KERNEL_NA);
    hop[21] = 64;
    p.handle(&hop);
    let mut ns_from_unicast = hex(KERNEL_DAD_NS);
    ns_from_unicast[22] = 0xfe; // source no longer :: (checksum now wrong too)
    p.handle(&ns_from_unicast);
    assert!(p.conflicts().is_empty());
}

#[test]
fn one_conflict_does_not_end_probing_of_the_other_addresses() {
    let mut p = prober(&[V4, V6]);
    assert_eq!(p.poll(Instant(0)).len(), 2);
    p.handle(&hex(KERNEL_ARP_REPLY));
    assert!(!p.done(Instant(10)));
    let next = p.poll(Instant(50));
    assert_eq!(next.len(), 1, "only the v6 address is still probed");
    assert_eq!(u16::from_be_bytes([next[0][12], next[0][13]]), 0x86dd);
}
