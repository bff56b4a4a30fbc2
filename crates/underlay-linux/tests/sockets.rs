//! Packet and UDP sockets opened inside a namespace, and the delete verbs. Each test builds a
//! veth pair inside a namespace of its own; frames only cross that pair. Needs root.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{index_of, TestNetns};
use underlay_linux::{udp_socket_in, FrameSocket, IpNet, Netlink, PacketSocket, Route};

/// A broadcast Ethernet frame with an experimental ethertype (0x88b5, IEEE 802 local use).
fn test_frame(src_mac: [u8; 6], tag: u8) -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&[0x88, 0xb5]);
    frame.extend(std::iter::repeat_n(tag, 50));
    frame
}

fn mac_of(ns: &TestNetns, link: &str) -> [u8; 6] {
    let json = ns.link_json(link);
    let text = json["address"].as_str().expect("address");
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    bytes.try_into().expect("six bytes")
}

#[test]
fn frames_cross_a_veth_pair_and_our_own_are_not_echoed() {
    let ns = TestNetns::new();
    let a = ns.veth("va", "vb");
    ns.ip(&["link", "set", "va", "up"]);
    ns.ip(&["link", "set", "vb", "up"]);
    let b = index_of(&mut ns.netlink(), "vb");
    let handle = ns.open();
    let mut sender = PacketSocket::open_in(&handle, a).expect("packet socket on va");
    let mut receiver = PacketSocket::open_in(&handle, b).expect("packet socket on vb");
    assert_eq!(sender.ifindex(), a);

    let frame = test_frame(mac_of(&ns, "va"), 7);
    sender.send_frame(&frame).expect("send");
    let got = loop {
        let got = receiver
            .recv_frame(Duration::from_secs(2))
            .expect("recv")
            .expect("a frame within 2 s");
        // IPv6 router solicitations and the like may arrive too: wait for ours.
        if got[12..14] == [0x88, 0xb5] {
            break got;
        }
    };
    assert_eq!(got, frame);

    // The sender does not get its own transmission back.
    let start = Instant::now();
    while let Some(echo) = sender
        .recv_frame(Duration::from_millis(150))
        .expect("recv on sender")
    {
        assert_ne!(echo, frame, "our own frame came back as if received");
    }
    assert!(
        start.elapsed() >= Duration::from_millis(140),
        "timeout honoured"
    );
}

#[test]
fn a_packet_socket_on_a_missing_link_is_an_error() {
    let ns = TestNetns::new();
    let error = PacketSocket::open_in(&ns.open(), 9999).expect_err("no such link");
    assert!(error.to_string().contains("link 9999"), "{error}");
}

#[test]
fn udp_sockets_on_two_links_share_a_port_and_hear_only_their_link() {
    let ns = TestNetns::new();
    let peer = TestNetns::new();
    for (ours, theirs, n) in [("ua", "pa", 1), ("ub", "pb", 2)] {
        ns.veth(ours, theirs);
        ns.ip(&["link", "set", theirs, "netns", &peer.name]);
        ns.ip(&["addr", "add", &format!("198.51.{n}.1/24"), "dev", ours]);
        ns.ip(&["link", "set", ours, "up"]);
        peer.ip(&["addr", "add", &format!("198.51.{n}.2/24"), "dev", theirs]);
        peer.ip(&["link", "set", theirs, "up"]);
    }
    let any: SocketAddr = "0.0.0.0:68".parse().unwrap();
    let handle = ns.open();
    let on_a = udp_socket_in(&handle, any, "ua", true).expect("port 68 on ua");
    let on_b = udp_socket_in(&handle, any, "ub", true).expect("port 68 on ub as well");
    let sender = udp_socket_in(&peer.open(), "0.0.0.0:67".parse().unwrap(), "pb", true)
        .expect("sender in the peer namespace");
    sender
        .send_to(b"hello", "255.255.255.255:68")
        .expect("broadcast on pb");
    on_b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = on_b.recv_from(&mut buf).expect("ub hears the broadcast");
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(from.ip(), "198.51.2.2".parse::<IpAddr>().unwrap());
    on_a.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        on_a.recv_from(&mut buf).is_err(),
        "ua must not hear ub's link"
    );
}

#[test]
fn deleting_addresses_and_routes_is_idempotent() {
    let ns = TestNetns::new();
    let index = ns.veth("da", "db");
    ns.ip(&["link", "set", "da", "up"]);
    let mut nl = ns.netlink();
    for text in ["198.51.100.7/24", "2001:db8::7/64"] {
        let (addr, prefix) = text.split_once('/').unwrap();
        let net = IpNet {
            addr: addr.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
        };
        nl.add_address(index, net).expect("add");
        assert!(nl.addresses(index).unwrap().contains(&net));
        assert!(nl.delete_address(index, net).expect("delete"));
        assert!(!nl.addresses(index).unwrap().contains(&net));
        assert!(!nl.delete_address(index, net).expect("second delete"));
    }
    nl.add_address(
        index,
        IpNet {
            addr: "198.51.100.7".parse().unwrap(),
            prefix: 24,
        },
    )
    .unwrap();
    let route = Route {
        dst: IpNet {
            addr: "203.0.113.9".parse().unwrap(),
            prefix: 32,
        },
        gateway: None,
        oif: index,
        metric: 4_294_967_295,
    };
    nl.add_route(&route).expect("add host route");
    assert!(nl.routes(index).unwrap().contains(&route));
    assert!(nl.delete_route(&route).expect("delete route"));
    assert!(!nl.routes(index).unwrap().contains(&route));
    assert!(!nl.delete_route(&route).expect("second delete"));
}
