//! Against the reference plugins (Debian's containernetworking-plugins, /usr/lib/cni): the same
//! configuration gives the same result, field by field, and the host-local directory can be
//! shared in both directions (switching a host from the reference to underlay and back keeps
//! every allocation). Needs root and the reference plugins (scripts/setup installs them).

mod common;

use std::path::Path;

use common::Fixture;
use serde_json::{json, Value};

const REFERENCE: &str = "/usr/lib/cni";

fn reference() -> &'static Path {
    let dir = Path::new(REFERENCE);
    assert!(
        dir.join("macvlan").is_file() && dir.join("host-local").is_file(),
        "the reference CNI plugins are missing from {REFERENCE}: apt-get install containernetworking-plugins (scripts/setup does)"
    );
    dir
}

/// The result without what is random per run (the MAC).
fn comparable(result: &Value) -> Value {
    let mut r = result.clone();
    for iface in r["interfaces"].as_array_mut().into_iter().flatten() {
        let mac = iface.as_object_mut().unwrap().remove("mac");
        assert!(
            mac.is_some_and(|m| m.as_str().is_some_and(|m| m.len() == 17)),
            "interface without a MAC: {result}"
        );
    }
    r
}

#[test]
fn the_same_config_gives_the_same_result_in_every_shared_version() {
    let reference = reference();
    // The Debian reference (1.1.1) speaks up to 1.0.0.
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let ours = Fixture::new(1);
        let theirs = Fixture::new(1);
        let conf = |f: &Fixture| {
            json!({"cniVersion": version, "name": "net1", "type": "macvlan", "master": "eth0", "mode": "bridge",
                   "ipam": {"type": "host-local", "dataDir": f.data.path(),
                            "ranges": [[{"subnet": "198.51.100.0/24"}], [{"subnet": "2001:db8:9::/64"}]],
                            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "198.51.100.254"}]}})
        };
        let (code, mine) = ours.cni(
            "macvlan",
            "ADD",
            &conf(&ours),
            "ctr1",
            "eth0",
            Some(&ours.netns(0)),
        );
        assert_eq!(code, 0, "{version} ours: {mine}");
        let (code, ref_result) = theirs.cni_in(
            &reference.join("macvlan"),
            "ADD",
            &conf(&theirs),
            "ctr1",
            "eth0",
            Some(&theirs.netns(0)),
        );
        assert_eq!(code, 0, "{version} reference: {ref_result}");
        let mut mine = comparable(&mine);
        let mut ref_result = comparable(&ref_result);
        // The sandbox is each fixture's own netns path.
        mine["interfaces"][0]["sandbox"] = json!("<netns>");
        ref_result["interfaces"][0]["sandbox"] = json!("<netns>");
        assert_eq!(
            mine, ref_result,
            "{version}: ours vs the reference, field by field"
        );
        // And the kernel state: both give the container a macvlan in bridge mode with the same addresses.
        for f in [&ours, &theirs] {
            let link = f.link(0, "eth0").expect("eth0");
            assert_eq!(link["linkinfo"]["info_data"]["mode"], "bridge");
        }
    }
}

#[test]
fn host_local_reservations_are_shared_with_the_reference_both_ways() {
    let reference = reference();
    let f = Fixture::new(2);
    let conf = json!({"cniVersion": "1.0.0", "name": "net1", "type": "macvlan", "master": "eth0",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.51.100.0/24"}]], "dataDir": f.data.path()}});
    // The reference reserves first; ours must see it and take the next address.
    let (code, a) = f.cni_in(
        &reference.join("macvlan"),
        "ADD",
        &conf,
        "ref-a",
        "eth0",
        Some(&f.netns(0)),
    );
    assert_eq!(code, 0, "{a}");
    let (code, b) = f.cni("macvlan", "ADD", &conf, "our-b", "eth0", Some(&f.netns(1)));
    assert_eq!(code, 0, "{b}");
    assert_eq!(a["ips"][0]["address"], "198.51.100.2/24");
    assert_eq!(
        b["ips"][0]["address"], "198.51.100.3/24",
        "ours skipped the reference's reservation"
    );
    assert_eq!(f.reservations(), ["198.51.100.2", "198.51.100.3"]);
    // Each side releases the other's reservation.
    assert_eq!(
        f.cni_in(
            &reference.join("macvlan"),
            "DEL",
            &conf,
            "our-b",
            "eth0",
            Some(&f.netns(1))
        )
        .0,
        0
    );
    assert_eq!(
        f.cni("macvlan", "DEL", &conf, "ref-a", "eth0", Some(&f.netns(0)))
            .0,
        0
    );
    assert!(f.reservations().is_empty(), "{:?}", f.reservations());
    assert!(f.link(0, "eth0").is_none() && f.link(1, "eth0").is_none());
}

/// Our macvlan delegating, by exec through CNI_PATH, to the reference host-local (the
/// in-process shortcut applies only when CNI_PATH's host-local is our own binary).
#[test]
fn our_macvlan_delegates_to_the_reference_host_local() {
    let reference = reference();
    let f = Fixture::new(1);
    let mixed = tempfile::TempDir::new().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_underlay-cni"),
        mixed.path().join("macvlan"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        reference.join("host-local"),
        mixed.path().join("host-local"),
    )
    .unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "net1", "type": "macvlan", "master": "eth0",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.51.100.0/24"}]], "dataDir": f.data.path()}});
    let plugin = mixed.path().join("macvlan");
    let (code, out) = f.cni_in(&plugin, "ADD", &conf, "ctr1", "eth0", Some(&f.netns(0)));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["ips"][0]["address"], "198.51.100.2/24");
    assert_eq!(
        f.reservations(),
        ["198.51.100.2"],
        "the reference host-local wrote the reservation"
    );
    let (code, out) = f.cni_in(&plugin, "DEL", &conf, "ctr1", "eth0", Some(&f.netns(0)));
    assert_eq!(code, 0, "{out}");
    assert!(f.reservations().is_empty());
}
