//! Kill -9 at every crash point, and at random moments, then check the invariants: no
//! duplicate or leaked address, no orphan link once recovery ran (docs/state.md).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant, SystemTime};

use common::dhcp::{lines_with, wait_for, DhcpLan};
use common::TestLan;

const ATTACH_POINTS: &[&str] = &[
    "attach-reserved",
    "attach-link-created",
    "attach-renamed",
    "attach-configured",
    "attach-committed",
];
const DETACH_POINTS: &[&str] = &["detach-marked", "detach-unplumbed"];
/// Passed only on networks whose addresses come from DHCP.
const DHCP_ATTACH_POINTS: &[&str] = &[
    "attach-reserved",
    "attach-link-created",
    "attach-renamed",
    "attach-leased",
    "attach-configured",
    "attach-committed",
];

fn killed_at(lan: &TestLan, point: &str, args: &[&str]) {
    let out = lan
        .cmd(args)
        .env("UNDERLAY_CRASH_AT", point)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: expected SIGKILL, got {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn crash_points_cover_every_operation() {
    let mut listed: Vec<&str> = ATTACH_POINTS
        .iter()
        .chain(DETACH_POINTS)
        .chain(&["rm-detached"])
        .chain(DHCP_ATTACH_POINTS)
        .copied()
        .collect();
    listed.sort();
    listed.dedup();
    let mut known = underlay_core_points();
    known.sort();
    assert_eq!(listed, known, "a crash point is not exercised");
}

/// The points the binary knows, from the library (kept in one place).
fn underlay_core_points() -> Vec<&'static str> {
    underlay_core::crash::CRASH_POINTS.to_vec()
}

#[test]
fn attach_killed_at_each_point_is_repaired_by_gc() {
    for point in ATTACH_POINTS {
        let lan = TestLan::new(2);
        lan.create_default();
        killed_at(&lan, point, &["connect", "lan", lan.c(0)]);
        lan.ok(&["gc"]);
        lan.assert_consistent();
        let endpoints = lan.inspect("lan")["Endpoints"].as_object().unwrap().len();
        // Only a crash after the final commit leaves a (complete) endpoint.
        assert_eq!(
            endpoints,
            usize::from(*point == "attach-committed"),
            "{point}"
        );
        // The address is free again (or still held by the committed endpoint).
        lan.ok(&["connect", "lan", lan.c(1)]);
        let expected = if *point == "attach-committed" {
            "198.51.100.3/24"
        } else {
            "198.51.100.2/24"
        };
        assert_eq!(common::addresses(lan.c(1), "eth0")[0], expected, "{point}");
        lan.assert_consistent();
    }
}

#[test]
fn the_next_command_repairs_without_gc() {
    let lan = TestLan::new(2);
    lan.create_default();
    killed_at(&lan, "attach-configured", &["connect", "lan", lan.c(0)]);
    assert_eq!(
        common::macvlan_macs(lan.c(0)).len(),
        1,
        "the crash left a link"
    );
    lan.ok(&["connect", "lan", lan.c(1)]);
    lan.assert_consistent();
    assert_eq!(common::addresses(lan.c(1), "eth0")[0], "198.51.100.2/24");
}

#[test]
fn detach_killed_at_each_point_is_finished() {
    for point in DETACH_POINTS {
        let lan = TestLan::new(1);
        lan.create_default();
        lan.ok(&["connect", "lan", lan.c(0)]);
        killed_at(&lan, point, &["disconnect", "lan", lan.c(0)]);
        lan.ok(&["gc"]);
        lan.assert_consistent();
        assert!(
            lan.inspect("lan")["Endpoints"]
                .as_object()
                .unwrap()
                .is_empty(),
            "{point}"
        );
    }
}

#[test]
fn network_rm_killed_midway_can_be_finished() {
    let lan = TestLan::new(2);
    lan.create_default();
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["connect", "lan", lan.c(1)]);
    killed_at(&lan, "rm-detached", &["network", "rm", "--force", "lan"]);
    lan.assert_consistent();
    lan.ok(&["network", "rm", "lan"]);
    assert_eq!(lan.ok(&["network", "ls", "--format", "json"]).trim(), "[]");
    lan.assert_consistent();
}

/// External kill -9 after a pseudo-random delay, many times, connects and disconnects mixed.
#[test]
fn random_kill_9_never_leaks_or_duplicates() {
    let lan = TestLan::new(4);
    lan.create_default();
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        | 1;
    // Spread the kills over a whole operation: measure one uninterrupted connect+disconnect.
    let started = Instant::now();
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["disconnect", "lan", lan.c(0)]);
    let span_us = (started.elapsed().as_micros() / 2).max(1000) as u64;
    let mut killed = 0;
    for round in 0..60 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let c = lan.c(round % 4);
        let attached = lan.inspect("lan")["Endpoints"]
            .as_object()
            .unwrap()
            .contains_key(c);
        let args = if attached {
            vec!["disconnect", "lan", c]
        } else {
            vec!["connect", "lan", c]
        };
        let mut child = lan.cmd(&args).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(u64::from(seed) % (span_us * 5 / 4)));
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            killed += 1;
        }
        let _ = child.wait();
        // The next command repairs whatever was interrupted.
        lan.ok(&["gc"]);
        lan.assert_consistent();
    }
    eprintln!("killed {killed} of 60 runs mid-flight");
    eprintln!("one operation takes about {span_us} us");
    assert!(
        killed >= 10,
        "only {killed} of 60 runs were interrupted: the test would prove little"
    );
}

/// A DHCP attach killed anywhere: once gc ran, either the endpoint is complete and holds its
/// lease, or there is no endpoint, no link, no kept lease, and the server was told
/// (DHCPRELEASE) if it had granted one. A detach killed anywhere is finished the same way.
#[test]
fn dhcp_attach_and_detach_killed_at_each_point_give_the_lease_back() {
    let mut lan = DhcpLan::new(1);
    lan.start_dnsmasq(&[
        "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,2m",
        "--no-ping",
    ]);
    lan.start_keeper();
    lan.ok(&[
        "network",
        "create",
        "--ipam-driver",
        "dhcp",
        "-o",
        "parent=eth0",
        "lan",
    ]);
    let connect = ["connect", "lan", lan.c(0)];
    let disconnect = ["disconnect", "lan", lan.c(0)];
    for point in DHCP_ATTACH_POINTS {
        let releases = releases_seen(&lan);
        killed(&lan, point, &connect);
        lan.ok(&["gc"]);
        if *point == "attach-committed" {
            assert_eq!(
                dhcp_held(&lan),
                (1, 1),
                "{point}: a complete endpoint and its lease"
            );
            lan.ok(&disconnect);
        }
        assert_nothing_held(&lan, point);
        let leased = !matches!(
            *point,
            "attach-reserved" | "attach-link-created" | "attach-renamed"
        );
        if leased {
            wait_for(Duration::from_secs(3), || releases_seen(&lan) > releases);
        }
    }
    for point in DETACH_POINTS {
        lan.ok(&connect);
        let releases = releases_seen(&lan);
        killed(&lan, point, &disconnect);
        lan.ok(&["gc"]);
        assert_nothing_held(&lan, point);
        wait_for(Duration::from_secs(3), || releases_seen(&lan) > releases);
    }
}

fn killed(lan: &DhcpLan, point: &str, args: &[&str]) {
    let out = lan
        .cmd(args)
        .env("UNDERLAY_CRASH_AT", point)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn releases_seen(lan: &DhcpLan) -> usize {
    lines_with(&lan.dnsmasq_log(0), "DHCPRELEASE").len()
}

/// (endpoints, kept leases)
fn dhcp_held(lan: &DhcpLan) -> (usize, i64) {
    let endpoints = lan.inspect("lan")["Endpoints"].as_object().unwrap().len();
    let kept = rusqlite::Connection::open(lan.state_dir().join("state.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM dhcp_leases", [], |r| r.get(0))
        .unwrap();
    (endpoints, kept)
}

fn assert_nothing_held(lan: &DhcpLan, point: &str) {
    assert_eq!(dhcp_held(lan), (0, 0), "{point}: nothing kept");
    assert!(
        common::link(lan.c(0), "eth0").is_none(),
        "{point}: no link left"
    );
}
