//! Request validation is pure: every bad value is named, and nothing else is consulted.

use underlay_core::{Connect, CreateNetwork, Driver, Error, Parent};

fn base() -> CreateNetwork {
    CreateNetwork {
        name: "lan".into(),
        driver: "macvlan".into(),
        subnets: vec!["198.51.100.0/24".into()],
        options: vec!["parent=eth0".into()],
        ..Default::default()
    }
}

/// An edit that breaks the base request, and the text its error must contain.
type Case = (Box<dyn FnOnce(&mut CreateNetwork)>, &'static str);

fn error_of(edit: impl FnOnce(&mut CreateNetwork)) -> String {
    let mut req = base();
    edit(&mut req);
    let err = req.validate().unwrap_err();
    assert!(err.is_invalid_input(), "{err} should be invalid input");
    err.to_string()
}

#[test]
fn defaults_follow_docker() {
    let spec = base().validate().unwrap();
    let v4 = spec.ipv4.unwrap();
    assert_eq!(
        v4.gateway.unwrap().to_string(),
        "198.51.100.1",
        "first address is the default gateway"
    );
    assert_eq!(spec.metric, 0);
    assert!(spec.ipv6.is_none());
    assert_eq!(spec.driver.name(), "macvlan");
}

#[test]
fn full_metric_range_is_accepted() {
    for metric in ["0", "4294967295"] {
        let mut req = base();
        req.options.push(format!("metric={metric}"));
        assert_eq!(req.validate().unwrap().metric.to_string(), metric);
    }
}

#[test]
fn every_bad_value_is_named() {
    let cases: Vec<Case> = vec![
        (Box::new(|r| r.subnets = vec!["198.51.100.0/33".into()]), "invalid CIDR \"198.51.100.0/33\""),
        (Box::new(|r| r.subnets = vec![]), "a network needs at least one --subnet"),
        (Box::new(|r| r.gateways = vec!["203.0.113.1".into()]), "gateway 203.0.113.1 is not in any subnet (198.51.100.0/24)"),
        (Box::new(|r| r.gateways = vec!["198.51.100.255".into()]), "invalid gateway: address 198.51.100.255 is the broadcast address of 198.51.100.0/24"),
        (Box::new(|r| r.gateways = vec!["nope".into()]), "invalid IP address \"nope\""),
        (Box::new(|r| r.ip_ranges = vec!["198.51.101.0/25".into()]), "ip range 198.51.101.0/25 is not in any subnet (198.51.100.0/24)"),
        (Box::new(|r| r.subnets.push("2001:db8::/64".into())), "IPv6 subnet 2001:db8::/64 needs --ipv6"),
        (Box::new(|r| r.ipv6 = true), "--ipv6 needs an IPv6 --subnet"),
        (Box::new(|r| r.subnets.push("203.0.113.0/24".into())), "only one IPv4 subnet per network is supported (got 198.51.100.0/24, 203.0.113.0/24)"),
        (Box::new(|r| r.options.push("colour=blue".into())), "unknown option \"colour\" for the macvlan driver (known: parent, vlan, macvlan_mode, mtu, metric, host_access, host_access_ip, host_access_ip6)"),
        (Box::new(|r| r.options.push("metric=4294967296".into())), "invalid metric \"4294967296\": expected a number from 0 to 4294967295"),
        (Box::new(|r| r.options.push("metric=-1".into())), "invalid metric \"-1\""),
        (Box::new(|r| r.options.push("mtu=67".into())), "invalid mtu \"67\""),
        (Box::new(|r| r.options.push("macvlan_mode=loud".into())), "invalid macvlan_mode \"loud\""),
        (Box::new(|r| r.options = vec![]), "macvlan networks need a parent interface: -o parent=IFNAME"),
        (Box::new(|r| r.options = vec!["parent=averyveryverylongname".into()]), "invalid parent: invalid interface name \"averyveryverylongname\": it is 21 bytes long"),
        (Box::new(|r| r.options = vec!["parent=eth/0".into()]), "may not contain '/'"),
        (Box::new(|r| r.options.push("parent=eth1".into())), "-o parent is given twice"),
        (Box::new(|r| r.options.push("novalue".into())), "invalid -o \"novalue\": expected KEY=VALUE"),
        (Box::new(|r| r.driver = "bridge".into()), "unknown driver \"bridge\" (supported: macvlan, ipvlan)"),
        (Box::new(|r| r.name = "-lan".into()), "invalid network name \"-lan\""),
        (Box::new(|r| r.aux_addresses = vec!["r2=203.0.113.2".into()]), "aux address r2=203.0.113.2 is not in any subnet"),
        (Box::new(|r| r.aux_addresses = vec!["r2=198.51.100.1".into()]), "aux address r2=198.51.100.1 is the gateway"),
        (Box::new(|r| r.labels = vec!["=x".into()]), "invalid --label \"=x\""),
    ];
    for (edit, needle) in cases {
        let msg = error_of(edit);
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    }
}

#[test]
fn connect_flags_are_checked_on_their_own() {
    let bad = |edit: fn(&mut Connect)| {
        let mut req = Connect {
            network: "lan".into(),
            target: "c1".into(),
            ..Default::default()
        };
        edit(&mut req);
        let err: Error = req.validate().unwrap_err();
        assert!(err.is_invalid_input());
        err.to_string()
    };
    assert_eq!(
        bad(|r| r.ip = Some("198.51.100.300".into())),
        "invalid IP address \"198.51.100.300\""
    );
    assert_eq!(
        bad(|r| r.ip6 = Some("198.51.100.3".into())),
        "--ip6 198.51.100.3 is not an IPv6 address"
    );
    assert!(bad(|r| r.ifname = Some("a23456789abcdefg".into())).contains("16 bytes long"));
    assert!(bad(|r| r.mac = Some("zz".into())).contains("invalid MAC address \"zz\""));
    assert!(bad(|r| r.name = Some("bad name".into())).contains("invalid endpoint name"));
}

fn spec_with(
    driver: &str,
    options: &[&str],
    internal: bool,
) -> Result<underlay_core::NetworkSpec, Error> {
    CreateNetwork {
        name: "n".into(),
        driver: driver.into(),
        subnets: vec!["198.51.100.0/24".into()],
        options: options.iter().map(|s| s.to_string()).collect(),
        internal,
        ..Default::default()
    }
    .validate()
}

fn vlan(name: &str, trunk: &str, id: u16) -> Parent {
    Parent::Vlan {
        name: name.parse().unwrap(),
        trunk: trunk.parse().unwrap(),
        id,
    }
}

#[test]
fn parents_in_every_form() {
    let parent = |opts: &[&str], internal| spec_with("macvlan", opts, internal).unwrap().parent;
    assert_eq!(
        parent(&["parent=eth0"], false),
        Parent::Link {
            name: "eth0".parse().unwrap()
        }
    );
    assert_eq!(
        parent(&["parent=eth0.100"], false),
        vlan("eth0.100", "eth0", 100)
    );
    assert_eq!(
        parent(&["parent=bond0", "vlan=4094"], false),
        vlan("bond0.4094", "bond0", 4094)
    );
    assert_eq!(
        parent(&["parent=br.lan"], false),
        Parent::Link {
            name: "br.lan".parse().unwrap()
        }
    );
    assert_eq!(parent(&[], true), Parent::Dummy);
    // <trunk>.<vid> longer than 15 bytes: the trunk name is cut so ".<vid>" fits.
    assert_eq!(
        parent(&["parent=enp0s31f6abcdef", "vlan=4094"], false),
        vlan("enp0s31f6a.4094", "enp0s31f6abcdef", 4094)
    );
    assert_eq!(
        parent(&["parent=enp0s31f6abcdef", "vlan=7"], false),
        vlan("enp0s31f6abcd.7", "enp0s31f6abcdef", 7)
    );
}

#[test]
fn vlan_and_ipvlan_bad_input_is_named() {
    let err = |driver: &str, opts: &[&str], internal: bool| {
        let e = spec_with(driver, opts, internal).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        e.to_string()
    };
    assert_eq!(
        err("macvlan", &["parent=eth0", "vlan=0"], false),
        "invalid VLAN ID \"0\" in -o vlan: expected 1 to 4094"
    );
    assert_eq!(
        err("macvlan", &["parent=eth0", "vlan=4095"], false),
        "invalid VLAN ID \"4095\" in -o vlan: expected 1 to 4094"
    );
    assert_eq!(
        err("macvlan", &["parent=eth0.0"], false),
        "invalid VLAN ID \"0\" in parent eth0.0: expected 1 to 4094"
    );
    assert_eq!(
        err("macvlan", &["parent=eth0.5000"], false),
        "invalid VLAN ID \"5000\" in parent eth0.5000: expected 1 to 4094"
    );
    assert_eq!(
        err("macvlan", &["vlan=10"], false),
        "-o vlan needs the trunk interface: -o parent=IFNAME"
    );
    assert!(err("macvlan", &["parent=enp0s31f6abcd.100"], false)
        .contains("it is 17 bytes long, the kernel allows 15"));
    assert_eq!(
        err("ipvlan", &["parent=eth0", "ipvlan_mode=l4"], false),
        "invalid ipvlan_mode \"l4\" (use l2, l3 or l3s)"
    );
    assert_eq!(
        err("ipvlan", &["parent=eth0", "ipvlan_flag=loud"], false),
        "invalid ipvlan_flag \"loud\" (use bridge, private or vepa)"
    );
    assert!(
        err("ipvlan", &["parent=eth0", "macvlan_mode=bridge"], false)
            .contains("unknown option \"macvlan_mode\" for the ipvlan driver")
    );
    assert!(err("ipvlan", &[], false).starts_with("ipvlan networks need a parent interface"));
}

#[test]
fn ipvlan_defaults_and_l3_gateways() {
    let l2 = spec_with("ipvlan", &["parent=eth0"], false).unwrap();
    assert_eq!(l2.driver.name(), "ipvlan");
    assert!(matches!(l2.driver, Driver::Ipvlan { .. }));
    assert_eq!(
        l2.ipv4.unwrap().gateway.map(|g| g.to_string()).as_deref(),
        Some("198.51.100.1")
    );
    // L3 routes through the device: no gateway unless one is named.
    let l3 = spec_with("ipvlan", &["parent=eth0", "ipvlan_mode=l3"], false).unwrap();
    assert!(l3.driver.routes_via_device());
    assert_eq!(l3.ipv4.unwrap().gateway, None);
}

#[test]
fn ipam_drivers_and_options_are_checked() {
    let cases: Vec<Case> = vec![
        (Box::new(|r| r.ipam_driver = Some("infoblox".into())), "unknown --ipam-driver \"infoblox\" (use default or dhcp)"),
        (Box::new(|r| r.ipam_driver = Some("dhcp".into())), "--ipam-driver dhcp takes IPv4 addresses from the LAN's DHCP server: drop --subnet 198.51.100.0/24"),
        (Box::new(|r| r.ipam_options = vec!["colour=blue".into()]), "unknown --ipam-opt \"colour\""),
        (Box::new(|r| r.ipam_options = vec!["ipv6_mode=auto".into()]), "invalid --ipam-opt ipv6_mode \"auto\" (use static, dhcpv6, slaac or off)"),
        (Box::new(|r| r.ipam_options = vec!["ipv6_mode=static".into()]), "ipv6_mode=static needs an IPv6 --subnet"),
        (Box::new(|r| r.ipam_options = vec!["dhcpv6=maybe".into()]), "invalid --ipam-opt dhcpv6 \"maybe\": expected true or false"),
        (Box::new(|r| r.ipam_options = vec!["dhcpv6=false".into(), "ipv6_mode=dhcpv6".into()]), "--ipam-opt dhcpv6 contradicts --ipam-opt ipv6_mode=dhcpv6"),
        (Box::new(|r| r.ipam_options = vec!["probe_ms=5".into()]), "invalid --ipam-opt probe_ms \"5\": expected a number from 10 to 10000"),
        (Box::new(|r| r.ipam_options = vec!["conflict_detection=perhaps".into()]), "invalid --ipam-opt conflict_detection \"perhaps\""),
        (Box::new(|r| r.ipam_options = vec!["dhcp_timeout=3".into()]), "--ipam-opt dhcp_timeout needs DHCP"),
        (Box::new(|r| { r.ipam_driver = Some("dhcp".into()); r.subnets = vec![]; r.ipam_options = vec!["dhcp_servers=198.51.100.1,nope".into()] }), "invalid --ipam-opt dhcp_servers entry \"nope\""),
        (Box::new(|r| { r.ipam_driver = Some("dhcp".into()); r.subnets = vec![]; r.ipam_options = vec!["dhcp_timeout=0".into()] }), "invalid --ipam-opt dhcp_timeout \"0\": expected a number from 1 to 300"),
        (Box::new(|r| { r.subnets.push("2001:db8::/64".into()); r.ipv6 = true; r.ipam_options = vec!["ipv6_mode=slaac".into()] }), "ipv6_mode=slaac does not use an IPv6 --subnet"),
        (Box::new(|r| { r.driver = "ipvlan".into(); r.options.push("ipvlan_mode=l3".into()); r.ipam_driver = Some("dhcp".into()); r.subnets = vec![] }), "DHCP needs layer 2, which ipvlan l3 and l3s do not carry"),
        (Box::new(|r| { r.driver = "ipvlan".into(); r.options.push("ipvlan_mode=l3s".into()); r.ipam_options = vec!["conflict_detection=true".into()] }), "conflict_detection needs layer 2"),
        (Box::new(|r| r.ipam_options = vec!["probe_ms=50".into(), "probe_ms=60".into()]), "--ipam-opt probe_ms is given twice"),
    ];
    for (edit, needle) in cases {
        let msg = error_of(edit);
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    }
}

#[test]
fn dhcp_and_ipv6_modes_validate_into_the_spec() {
    let dhcp = CreateNetwork {
        name: "d".into(),
        driver: "macvlan".into(),
        options: vec!["parent=eth0".into()],
        ipam_driver: Some("dhcp".into()),
        ipam_options: vec![
            "dhcpv6=true".into(),
            "dhcp_servers=198.51.100.1".into(),
            "probe_ms=250".into(),
        ],
        ..Default::default()
    }
    .validate()
    .unwrap();
    assert!(dhcp.ipv4.is_none() && dhcp.ipv6.is_none());
    assert!(dhcp.uses_dhcp());
    assert_eq!(dhcp.ipv6_mode(), underlay_core::Ipv6Mode::Dhcpv6);
    assert_eq!(
        dhcp.ipam.dhcp_servers,
        ["198.51.100.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(dhcp.ipam.probe_time().as_millis(), 250);

    let slaac_only = CreateNetwork {
        name: "s".into(),
        driver: "macvlan".into(),
        options: vec!["parent=eth0".into()],
        ipv6: true,
        ipam_options: vec!["ipv6_mode=slaac".into()],
        ..Default::default()
    }
    .validate()
    .unwrap();
    assert_eq!(slaac_only.ipv6_mode(), underlay_core::Ipv6Mode::Slaac);
    assert!(!slaac_only.uses_dhcp());

    let plain = base().validate().unwrap();
    assert_eq!(
        plain.ipv6_mode(),
        underlay_core::Ipv6Mode::Off,
        "no surprise IPv6"
    );
    assert!(plain.ipam.conflict_detection());
}

#[test]
fn dhcp_connect_flags_are_checked() {
    let mut req = Connect {
        network: "lan".into(),
        target: "c1".into(),
        dhcp_client_id: Some("xyz".into()),
        ..Default::default()
    };
    assert!(req
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("invalid --dhcp-client-id \"xyz\""));
    req.dhcp_client_id = None;
    req.hostname = Some("-bad".into());
    assert!(req
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("invalid --hostname \"-bad\""));
}
