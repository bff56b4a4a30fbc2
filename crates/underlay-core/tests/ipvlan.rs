//! ipvlan networks: modes, flags, the shared MAC, L3 device routes, parent sharing rules.

mod support;

use support::{fixture, HOST};
use underlay_core::{Connect, CreateNetwork};
use underlay_linux::{IpvlanFlag, IpvlanMode};

fn ipvlan(name: &str, subnet: &str, options: &[&str]) -> CreateNetwork {
    CreateNetwork {
        name: name.into(),
        driver: "ipvlan".into(),
        subnets: vec![subnet.into(), "2001:db8:7::/64".into()],
        ipv6: true,
        options: ["parent=eth0"]
            .iter()
            .chain(options)
            .map(|s| s.to_string())
            .collect(),
        ..Default::default()
    }
}

/// IPv4 only, so several networks can share a parent without overlapping.
fn ipvlan4(name: &str, subnet: &str, options: &[&str]) -> CreateNetwork {
    CreateNetwork {
        subnets: vec![subnet.into()],
        ipv6: false,
        ..ipvlan(name, subnet, options)
    }
}

fn connect(network: &str, target: &str) -> Connect {
    Connect {
        network: network.into(),
        target: target.into(),
        ..Default::default()
    }
}

#[test]
fn l2_endpoints_share_the_parent_mac_and_route_via_the_gateway() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    f.engine
        .create_network(&ipvlan("ipv", "198.51.100.0/24", &[]))
        .unwrap();
    let a = f.engine.connect(&connect("ipv", "c1")).unwrap();
    let b = f.engine.connect(&connect("ipv", "c2")).unwrap();
    let parent_mac = f.world.borrow().link(HOST, "eth0").unwrap().mac.unwrap();
    assert_eq!((a.mac.0, b.mac.0), (parent_mac, parent_mac));
    let mut w = f.world.borrow_mut();
    let link = w.ns("/run/netns/c1").links.values().next().unwrap().clone();
    assert_eq!(link.ipvlan, Some((IpvlanMode::L2, IpvlanFlag::Bridge)));
    let routes = &w.ns("/run/netns/c1").routes;
    assert_eq!(routes.len(), 2);
    assert!(routes.iter().all(|r| r.gateway.is_some()));
}

#[test]
fn l3_routes_through_the_device_and_needs_no_gateway() {
    for mode in ["l3", "l3s"] {
        let mut f = fixture(&["/run/netns/c1"]);
        let req = ipvlan(
            "ipv",
            "198.51.100.0/24",
            &[&format!("ipvlan_mode={mode}"), "ipvlan_flag=private"],
        );
        f.engine.create_network(&req).unwrap();
        let ep = f.engine.connect(&connect("ipv", "c1")).unwrap();
        // No gateway reserved: the first address goes to the endpoint.
        assert_eq!(ep.ipv4.unwrap().to_string(), "198.51.100.1");
        let mut w = f.world.borrow_mut();
        let routes = &w.ns("/run/netns/c1").routes;
        assert_eq!(routes.len(), 2, "{mode}");
        assert!(
            routes
                .iter()
                .all(|r| r.gateway.is_none() && r.dst.prefix == 0),
            "{mode}: {routes:?}"
        );
    }
}

#[test]
fn mac_is_refused_on_ipvlan() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine
        .create_network(&ipvlan("ipv", "198.51.100.0/24", &[]))
        .unwrap();
    let req = Connect {
        mac: Some("02:00:00:00:00:01".into()),
        ..connect("ipv", "c1")
    };
    let err = f.engine.connect(&req).unwrap_err();
    assert!(err.is_invalid_input());
    assert_eq!(
        err.to_string(),
        "ipvlan endpoints share their parent's MAC: --mac cannot be used on ipvlan network ipv"
    );
    assert!(f.world.borrow().link_names("/run/netns/c1").is_empty());
}

#[test]
fn parent_sharing_follows_the_kernel() {
    let mut f = fixture(&[]);
    f.engine
        .create_network(&ipvlan4("a", "198.51.100.0/24", &[]))
        .unwrap();
    // Same mode and flag: allowed (Docker refuses; the kernel does not).
    f.engine
        .create_network(&ipvlan4(
            "b",
            "203.0.113.0/24",
            &["ipvlan_mode=l2", "ipvlan_flag=bridge"],
        ))
        .unwrap();
    let err = f
        .engine
        .create_network(&ipvlan4("c", "192.168.60.0/24", &["ipvlan_mode=l3"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "parent eth0 is already used by network a: it is in ipvlan mode l2 flag bridge, and ipvlan networks on one parent must agree on both"
    );
    let mac = CreateNetwork {
        driver: "macvlan".into(),
        subnets: vec!["192.168.61.0/24".into()],
        ..ipvlan4("m", "192.168.61.0/24", &[])
    };
    let err = f.engine.create_network(&mac).unwrap_err();
    assert_eq!(err.to_string(), "parent eth0 is already used by network a: the kernel cannot put macvlan and ipvlan links on one parent");
    // On a VLAN sub-interface of the same trunk, macvlan is fine: it is another interface.
    let on_vlan = CreateNetwork {
        options: vec!["parent=eth0.30".into()],
        ..mac
    };
    f.engine.create_network(&on_vlan).unwrap();
}
