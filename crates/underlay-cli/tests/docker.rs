//! underlay's Docker network + IPAM plugin against a real, private dockerd (see
//! common/docker.rs): real `docker` commands, real containers on the test LAN. Needs root,
//! docker.io, busybox-static and dnsmasq; fails, never skips, without them.

mod common;

use std::time::{Duration, Instant};

use common::docker::{DockerLan, GATEWAY, SUBNET};
use serde_json::Value;

fn lan() -> DockerLan {
    let mut lan = DockerLan::new();
    lan.start_underlay_plugin();
    lan
}

fn create(lan: &DockerLan, extra: &[&str], name: &str) -> String {
    let mut args = vec![
        "network",
        "create",
        "-d",
        "underlay",
        "--ipam-driver",
        "underlay",
        "--subnet",
        SUBNET,
        "--gateway",
        GATEWAY,
        "-o",
        "parent=eth0",
    ];
    args.extend_from_slice(extra);
    args.push(name);
    lan.ok(&args).trim().to_string()
}

/// `underlay network ls --format json`, as the CLI sees the plugin's state.
fn underlay_networks(lan: &DockerLan) -> Vec<Value> {
    let out = lan.underlay(&["network", "ls", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn address(lan: &DockerLan, container: &str, network: &str) -> String {
    lan.endpoint(container, network).0
}

#[test]
fn containers_reach_each_other_and_the_gateway_and_the_cli_sees_them() {
    let lan = lan();
    let id = create(&lan, &[], "lan");
    lan.run_sleeper("c1", &["--network", "lan"]);
    lan.run_sleeper("c2", &["--network", "lan", "--ip", "198.51.100.50"]);
    assert_eq!(
        address(&lan, "c1", "lan"),
        "198.51.100.2/24",
        "the first free address"
    );
    assert_eq!(
        address(&lan, "c2", "lan"),
        "198.51.100.50/24",
        "the requested one"
    );
    // What Docker says is what the container has.
    let (_, _, mac) = lan.endpoint("c1", "lan");
    let link = lan.container_link("c1", "eth0").expect("eth0 in c1");
    assert_eq!(link["address"], mac.as_str());
    assert_eq!(link["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(lan.container_addresses("c1", "eth0"), ["198.51.100.2/24"]);
    let default = lan.container_routes("c1", "-4", &["default"]);
    assert_eq!(default[0]["gateway"], GATEWAY);
    assert!(lan.pings_from("c1", "198.51.100.50"));
    assert!(lan.pings_from("c2", GATEWAY));
    // docker network inspect lists both.
    let net: Value = serde_json::from_str(&lan.ok(&["network", "inspect", "lan"])).unwrap();
    let containers = net[0]["Containers"].as_object().expect("Containers");
    let mut shown: Vec<String> = containers
        .values()
        .map(|c| c["IPv4Address"].as_str().unwrap().to_string())
        .collect();
    shown.sort();
    assert_eq!(shown, ["198.51.100.2/24", "198.51.100.50/24"]);
    // One state with the CLI.
    let ours = underlay_networks(&lan);
    let row = ours
        .iter()
        .find(|n| n["Name"] == format!("docker-{}", &id[..12]))
        .expect("the Docker network in underlay network ls");
    assert_eq!(row["Endpoints"], 2);
    assert_eq!(row["Status"], "healthy");
    // Docker's EndpointOperInfo reports the parent's health, read when asked.
    let endpoint_id = lan.inspect("c1")["NetworkSettings"]["Networks"]["lan"]["EndpointID"]
        .as_str()
        .unwrap()
        .to_string();
    let oper_info = || {
        let (status, body) = common::plugin_post(
            &lan.plugin_socket("underlay"),
            "NetworkDriver.EndpointOperInfo",
            &serde_json::json!({"NetworkID": id, "EndpointID": endpoint_id}),
        );
        assert_eq!(status, 200, "{body}");
        body["Value"].clone()
    };
    let info = oper_info();
    assert_eq!(info["underlay.status"], "healthy", "{info}");
    assert_eq!(info["underlay.ipv4"], "198.51.100.2", "{info}");
    let set_parent = |state: &str| {
        let out = common::ip(&["-n", lan.host(), "link", "set", "eth0", state]);
        assert!(out.status.success());
    };
    set_parent("down");
    let info = oper_info();
    set_parent("up");
    assert_eq!(info["underlay.status"], "degraded", "{info}");
    assert_eq!(
        info["underlay.status_reason"], "parent eth0 is down",
        "{info}"
    );
    assert_eq!(oper_info()["underlay.status"], "healthy");

    lan.ok(&["rm", "-f", "c1", "c2"]);
    lan.ok(&["network", "rm", "lan"]);
    assert!(
        underlay_networks(&lan).is_empty(),
        "gone from the state too"
    );
    let host_links = common::links(lan.host());
    assert!(
        !host_links
            .iter()
            .any(|l| l["ifname"].as_str().unwrap().starts_with("ul")),
        "no link left: {host_links:?}"
    );
}

#[test]
fn bad_options_fail_network_create_clearly_and_create_nothing() {
    let lan = lan();
    for (extra, says) in [
        (vec!["-o", "colour=blue"], "unknown option \"colour\""),
        (
            vec!["-o", "metric=4294967296"],
            "invalid metric \"4294967296\"",
        ),
        (vec!["-o", "mode=bridge"], "unknown driver \"bridge\""),
        (
            vec!["-o", "parent=nosuch0"],
            "parent interface nosuch0 does not exist",
        ),
    ] {
        let mut args = vec![
            "network",
            "create",
            "-d",
            "underlay",
            "--ipam-driver",
            "underlay",
            "--subnet",
            SUBNET,
            "-o",
            "parent=eth0",
        ];
        if extra[1].starts_with("parent=") {
            args.truncate(args.len() - 2);
        }
        args.extend_from_slice(&extra);
        args.push("bad");
        let err = lan.fails(&args);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(
            lan.docker(&["network", "inspect", "bad"]).status.code() != Some(0),
            "docker kept no network"
        );
        assert!(
            underlay_networks(&lan).is_empty(),
            "underlay kept no network"
        );
    }
    let err = lan.fails(&[
        "network",
        "create",
        "-d",
        "underlay",
        "--ipam-driver",
        "underlay",
        "-o",
        "parent=eth0",
        "nosubnet",
    ]);
    assert!(
        err.contains("needs --subnet, or --ipam-opt dhcp=true"),
        "{err}"
    );
}

/// The LAN with dnsmasq serving .150-.199, the lease keeper, and the Docker network `dhcp`
/// taking its addresses from them.
fn lan_with_dhcp_network() -> DockerLan {
    let mut lan = lan();
    lan.lan.start_dnsmasq(&[
        "--dhcp-range=198.51.100.150,198.51.100.199,255.255.255.0,2m",
        "--no-ping",
        "--dhcp-option=option:router,198.51.100.1",
    ]);
    lan.start_keeper();
    lan.ok(&[
        "network",
        "create",
        "-d",
        "underlay",
        "--ipam-driver",
        "underlay",
        "--ipam-opt",
        "dhcp=true",
        "-o",
        "parent=eth0",
        "dhcp",
    ]);
    lan
}

#[test]
fn dhcp_networks_take_addresses_from_the_lans_server_and_give_them_back() {
    let lan = lan_with_dhcp_network();
    lan.run_sleeper("d1", &["--network", "dhcp"]);
    let got = address(&lan, "d1", "dhcp");
    let last: u8 = got
        .split('/')
        .next()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((150..=199).contains(&last) && got.ends_with("/24"), "{got}");
    assert_eq!(
        lan.container_addresses("d1", "eth0"),
        std::slice::from_ref(&got)
    );
    assert!(lan.pings_from("d1", GATEWAY));
    // The MAC that got the lease is the container's.
    let bare = got.split('/').next().unwrap().to_string();
    let (_, _, mac) = lan.endpoint("d1", "dhcp");
    let leases = lan.lan.dnsmasq_leases(0);
    assert!(
        leases
            .lines()
            .any(|l| l.contains(&bare) && l.contains(&mac)),
        "{leases}"
    );
    lan.ok(&["rm", "-f", "d1"]);
    let released = format!("DHCPRELEASE(br0) {bare}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lan.lan.dnsmasq_log(0).contains(&released) {
        assert!(
            Instant::now() < deadline,
            "no {released} within 5 s\nkeeper:\n{}\nplugin:\n{}",
            lan.lan.keeper_log_tail(),
            lan.plugin_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lan.ok(&["network", "rm", "dhcp"]);
}

#[test]
fn a_plugin_restart_keeps_networks_endpoints_and_running_containers() {
    let mut lan = lan();
    create(&lan, &[], "lan");
    lan.run_sleeper("c1", &["--network", "lan"]);
    lan.restart_plugin();
    assert!(
        lan.pings_from("c1", GATEWAY),
        "the running container is untouched"
    );
    lan.run_sleeper("c2", &["--network", "lan"]);
    assert_eq!(
        address(&lan, "c2", "lan"),
        "198.51.100.3/24",
        "the restarted plugin knows .2 is taken"
    );
    lan.ok(&["rm", "-f", "c1"]);
    lan.run_sleeper("c3", &["--network", "lan"]);
    assert_eq!(
        address(&lan, "c3", "lan"),
        "198.51.100.2/24",
        "c1's address was released through the new plugin"
    );
    lan.ok(&["rm", "-f", "c2", "c3"]);
    lan.ok(&["network", "rm", "lan"]);
}

#[test]
fn a_dockerd_restart_neither_hangs_nor_loses_addresses() {
    let mut lan = lan();
    create(&lan, &[], "lan");
    lan.run_sleeper(
        "c1",
        &[
            "--network",
            "lan",
            "--restart",
            "always",
            "--ip",
            "198.51.100.9",
        ],
    );
    lan.run_sleeper("c2", &["--network", "lan", "--restart", "always"]);
    let before = address(&lan, "c2", "lan");
    let start = Instant::now();
    lan.restart_dockerd();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "dockerd took {took:?} to come back"
    );
    let running = |c: &str| lan.inspect(c)["State"]["Running"] == true;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(running("c1") && running("c2")) {
        assert!(
            Instant::now() < deadline,
            "the containers did not come back\nplugin log:\n{}\ndockerd log:\n{}",
            lan.plugin_log()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n"),
            lan.dockerd_log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(address(&lan, "c1", "lan"), "198.51.100.9/24");
    assert_eq!(address(&lan, "c2", "lan"), before);
    assert!(lan.pings_from("c1", before.split('/').next().unwrap()));
    let endpoints = underlay_networks(&lan)[0]["Endpoints"].as_u64().unwrap();
    assert_eq!(endpoints, 2, "no endpoint leaked over the restart");
    lan.ok(&["rm", "-f", "c1", "c2"]);
    lan.ok(&["network", "rm", "lan"]);
}

#[test]
fn host_access_through_docker() {
    let lan = lan();
    create(&lan, &["-o", "host_access=true"], "lan");
    lan.run_sleeper("c1", &["--network", "lan"]);
    let c1 = address(&lan, "c1", "lan");
    let c1 = c1.split('/').next().unwrap();
    let out = common::run(std::process::Command::new("ip").args([
        "netns",
        "exec",
        lan.host(),
        "ping",
        "-c1",
        "-W2",
        c1,
    ]));
    assert!(
        out.status.success(),
        "the docker host reaches its container: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    lan.ok(&["rm", "-f", "c1"]);
    lan.ok(&["network", "rm", "lan"]);
}

/// Docker 20.10 tells a plugin neither the container's name nor a lasting MAC: the client
/// identity follows the MAC, which `--mac-address` keeps the same over restarts.
#[test]
fn a_dockerd_restart_keeps_a_dhcp_containers_address() {
    let mut lan = lan_with_dhcp_network();
    // Made through the engine API: a CLI newer than the engine refuses --mac-address with
    // --network ("requires API version 1.44"), and the container's own MacAddress is what
    // Docker 20.10 hands the plugin.
    let body = serde_json::json!({
        "Image": common::docker::IMAGE,
        "Cmd": ["sleep", "86400"],
        "MacAddress": "02:42:c6:33:64:99",
        "StopTimeout": 1,
        "HostConfig": {"NetworkMode": "dhcp", "RestartPolicy": {"Name": "always"}},
    });
    let out = common::run(
        std::process::Command::new("curl")
            .args(["-sf", "--unix-socket"])
            .arg(lan.socket())
            .args([
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
                "http://localhost/v1.41/containers/create?name=d1",
            ]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    lan.ok(&["start", "d1"]);
    let before = address(&lan, "d1", "dhcp");
    lan.kill_dockerd();
    lan.start_dockerd();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lan.inspect("d1")["State"]["Running"] != true {
        assert!(
            Instant::now() < deadline,
            "d1 did not come back:\n{}",
            lan.dockerd_log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        address(&lan, "d1", "dhcp"),
        before,
        "the same lease: the client identity follows the MAC"
    );
    assert_eq!(lan.container_addresses("d1", "eth0"), [before]);
    lan.ok(&["rm", "-f", "d1"]);
    lan.ok(&["network", "rm", "dhcp"]);
}
