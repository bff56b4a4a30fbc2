//! The `ipvlan` and `vlan` plugins need kernel modules this host lacks: these tests run inside
//! the kernel VM (tests/vm/README.md). `vm_suite` boots it and runs the `#[ignore]`d tests of
//! this binary there, with the freshly built `underlay-cni` packed beside it.
//!
//!   cargo test -p underlay-cni-plugins --test vm      # as root

mod common;

use std::path::Path;

use common::{ip, Fixture};
use serde_json::json;
use underlay_testkit::vm::{require_vm, run_ignored_tests_in_vm};

#[test]
fn vm_suite() {
    run_ignored_tests_in_vm(&[Path::new(env!("CARGO_BIN_EXE_underlay-cni"))]);
}

/// The master is a dummy in the VM (no traffic is needed to check the plumbing).
fn dummy_master(f: &Fixture) {
    ip(&["-n", &f.host, "link", "del", "eth0"]);
    ip(&["-n", &f.host, "link", "add", "eth0", "type", "dummy"]);
    ip(&["-n", &f.host, "link", "set", "eth0", "up"]);
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn ipvlan_plugin_in_every_mode() {
    require_vm();
    for mode in ["l2", "l3", "l3s"] {
        let f = Fixture::new(1);
        dummy_master(&f);
        let mut conf = f.macvlan_conf("1.1.0", "198.51.100.0/24");
        conf["type"] = json!("ipvlan");
        conf["mode"] = json!(mode);
        let ns = f.netns(0);
        let (code, out) = f.cni("ipvlan", "ADD", &conf, "ctr1", "eth0", Some(&ns));
        assert_eq!(code, 0, "{mode}: {out}");
        let link = f.link(0, "eth0").expect("eth0");
        assert_eq!(link["linkinfo"]["info_kind"], "ipvlan", "{link}");
        assert_eq!(link["linkinfo"]["info_data"]["mode"], mode, "{link}");
        assert_eq!(out["ips"][0]["address"], "198.51.100.2/24");
        let mut prev = conf.clone();
        prev["prevResult"] = out.clone();
        assert_eq!(
            f.cni("ipvlan", "CHECK", &prev, "ctr1", "eth0", Some(&ns)).0,
            0,
            "{mode} CHECK"
        );
        assert_eq!(
            f.cni("ipvlan", "DEL", &conf, "ctr1", "eth0", Some(&ns)).0,
            0
        );
        assert!(f.link(0, "eth0").is_none());
        assert!(f.reservations().is_empty());
    }
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_plugin_gives_the_container_a_tagged_interface() {
    require_vm();
    let f = Fixture::new(1);
    dummy_master(&f);
    let conf = json!({"cniVersion": "1.0.0", "name": "net1", "type": "vlan", "master": "eth0", "vlanId": 42, "mtu": 1400,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "203.0.113.0/24"}]], "dataDir": f.data.path()}});
    let ns = f.netns(0);
    let (code, out) = f.cni("vlan", "ADD", &conf, "ctr1", "eth0", Some(&ns));
    assert_eq!(code, 0, "{out}");
    let link = f.link(0, "eth0").expect("eth0");
    assert_eq!(link["linkinfo"]["info_kind"], "vlan", "{link}");
    assert_eq!(link["linkinfo"]["info_data"]["id"], 42, "{link}");
    assert_eq!(link["mtu"], 1400, "{link}");
    assert_eq!(out["ips"][0]["address"], "203.0.113.2/24");
    assert_eq!(f.cni("vlan", "DEL", &conf, "ctr1", "eth0", Some(&ns)).0, 0);
    assert!(f.link(0, "eth0").is_none());
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn ipvlan_on_a_master_serving_macvlan_is_a_clear_error_and_leaks_nothing() {
    require_vm();
    let f = Fixture::new(2);
    dummy_master(&f);
    let mac = f.macvlan_conf("1.0.0", "198.51.100.0/24");
    assert_eq!(
        f.cni("macvlan", "ADD", &mac, "m1", "eth0", Some(&f.netns(0)))
            .0,
        0
    );
    let mut ipv = f.macvlan_conf("1.0.0", "198.51.100.0/24");
    ipv["type"] = json!("ipvlan");
    ipv["mode"] = json!("l2");
    let (code, out) = f.cni("ipvlan", "ADD", &ipv, "i1", "eth0", Some(&f.netns(1)));
    assert_eq!(code, 1, "{out}");
    assert!(
        out["msg"]
            .as_str()
            .unwrap()
            .contains("already carries links of another kind"),
        "{out}"
    );
    assert!(f.link(1, "eth0").is_none());
    assert_eq!(
        f.reservations(),
        ["198.51.100.2"],
        "the failed ADD released its address"
    );
}
