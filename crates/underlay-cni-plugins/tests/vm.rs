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

/// dnsmasq, for the dhcp plugin test in the VM (scripts/setup installs it).
const DNSMASQ: &str = "/usr/sbin/dnsmasq";

#[test]
fn vm_suite() {
    let underlay = common::dhcp::underlay_cli_binary();
    assert!(
        underlay.is_file(),
        "{} is missing: build it (`cargo build -p underlay-cli`)",
        underlay.display()
    );
    run_ignored_tests_in_vm(&[
        Path::new(env!("CARGO_BIN_EXE_underlay-cni")),
        &underlay,
        Path::new(DNSMASQ),
    ]);
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

// ---------------------------------------------------------------------------------------------
// Our `vlan` key on macvlan and ipvlan: the link hangs off `<master>.<vid>`, made when missing
// and then owned (deleted with its last user), used as it is when the user made it.

fn vlan_conf(f: &Fixture, plugin: &str, vid: u16) -> serde_json::Value {
    let mut conf = f.macvlan_conf("1.1.0", "198.51.100.0/24");
    conf["type"] = json!(plugin);
    conf["vlan"] = json!(vid);
    if plugin == "ipvlan" {
        conf["mode"] = json!("l2");
    }
    conf
}

/// The interface index the container's `eth0` hangs off (its `IFLA_LINK`, a host index).
fn parent_index(f: &Fixture, i: usize) -> u64 {
    let link = f.link(i, "eth0").expect("eth0");
    link["link_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("{link}"))
}

fn host_index(f: &Fixture, name: &str) -> u64 {
    f.host_link(name).expect(name)["ifindex"].as_u64().unwrap()
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_key_creates_the_parent_and_deletes_it_with_the_last_del() {
    require_vm();
    let f = Fixture::new(2);
    dummy_master(&f);
    let conf = vlan_conf(&f, "macvlan", 100);
    let (ns0, ns1) = (f.netns(0), f.netns(1));
    let (code, out) = f.cni("macvlan", "ADD", &conf, "c0", "eth0", Some(&ns0));
    assert_eq!(code, 0, "{out}");
    let parent = f.host_link("eth0.100").expect("eth0.100 was created");
    assert_eq!(parent["linkinfo"]["info_kind"], "vlan", "{parent}");
    assert_eq!(parent["linkinfo"]["info_data"]["id"], 100, "{parent}");
    assert_eq!(parent["link"], "eth0", "{parent}");
    assert!(
        parent["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "UP"),
        "{parent}"
    );
    assert_eq!(parent_index(&f, 0), host_index(&f, "eth0.100"));
    assert_eq!(f.parent_records(), ["eth0.100"]);
    let (code, out) = f.cni("macvlan", "ADD", &conf, "c1", "eth0", Some(&ns1));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        parent_index(&f, 1),
        host_index(&f, "eth0.100"),
        "one parent"
    );
    let mut prev = conf.clone();
    prev["prevResult"] = out;
    assert_eq!(
        f.cni("macvlan", "CHECK", &prev, "c1", "eth0", Some(&ns1)).0,
        0
    );
    assert_eq!(
        f.cni("macvlan", "DEL", &conf, "c0", "eth0", Some(&ns0)).0,
        0
    );
    assert!(f.host_link("eth0.100").is_some(), "c1 still uses it");
    assert!(f.link(1, "eth0").is_some());
    assert_eq!(
        f.cni("macvlan", "DEL", &conf, "c1", "eth0", Some(&ns1)).0,
        0
    );
    assert!(f.host_link("eth0.100").is_none(), "gone with its last user");
    assert!(f.parent_records().is_empty(), "{:?}", f.parent_records());
    // DEL twice, and CHECK of a parent that is gone.
    let (code, out) = f.cni("macvlan", "DEL", &conf, "c1", "eth0", Some(&ns1));
    assert_eq!(code, 0, "{out}");
    assert!(f.reservations().is_empty());
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_key_on_ipvlan_with_a_long_master_name() {
    require_vm();
    let f = Fixture::new(1);
    ip(&[
        "-n",
        &f.host,
        "link",
        "add",
        "uplink-long-1",
        "type",
        "dummy",
    ]);
    ip(&["-n", &f.host, "link", "set", "uplink-long-1", "up"]);
    let mut conf = vlan_conf(&f, "ipvlan", 4094);
    conf["master"] = json!("uplink-long-1");
    let ns = f.netns(0);
    let (code, out) = f.cni("ipvlan", "ADD", &conf, "c0", "eth0", Some(&ns));
    assert_eq!(code, 0, "{out}");
    // `uplink-long-1.4094` is 18 bytes: the master part is cut so `.4094` fits in 15.
    let parent = f.host_link("uplink-lon.4094").expect("uplink-lon.4094");
    assert_eq!(parent["linkinfo"]["info_data"]["id"], 4094, "{parent}");
    let link = f.link(0, "eth0").expect("eth0");
    assert_eq!(link["linkinfo"]["info_kind"], "ipvlan", "{link}");
    assert_eq!(parent_index(&f, 0), host_index(&f, "uplink-lon.4094"));
    assert_eq!(f.cni("ipvlan", "DEL", &conf, "c0", "eth0", Some(&ns)).0, 0);
    assert!(f.host_link("uplink-lon.4094").is_none());
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_key_uses_a_parent_the_user_made_and_never_deletes_it() {
    require_vm();
    let f = Fixture::new(1);
    dummy_master(&f);
    ip(&[
        "-n", &f.host, "link", "add", "link", "eth0", "name", "eth0.200", "type", "vlan", "id",
        "200",
    ]);
    ip(&["-n", &f.host, "link", "set", "eth0.200", "up"]);
    let user_index = host_index(&f, "eth0.200");
    let conf = vlan_conf(&f, "macvlan", 200);
    let ns = f.netns(0);
    let (code, out) = f.cni("macvlan", "ADD", &conf, "c0", "eth0", Some(&ns));
    assert_eq!(code, 0, "{out}");
    assert_eq!(parent_index(&f, 0), user_index);
    assert!(f.parent_records().is_empty(), "not ours: no record");
    assert_eq!(f.cni("macvlan", "DEL", &conf, "c0", "eth0", Some(&ns)).0, 0);
    assert_eq!(host_index(&f, "eth0.200"), user_index, "kept");
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    assert_eq!(f.cni("macvlan", "GC", &gc, "", "", None).0, 0);
    assert_eq!(host_index(&f, "eth0.200"), user_index, "kept by GC too");
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_key_refuses_a_sub_interface_of_another_vlan_and_creates_nothing() {
    require_vm();
    let f = Fixture::new(1);
    dummy_master(&f);
    // `eth0.300` exists, but is VLAN 301.
    ip(&[
        "-n", &f.host, "link", "add", "link", "eth0", "name", "eth0.300", "type", "vlan", "id",
        "301",
    ]);
    let conf = vlan_conf(&f, "macvlan", 300);
    let (code, out) = f.cni("macvlan", "ADD", &conf, "c0", "eth0", Some(&f.netns(0)));
    assert_eq!((code, out["code"].as_u64()), (1, Some(103)), "{out}");
    assert!(
        out["msg"]
            .as_str()
            .unwrap()
            .contains("eth0.300 exists but is not VLAN 300 of eth0"),
        "{out}"
    );
    assert!(f.link(0, "eth0").is_none());
    assert!(f.reservations().is_empty());
    assert!(f.parent_records().is_empty());
    assert_eq!(
        f.host_link("eth0.300").unwrap()["linkinfo"]["info_data"]["id"],
        301
    );
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_key_parallel_adds_and_dels_share_one_parent() {
    require_vm();
    const N: usize = 32;
    let f = Fixture::new(N);
    dummy_master(&f);
    let conf = vlan_conf(&f, "macvlan", 42);
    let run_all = |command: &'static str| -> Vec<(i32, serde_json::Value)> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let (f, conf) = (&f, &conf);
                    s.spawn(move || {
                        f.cni(
                            "macvlan",
                            command,
                            conf,
                            &format!("c{i}"),
                            "eth0",
                            Some(&f.netns(i)),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    for (code, out) in run_all("ADD") {
        assert_eq!(code, 0, "{out}");
    }
    let parent = host_index(&f, "eth0.42");
    for i in 0..N {
        assert_eq!(parent_index(&f, i), parent, "container {i}");
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.parents.path().join("eth0.42.json")).unwrap())
            .unwrap();
    assert_eq!(record["users"].as_array().unwrap().len(), N, "{record}");
    for (code, out) in run_all("DEL") {
        assert_eq!(code, 0, "{out}");
    }
    assert!(f.host_link("eth0.42").is_none());
    assert!(f.parent_records().is_empty());
    assert!(f.reservations().is_empty());
}

#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_key_gc_removes_stale_attachments_and_the_parent() {
    require_vm();
    let f = Fixture::new(2);
    dummy_master(&f);
    let conf = vlan_conf(&f, "macvlan", 7);
    for i in 0..2 {
        let (code, out) = f.cni(
            "macvlan",
            "ADD",
            &conf,
            &format!("c{i}"),
            "eth0",
            Some(&f.netns(i)),
        );
        assert_eq!(code, 0, "{out}");
    }
    let gc = |valid: serde_json::Value| {
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] = valid;
        let (code, out) = f.cni("macvlan", "GC", &gc, "", "", None);
        assert_eq!(code, 0, "{out}");
    };
    // c0 went away without a DEL (its runtime lost it): GC keeps c1 and the parent.
    gc(json!([{"containerID": "c1", "ifname": "eth0"}]));
    assert!(f.host_link("eth0.7").is_some());
    assert_eq!(f.reservations(), ["198.51.100.3"]);
    // Nothing is valid any more: the parent goes (and c1's link with it, by the kernel).
    gc(json!([]));
    assert!(f.host_link("eth0.7").is_none());
    assert!(f.parent_records().is_empty());
    assert!(f.reservations().is_empty());
    assert!(f.link(1, "eth0").is_none());
}

/// A crash between recording the parent and creating it, and one right after creating it
/// (before the record knows the link's index), are both reconciled by the next DEL.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vlan_key_crashes_around_the_parent_leave_nothing_for_good() {
    require_vm();
    let f = Fixture::new(1);
    dummy_master(&f);
    let conf = vlan_conf(&f, "macvlan", 9);
    let ns = f.netns(0);
    let crash_add = |point: &str| {
        let mut cmd = f.command(
            &f.bin.path().join("macvlan"),
            "ADD",
            "c0",
            "eth0",
            Some(&ns),
        );
        cmd.env("UNDERLAY_CRASH_AT", point);
        let (code, out) = common::run_with_stdin(cmd, conf.to_string().as_bytes());
        assert_ne!(code, 0, "{point}: the ADD was to die: {out}");
    };
    crash_add("cni-parent-recorded");
    assert_eq!(f.parent_records(), ["eth0.9"], "recorded first");
    assert!(f.host_link("eth0.9").is_none(), "not created yet");
    // The runtime's DEL after the failed ADD drops the record.
    assert_eq!(f.cni("macvlan", "DEL", &conf, "c0", "eth0", Some(&ns)).0, 0);
    assert!(f.parent_records().is_empty());

    crash_add("cni-parent-created");
    assert!(f.host_link("eth0.9").is_some());
    assert_eq!(f.parent_records(), ["eth0.9"]);
    // A later ADD finds and adopts it (its alias proves it ours)...
    let (code, out) = f.cni("macvlan", "ADD", &conf, "c0", "eth0", Some(&ns));
    assert_eq!(code, 0, "{out}");
    // ...and the DEL removes it.
    assert_eq!(f.cni("macvlan", "DEL", &conf, "c0", "eth0", Some(&ns)).0, 0);
    assert!(f.host_link("eth0.9").is_none());
    assert!(f.parent_records().is_empty());
}

/// ipvlan L2 endpoints share their parent's MAC: the dhcp plugin tells them apart by client
/// identifier and asks for broadcast answers, so two containers get two leases and both reach
/// the LAN.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn ipvlan_l2_containers_get_distinct_dhcp_leases() {
    require_vm();
    let mut lan = common::dhcp::Lan::new(2);
    lan.start_dnsmasq(&[common::dhcp::RANGE4]);
    lan.start_keeper(&[]);
    let mut conf = lan.conf("1.1.0", json!({}));
    conf["type"] = json!("ipvlan");
    conf["mode"] = json!("l2");
    let mut addresses = Vec::new();
    for i in 0..2 {
        let ns = lan.f.netns(i);
        let (code, out) = lan.f.cni(
            "ipvlan",
            "ADD",
            &conf,
            &format!("ctr{i}"),
            "eth0",
            Some(&ns),
        );
        assert_eq!(code, 0, "{out}\n{}", lan.keeper_log());
        addresses.push(common::dhcp::address_of(&out));
        assert!(
            lan.ping_router_from(i),
            "container {i} cannot reach the router"
        );
    }
    assert_ne!(
        addresses[0], addresses[1],
        "two ipvlan endpoints got one lease"
    );
    let leases = lan.leases();
    for address in &addresses {
        let ip = address.split('/').next().unwrap();
        assert!(leases.contains(&format!(" {ip} ")), "{ip} not in {leases}");
    }
    for i in 0..2 {
        let ns = lan.f.netns(i);
        let (code, out) = lan.f.cni(
            "ipvlan",
            "DEL",
            &conf,
            &format!("ctr{i}"),
            "eth0",
            Some(&ns),
        );
        assert_eq!(code, 0, "{out}");
    }
    common::dhcp::wait_for(std::time::Duration::from_secs(5), || {
        lan.leases().trim().is_empty()
    });
}
