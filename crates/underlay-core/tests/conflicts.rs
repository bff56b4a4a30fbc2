//! Conflict detection against a fake LAN: hosts that answer probes for their addresses.

mod support;

use std::time::Duration;

use support::{fixture, ip, Fixture};
use underlay_core::{Connect, CreateNetwork, Family};

fn lan(ipam: &[&str]) -> CreateNetwork {
    CreateNetwork {
        name: "lan".into(),
        driver: "macvlan".into(),
        subnets: vec!["198.51.100.0/24".into(), "2001:db8:1::/64".into()],
        ipv6: true,
        options: vec!["parent=eth0".into()],
        ipam_options: ipam.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn connect(target: &str, static_ip: Option<&str>) -> Connect {
    Connect {
        network: "lan".into(),
        target: target.into(),
        ip: static_ip.map(String::from),
        ..Default::default()
    }
}

fn live(f: &Fixture, addr: &str, mac: u8) {
    f.world
        .borrow_mut()
        .lan
        .push((ip(addr), [2, 0, 0, 0, 0, mac]));
}

fn owners(f: &Fixture, family: Family) -> Vec<(String, String)> {
    let net = f.engine.state().network("lan").unwrap().unwrap();
    f.engine
        .state()
        .reservations(&net, family)
        .unwrap()
        .into_iter()
        .map(|r| (r.ip.to_string(), r.owner))
        .collect()
}

#[test]
fn a_live_pool_address_is_skipped_and_stays_marked() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    f.engine.create_network(&lan(&[])).unwrap();
    live(&f, "198.51.100.2", 0x22);
    live(&f, "198.51.100.3", 0x33);
    live(&f, "2001:db8:1::2", 0x62);
    let ep = f.engine.connect(&connect("c1", None)).unwrap();
    assert_eq!(ep.ipv4, Some(ip("198.51.100.4")));
    assert_eq!(ep.ipv6, Some(ip("2001:db8:1::3")));
    let configured: Vec<String> = f
        .world
        .borrow_mut()
        .ns("/run/netns/c1")
        .addresses
        .iter()
        .map(|(_, a)| a.to_string())
        .collect();
    assert_eq!(configured, ["198.51.100.4/24", "2001:db8:1::3/64"]);

    // The live ones stay reserved under a mark naming who answered: c2 does not get them.
    let v4 = owners(&f, Family::V4);
    assert!(
        v4.iter()
            .any(|(a, o)| a == "198.51.100.2" && o.starts_with("conflict@02:00:00:00:00:22@")),
        "{v4:?}"
    );
    assert!(
        v4.iter()
            .any(|(a, o)| a == "198.51.100.3" && o.starts_with("conflict@02:00:00:00:00:33@")),
        "{v4:?}"
    );
    let c2 = f.engine.connect(&connect("c2", None)).unwrap();
    assert_eq!(c2.ipv4, Some(ip("198.51.100.5")));
    let net = f.engine.state().network("lan").unwrap().unwrap();
    let shown = underlay_core::inspect_json(f.engine.state(), &net, None).unwrap();
    assert_eq!(
        shown["IPAM"]["LiveOnLan"]["198.51.100.2"]["AnsweredBy"],
        "02:00:00:00:00:22"
    );

    // Old marks are forgotten (gc does this after an hour): the address is free again.
    let mut state = underlay_core::State::open(f.engine.state().dir()).unwrap();
    let freed = state.forget_old_conflicts(Duration::ZERO).unwrap();
    assert_eq!(freed.len(), 3, "{freed:?}");
    assert!(!owners(&f, Family::V4)
        .iter()
        .any(|(_, o)| o.starts_with("conflict@")));
}

#[test]
fn a_live_static_address_fails_the_connect_and_leaves_nothing() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    live(&f, "198.51.100.50", 0x50);
    let before = owners(&f, Family::V4);
    let err = f
        .engine
        .connect(&connect("c1", Some("198.51.100.50")))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "address 198.51.100.50 is already in use on the LAN: 02:00:00:00:00:50 answered a probe for it"
    );
    assert!(f.world.borrow().link_names("/run/netns/c1").is_empty());
    assert_eq!(owners(&f, Family::V4), before, "no reservation left behind");
    assert!(f.engine.state().all_endpoints().unwrap().is_empty());
}

#[test]
fn a_pool_that_only_hands_out_live_addresses_gives_up_cleanly() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    for host in 2..=20 {
        live(&f, &format!("198.51.100.{host}"), host);
    }
    let err = f
        .engine
        .connect(&connect("c1", None))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("network lan handed out 9 addresses in a row that were live on the LAN: 198.51.100.2 (answered by 02:00:00:00:00:02)"), "{err}");
    assert!(f.world.borrow().link_names("/run/netns/c1").is_empty());
    assert!(f.engine.state().all_endpoints().unwrap().is_empty());
    // What was found live stays marked; nothing else is held but the gateway.
    let v4 = owners(&f, Family::V4);
    assert!(
        v4.iter()
            .all(|(_, o)| o == "the gateway" || o.starts_with("conflict@")),
        "{v4:?}"
    );
}

#[test]
fn opting_out_sends_no_probe() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine
        .create_network(&lan(&["conflict_detection=false"]))
        .unwrap();
    live(&f, "198.51.100.2", 0x22);
    let ep = f.engine.connect(&connect("c1", None)).unwrap();
    assert_eq!(
        ep.ipv4,
        Some(ip("198.51.100.2")),
        "not probed, so not skipped"
    );
    assert!(f.world.borrow().frames.is_empty());
}
