//! DHCP against real servers: dnsmasq (DHCPv4 and DHCPv6) on a switch built from namespaces,
//! the real `underlay` CLI and lease keeper. Needs root and dnsmasq; fails, never skips,
//! without them.

mod common;

use std::time::{Duration, Instant};

use common::dhcp::{lines_with, wait_for, DhcpLan, ROUTER};
use common::{addresses, link};
use serde_json::Value;

const RANGE4: &str = "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,2m";
const RANGE6: &str = "--dhcp-range=2001:db8:d::100,2001:db8:d::1ff,64,2m";

fn standard_options() -> Vec<&'static str> {
    vec![
        RANGE4,
        RANGE6,
        "--no-ping",
        "--dhcp-option=option:router,198.51.100.1",
        "--dhcp-option=option:dns-server,198.51.100.53",
        "--dhcp-option=option:domain-name,lan.test",
        "--dhcp-option=option:classless-static-route,203.0.113.0/24,198.51.100.1,0.0.0.0/0,198.51.100.1",
        "--dhcp-option=option:mtu,1400",
        "--dhcp-option=option6:dns-server,[2001:db8:d::53]",
    ]
}

/// A LAN with dnsmasq (standard options plus `extra`), the keeper, and a DHCP network `lan`.
fn lan_with(containers: usize, extra: &[&str], network: &[&str]) -> DhcpLan {
    let mut lan = DhcpLan::new(containers);
    let mut args = standard_options();
    args.extend_from_slice(extra);
    lan.start_dnsmasq(&args);
    lan.start_keeper();
    let mut create = vec![
        "network",
        "create",
        "--ipam-driver",
        "dhcp",
        "-o",
        "parent=eth0",
    ];
    create.extend_from_slice(network);
    create.push("lan");
    lan.ok(&create);
    lan
}

fn in_range4(cidr: &str) -> bool {
    let (addr, prefix) = cidr.split_once('/').unwrap();
    let last: u8 = addr.rsplit('.').next().unwrap().parse().unwrap();
    addr.starts_with("198.51.100.") && (100..=150).contains(&last) && prefix == "24"
}

fn in_range6(cidr: &str) -> bool {
    let (addr, prefix) = cidr.split_once('/').unwrap();
    let ip: std::net::Ipv6Addr = addr.parse().unwrap();
    let low = u16::from_be_bytes(ip.octets()[14..].try_into().unwrap());
    addr.starts_with("2001:db8:d::") && (0x100..=0x1ff).contains(&low) && prefix == "128"
}

fn routes(ns: &str, family: &str) -> Vec<Value> {
    let out = common::ip(&["-j", family, "-n", ns, "route", "show"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn v4_of(ns: &str) -> String {
    addresses(ns, "eth0")
        .into_iter()
        .find(|a| a.contains('.'))
        .expect("an IPv4 address")
}

#[test]
fn a_lease_in_range_with_the_servers_routes_dns_and_mtu() {
    let lan = lan_with(1, &[], &["-o", "metric=300"]);
    let start = Instant::now();
    lan.ok(&["connect", "lan", lan.c(0)]);
    let took = start.elapsed();
    let ours = addresses(lan.c(0), "eth0");
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(in_range4(&ours[0]), "{ours:?}");
    assert!(took < Duration::from_secs(3), "connect took {took:?}");

    let table = routes(lan.c(0), "-4");
    let find = |dst: &str| {
        table
            .iter()
            .find(|r| r["dst"] == dst)
            .unwrap_or_else(|| panic!("route {dst} in {table:?}"))
            .clone()
    };
    for dst in ["default", "203.0.113.0/24"] {
        let route = find(dst);
        assert_eq!(route["gateway"], ROUTER, "{route}");
        assert_eq!(
            route["metric"], 300,
            "the network's metric applies: {route}"
        );
    }
    assert_eq!(link(lan.c(0), "eth0").unwrap()["mtu"], 1400, "option 26");

    let net = lan.inspect("lan");
    assert_eq!(net["IPAM"]["Driver"], "dhcp");
    let ep = net["Endpoints"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(ep["IPv4Address"], ours[0].as_str());
    assert_eq!(ep["Lease"]["v4"]["dns"][0], "198.51.100.53");
    assert_eq!(ep["Lease"]["v4"]["domain"], "lan.test");
    assert_eq!(ep["Lease"]["v4"]["server"], ROUTER);
    // The server knows the lease, under the endpoint's MAC and host name.
    let leases = lan.dnsmasq_leases(0);
    let address = ours[0].split('/').next().unwrap();
    let mac = ep["MacAddress"].as_str().unwrap();
    let row = leases
        .lines()
        .find(|l| l.contains(address))
        .unwrap_or_else(|| panic!("{leases}"));
    assert!(row.contains(mac) && row.contains(lan.c(0)), "{row}");
}

#[test]
fn dhcpv6_gives_an_address_from_the_range_and_release_on_detach_reaches_both_servers() {
    let lan = lan_with(1, &[], &["--ipam-opt", "dhcpv6=true"]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    let ours = addresses(lan.c(0), "eth0");
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(in_range4(&ours[0]), "{ours:?}");
    assert!(in_range6(&ours[1]), "{ours:?}");
    let v4 = ours[0].split('/').next().unwrap().to_string();
    let v6 = ours[1].split('/').next().unwrap().to_string();
    let leases = lan.dnsmasq_leases(0);
    assert!(leases.contains(&v4) && leases.contains(&v6), "{leases}");

    lan.ok(&["disconnect", "lan", lan.c(0)]);
    let log = lan.dnsmasq_log(0);
    assert!(
        !lines_with(&log, &format!("DHCPRELEASE(br0) {v4}")).is_empty(),
        "{log}"
    );
    // dnsmasq names a DHCPv6 release by the client's DUID and answers "release received".
    assert!(
        !lines_with(&log, "status  0 release received").is_empty(),
        "{log}"
    );
    wait_for(Duration::from_secs(3), || {
        let leases = lan.dnsmasq_leases(0);
        !leases.contains(&v4) && !leases.contains(&v6)
    });
    assert!(link(lan.c(0), "eth0").is_none());
}

#[test]
fn leases_renew_at_t1_and_survive_a_server_restart() {
    // T1 3 s, T2 20 s: the first renewal fails while the server is down, the retransmission
    // half-way to T2 reaches it again.
    let mut lan = lan_with(
        1,
        &["--dhcp-option=option:T1,3", "--dhcp-option=option:T2,20"],
        &[],
    );
    lan.ok(&["connect", "lan", lan.c(0)]);
    let address = v4_of(lan.c(0));
    let bare = address.split('/').next().unwrap().to_string();
    let acks =
        |lan: &DhcpLan| lines_with(&lan.dnsmasq_log(0), &format!("DHCPACK(br0) {bare}")).len();
    wait_for(Duration::from_secs(8), || acks(&lan) >= 2);

    lan.stop_dnsmasq(0);
    let before = acks(&lan);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        addresses(lan.c(0), "eth0"),
        std::slice::from_ref(&address),
        "kept while the server is away"
    );
    lan.restart_dnsmasq(0);
    wait_for(Duration::from_secs(20), || acks(&lan) > before);
    assert_eq!(
        addresses(lan.c(0), "eth0"),
        [address],
        "the same address after the restart"
    );
}

#[test]
fn a_keeper_killed_and_restarted_keeps_its_leases_and_renews_them() {
    let mut lan = lan_with(
        2,
        &["--dhcp-option=option:T1,3", "--dhcp-option=option:T2,20"],
        &[],
    );
    lan.ok(&["connect", "lan", lan.c(0)]);
    let address = v4_of(lan.c(0));
    let bare = address.split('/').next().unwrap().to_string();
    lan.kill_keeper();
    let acks =
        |lan: &DhcpLan| lines_with(&lan.dnsmasq_log(0), &format!("DHCPACK(br0) {bare}")).len();
    let before = acks(&lan);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(acks(&lan), before, "nobody renews while the keeper is dead");
    assert_eq!(addresses(lan.c(0), "eth0"), std::slice::from_ref(&address));

    lan.start_keeper();
    wait_for(Duration::from_secs(10), || acks(&lan) > before);
    assert!(std::fs::read_to_string(lan.keeper_log())
        .unwrap()
        .contains("lease resumed"));
    assert_eq!(addresses(lan.c(0), "eth0"), [address]);
    // The restarted keeper serves new connects, and releases what it resumed.
    lan.ok(&["connect", "lan", lan.c(1)]);
    assert!(in_range4(&v4_of(lan.c(1))));
    lan.ok(&["disconnect", "lan", lan.c(0)]);
    let released = format!("DHCPRELEASE(br0) {bare}");
    wait_for(Duration::from_secs(3), || {
        lan.dnsmasq_log(0).contains(&released)
    });
}

#[test]
fn without_a_server_connect_fails_clearly_in_time_and_leaves_nothing() {
    let mut lan = DhcpLan::new(1);
    lan.start_keeper();
    lan.ok(&[
        "network",
        "create",
        "--ipam-driver",
        "dhcp",
        "--ipam-opt",
        "dhcp_timeout=2",
        "-o",
        "parent=eth0",
        "lan",
    ]);
    let start = Instant::now();
    let err = lan.fails(1, &["connect", "lan", lan.c(0)]);
    let took = start.elapsed();
    assert!(
        err.contains(&format!(
            "no DHCPv4 server answered on eth0 in netns /run/netns/{} within 2000 ms",
            lan.c(0)
        )),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(link(lan.c(0), "eth0").is_none(), "no link left");
    assert!(lan.inspect("lan")["Endpoints"]
        .as_object()
        .unwrap()
        .is_empty());
    let db = rusqlite::Connection::open(lan.state_dir().join("state.db")).unwrap();
    let leases: i64 = db
        .query_row("SELECT count(*) FROM dhcp_leases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(leases, 0);
    // Without a keeper the error says how to start one.
    lan.kill_keeper();
    let err = lan.fails(1, &["connect", "lan", lan.c(0)]);
    assert!(
        err.contains("no DHCP lease keeper answers at") && err.contains("underlay dhcp-daemon"),
        "{err}"
    );
    assert!(link(lan.c(0), "eth0").is_none());
}

#[test]
fn a_live_address_is_skipped_by_the_pool_refused_statically_and_declined_from_dhcp() {
    let mut lan = DhcpLan::new(3);
    let squatter = lan.add_host(&[
        "198.51.100.64/24",
        "198.51.100.70/24",
        "198.51.100.120/24",
        "2001:db8:d::40/64",
    ]);
    let squatter_mac = link(&squatter, "eth0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    lan.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "--ip-range",
        "198.51.100.64/28",
        "--ipv6",
        "--subnet",
        "2001:db8:d::/64",
        "--ip-range",
        "2001:db8:d::40/124",
        "-o",
        "parent=eth0",
        "pool",
    ]);
    // The pool's first free addresses are live: the next ones are handed out, the live ones marked.
    lan.ok(&["connect", "pool", lan.c(0)]);
    assert_eq!(
        addresses(lan.c(0), "eth0"),
        ["198.51.100.65/24", "2001:db8:d::41/64"]
    );
    let live = lan.inspect("pool")["IPAM"]["LiveOnLan"].clone();
    assert_eq!(
        live["198.51.100.64"]["AnsweredBy"],
        squatter_mac.as_str(),
        "{live}"
    );
    assert_eq!(
        live["2001:db8:d::40"]["AnsweredBy"],
        squatter_mac.as_str(),
        "{live}"
    );
    // A static request for a live address fails, naming who answered, and leaves nothing.
    let err = lan.fails(1, &["connect", "pool", lan.c(1), "--ip", "198.51.100.70"]);
    assert!(
        err.contains(&format!("address 198.51.100.70 is already in use on the LAN: {squatter_mac} answered a probe for it")),
        "{err}"
    );
    assert!(link(lan.c(1), "eth0").is_none());

    // A DHCP offer of a live address is declined.
    let mac = "02:00:5e:00:00:2a";
    lan.start_dnsmasq(&[
        RANGE4,
        "--no-ping",
        &format!("--dhcp-host={mac},198.51.100.120"),
    ]);
    lan.start_keeper();
    lan.ok(&[
        "network",
        "create",
        "--ipam-driver",
        "dhcp",
        "--ipam-opt",
        "dhcp_timeout=4",
        "-o",
        "parent=eth0",
        "dhcp",
    ]);
    let out = lan
        .cmd(&["connect", "dhcp", lan.c(2), "--mac", mac])
        .output()
        .unwrap();
    let log = lan.dnsmasq_log(0);
    assert!(
        !lines_with(&log, "DHCPDECLINE(br0) 198.51.100.120").is_empty(),
        "{log}"
    );
    if out.status.success() {
        assert!(
            !v4_of(lan.c(2)).starts_with("198.51.100.120/"),
            "never the live address"
        );
    } else {
        assert!(
            link(lan.c(2), "eth0").is_none(),
            "a failed connect leaves nothing"
        );
    }
}

#[test]
fn answers_from_servers_outside_the_allow_list_are_ignored() {
    let mut lan = DhcpLan::new(3);
    let rogue = lan.add_host(&["198.51.100.2/24"]);
    lan.start_dnsmasq(&[RANGE4, "--no-ping"]);
    let rogue_server = lan.start_dnsmasq_in(
        &rogue,
        "eth0",
        &[
            "--dhcp-range=198.51.100.200,198.51.100.210,255.255.255.0,2m",
            "--no-ping",
        ],
    );
    lan.start_keeper();
    lan.ok(&[
        "network",
        "create",
        "--ipam-driver",
        "dhcp",
        "--ipam-opt",
        &format!("dhcp_servers={ROUTER}"),
        "-o",
        "parent=eth0",
        "lan",
    ]);
    for i in 0..3 {
        lan.ok(&["connect", "lan", lan.c(i)]);
        assert!(
            in_range4(&v4_of(lan.c(i))),
            "only the allowed server's range"
        );
    }
    let offers = lines_with(&lan.dnsmasq_log(rogue_server), "DHCPOFFER(eth0)");
    assert!(!offers.is_empty(), "the rogue server did answer");
}
