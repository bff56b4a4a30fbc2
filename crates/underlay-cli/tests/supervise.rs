//! The supervisor (`underlay daemon`) against the real kernel: a parent that goes down and up,
//! loses its carrier, is deleted and made again, and a container netns that vanishes. Needs
//! root.

mod common;

use std::process::Command;

use common::daemon::Daemon;
use common::{addresses, ip, link, pings, TestLan};
use serde_json::Value;

pub fn host_ip(lan: &TestLan, args: &[&str]) {
    let mut full = vec!["-n", lan.host.name.as_str()];
    full.extend_from_slice(args);
    let out = ip(&full);
    assert!(
        out.status.success(),
        "ip {full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn status(lan: &TestLan) -> Value {
    lan.inspect("lan")["Status"].clone()
}

#[test]
fn a_parent_going_down_and_up_is_reported_and_shown() {
    let lan = TestLan::new(1);
    lan.create_default();
    lan.ok(&["connect", "lan", lan.c(0)]);
    let daemon = Daemon::start(&lan);
    assert_eq!(status(&lan)["State"], "healthy");

    host_ip(&lan, &["link", "set", "eth0", "down"]);
    let event = daemon.expect("parent_down", None);
    assert_eq!(event["network"], "lan");
    assert_eq!(event["detail"], "parent eth0 is down");
    assert_eq!(
        status(&lan),
        serde_json::json!({"State": "degraded", "Reason": "parent eth0 is down"})
    );
    let ls = lan.ok(&["network", "ls"]);
    assert!(
        ls.lines().nth(1).unwrap().trim_end().ends_with("degraded"),
        "{ls}"
    );

    host_ip(&lan, &["link", "set", "eth0", "up"]);
    daemon.expect("parent_up", None);
    assert_eq!(status(&lan)["State"], "healthy");

    // The other end of the wire going away takes the carrier.
    host_ip(&lan, &["link", "set", "wire0", "down"]);
    let event = daemon.expect("parent_down", None);
    assert_eq!(event["detail"], "parent eth0 has no carrier");
    host_ip(&lan, &["link", "set", "wire0", "up"]);
    daemon.expect("parent_up", None);
}

#[test]
fn a_parent_deleted_and_made_again_gets_every_endpoint_back_as_it_was() {
    let lan = TestLan::new(2);
    lan.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "--ipv6",
        "--subnet",
        "2001:db8:5::/64",
        "-o",
        "parent=eth0",
        "-o",
        "host_access=true",
        "lan",
    ]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["connect", "lan", lan.c(1), "--ip", "198.51.100.77"]);
    let before = |i: usize| {
        let l = link(lan.c(i), "eth0").expect("eth0");
        (l["address"].clone(), addresses(lan.c(i), "eth0"))
    };
    let was = [before(0), before(1)];
    let daemon = Daemon::start(&lan);

    // A NIC reset: the parent goes, and its macvlans with it.
    host_ip(&lan, &["link", "del", "eth0"]);
    daemon.expect("parent_gone", None);
    assert!(
        link(lan.c(0), "eth0").is_none(),
        "the kernel took the child links"
    );
    host_ip(
        &lan,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "wire0",
        ],
    );
    host_ip(&lan, &["link", "set", "eth0", "up"]);
    host_ip(&lan, &["link", "set", "wire0", "up"]);
    daemon.expect("parent_back", None);
    for i in 0..2 {
        daemon.expect("endpoint_recreated", Some(lan.c(i)));
    }
    assert_eq!([before(0), before(1)], was, "same MACs and addresses");
    assert!(pings(lan.c(0), "198.51.100.77"), "c0 reaches c1 again");
    let c0 = was[0].1[0].split('/').next().unwrap().to_string();
    assert!(
        pings(&lan.host.name, &c0),
        "and the host access link came back too"
    );
}

#[test]
fn a_vanished_netns_releases_its_addresses() {
    let mut lan = TestLan::new(3);
    lan.create_default();
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["connect", "lan", lan.c(1)]);
    // No periodic look within the test: the namespace's death itself must set off the
    // release, for an endpoint from before the daemon started and for one made after.
    let daemon = Daemon::start_with(&lan, 3600);
    lan.ok(&["connect", "lan", lan.c(2)]);
    // The daemon gives each endpoint's netns an id in the host, which is what makes the kernel
    // announce its death; a new endpoint gets one at the daemon's next look (within 5 s).
    let start = std::time::Instant::now();
    while !netns_ids(&lan).contains(lan.c(2)) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the daemon did not watch {}'s netns: {}",
            lan.c(2),
            netns_ids(&lan)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The one made after first: a release sets off a look that would watch it too.
    for i in [2, 1] {
        let gone = lan.containers.remove(i);
        let name = gone.name.clone();
        drop(gone); // ip netns del
        daemon.expect("endpoint_released", Some(&name));
    }
    let endpoints = lan.inspect("lan")["Endpoints"].as_object().unwrap().len();
    assert_eq!(endpoints, 1);
    lan.assert_consistent();
}

/// `ip netns list-id` in the docker host: the namespaces with an id there, by name.
fn netns_ids(lan: &TestLan) -> String {
    let out = ip(&["-n", lan.host.name.as_str(), "netns", "list-id"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn one_daemon_per_state_directory() {
    let lan = TestLan::new(0);
    let _daemon = Daemon::start(&lan);
    let other = lan.state.path().join("other.sock");
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lan.host.name,
            env!("CARGO_BIN_EXE_underlay"),
        ])
        .arg("--state-dir")
        .arg(lan.state.path())
        .arg("--dhcp-socket")
        .arg(&other)
        .arg("daemon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another lease keeper already runs on state directory"),
        "{err}"
    );
}

#[test]
fn underlay_events_prints_each_event_as_a_json_line() {
    let lan = TestLan::new(1);
    lan.create_default();
    let _daemon = Daemon::start(&lan);
    let socket = lan.state.path().join("daemon.sock");
    let mut reader = lan
        .cmd(&["--dhcp-socket", socket.to_str().unwrap(), "events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = reader.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Keep toggling until the reader (started just now) is subscribed and reports it.
    let mut got = None;
    for _ in 0..20 {
        host_ip(&lan, &["link", "set", "eth0", "down"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        host_ip(&lan, &["link", "set", "eth0", "up"]);
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(300)) {
            got = Some(line);
            break;
        }
    }
    let _ = reader.kill();
    let _ = reader.wait();
    let line = got.expect("an event line");
    let event: Value = serde_json::from_str(&line).expect("JSON");
    assert!(
        event["event"].as_str().unwrap().starts_with("parent_"),
        "{line}"
    );
    assert!(event["time"].as_str().unwrap().ends_with('Z'), "{line}");
}
