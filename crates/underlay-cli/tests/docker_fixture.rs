//! The Docker fixture itself, against a real private dockerd: isolation from the host's
//! Docker, Docker's own macvlan driver on the test LAN, the toy plugin of underlay-docker
//! (network lifecycle, containers, plugin restart), dockerd restarts with and without
//! live-restore, and a teardown that leaves nothing, also after a failure. Needs root,
//! docker.io and busybox-static, and the toy plugin built (`cargo test --workspace` builds
//! the examples); fails, never skips, without them.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::dhcp::wait_for;
use common::docker::{
    is_static_elf, missing_tools, ns_inode, DockerLan, DockerOptions, Footprint, GATEWAY, GATEWAY6,
    IMAGE, SUBNET, SUBNET6,
};
use common::links;
use serde_json::Value;

/// The toy plugin binary: `UNDERLAY_TOY_PLUGIN`, or the example cargo built next to this
/// test binary (`target/<profile>/examples/toy_plugin`).
fn toy_plugin() -> String {
    if let Some(path) = std::env::var_os("UNDERLAY_TOY_PLUGIN") {
        return path.to_string_lossy().into_owned();
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = profile_dir.join("examples/toy_plugin");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p underlay-docker --example toy_plugin` \
         (`cargo test --workspace` builds it) or set UNDERLAY_TOY_PLUGIN",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

fn start_toy(lan: &mut DockerLan) {
    let toy = toy_plugin();
    lan.start_plugin(
        "toy",
        &[
            "env",
            "RUST_LOG=underlay_docker=debug,toy_plugin=info",
            &toy,
            "/run/docker/plugins/toy.sock",
        ],
    );
}

fn lan_with_toy() -> DockerLan {
    let mut lan = DockerLan::new();
    start_toy(&mut lan);
    lan
}

fn create_toy_network(lan: &DockerLan, name: &str) {
    lan.ok(&[
        "network",
        "create",
        "-d",
        "toy",
        "--ipam-driver",
        "toy",
        "--subnet",
        SUBNET,
        "--gateway",
        GATEWAY,
        "-o",
        "parent=eth0",
        name,
    ]);
}

fn names(entries: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    entries.into_iter().collect()
}

fn dir_names(path: PathBuf) -> BTreeSet<String> {
    names(
        std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned()),
    )
}

fn running(lan: &DockerLan, container: &str) -> bool {
    lan.ok(&["inspect", "-f", "{{.State.Running}}", container])
        .trim()
        == "true"
}

/// The container's eth0 carries exactly what docker reports, and its default route is the
/// gateway. Returns the IPv4 address/len.
fn assert_endpoint_matches(lan: &DockerLan, container: &str, network: &str) -> String {
    let (ipv4, _, mac) = lan.endpoint(container, network);
    assert!(
        ipv4.starts_with("198.51.100.") && ipv4.ends_with("/24"),
        "{ipv4}"
    );
    let inside = lan.container_addresses(container, "eth0");
    assert!(
        inside.contains(&ipv4),
        "{container}: {inside:?} lacks {ipv4}"
    );
    let eth0 = lan.container_link(container, "eth0").expect("eth0");
    assert_eq!(eth0["address"], mac.as_str(), "{container} MAC");
    let defaults = lan.container_routes(container, "-4", &["default"]);
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    assert_eq!(defaults[0]["gateway"], GATEWAY);
    ipv4
}

fn addr(cidr: &str) -> &str {
    cidr.split('/').next().unwrap()
}

#[test]
fn the_daemon_is_private_and_has_the_image() {
    let lan = DockerLan::new();
    let info: Value = serde_json::from_str(&lan.ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(info["Driver"], "vfs");
    assert_eq!(info["CgroupDriver"], "cgroupfs");
    assert_eq!(info["DockerRootDir"], lan.data_root().to_str().unwrap());
    let networks = lan.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        names(networks.lines().map(String::from)),
        names(["host".into(), "none".into()]),
        "no default bridge"
    );

    // Discovery sees only our (empty) plugin directory, on a tmpfs of its own.
    assert!(dir_names(lan.daemon_path("/run/docker/plugins")).is_empty());
    use std::os::unix::fs::MetadataExt;
    let dev = |p: PathBuf| std::fs::metadata(p).unwrap().dev();
    assert_ne!(dev(lan.daemon_path("/run")), dev(PathBuf::from("/run")));
    // sysfs is the docker host netns's; the cgroup tree survived the remount.
    assert_eq!(
        dir_names(lan.daemon_path("/sys/class/net")),
        names(["eth0".into(), "lo".into()])
    );
    assert!(!dir_names(lan.daemon_path("/sys/fs/cgroup")).is_empty());

    // dockerd runs in the docker host netns and the private mount namespace.
    let dockerd = lan.dockerd_pid().unwrap();
    let host_netns = std::fs::metadata(format!("/run/netns/{}", lan.host()))
        .unwrap()
        .ino();
    assert_eq!(ns_inode(dockerd, "net"), Some(host_netns));
    assert_eq!(ns_inode(dockerd, "mnt"), Some(lan.mnt_ns()));
    assert_ne!(
        ns_inode(dockerd, "mnt"),
        ns_inode(std::process::id(), "mnt")
    );

    let image = lan.inspect(IMAGE);
    assert_eq!(image["Config"]["Env"][0], "PATH=/bin:/sbin");
    let out = lan.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "echo $((6*7))",
    ]);
    assert_eq!(out.trim(), "42");
}

#[test]
fn builtin_macvlan_containers_reach_each_other_and_the_router() {
    let lan = DockerLan::new();
    lan.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        SUBNET,
        "--gateway",
        GATEWAY,
        "--ipv6",
        "--subnet",
        SUBNET6,
        "--gateway",
        GATEWAY6,
        "-o",
        "parent=eth0",
        "mv",
    ]);
    for c in ["c1", "c2"] {
        lan.run_sleeper(c, &["--network", "mv"]);
        assert_endpoint_matches(&lan, c, "mv");
        let link = lan.container_link(c, "eth0").unwrap();
        assert_eq!(link["linkinfo"]["info_kind"], "macvlan");
        let (_, ipv6, _) = lan.endpoint(c, "mv");
        assert!(lan.container_addresses(c, "eth0").contains(&ipv6), "{ipv6}");
    }
    let (c2v4, c2v6, _) = lan.endpoint("c2", "mv");
    for target in [GATEWAY, GATEWAY6, addr(&c2v4), addr(&c2v6)] {
        assert!(lan.pings_from("c1", target), "c1 cannot reach {target}");
    }
    lan.ok(&["rm", "-f", "c1", "c2"]);
    lan.ok(&["network", "rm", "mv"]);
}

#[test]
fn toy_network_create_inspect_and_rm() {
    let lan = lan_with_toy();
    assert!(lan.plugin_socket("toy").exists());
    assert!(
        !std::path::Path::new("/run/docker/plugins/toy.sock").exists(),
        "the plugin's socket leaked into the host's plugin directory"
    );
    create_toy_network(&lan, "toynet");
    let net = lan.inspect("toynet");
    assert_eq!(net["Driver"], "toy");
    assert_eq!(net["IPAM"]["Driver"], "toy");
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], SUBNET);
    assert_eq!(net["IPAM"]["Config"][0]["Gateway"], GATEWAY);
    assert_eq!(net["Options"]["parent"], "eth0");
    let err = lan.fails(&[
        "network",
        "create",
        "-d",
        "toy",
        "--ipam-driver",
        "toy",
        "bad",
    ]);
    assert!(err.contains("the toy plugin needs --subnet"), "{err}");
    lan.ok(&["network", "rm", "toynet"]);
    let left = lan.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!left.lines().any(|n| n == "toynet"), "{left}");
    let log = lan.plugin_log();
    for call in [
        "NetworkDriver.CreateNetwork",
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.ReleasePool",
    ] {
        assert!(log.contains(call), "the plugin never saw {call}:\n{log}");
    }
}

/// The toy gives each container one end of a veth pair and leaves the other end, down, in the
/// docker host netns. The test plugs those ends and `eth0` into a bridge there (what a real
/// driver would do for it); then the containers reach each other and the router.
#[test]
fn toy_containers_reach_each_other_and_the_gateway_once_bridged() {
    let lan = lan_with_toy();
    create_toy_network(&lan, "toynet");
    let mut peers = Vec::new();
    for c in ["c1", "c2"] {
        lan.run_sleeper(c, &["--network", "toynet"]);
        assert_endpoint_matches(&lan, c, "toynet");
        let endpoint = lan.inspect(c)["NetworkSettings"]["Networks"]["toynet"]["EndpointID"]
            .as_str()
            .unwrap()
            .to_string();
        peers.push(format!("toy{}p", &endpoint[..8]));
    }
    let host_links = names(
        links(lan.host())
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().into()),
    );
    assert!(
        peers.iter().all(|p| host_links.contains(p)),
        "{peers:?} not in {host_links:?}"
    );
    let unplugged = lan.in_container_netns("c1", &["ping", "-c1", "-W1", GATEWAY]);
    assert!(
        !unplugged.status.success(),
        "the toy's veths are not plugged anywhere yet"
    );

    let host = lan.host().to_string();
    let ip = |args: &[&str]| {
        let out = common::ip(&[&["-n", host.as_str()][..], args].concat());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["link", "add", "tb0", "type", "bridge"]);
    for port in peers.iter().map(String::as_str).chain(["eth0"]) {
        ip(&["link", "set", port, "master", "tb0", "up"]);
    }
    ip(&["link", "set", "tb0", "up"]);
    let (c2, _, _) = lan.endpoint("c2", "toynet");
    for (from, to) in [("c1", GATEWAY), ("c2", GATEWAY), ("c1", addr(&c2))] {
        assert!(lan.pings_from(from, to), "{from} cannot reach {to}");
    }

    lan.ok(&["rm", "-f", "c1", "c2"]);
    let host_links = names(
        links(lan.host())
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().into()),
    );
    assert!(
        peers.iter().all(|p| !host_links.contains(p)),
        "veths left: {host_links:?}"
    );
}

/// kill -9 of the plugin and a new process on the same socket: running containers keep their
/// network, and dockerd's next calls reach the new process (the toy keeps its pools in memory,
/// so the new one no longer knows the network's pool).
#[test]
fn plugin_restart_while_a_container_runs() {
    let mut lan = lan_with_toy();
    create_toy_network(&lan, "toynet");
    lan.run_sleeper("c1", &["--network", "toynet"]);
    let before = assert_endpoint_matches(&lan, "c1", "toynet");
    let old = lan.plugin_pid().unwrap();
    lan.restart_plugin();
    assert_ne!(lan.plugin_pid(), Some(old));
    assert!(running(&lan, "c1"));
    assert_eq!(assert_endpoint_matches(&lan, "c1", "toynet"), before);

    let err = lan.fails(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "toynet",
        IMAGE,
        "sleep",
        "60",
    ]);
    assert!(err.contains("unknown pool"), "{err}");
    let log = lan.plugin_log();
    let after_restart = log.rsplit("plugin toy (re)started").next().unwrap();
    assert!(
        after_restart.contains("IpamDriver.RequestAddress"),
        "{after_restart}"
    );
    lan.ok(&["rm", "-f", "c1"]);
}

/// dockerd stopped cleanly and started again on the same data-root, then killed with -9 and
/// started again: the network persists, and a `--restart always` container comes back each
/// time (a new process, re-attached through the plugin).
#[test]
fn dockerd_restart_brings_a_restart_always_container_back() {
    let mut lan = lan_with_toy();
    create_toy_network(&lan, "toynet");
    lan.run_sleeper("c1", &["--network", "toynet", "--restart", "always"]);
    assert_endpoint_matches(&lan, "c1", "toynet");
    for how in ["stop", "kill -9"] {
        let pid = lan.pid("c1");
        let dockerd = lan.dockerd_pid();
        if how == "stop" {
            lan.stop_dockerd();
        } else {
            lan.kill_dockerd();
        }
        lan.start_dockerd();
        assert_ne!(lan.dockerd_pid(), dockerd);
        wait_for(Duration::from_secs(30), || {
            running(&lan, "c1") && lan.pid("c1") != pid
        });
        assert_endpoint_matches(&lan, "c1", "toynet");
        assert_eq!(lan.inspect("toynet")["Driver"], "toy", "after {how}");
    }
    lan.ok(&["rm", "-f", "c1"]);
}

/// With `--live-restore` the container keeps running through a dockerd restart (and a kill
/// -9): the same process, the same address, and dockerd still manages it.
#[test]
fn live_restore_keeps_a_container_across_dockerd_restarts() {
    let mut lan = DockerLan::with_options(DockerOptions {
        live_restore: true,
        ..Default::default()
    });
    start_toy(&mut lan);
    create_toy_network(&lan, "toynet");
    lan.run_sleeper("c1", &["--network", "toynet"]);
    let ipv4 = assert_endpoint_matches(&lan, "c1", "toynet");
    let pid = lan.pid("c1");
    lan.restart_dockerd();
    lan.kill_dockerd();
    lan.start_dockerd();
    assert!(running(&lan, "c1"));
    assert_eq!(lan.pid("c1"), pid);
    assert_eq!(assert_endpoint_matches(&lan, "c1", "toynet"), ipv4);
    assert_eq!(lan.ok(&["exec", "c1", "echo", "hello"]).trim(), "hello");
    lan.ok(&["rm", "-f", "c1"]);
}

/// Everything the fixture ran and made while a plugin and containers were up.
fn busy_lan() -> (DockerLan, Footprint) {
    let mut lan = lan_with_toy();
    lan.start_keeper();
    create_toy_network(&lan, "toynet");
    lan.run_sleeper("c1", &["--network", "toynet"]);
    lan.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        SUBNET,
        "-o",
        "parent=eth0",
        "mv",
    ]);
    lan.run_sleeper("c2", &["--network", "mv"]);
    let footprint = lan.footprint();
    // holder, dockerd, containerd, toy, keeper, 2 shims, 2 containers at least.
    assert!(footprint.processes.len() >= 9, "{:?}", footprint.processes);
    assert!(footprint.leftovers().len() >= 9);
    (lan, footprint)
}

#[test]
fn dropping_the_fixture_leaves_nothing() {
    let (lan, footprint) = busy_lan();
    let start = Instant::now();
    drop(lan);
    eprintln!("teardown took {:?}", start.elapsed());
    assert_eq!(footprint.leftovers(), Vec::<String>::new());
}

#[test]
fn a_failing_test_still_leaves_nothing() {
    let footprint = Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (_lan, fp) = busy_lan();
        *footprint.lock().unwrap() = Some(fp);
        panic!("a deliberate failure with the fixture up");
    }));
    assert!(result.is_err());
    let footprint = footprint
        .into_inner()
        .unwrap()
        .expect("the fixture came up");
    assert_eq!(footprint.leftovers(), Vec::<String>::new());
}

#[test]
fn missing_tools_are_named_and_the_image_binary_must_be_static() {
    assert_eq!(
        missing_tools(Some("/nonexistent".as_ref())),
        [
            "dockerd",
            "containerd",
            "containerd-shim-runc-v2",
            "runc",
            "docker",
            "nsenter",
            "unshare",
            "tar"
        ]
    );
    assert_eq!(
        missing_tools(std::env::var_os("PATH").as_deref()),
        Vec::<&str>::new()
    );
    assert!(is_static_elf(&std::fs::read("/bin/busybox").unwrap()));
    let sh = std::fs::read(std::fs::canonicalize("/bin/sh").unwrap()).unwrap();
    assert!(!is_static_elf(&sh), "/bin/sh is dynamic on Debian");
    assert!(!is_static_elf(b"#!/bin/sh\n"));
    assert!(!is_static_elf(b"\x7fELF\x02\x01\x01"));
}
