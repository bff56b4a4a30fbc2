//! The rtnetlink verbs against the real kernel, each test in its own network namespace.
//! Needs root; fails (never skips) without it.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{index_of, spec, TestNetns};
use underlay_linux::{IpNet, MacvlanMode, MacvlanSpec, Netlink, Route};

fn net(addr: &str, prefix: u8) -> IpNet {
    IpNet {
        addr: addr.parse().expect("address"),
        prefix,
    }
}

#[test]
fn creates_macvlan_in_every_mode() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    let mut nl = ns.netlink();
    for mode in [
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Bridge,
        MacvlanMode::Passthru,
        MacvlanMode::Source,
    ] {
        nl.create_macvlan(&spec("ul-mv0", parent, mode))
            .unwrap_or_else(|error| panic!("create {mode:?}: {error}"));

        let link = nl.link_by_name("ul-mv0").expect("get").expect("created");
        assert_eq!(link.kind.as_deref(), Some("macvlan"));
        assert_eq!(link.macvlan_mode, Some(mode));
        assert_eq!(link.parent, Some(parent));
        assert!(!link.up);
        assert!(!link.loopback);

        let json = ns.link_json("ul-mv0");
        assert_eq!(json["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(json["linkinfo"]["info_data"]["mode"], mode.as_str());
        assert_eq!(json["link"], "ul-par0");

        assert!(nl.delete_link(link.index).expect("delete"));
    }
}

#[test]
fn creates_macvlan_with_mac_and_mtu() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    let mut nl = ns.netlink();
    let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x07];
    nl.create_macvlan(&MacvlanSpec {
        name: "ul-mv0".to_string(),
        parent,
        mode: MacvlanMode::Bridge,
        mac: Some(mac),
        mtu: Some(1400),
        bc_queue_len: None,
    })
    .expect("create");

    let link = nl.link_by_name("ul-mv0").expect("get").expect("created");
    assert_eq!(link.mac, Some(mac));
    assert_eq!(link.mtu, 1400);
    assert_eq!(nl.link_by_index(link.index).expect("get"), Some(link));

    let json = ns.link_json("ul-mv0");
    assert_eq!(json["address"], "02:42:ac:11:00:07");
    assert_eq!(json["mtu"], 1400);
}

#[test]
fn mtu_above_the_parent_is_einval_with_the_kernels_reason() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    ns.ip(&["link", "set", "ul-par0", "mtu", "1500"]);
    let mut nl = ns.netlink();
    let mut too_big = spec("ul-mv0", parent, MacvlanMode::Bridge);
    too_big.mtu = Some(9000);
    let error = nl.create_macvlan(&too_big).expect_err("mtu above parent");
    assert_eq!(error.errno(), Some(libc_einval()), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("create macvlan ul-mv0 on parent {parent}")),
        "{text}"
    );
    assert_eq!(nl.link_by_name("ul-mv0").expect("get"), None);
}

fn libc_einval() -> i32 {
    nix::errno::Errno::EINVAL as i32
}

#[test]
fn duplicate_name_is_eexist() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    let mut nl = ns.netlink();
    nl.create_macvlan(&spec("ul-mv0", parent, MacvlanMode::Bridge))
        .expect("first create");
    let error = nl
        .create_macvlan(&spec("ul-mv0", parent, MacvlanMode::Bridge))
        .expect_err("second create");
    assert_eq!(
        error.errno(),
        Some(nix::errno::Errno::EEXIST as i32),
        "{error}"
    );
    assert!(error.to_string().contains("ul-mv0"), "{error}");
}

#[test]
fn missing_parent_is_an_error_with_errno() {
    let ns = TestNetns::new();
    let mut nl = ns.netlink();
    let error = nl
        .create_macvlan(&spec("ul-mv0", 999_999, MacvlanMode::Bridge))
        .expect_err("no such parent");
    assert!(error.errno().is_some(), "{error}");
}

#[test]
fn renames_and_sets_up() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    let mut nl = ns.netlink();
    nl.create_macvlan(&spec("ul-tmp0", parent, MacvlanMode::Bridge))
        .expect("create");
    let index = index_of(&mut nl, "ul-tmp0");

    nl.rename_link(index, "eth0").expect("rename");
    assert_eq!(nl.link_by_name("ul-tmp0").expect("get"), None);
    let renamed = nl.link_by_name("eth0").expect("get").expect("renamed");
    assert_eq!(renamed.index, index);
    assert!(!renamed.up);

    nl.set_up(index).expect("set up");
    let up = nl.link_by_index(index).expect("get").expect("exists");
    assert!(up.up);
    assert_eq!(up.name, "eth0");
    let json = ns.link_json("eth0");
    let flags = json["flags"].as_array().expect("flags");
    assert!(flags.iter().any(|flag| flag == "UP"), "{json}");

    // Renaming a link that is up: EBUSY before Linux 6.6, allowed since; never anything else.
    match nl.rename_link(index, "eth1") {
        Ok(()) => assert!(nl.link_by_name("eth1").expect("get").is_some()),
        Err(error) => assert_eq!(
            error.errno(),
            Some(nix::errno::Errno::EBUSY as i32),
            "{error}"
        ),
    }
}

#[test]
fn lists_links_including_loopback() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    let mut nl = ns.netlink();
    nl.create_macvlan(&spec("ul-mv0", parent, MacvlanMode::Private))
        .expect("create");
    let links = nl.links().expect("links");
    let names: Vec<&str> = links.iter().map(|link| link.name.as_str()).collect();
    for expected in ["lo", "ul-par0", "ul-peer0", "ul-mv0"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let lo = links.iter().find(|link| link.name == "lo").expect("lo");
    assert!(lo.loopback && lo.up);
    assert_eq!(lo.kind, None);
    let veth = links
        .iter()
        .find(|link| link.name == "ul-par0")
        .expect("veth");
    assert_eq!(veth.kind.as_deref(), Some("veth"));
    let macvlan = links.iter().find(|link| link.name == "ul-mv0").expect("mv");
    assert_eq!(macvlan.macvlan_mode, Some(MacvlanMode::Private));
}

#[test]
fn missing_links_are_none_and_delete_is_idempotent() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    let mut nl = ns.netlink();
    assert_eq!(nl.link_by_name("ul-nothing").expect("get"), None);
    assert_eq!(nl.link_by_name("").expect("get"), None);
    assert_eq!(
        nl.link_by_name("a-name-far-too-long-for-linux")
            .expect("get"),
        None
    );
    assert_eq!(nl.link_by_index(999_999).expect("get"), None);

    nl.create_macvlan(&spec("ul-mv0", parent, MacvlanMode::Bridge))
        .expect("create");
    let index = index_of(&mut nl, "ul-mv0");
    assert!(nl.delete_link(index).expect("first delete"));
    assert!(!nl.delete_link(index).expect("second delete"));
    assert_eq!(nl.link_by_name("ul-mv0").expect("get"), None);
    assert_eq!(
        nl.addresses(index).expect("addresses of a missing link"),
        vec![]
    );
    assert_eq!(nl.routes(index).expect("routes of a missing link"), vec![]);
}

/// A macvlan `ul-mv0` that is up, on a veth parent whose both ends are up.
fn up_macvlan(ns: &TestNetns, nl: &mut impl Netlink) -> u32 {
    let parent = ns.veth("ul-par0", "ul-peer0");
    ns.ip(&["link", "set", "ul-peer0", "up"]);
    ns.ip(&["link", "set", "ul-par0", "up"]);
    nl.create_macvlan(&spec("ul-mv0", parent, MacvlanMode::Bridge))
        .expect("create");
    let index = index_of(nl, "ul-mv0");
    nl.set_up(index).expect("set up");
    index
}

#[test]
fn adds_and_lists_addresses_of_both_families() {
    let ns = TestNetns::new();
    let mut nl = ns.netlink();
    let index = up_macvlan(&ns, &mut nl);
    let v4 = net("192.0.2.5", 24);
    let v6 = net("2001:db8::5", 64);
    nl.add_address(index, v4).expect("add v4");
    nl.add_address(index, v6).expect("add v6");

    let addresses = nl.addresses(index).expect("addresses");
    assert!(addresses.contains(&v4), "{addresses:?}");
    assert!(addresses.contains(&v6), "{addresses:?}");
    // Nothing is skipped: the kernel's own link-local address is listed too.
    assert!(
        addresses
            .iter()
            .any(|a| matches!(a.addr, IpAddr::V6(v6) if v6.segments()[0] == 0xfe80)),
        "{addresses:?}"
    );
    // Other links' addresses are not.
    let lo = index_of(&mut nl, "lo");
    let lo_addresses = nl.addresses(lo).expect("lo addresses");
    assert!(
        lo_addresses.contains(&net("127.0.0.1", 8)),
        "{lo_addresses:?}"
    );
    assert!(!lo_addresses.contains(&v4));

    // IPv6 without DAD: not tentative, flagged nodad.
    let out = ns.ip(&["-j", "-6", "addr", "show", "dev", "ul-mv0"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let info = json[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .find(|a| a["local"] == "2001:db8::5")
        .expect("v6 address")
        .clone();
    assert_eq!(info["nodad"], true, "{info}");
    assert!(info.get("tentative").is_none(), "{info}");
    let out = ns.ip(&["-j", "-4", "addr", "show", "dev", "ul-mv0"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json[0]["addr_info"][0]["broadcast"], "192.0.2.255");

    let error = nl.add_address(index, v4).expect_err("duplicate address");
    assert_eq!(
        error.errno(),
        Some(nix::errno::Errno::EEXIST as i32),
        "{error}"
    );
}

#[test]
fn adds_and_lists_routes_with_extreme_metrics() {
    let ns = TestNetns::new();
    let mut nl = ns.netlink();
    let index = up_macvlan(&ns, &mut nl);
    nl.add_address(index, net("192.0.2.5", 24)).expect("add v4");
    nl.add_address(index, net("2001:db8::5", 64))
        .expect("add v6");

    let gw4: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
    let gw6: IpAddr = "2001:db8::1".parse::<Ipv6Addr>().expect("v6").into();
    let default4 = net("0.0.0.0", 0);
    let default6 = net("::", 0);
    let wanted = [
        Route {
            dst: default4,
            gateway: Some(gw4),
            oif: index,
            metric: 0,
        },
        Route {
            dst: default4,
            gateway: Some(gw4),
            oif: index,
            metric: u32::MAX,
        },
        Route {
            dst: net("198.51.100.0", 24),
            gateway: None,
            oif: index,
            metric: 7,
        },
        Route {
            dst: default6,
            gateway: Some(gw6),
            oif: index,
            metric: u32::MAX,
        },
        Route {
            dst: net("2001:db8:1::", 48),
            gateway: None,
            oif: index,
            metric: 5,
        },
    ];
    for route in &wanted {
        nl.add_route(route)
            .unwrap_or_else(|error| panic!("add {route:?}: {error}"));
    }

    let routes = nl.routes(index).expect("routes");
    for route in &wanted {
        assert!(routes.contains(route), "{route:?} in {routes:?}");
    }
    // The kernel's prefix routes are listed too (callers filter them).
    assert!(
        routes
            .iter()
            .any(|r| r.dst == net("192.0.2.0", 24) && r.gateway.is_none()),
        "{routes:?}"
    );
    // Only unicast routes of the main table: no local/multicast IPv6 routes.
    assert!(routes
        .iter()
        .all(|r| !matches!(r.dst.addr, IpAddr::V6(a) if a.segments()[0] == 0xff00)));
    assert!(
        !routes.iter().any(|r| r.dst == net("2001:db8::5", 128)),
        "{routes:?}"
    );
    assert!(routes.iter().all(|r| r.oif == index));

    let out = ns.ip(&["-j", "route", "show", "default"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let metrics: Vec<u64> = json
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["metric"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        metrics.contains(&0) && metrics.contains(&4294967295),
        "{out}"
    );
    assert!(out.contains("\"protocol\":\"static\""), "{out}");

    let error = nl.add_route(&wanted[0]).expect_err("duplicate route");
    assert_eq!(
        error.errno(),
        Some(nix::errno::Errno::EEXIST as i32),
        "{error}"
    );
}

#[test]
fn ipv6_metric_zero_reads_back_as_1024() {
    // Kernel behaviour worth knowing: IPv6 replaces metric 0 with IP6_RT_PRIO_USER (1024).
    let ns = TestNetns::new();
    let mut nl = ns.netlink();
    let index = up_macvlan(&ns, &mut nl);
    nl.add_address(index, net("2001:db8::5", 64))
        .expect("add v6");
    let gateway = Some("2001:db8::1".parse().expect("v6"));
    nl.add_route(&Route {
        dst: net("::", 0),
        gateway,
        oif: index,
        metric: 0,
    })
    .expect("add");
    let routes = nl.routes(index).expect("routes");
    assert!(
        routes.contains(&Route {
            dst: net("::", 0),
            gateway,
            oif: index,
            metric: 1024
        }),
        "{routes:?}"
    );
}

#[test]
fn routes_of_other_links_are_not_listed() {
    let ns = TestNetns::new();
    let mut nl = ns.netlink();
    let index = up_macvlan(&ns, &mut nl);
    nl.add_address(index, net("192.0.2.5", 24)).expect("add v4");
    let parent = index_of(&mut nl, "ul-par0");
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "ul-par0"]);
    let parent_routes = nl.routes(parent).expect("routes");
    assert!(
        parent_routes.iter().all(|r| r.oif == parent),
        "{parent_routes:?}"
    );
    assert!(parent_routes.iter().any(|r| r.dst == net("198.18.0.0", 24)));
    assert!(!parent_routes.iter().any(|r| r.dst == net("192.0.2.0", 24)));
}

#[test]
fn kernel_errors_carry_the_kernels_reason() {
    let ns = TestNetns::new();
    let mut nl = ns.netlink();
    let lo = index_of(&mut nl, "lo");
    let error = nl
        .add_address(lo, net("192.0.2.5", 33))
        .expect_err("prefix 33");
    assert_eq!(error.errno(), Some(libc_einval()), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("add address 192.0.2.5/33 to link {lo}")),
        "{text}"
    );
    // The extended-ack reason (this message exists since Linux 6.x).
    assert!(
        text.contains("(kernel says: ipv4: Invalid prefix length)"),
        "{text}"
    );
}

#[test]
fn alias_is_set_and_read_back_and_survives_a_rename() {
    let ns = TestNetns::new();
    let parent = ns.veth("ul-par0", "ul-peer0");
    let mut nl = ns.netlink();
    nl.create_macvlan(&spec("ul-mv0", parent, MacvlanMode::Bridge))
        .expect("create");
    let index = index_of(&mut nl, "ul-mv0");
    nl.set_alias(index, "underlay:0123abcd").expect("alias");
    nl.rename_link(index, "ul-eth0").expect("rename");
    let link = nl.link_by_name("ul-eth0").expect("get").expect("renamed");
    assert_eq!(link.alias.as_deref(), Some("underlay:0123abcd"));
    assert_eq!(ns.link_json("ul-eth0")["ifalias"], "underlay:0123abcd");
    let listed = nl.links().expect("dump");
    assert!(listed
        .iter()
        .any(|l| l.alias.as_deref() == Some("underlay:0123abcd")));
}

#[test]
fn default_route_link_is_the_lowest_metric_ipv4_default() {
    let ns = TestNetns::new();
    let first = ns.veth("ul-par0", "ul-peer0");
    let second = ns.veth("ul-par1", "ul-peer1");
    for link in ["ul-par0", "ul-peer0", "ul-par1", "ul-peer1"] {
        ns.ip(&["link", "set", link, "up"]);
    }
    let mut nl = ns.netlink();
    assert_eq!(nl.default_route_link().expect("dump"), None);
    for (index, addr, metric) in [(first, "198.51.100.2", 200), (second, "203.0.113.2", 100)] {
        nl.add_address(index, net(addr, 24)).expect("address");
        let gateway = addr.replace(".2", ".1").parse().expect("gateway");
        let default = Route {
            dst: net("0.0.0.0", 0),
            gateway: Some(gateway),
            oif: index,
            metric,
        };
        nl.add_route(&default).expect("route");
    }
    assert_eq!(nl.default_route_link().expect("dump"), Some(second));
}
