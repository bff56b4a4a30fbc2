//! Ethernet/IPv4/UDP framing.

use std::net::Ipv4Addr;

use underlay_dhcp::frame::{parse_udp4, udp4_frame, FrameError, Udp4};

use crate::captures::{hex, PYTHON_UDP_FRAME};

const SRC_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

fn dhcp_like() -> Vec<u8> {
    udp4_frame(
        SRC_MAC,
        [0xff; 6],
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        b"underlay-dhcp odd payload",
    )
}

#[test]
fn frame_matches_an_independent_implementation_byte_for_byte() {
    assert_eq!(dhcp_like(), hex(PYTHON_UDP_FRAME));
}

#[test]
fn checksums_of_a_large_unicast_frame_match_the_independent_values() {
    let payload: Vec<u8> = (0..512).map(|i| i as u8).collect();
    let frame = udp4_frame(
        SRC_MAC,
        [2, 0xaa, 0, 0, 0, 1],
        Ipv4Addr::new(192, 0, 2, 50),
        Ipv4Addr::new(192, 0, 2, 1),
        68,
        67,
        &payload,
    );
    assert_eq!(frame.len(), 554);
    // Values from the same Python implementation.
    assert_eq!(&frame[24..26], &[0xf4, 0x9d], "ipv4 header checksum");
    assert_eq!(&frame[40..42], &[0xf6, 0xa3], "udp checksum");
}

#[test]
fn round_trip() {
    let payload = vec![7u8; 300];
    let frame = udp4_frame(
        SRC_MAC,
        [0xff; 6],
        Ipv4Addr::new(10, 1, 2, 3),
        Ipv4Addr::new(10, 1, 2, 254),
        68,
        67,
        &payload,
    );
    let parsed = parse_udp4(&frame).unwrap();
    let expected = Udp4 {
        src_mac: SRC_MAC,
        dst_mac: [0xff; 6],
        src: Ipv4Addr::new(10, 1, 2, 3),
        dst: Ipv4Addr::new(10, 1, 2, 254),
        src_port: 68,
        dst_port: 67,
        payload: &payload,
    };
    assert_eq!(parsed, expected);
    assert_eq!(frame[22], 64, "ttl");
    assert_eq!(&frame[20..22], &[0, 0], "no DF, no fragment");
}

#[test]
fn ethernet_padding_after_the_ip_packet_is_ignored() {
    let mut frame = udp4_frame(
        SRC_MAC,
        [0xff; 6],
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        67,
        68,
        b"x",
    );
    frame.resize(60, 0);
    assert_eq!(parse_udp4(&frame).unwrap().payload, b"x");
}

#[test]
fn a_zero_udp_checksum_means_none() {
    let mut frame = dhcp_like();
    frame[40..42].copy_from_slice(&[0, 0]);
    assert!(parse_udp4(&frame).is_ok());
}

#[test]
fn corrupted_truncated_and_fragmented_frames_are_errors() {
    let good = dhcp_like();
    let mut payload_flip = good.clone();
    *payload_flip.last_mut().unwrap() ^= 0x01;
    assert_eq!(parse_udp4(&payload_flip), Err(FrameError::BadUdpChecksum));
    // A frame whose checksum was left to offload is taken as it is; its IPv4 header is
    // still checked.
    let offloaded = underlay_dhcp::frame::parse_udp4_offloaded(&payload_flip).unwrap();
    assert_eq!(offloaded.payload, &payload_flip[42..]);

    let mut header_flip = good.clone();
    header_flip[22] = 63; // TTL changed without fixing the checksum
    assert_eq!(parse_udp4(&header_flip), Err(FrameError::BadHeaderChecksum));
    assert_eq!(
        underlay_dhcp::frame::parse_udp4_offloaded(&header_flip),
        Err(FrameError::BadHeaderChecksum)
    );

    for len in 0..34 {
        assert!(
            matches!(parse_udp4(&good[..len]), Err(FrameError::Truncated { .. })),
            "at {len}"
        );
    }
    for len in 34..good.len() {
        assert!(
            parse_udp4(&good[..len]).is_err(),
            "truncated to {len} accepted"
        );
    }

    let mut fragment = good.clone();
    fragment[20] = 0x20; // more fragments
    assert!(matches!(
        parse_udp4(&fragment),
        Err(FrameError::Fragment(_))
    ));
    let mut offset = good.clone();
    offset[21] = 0x01;
    assert!(matches!(parse_udp4(&offset), Err(FrameError::Fragment(_))));

    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(parse_udp4(&arp), Err(FrameError::NotIpv4(0x0806)));
    let mut tcp = good.clone();
    tcp[23] = 6;
    assert!(parse_udp4(&tcp).is_err());
    let mut short_ihl = good.clone();
    short_ihl[14] = 0x44;
    assert_eq!(parse_udp4(&short_ihl), Err(FrameError::BadHeaderLength(4)));
    let mut v6 = good;
    v6[14] = 0x65;
    assert_eq!(parse_udp4(&v6), Err(FrameError::BadVersion(6)));
}
