//! The engine against a fake kernel: allocation, plumbing order, rollback at every kernel
//! step, recovery of interrupted operations, gc. No privileges needed.

mod support;

use std::collections::BTreeSet;

use support::{fixture, ip, Fixture, HOST};
use underlay_core::{Connect, CreateNetwork, Disconnect, Error, Family};

fn lan(extra: &[&str]) -> CreateNetwork {
    let mut options = vec!["parent=eth0".to_string()];
    options.extend(extra.iter().map(|s| s.to_string()));
    CreateNetwork {
        name: "lan".into(),
        driver: "macvlan".into(),
        subnets: vec!["198.51.100.0/24".into(), "2001:db8:1::/64".into()],
        gateways: vec!["198.51.100.1".into()],
        ipv6: true,
        options,
        ..Default::default()
    }
}

fn connect(target: &str) -> Connect {
    Connect {
        network: "lan".into(),
        target: target.into(),
        ..Default::default()
    }
}

/// Every address held in the network's pools, gateways included.
fn reserved(f: &Fixture) -> BTreeSet<String> {
    let net = f.engine.state().network("lan").unwrap().unwrap();
    [Family::V4, Family::V6]
        .into_iter()
        .flat_map(|fam| f.engine.state().reservations(&net, fam).unwrap())
        .map(|r| r.ip.to_string())
        .collect()
}

fn gateways_only() -> BTreeSet<String> {
    ["198.51.100.1", "2001:db8:1::1"].map(String::from).into()
}

#[test]
fn connect_plumbs_the_link_in_order() {
    let mut f = fixture(&["/run/netns/c1"]);
    let mut req = lan(&["metric=4294967295"]);
    req.ipam_options = vec!["conflict_detection=false".into()];
    f.engine.create_network(&req).unwrap();
    let ep = f.engine.connect(&connect("c1")).unwrap();
    assert_eq!(ep.name, "c1");
    assert_eq!(ep.ipv4, Some(ip("198.51.100.2")));
    assert_eq!(ep.ipv6, Some(ip("2001:db8:1::2")));
    assert_eq!(ep.mac.0[0] & 3, 2, "locally administered unicast");

    let mut w = f.world.borrow_mut();
    let ns = w.ns("/run/netns/c1");
    let link = ns.links.values().next().unwrap().clone();
    assert_eq!(link.name, "eth0");
    assert!(link.up);
    assert_eq!(link.mac, Some(ep.mac.0));
    assert_eq!(ns.routes.len(), 2);
    assert!(ns
        .routes
        .iter()
        .all(|r| r.metric == u32::MAX && r.dst.prefix == 0));
    assert_eq!(
        ns.sysctls
            .get("net/ipv4/conf/eth0/arp_notify")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        ns.sysctls
            .get("net/ipv6/conf/eth0/ndisc_notify")
            .map(String::as_str),
        Some("1")
    );
    // Announcements need the addresses in place before the link goes up, routes after.
    let order: Vec<&str> = w
        .calls
        .iter()
        .map(|c| c.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "create_child",
            "set_alias",
            "rename_link",
            "sysctls",
            "add_address",
            "add_address",
            "set_up",
            "add_route",
            "add_route"
        ]
    );
}

#[test]
fn with_conflict_detection_the_bare_link_is_probed_then_addressed_and_announced() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    let ep = f.engine.connect(&connect("c1")).unwrap();
    let w = f.world.borrow();
    let order: Vec<&str> = w
        .calls
        .iter()
        .map(|c| c.split(' ').next().unwrap())
        .collect();
    let at = |verb: &str| order.iter().position(|v| *v == verb).unwrap();
    assert!(at("set_up") < at("frame_socket"), "{order:?}");
    assert!(at("frame_socket") < at("add_address"), "{order:?}");
    let last_address = order.iter().rposition(|v| *v == "add_address").unwrap();
    let last_frame = order.iter().rposition(|v| *v == "send_frame").unwrap();
    assert!(
        last_address < last_frame && last_frame < at("add_route"),
        "{order:?}"
    );
    // Three probes per address, asking about exactly the endpoint's addresses, from its MAC.
    let probed: Vec<_> = w
        .frames
        .iter()
        .filter_map(|(_, f)| support::probed_address(f))
        .collect();
    assert_eq!(probed.len(), 6, "{probed:?}");
    assert!(probed
        .iter()
        .all(|a| Some(*a) == ep.ipv4 || Some(*a) == ep.ipv6));
    assert!(w
        .frames
        .iter()
        .all(|(ns, f)| ns == "/run/netns/c1" && f[6..12] == ep.mac.0));
}

#[test]
fn internal_networks_get_no_default_route() {
    let mut f = fixture(&["/run/netns/c1"]);
    let mut req = lan(&[]);
    req.internal = true;
    f.engine.create_network(&req).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    assert!(f.world.borrow_mut().ns("/run/netns/c1").routes.is_empty());
}

#[test]
fn a_failure_at_any_kernel_step_leaves_nothing_behind() {
    for verb in [
        "create_child",
        "set_alias",
        "rename_link",
        "sysctls",
        "add_address",
        "set_up",
        "add_route",
    ] {
        let mut f = fixture(&["/run/netns/c1"]);
        f.engine.create_network(&lan(&[])).unwrap();
        f.world.borrow_mut().fail = vec![verb];
        let err = f.engine.connect(&connect("c1")).unwrap_err();
        assert!(matches!(err, Error::Kernel { .. }), "{verb}: {err}");
        assert!(
            f.world.borrow().link_names("/run/netns/c1").is_empty(),
            "{verb}: link left behind"
        );
        assert_eq!(reserved(&f), gateways_only(), "{verb}: address leaked");
        let net = f.engine.state().network("lan").unwrap().unwrap();
        assert!(
            f.engine.state().endpoints(&net.id).unwrap().is_empty(),
            "{verb}: endpoint left"
        );
        // And the next attempt works.
        f.engine.connect(&connect("c1")).unwrap();
    }
}

#[test]
fn static_addresses_and_their_errors() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    let mut req = lan(&[]);
    req.ip_ranges = vec!["198.51.100.128/25".into()];
    req.aux_addresses = vec!["router2=198.51.100.130".into()];
    f.engine.create_network(&req).unwrap();
    let c1 = Connect {
        ip: Some("198.51.100.200".into()),
        ..connect("c1")
    };
    assert_eq!(
        f.engine.connect(&c1).unwrap().ipv4,
        Some(ip("198.51.100.200"))
    );

    let msg = |f: &mut Fixture, ip: &str| {
        let req = Connect {
            ip: Some(ip.into()),
            ..connect("c2")
        };
        f.engine.connect(&req).unwrap_err().to_string()
    };
    assert_eq!(
        msg(&mut f, "198.51.100.200"),
        "address 198.51.100.200 is already in use by endpoint c1 on network lan"
    );
    assert_eq!(
        msg(&mut f, "198.51.100.130"),
        "address 198.51.100.130 is already in use by aux address router2"
    );
    assert_eq!(
        msg(&mut f, "198.51.100.5"),
        "address 198.51.100.5 is not in ip range 198.51.100.128/25"
    );
    assert_eq!(
        msg(&mut f, "203.0.113.5"),
        "address 203.0.113.5 is not in subnet 198.51.100.0/24"
    );
    assert_eq!(
        msg(&mut f, "2001:db8:1::9"),
        "--ip 2001:db8:1::9 is not an IPv4 address"
    );
    // Dynamic allocation starts at the range and skips the aux address.
    assert_eq!(
        f.engine.connect(&connect("c2")).unwrap().ipv4,
        Some(ip("198.51.100.128"))
    );
}

#[test]
fn connect_refusals_change_nothing() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    let before = reserved(&f);
    let calls = f.world.borrow().calls.len();
    for (req, needle) in [
        (
            connect("c1"),
            "already connected to network lan as endpoint c1",
        ),
        (
            Connect {
                name: Some("x".into()),
                ..connect("c9")
            },
            "target netns c9 does not exist",
        ),
        (
            Connect {
                network: "nope".into(),
                ..connect("c1")
            },
            "network nope does not exist",
        ),
        (
            Connect {
                mac: Some("01:00:5e:00:00:01".into()),
                ..connect("c1")
            },
            "multicast",
        ),
    ] {
        let err = f.engine.connect(&req).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert_eq!(reserved(&f), before);
    assert_eq!(
        f.world.borrow().calls.len(),
        calls,
        "no kernel change on refusal"
    );
}

#[test]
fn an_existing_interface_name_is_refused() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.world
        .borrow_mut()
        .add_link("/run/netns/c1", "eth0", [2, 0, 0, 0, 0, 9], false);
    let err = f.engine.connect(&connect("c1")).unwrap_err().to_string();
    assert_eq!(err, "interface eth0 already exists in netns /run/netns/c1");
    assert_eq!(reserved(&f), gateways_only());
}

#[test]
fn disconnect_frees_the_address_for_reuse() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    f.engine.connect(&connect("c2")).unwrap();
    f.engine
        .disconnect(&Disconnect {
            network: "lan".into(),
            target: "c1".into(),
        })
        .unwrap();
    assert!(f.world.borrow().link_names("/run/netns/c1").is_empty());
    let again = f
        .engine
        .connect(&Connect {
            name: Some("again".into()),
            ..connect("c1")
        })
        .unwrap();
    assert_eq!(again.ipv4, Some(ip("198.51.100.2")));
    let err = f
        .engine
        .disconnect(&Disconnect {
            network: "lan".into(),
            target: "c7".into(),
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "c7 is not connected to network lan");
}

#[test]
fn disconnect_succeeds_when_the_netns_is_gone() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    f.world.borrow_mut().namespaces.remove("/run/netns/c1");
    f.engine
        .disconnect(&Disconnect {
            network: "lan".into(),
            target: "c1".into(),
        })
        .unwrap();
    assert_eq!(reserved(&f), gateways_only());
}

#[test]
fn a_user_interface_with_our_name_but_not_our_alias_is_never_deleted() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    {
        // Somebody replaced our eth0 with their own.
        let mut w = f.world.borrow_mut();
        let ns = w.ns("/run/netns/c1");
        ns.links.clear();
    }
    f.world
        .borrow_mut()
        .add_link("/run/netns/c1", "eth0", [2, 0, 0, 0, 0, 9], false);
    f.engine
        .disconnect(&Disconnect {
            network: "lan".into(),
            target: "c1".into(),
        })
        .unwrap();
    assert_eq!(f.world.borrow().link_names("/run/netns/c1"), ["eth0"]);
}

#[test]
fn network_rm_refuses_with_endpoints_unless_forced() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    f.engine.connect(&connect("c2")).unwrap();
    let err = f
        .engine
        .remove_network("lan", false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "network lan has 2 attached endpoint(s) (c1, c2): disconnect them first or use --force"
    );
    f.engine.remove_network("lan", true).unwrap();
    assert!(f.world.borrow().link_names("/run/netns/c1").is_empty());
    assert!(f.world.borrow().link_names("/run/netns/c2").is_empty());
    assert!(f.engine.state().networks().unwrap().is_empty());
    // The name and the subnet are free again.
    f.engine.create_network(&lan(&[])).unwrap();
}

#[test]
fn parent_sharing_rules() {
    let mut f = fixture(&[]);
    f.engine.create_network(&lan(&[])).unwrap();
    let second = |name: &str, subnet: &str, opts: &[&str]| CreateNetwork {
        name: name.into(),
        driver: "macvlan".into(),
        subnets: vec![subnet.into()],
        options: ["parent=eth0"]
            .iter()
            .chain(opts)
            .map(|s| s.to_string())
            .collect(),
        ..Default::default()
    };
    f.engine
        .create_network(&second("lan2", "203.0.113.0/24", &[]))
        .unwrap();
    let err = f
        .engine
        .create_network(&second("lan3", "198.51.100.128/25", &[]))
        .unwrap_err();
    assert_eq!(err.to_string(), "subnet 198.51.100.128/25 overlaps subnet 198.51.100.0/24 of network lan on the same parent eth0");
    let err = f
        .engine
        .create_network(&second("pt", "192.168.7.0/24", &["macvlan_mode=passthru"]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("passthru mode needs the parent for itself"),
        "{err}"
    );
    let err = f
        .engine
        .create_network(&second("lan", "192.168.8.0/24", &[]))
        .unwrap_err();
    assert_eq!(err.to_string(), "network lan already exists");
}

#[test]
fn parents_must_exist_and_not_be_loopback() {
    let mut f = fixture(&[]);
    let mut req = lan(&[]);
    req.options = vec!["parent=lo".into()];
    assert_eq!(
        f.engine.create_network(&req).unwrap_err().to_string(),
        "parent interface lo is a loopback interface"
    );
    req.options = vec!["parent=eth9".into()];
    assert_eq!(
        f.engine.create_network(&req).unwrap_err().to_string(),
        "parent interface eth9 does not exist"
    );
    req.options = vec!["parent=eth0".into(), "mtu=9000".into()];
    assert_eq!(
        f.engine.create_network(&req).unwrap_err().to_string(),
        "mtu 9000 is larger than the mtu 1500 of parent eth0"
    );
    assert!(f.engine.state().networks().unwrap().is_empty());
}

#[test]
fn the_next_command_rolls_back_an_attach_whose_rollback_failed() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    f.engine.create_network(&lan(&[])).unwrap();
    // The route fails, and so does the rollback's link deletion: the endpoint stays recorded
    // as "attaching", holding its addresses, exactly as if the process had been killed.
    f.world.borrow_mut().fail = vec!["add_route", "delete_link"];
    let err = f.engine.connect(&connect("c1")).unwrap_err().to_string();
    assert!(
        err.contains("adding route 0.0.0.0/0 via 198.51.100.1") && err.contains("deleting eth0"),
        "{err}"
    );
    assert_eq!(f.world.borrow().link_names("/run/netns/c1"), ["eth0"]);
    assert_eq!(
        reserved(&f).len(),
        4,
        "the intent still holds its addresses"
    );

    // Any later mutating command repairs it first; c2 then gets the lowest address back.
    let c2 = f.engine.connect(&connect("c2")).unwrap();
    assert_eq!(c2.ipv4, Some(ip("198.51.100.2")));
    assert!(f.world.borrow().link_names("/run/netns/c1").is_empty());
    let net = f.engine.state().network("lan").unwrap().unwrap();
    let names: Vec<String> = f
        .engine
        .state()
        .endpoints(&net.id)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["c2"]);
}

#[test]
fn a_failed_detach_is_finished_by_gc() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    f.world.borrow_mut().fail = vec!["delete_link"];
    assert!(f
        .engine
        .disconnect(&Disconnect {
            network: "lan".into(),
            target: "c1".into()
        })
        .is_err());
    assert_eq!(f.world.borrow().link_names("/run/netns/c1"), ["eth0"]);
    let report = f.engine.gc().unwrap();
    assert_eq!(report.rolled_back, ["c1"]);
    assert!(f.world.borrow().link_names("/run/netns/c1").is_empty());
    assert_eq!(reserved(&f), gateways_only());
}

#[test]
fn gc_releases_endpoints_whose_namespace_is_gone() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    f.engine.create_network(&lan(&[])).unwrap();
    f.engine.connect(&connect("c1")).unwrap();
    f.engine.connect(&connect("c2")).unwrap();
    f.world.borrow_mut().namespaces.remove("/run/netns/c1");
    let report = f.engine.gc().unwrap();
    assert_eq!(report.released, ["lan/c1"]);
    assert!(report.rolled_back.is_empty());
    assert_eq!(reserved(&f).len(), 4, "gateways + c2's two addresses");
    // A netns recreated at the same path is a different netns: c2's link is unaffected.
    assert_eq!(f.world.borrow().link_names("/run/netns/c2"), ["eth0"]);
    assert_eq!(
        f.world.borrow().namespaces.get(HOST).map(|n| n.links.len()),
        Some(2)
    );
}
