//! Host access: without it the docker host cannot reach its macvlan containers (nor they it);
//! with it, both ways, IPv4 and IPv6, and the host's link and routes follow the endpoints.
//! Needs root.

mod common;

use std::process::Command;

use common::{ip, link, run, TestLan};

const HOST_V4: &str = "198.51.100.10";
const HOST_V6: &str = "2001:db8:5::10";

/// The docker host holds its own address on the parent, as real hosts do.
fn lan_with_host_address(containers: usize) -> TestLan {
    let lan = TestLan::new(containers);
    for (addr, extra) in [
        (format!("{HOST_V4}/24"), None),
        (format!("{HOST_V6}/64"), Some("nodad")),
    ] {
        let mut args = vec!["-n", &lan.host.name, "addr", "add", &addr, "dev", "eth0"];
        args.extend(extra);
        assert!(ip(&args).status.success());
    }
    lan
}

fn create(lan: &TestLan, extra: &[&str]) {
    let mut args = vec![
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "--aux-address",
        "host=198.51.100.10",
        "--ipv6",
        "--subnet",
        "2001:db8:5::/64",
        "--aux-address",
        "host6=2001:db8:5::10",
        "-o",
        "parent=eth0",
    ];
    args.extend_from_slice(extra);
    args.push("lan");
    lan.ok(&args);
}

fn ping_from(ns: &str, addr: &str) -> bool {
    (0..2).any(|_| {
        run(Command::new("ip").args(["netns", "exec", ns, "ping", "-c1", "-W1", addr]))
            .status
            .success()
    })
}

fn shim(lan: &TestLan) -> Option<serde_json::Value> {
    let net = lan.inspect("lan");
    let id = net["Id"].as_str().unwrap();
    link(&lan.host.name, &format!("ulh{}", &id[..12]))
}

fn shim_address(lan: &TestLan, family: &str) -> String {
    let name = shim(lan).unwrap()["ifname"].as_str().unwrap().to_string();
    let out = ip(&[
        "-j",
        family,
        "-n",
        &lan.host.name,
        "addr",
        "show",
        "dev",
        &name,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["scope"] == "global")
        .map(|a| a["local"].as_str().unwrap().to_string())
        .expect("a global address on the shim")
}

#[test]
fn without_host_access_the_host_and_its_containers_cannot_talk() {
    let lan = lan_with_host_address(1);
    create(&lan, &[]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    assert!(
        !ping_from(lan.c(0), HOST_V4),
        "a macvlan child reaches its parent's address?"
    );
    assert!(!ping_from(&lan.host.name, "198.51.100.2"));
    assert!(shim(&lan).is_none());
}

#[test]
fn with_host_access_both_ways_in_both_families_and_routes_follow_endpoints() {
    let lan = lan_with_host_address(2);
    create(&lan, &["-o", "host_access=true"]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["connect", "lan", lan.c(1)]);
    let ep = |i: usize| {
        let net = lan.inspect("lan");
        let e = &net["Endpoints"][lan.c(i)];
        (
            e["IPv4Address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string(),
            e["IPv6Address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string(),
        )
    };
    let (c0_v4, c0_v6) = ep(0);
    let (shim4, shim6) = (shim_address(&lan, "-4"), shim_address(&lan, "-6"));
    assert_eq!(
        (shim4.as_str(), shim6.as_str()),
        ("198.51.100.2", "2001:db8:5::2"),
        "the pools' first free addresses"
    );
    assert!(
        ping_from(&lan.host.name, &c0_v4),
        "host -> container over IPv4"
    );
    assert!(
        ping_from(&lan.host.name, &c0_v6),
        "host -> container over IPv6"
    );
    assert!(ping_from(lan.c(0), &shim4), "container -> host over IPv4");
    assert!(ping_from(lan.c(1), &shim6), "container -> host over IPv6");

    // A route per endpoint address through the shim; one goes with its endpoint.
    let shim_name = shim(&lan).unwrap()["ifname"].as_str().unwrap().to_string();
    let routes = |family: &str| -> Vec<String> {
        let out = ip(&[
            "-j",
            family,
            "-n",
            &lan.host.name,
            "route",
            "show",
            "dev",
            &shim_name,
        ]);
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut dsts: Vec<String> = v
            .iter()
            .map(|r| r["dst"].as_str().unwrap().to_string())
            .collect();
        dsts.sort();
        dsts
    };
    let (c1_v4, _) = ep(1);
    let mut both = vec![c0_v4.clone(), c1_v4.clone()];
    both.sort();
    assert_eq!(routes("-4"), both);
    lan.ok(&["disconnect", "lan", lan.c(1)]);
    assert_eq!(routes("-4"), std::slice::from_ref(&c0_v4));

    // Off: the shim and its addresses go; on again: back, with routes.
    lan.ok(&["network", "update", "lan", "--host-access", "off"]);
    assert!(shim(&lan).is_none());
    assert!(!ping_from(&lan.host.name, &c0_v4));
    lan.ok(&["network", "update", "lan", "--host-access", "on"]);
    assert!(ping_from(&lan.host.name, &c0_v4));
    lan.ok(&["network", "rm", "--force", "lan"]);
    let leftover = ip(&["-n", &lan.host.name, "-br", "link"]);
    assert!(
        !String::from_utf8_lossy(&leftover.stdout).contains("ulh"),
        "the shim went with the network"
    );
}

#[test]
fn host_access_options_are_checked() {
    let lan = TestLan::new(0);
    let err = lan.fails(
        2,
        &[
            "network",
            "create",
            "--subnet",
            "198.51.100.0/24",
            "-o",
            "parent=eth0",
            "-o",
            "host_access_ip=198.51.100.9",
            "lan",
        ],
    );
    assert!(
        err.contains("host_access_ip needs -o host_access=true"),
        "{err}"
    );
    let err = lan.fails(
        2,
        &[
            "network",
            "create",
            "--subnet",
            "198.51.100.0/24",
            "-o",
            "parent=eth0",
            "-o",
            "host_access=true",
            "-o",
            "host_access_ip=203.0.113.9",
            "lan",
        ],
    );
    assert!(
        err.contains("host_access_ip 203.0.113.9 is not in subnet 198.51.100.0/24"),
        "{err}"
    );
    let err = lan.fails(
        2,
        &[
            "network",
            "create",
            "--ipam-driver",
            "dhcp",
            "-o",
            "parent=eth0",
            "-o",
            "host_access=true",
            "lan",
        ],
    );
    assert!(
        err.contains("host_access on a DHCP network needs -o host_access_ip=IP"),
        "{err}"
    );
}

#[test]
fn restore_brings_a_lost_host_access_link_back_with_its_routes() {
    let lan = lan_with_host_address(1);
    create(&lan, &["-o", "host_access=true"]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    let name = shim(&lan).unwrap()["ifname"].as_str().unwrap().to_string();
    assert!(ip(&["-n", &lan.host.name, "link", "del", &name])
        .status
        .success());
    assert!(!ping_from(&lan.host.name, "198.51.100.3"));
    lan.ok(&["restore"]);
    assert!(shim(&lan).is_some(), "recreated");
    assert!(
        ping_from(&lan.host.name, "198.51.100.3"),
        "with its address and its route to c0"
    );
}
