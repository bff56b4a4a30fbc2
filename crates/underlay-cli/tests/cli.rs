//! The real `underlay` binary against the real kernel, in namespaces each test creates.
//! Needs root; fails (never skips) without it.

mod common;

use std::process::Command;

use common::{addresses, default_routes, link, pings, TestLan};

#[test]
fn connect_builds_what_the_kernel_reports_and_rm_removes_it() {
    let lan = TestLan::new(2);
    lan.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "198.51.100.0/24",
        "--gateway",
        "198.51.100.1",
        "--ip-range",
        "198.51.100.128/25",
        "--aux-address",
        "router2=198.51.100.130",
        "--ipv6",
        "--subnet",
        "2001:db8:5::/64",
        "--gateway",
        "2001:db8:5::1",
        "-o",
        "parent=eth0",
        "-o",
        "metric=4294967295",
        "--label",
        "team=net",
        "lan",
    ]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&[
        "connect",
        "lan",
        lan.c(1),
        "--ip",
        "198.51.100.200",
        "--ip6",
        "2001:db8:5::200",
        "--mac",
        "02:00:c6:33:64:c8",
        "--ifname",
        "net1",
    ]);

    let l0 = link(lan.c(0), "eth0").expect("eth0 in c0");
    assert_eq!(l0["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(l0["linkinfo"]["info_data"]["mode"], "bridge");
    assert!(l0["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(
        addresses(lan.c(0), "eth0"),
        ["198.51.100.128/24", "2001:db8:5::2/64"]
    );
    let l1 = link(lan.c(1), "net1").expect("net1 in c1");
    assert_eq!(l1["address"], "02:00:c6:33:64:c8");
    assert_eq!(
        addresses(lan.c(1), "net1"),
        ["198.51.100.200/24", "2001:db8:5::200/64"]
    );
    for family in ["-4", "-6"] {
        let routes = default_routes(lan.c(0), family);
        assert_eq!(routes.len(), 1, "{family}: {routes:?}");
        assert_eq!(routes[0]["metric"], 4294967295u32);
    }
    assert_eq!(default_routes(lan.c(0), "-4")[0]["gateway"], "198.51.100.1");

    let net = lan.inspect("lan");
    assert_eq!(net["Driver"], "macvlan");
    assert_eq!(net["EnableIPv6"], true);
    assert_eq!(net["IPAM"]["Config"][0]["IPRange"], "198.51.100.128/25");
    assert_eq!(
        net["IPAM"]["Config"][0]["AuxiliaryAddresses"]["router2"],
        "198.51.100.130"
    );
    assert_eq!(net["Labels"]["team"], "net");
    let ep = &net["Endpoints"][lan.c(1)];
    assert_eq!(ep["IPv4Address"], "198.51.100.200/24");
    assert_eq!(ep["MacAddress"], "02:00:c6:33:64:c8");
    assert_eq!(ep["Interface"], "net1");
    assert_eq!(ep["Netns"], format!("/run/netns/{}", lan.c(1)));

    assert!(pings(lan.c(0), "198.51.100.200"), "c0 -> c1 over IPv4");
    assert!(pings(lan.c(0), "2001:db8:5::200"), "c0 -> c1 over IPv6");

    lan.ok(&["disconnect", "lan", lan.c(0)]);
    assert!(link(lan.c(0), "eth0").is_none());
    // The freed address is the first one handed out again.
    lan.ok(&["connect", "lan", lan.c(0), "--name", "again"]);
    assert_eq!(addresses(lan.c(0), "eth0")[0], "198.51.100.128/24");

    let refused = lan.fails(1, &["network", "rm", "lan"]);
    assert!(refused.contains("has 2 attached endpoint(s)"), "{refused}");
    lan.ok(&["network", "rm", "--force", "lan"]);
    assert!(link(lan.c(0), "eth0").is_none() && link(lan.c(1), "net1").is_none());
    assert_eq!(lan.ok(&["network", "ls", "--format", "json"]).trim(), "[]");
    lan.assert_consistent();
}

#[test]
fn internal_networks_have_no_default_route() {
    let lan = TestLan::new(1);
    lan.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0",
        "--internal",
        "lan",
    ]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    assert!(default_routes(lan.c(0), "-4").is_empty());
    assert_eq!(addresses(lan.c(0), "eth0"), ["198.51.100.2/24"]);
}

#[test]
fn macvlan_modes_are_what_ip_reports_and_private_isolates() {
    let lan = TestLan::new(2);
    for (i, mode) in ["bridge", "private", "vepa"].iter().enumerate() {
        let name = format!("m{mode}");
        let subnet = format!("10.{}.0.0/24", 200 + i);
        let metric = format!("metric={}", 100 + i);
        lan.ok(&[
            "network",
            "create",
            "--subnet",
            &subnet,
            "-o",
            "parent=eth0",
            "-o",
            &format!("macvlan_mode={mode}"),
            "-o",
            &metric,
            &name,
        ]);
        lan.ok(&["connect", &name, lan.c(0), "--ifname", &format!("e{i}")]);
        let l = link(lan.c(0), &format!("e{i}")).unwrap();
        assert_eq!(l["linkinfo"]["info_data"]["mode"], *mode);
    }
    // private: two endpoints on one parent cannot talk (the peer end never reflects frames).
    lan.ok(&["connect", "mprivate", lan.c(1), "--ifname", "e1"]);
    assert!(
        !pings(lan.c(0), "10.201.0.3"),
        "private mode must isolate endpoints"
    );
    lan.ok(&["connect", "mbridge", lan.c(1), "--ifname", "e0"]);
    assert!(
        pings(lan.c(0), "10.200.0.3"),
        "bridge mode lets endpoints talk"
    );
}

#[test]
fn a_second_default_route_with_the_same_metric_is_a_clear_error() {
    let lan = TestLan::new(1);
    lan.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0",
        "one",
    ]);
    lan.ok(&[
        "network",
        "create",
        "--subnet",
        "203.0.113.0/24",
        "-o",
        "parent=eth0",
        "two",
    ]);
    lan.ok(&["connect", "one", lan.c(0)]);
    let err = lan.fails(1, &["connect", "two", lan.c(0), "--ifname", "eth1"]);
    assert!(
        err.contains(
            "already has an IPv4 default route with metric 0: give network two another metric"
        ),
        "{err}"
    );
    assert!(
        link(lan.c(0), "eth1").is_none(),
        "the failed attach left its link"
    );
    lan.assert_consistent();
}

#[test]
fn passthru_takes_the_parent_for_itself() {
    let lan = TestLan::new(2);
    lan.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0",
        "-o",
        "macvlan_mode=passthru",
        "pt",
    ]);
    lan.ok(&["connect", "pt", lan.c(0)]);
    assert_eq!(
        link(lan.c(0), "eth0").unwrap()["linkinfo"]["info_data"]["mode"],
        "passthru"
    );
    let err = lan.fails(1, &["connect", "pt", lan.c(1)]);
    assert!(
        err.contains("passthru mode and already has an endpoint"),
        "{err}"
    );
    let err = lan.fails(
        1,
        &[
            "network",
            "create",
            "--subnet",
            "203.0.113.0/24",
            "-o",
            "parent=eth0",
            "other",
        ],
    );
    assert!(
        err.contains("passthru mode needs the parent for itself"),
        "{err}"
    );
}

#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let lan = TestLan::new(1);
    lan.create_default();
    lan.ok(&["connect", "lan", lan.c(0)]);
    let before = lan.ok(&["network", "inspect", "lan"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/33",
                "-o",
                "parent=eth0",
                "x",
            ],
            "invalid CIDR \"10.9.0.0/33\"",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "--gateway",
                "10.8.0.1",
                "-o",
                "parent=eth0",
                "x",
            ],
            "gateway 10.8.0.1 is not in any subnet",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "--ip-range",
                "10.8.0.0/25",
                "-o",
                "parent=eth0",
                "x",
            ],
            "ip range 10.8.0.0/25 is not in any subnet",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "2001:db8:9::/64",
                "-o",
                "parent=eth0",
                "x",
            ],
            "needs --ipv6",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "-o",
                "parent=eth0",
                "-o",
                "speed=fast",
                "x",
            ],
            "unknown option \"speed\"",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "-o",
                "parent=eth0",
                "-o",
                "metric=4294967296",
                "x",
            ],
            "invalid metric \"4294967296\"",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "-o",
                "parent=eth0123456789012",
                "x",
            ],
            "16 bytes long",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "-o",
                "parent=et/h0",
                "x",
            ],
            "may not contain '/'",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "-o",
                "parent=lo",
                "x",
            ],
            "parent interface lo is a loopback interface",
        ),
        (
            &["connect", "lan", "c", "--ifname", "abcdefghijklmnop"],
            "16 bytes long",
        ),
        (
            &["connect", "lan", "c", "--ip", "10.0.0.300"],
            "invalid IP address \"10.0.0.300\"",
        ),
        (
            &["connect", "lan", "c", "--mac", "01:00:5e:00:00:01"],
            "multicast",
        ),
        (
            &["network", "create", "--bogus-flag", "x"],
            "unexpected argument",
        ),
    ];
    for (args, needle) in cases {
        let out = lan.underlay(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
    assert_eq!(lan.ok(&["network", "inspect", "lan"]), before);
    assert_eq!(common::macvlan_macs(lan.c(0)).len(), 1);
    lan.assert_consistent();
}

#[test]
fn operational_errors_exit_1_naming_the_value() {
    let lan = TestLan::new(2);
    lan.create_default();
    lan.ok(&["connect", "lan", lan.c(0), "--ip", "198.51.100.7"]);
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "-o",
                "parent=eth7",
                "x",
            ],
            "parent interface eth7 does not exist".into(),
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "-o",
                "parent=eth0",
                "lan",
            ],
            "network lan already exists".into(),
        ),
        (
            vec!["connect", "lan", "ul-no-such-netns"],
            "target netns ul-no-such-netns does not exist".into(),
        ),
        (
            vec!["connect", "nonet", lan.c(1)],
            "network nonet does not exist".into(),
        ),
        (
            vec!["connect", "lan", lan.c(1), "--ip", "198.51.100.7"],
            format!(
                "address 198.51.100.7 is already in use by endpoint {} on network lan",
                lan.c(0)
            ),
        ),
        (
            vec!["connect", "lan", lan.c(1), "--ip", "198.51.100.1"],
            "address 198.51.100.1 is already in use by the gateway".into(),
        ),
        (
            vec!["connect", "lan", lan.c(0)],
            "is already connected to network lan".into(),
        ),
        (
            vec!["disconnect", "lan", lan.c(1)],
            format!("{} is not connected to network lan", lan.c(1)),
        ),
    ];
    for (args, needle) in &cases {
        let err = lan.fails(1, args);
        assert!(
            err.contains(needle.as_str()),
            "{args:?}: expected {needle:?} in {err}"
        );
    }
    assert!(link(lan.c(1), "eth0").is_none());
    lan.assert_consistent();
}

#[test]
fn concurrent_connects_get_distinct_addresses() {
    let lan = TestLan::new(8);
    lan.create_default();
    let children: Vec<_> = (0..8)
        .map(|i| lan.cmd(&["connect", "lan", lan.c(i)]).spawn().unwrap())
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let net = lan.inspect("lan");
    let mut v4: Vec<String> = net["Endpoints"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["IPv4Address"].as_str().unwrap().to_string())
        .collect();
    v4.sort();
    v4.dedup();
    assert_eq!(v4.len(), 8, "{v4:?}");
    lan.assert_consistent();
}

#[test]
fn connect_by_pid_and_disconnect_by_endpoint_name() {
    let lan = TestLan::new(1);
    lan.create_default();
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", lan.c(0), "sleep", "30"])
        .spawn()
        .unwrap();
    // `ip netns exec` execs sleep in the netns; wait until it has switched.
    let pid = sleeper.id().to_string();
    for _ in 0..50 {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if exe.ends_with("sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = lan.ok(&["connect", "lan", &pid, "--name", "web"]);
    assert!(out.starts_with("web eth0 "), "{out}");
    assert!(
        link(lan.c(0), "eth0").is_some(),
        "the PID's netns got the link"
    );
    lan.ok(&["disconnect", "lan", "web"]);
    assert!(link(lan.c(0), "eth0").is_none());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn gc_releases_endpoints_whose_namespace_is_gone() {
    let mut lan = TestLan::new(2);
    lan.create_default();
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["connect", "lan", lan.c(1)]);
    let gone = lan.containers.remove(0).name.clone();
    let out = lan.ok(&["gc"]);
    assert!(
        out.contains(&format!("released endpoint lan/{gone}")),
        "{out}"
    );
    let net = lan.inspect("lan");
    assert_eq!(net["Endpoints"].as_object().unwrap().len(), 1);
    lan.assert_consistent();
}

#[test]
fn help_has_examples_and_docs_are_generated() {
    let bin = env!("CARGO_BIN_EXE_underlay");
    for cmd in [
        &["--help"][..],
        &["network", "create", "--help"],
        &["network", "ls", "--help"],
        &["network", "inspect", "--help"],
        &["network", "rm", "--help"],
        &["connect", "--help"],
        &["disconnect", "--help"],
        &["gc", "--help"],
        &["completions", "--help"],
    ] {
        let out = Command::new(bin).args(cmd).output().unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Examples:"),
            "{cmd:?}"
        );
    }
    let out = Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("_underlay()"));
    let dir = tempfile::TempDir::new().unwrap();
    let out = Command::new(bin)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    for page in [
        "underlay.1",
        "underlay-network-create.1",
        "underlay-connect.1",
    ] {
        assert!(dir.path().join(page).exists(), "{page}");
    }
}

#[test]
fn cni_install_links_the_types_and_keeps_foreign_plugins_unless_forced() {
    let bin = env!("CARGO_BIN_EXE_underlay");
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(dir.path().join("macvlan"), b"the reference plugin").unwrap();
    let install = |force: bool| {
        let mut cmd = Command::new(bin);
        cmd.args(["cni", "install", "--binary", bin, "--dir"])
            .arg(dir.path());
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let refused = install(false);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not underlay's: pass --force"));
    assert_eq!(
        std::fs::read(dir.path().join("macvlan")).unwrap(),
        b"the reference plugin"
    );
    assert!(install(true).status.success());
    for t in ["macvlan", "ipvlan", "vlan", "host-local", "static", "dhcp"] {
        assert_eq!(
            std::fs::read_link(dir.path().join(t)).unwrap(),
            std::path::Path::new("underlay-cni"),
            "{t}"
        );
    }
    assert!(dir.path().join("underlay-cni").is_file());
    assert!(
        install(false).status.success(),
        "re-installing over our own links needs no --force"
    );
}

/// A macvlan cannot go up while another macvlan of its parent has its MAC. When that other
/// link goes away soon (a container's previous link, in a netns the kernel is still tearing
/// down) connect waits for it; when it stays, connect fails naming the parent and leaves
/// nothing behind.
#[test]
fn a_mac_still_held_on_the_parent_is_waited_for_briefly_then_refused() {
    let lan = TestLan::new(1);
    lan.create_default();
    let mac = "02:00:00:00:00:77";
    let squat = |action: &str| {
        let args: Vec<&str> = match action {
            "add" => vec![
                "-n",
                &lan.host.name,
                "link",
                "add",
                "sq0",
                "link",
                "eth0",
                "address",
                mac,
                "up",
                "type",
                "macvlan",
                "mode",
                "bridge",
            ],
            _ => vec!["-n", &lan.host.name, "link", "del", "sq0"],
        };
        let out = common::ip(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    squat("add");
    let started = std::time::Instant::now();
    let err = lan.fails(1, &["connect", "lan", lan.c(0), "--mac", mac]);
    assert!(
        err.contains("another link on parent eth0 has its MAC address"),
        "{err}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "it did not wait"
    );
    assert!(
        common::link(lan.c(0), "eth0").is_none(),
        "a link was left behind"
    );
    assert_eq!(
        lan.inspect("lan")["Endpoints"].as_object().unwrap().len(),
        0
    );

    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(500));
            squat("del");
        });
        lan.ok(&["connect", "lan", lan.c(0), "--mac", mac]);
    });
    let link = common::link(lan.c(0), "eth0").expect("eth0 once the MAC was free");
    assert_eq!(link["address"], mac);
}
