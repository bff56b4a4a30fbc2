//! The plugins as a runtime calls them: the real binary (under the reference type names via
//! links on CNI_PATH), environment and stdin, in namespaces each test creates. Needs root.

mod common;

use std::process::Command;

use common::{ip, run_with_stdin, with_prev, Fixture, VERSIONS};
use serde_json::{json, Value};

#[test]
fn macvlan_with_host_local_in_every_spec_version() {
    let f = Fixture::new(1);
    let ns = f.netns(0);
    for (round, version) in VERSIONS.iter().enumerate() {
        // host-local is round-robin from last_reserved_ip, like the reference: each round
        // takes the next address.
        let expected = format!("198.51.100.{}", 2 + round);
        let conf = f.macvlan_conf(version, "198.51.100.0/24");
        let (code, result) = f.cni("macvlan", "ADD", &conf, "ctr1", "eth0", Some(&ns));
        assert_eq!(code, 0, "{version}: {result}");
        assert_eq!(result["cniVersion"], *version);
        assert_eq!(result["interfaces"][0]["name"], "eth0");
        assert_eq!(result["interfaces"][0]["sandbox"], ns.display().to_string());
        let ip0 = &result["ips"][0];
        assert_eq!(
            ip0["address"],
            format!("{expected}/24"),
            "{version}: {result}"
        );
        assert_eq!(ip0["gateway"], "198.51.100.1");
        assert_eq!(ip0["interface"], 0);
        // 0.3.x and 0.4.0 carry ips[].version; 1.0.0 removed it.
        assert_eq!(
            ip0.get("version").is_some(),
            version.starts_with("0."),
            "{version}: {result}"
        );

        let link = f.link(0, "eth0").expect("eth0 in the container");
        assert_eq!(link["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(link["linkinfo"]["info_data"]["mode"], "bridge");
        assert_eq!(link["address"], result["interfaces"][0]["mac"]);
        assert_eq!(f.reservations(), std::slice::from_ref(&expected));

        if *version != "0.3.0" && *version != "0.3.1" {
            let (code, out) = f.cni(
                "macvlan",
                "CHECK",
                &with_prev(&conf, &result),
                "ctr1",
                "eth0",
                Some(&ns),
            );
            assert_eq!(code, 0, "{version} CHECK: {out}");
            // Tampering: the address is gone, CHECK must say so.
            ip(&[
                "-n",
                &f.containers[0],
                "addr",
                "del",
                &format!("{expected}/24"),
                "dev",
                "eth0",
            ]);
            let (code, out) = f.cni(
                "macvlan",
                "CHECK",
                &with_prev(&conf, &result),
                "ctr1",
                "eth0",
                Some(&ns),
            );
            assert_eq!(code, 1, "{version}: CHECK missed a removed address");
            assert!(
                out["msg"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{expected}/24 is missing")),
                "{out}"
            );
        } else {
            let (code, out) = f.cni(
                "macvlan",
                "CHECK",
                &with_prev(&conf, &result),
                "ctr1",
                "eth0",
                Some(&ns),
            );
            assert_eq!(
                (code, out["code"].as_u64()),
                (1, Some(1)),
                "CHECK on {version} is an incompatible version"
            );
        }
        for _ in 0..2 {
            let (code, out) = f.cni("macvlan", "DEL", &conf, "ctr1", "eth0", Some(&ns));
            assert_eq!(code, 0, "{version} DEL: {out}");
            assert_eq!(out, Value::Null, "DEL prints nothing");
        }
        assert!(f.link(0, "eth0").is_none());
        assert!(
            f.reservations().is_empty(),
            "{version}: {:?}",
            f.reservations()
        );
    }
}

#[test]
fn del_succeeds_when_the_netns_is_gone_and_releases_the_address() {
    let mut f = Fixture::new(1);
    let ns = f.netns(0);
    let conf = f.macvlan_conf("1.0.0", "198.51.100.0/24");
    assert_eq!(
        f.cni("macvlan", "ADD", &conf, "ctr1", "eth0", Some(&ns)).0,
        0
    );
    let gone = f.containers.remove(0);
    ip(&["netns", "del", &gone]);
    let (code, out) = f.cni("macvlan", "DEL", &conf, "ctr1", "eth0", Some(&ns));
    assert_eq!(code, 0, "{out}");
    let (code, _) = f.cni("macvlan", "DEL", &conf, "ctr1", "eth0", None);
    assert_eq!(code, 0, "DEL without CNI_NETNS");
    assert!(f.reservations().is_empty());
}

#[test]
fn a_failed_add_after_ipam_leaves_no_link_and_no_reservation() {
    let f = Fixture::new(1);
    let ns = f.netns(0);
    let mut conf = f.macvlan_conf("1.0.0", "198.51.100.0/24");
    conf["mtu"] = json!(9000); // above the master's 1500: the kernel refuses the link
    let (code, out) = f.cni("macvlan", "ADD", &conf, "ctr1", "eth0", Some(&ns));
    assert_eq!((code, out["code"].as_u64()), (1, Some(100)), "{out}");
    assert!(f.link(0, "eth0").is_none());
    let out = Command::new("ip")
        .args(["-j", "-n", &f.containers[0], "link", "show"])
        .output()
        .unwrap();
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        links.as_array().unwrap().len(),
        1,
        "only lo may remain: {links}"
    );
    assert!(
        f.reservations().is_empty(),
        "IPAM DEL was not called: {:?}",
        f.reservations()
    );
}

#[test]
fn parallel_adds_get_distinct_addresses() {
    let f = Fixture::new(32);
    let conf = f.macvlan_conf("1.1.0", "198.51.100.0/24");
    let results: Vec<(i32, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (f, conf) = (&f, &conf);
                s.spawn(move || {
                    f.cni(
                        "macvlan",
                        "ADD",
                        conf,
                        &format!("ctr{i}"),
                        "eth0",
                        Some(&f.netns(i)),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addresses: Vec<String> = results
        .iter()
        .map(|(code, out)| {
            assert_eq!(*code, 0, "{out}");
            out["ips"][0]["address"].as_str().unwrap().to_string()
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 32);
    assert_eq!(f.reservations().len(), 32);
}

#[test]
fn gc_releases_what_is_not_listed_and_keeps_everything_without_a_list() {
    let f = Fixture::new(2);
    let add = |i: usize| {
        f.cni(
            "macvlan",
            "ADD",
            &f.macvlan_conf("1.1.0", "198.51.100.0/24"),
            &format!("ctr{i}"),
            "eth0",
            Some(&f.netns(i)),
        )
    };
    assert_eq!(add(0).0, 0);
    assert_eq!(add(1).0, 0);
    let conf = f.macvlan_conf("1.1.0", "198.51.100.0/24");
    let (code, out) = f.cni("macvlan", "GC", &conf, "", "", None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.reservations().len(), 2, "no list: keep everything");
    let mut listed = conf.clone();
    listed["cni.dev/valid-attachments"] = json!([{"containerID": "ctr1", "ifname": "eth0"}]);
    let (code, out) = f.cni("macvlan", "GC", &listed, "", "", None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        f.reservations(),
        ["198.51.100.3"],
        "ctr0's address goes, ctr1's stays"
    );
    let (code, out) = f.cni("macvlan", "STATUS", &conf, "", "", None);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn static_ipam_and_dual_stack_ranges() {
    let f = Fixture::new(2);
    let stat = json!({"cniVersion": "1.0.0", "name": "net1", "type": "macvlan", "master": "eth0",
        "ipam": {"type": "static", "addresses": [{"address": "203.0.113.9/24", "gateway": "203.0.113.1"}],
                 "routes": [{"dst": "0.0.0.0/0"}]}});
    let (code, out) = f.cni("macvlan", "ADD", &stat, "s1", "eth0", Some(&f.netns(0)));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["ips"][0]["address"], "203.0.113.9/24");
    let dual = json!({"cniVersion": "1.0.0", "name": "net1", "type": "macvlan", "master": "eth0",
        "ipam": {"type": "host-local", "dataDir": f.data.path(),
                 "ranges": [[{"subnet": "198.51.100.0/24"}], [{"subnet": "2001:db8:9::/64"}]]}});
    let (code, out) = f.cni("macvlan", "ADD", &dual, "d1", "eth0", Some(&f.netns(1)));
    assert_eq!(code, 0, "{out}");
    let got: Vec<&str> = out["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["198.51.100.2/24", "2001:db8:9::2/64"]);
}

#[test]
fn every_bad_input_class_gets_its_code() {
    let f = Fixture::new(1);
    let ns = f.netns(0);
    let conf = f.macvlan_conf("1.0.0", "198.51.100.0/30");
    let code_of = |out: &(i32, Value)| out.1["code"].as_u64();
    // 4: a required variable is missing.
    assert_eq!(
        code_of(&f.cni("macvlan", "ADD", &conf, "ctr1", "", Some(&ns))),
        Some(4)
    );
    // 6: not JSON.
    let mut cmd = Command::new(f.bin.path().join("macvlan"));
    cmd.env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "c")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", &ns)
        .env("CNI_PATH", f.bin.path());
    assert_eq!(run_with_stdin(cmd, b"{not json").1["code"], 6);
    // 1: an unknown version.
    assert_eq!(
        code_of(&f.cni(
            "macvlan",
            "ADD",
            &f.macvlan_conf("9.9.9", "198.51.100.0/24"),
            "ctr1",
            "eth0",
            Some(&ns)
        )),
        Some(1)
    );
    // 2: an unsupported value, named.
    let mut bad = conf.clone();
    bad["mode"] = json!("sideways");
    let out = f.cni("macvlan", "ADD", &bad, "ctr1", "eth0", Some(&ns));
    assert_eq!(code_of(&out), Some(2));
    assert!(
        out.1["msg"].as_str().unwrap().contains("sideways"),
        "{}",
        out.1
    );
    // 7: an invalid config value, named.
    let mut bad = conf.clone();
    bad["ipam"]["ranges"] = json!([[{"subnet": "198.51.100.0/33"}]]);
    let out = f.cni("macvlan", "ADD", &bad, "ctr1", "eth0", Some(&ns));
    assert_eq!(code_of(&out), Some(7), "{}", out.1);
    // 102: the master does not exist.
    let mut bad = conf.clone();
    bad["master"] = json!("eth9");
    assert_eq!(
        code_of(&f.cni("macvlan", "ADD", &bad, "ctr1", "eth0", Some(&ns))),
        Some(102)
    );
    // 101: a /30 has one address besides the gateway.
    assert_eq!(
        f.cni("macvlan", "ADD", &conf, "ctr1", "eth0", Some(&ns)).0,
        0
    );
    let out = f.cni("macvlan", "ADD", &conf, "ctr2", "eth1", Some(&ns));
    assert_eq!(code_of(&out), Some(101), "{}", out.1);
    // 103: CNI_IFNAME exists.
    assert_eq!(
        code_of(&f.cni("macvlan", "ADD", &conf, "ctr3", "eth0", Some(&ns))),
        Some(103)
    );
    // 1: GC needs 1.1.0.
    assert_eq!(
        code_of(&f.cni("macvlan", "GC", &conf, "", "", None)),
        Some(1)
    );
    // Nothing leaked by the refusals.
    assert_eq!(f.reservations(), ["198.51.100.2"]);
}

#[test]
fn version_lists_the_supported_versions() {
    let f = Fixture::new(0);
    let mut cmd = Command::new(f.bin.path().join("macvlan"));
    cmd.env_clear().env("CNI_COMMAND", "VERSION");
    let (code, out) = run_with_stdin(cmd, br#"{"cniVersion":"1.1.0"}"#);
    assert_eq!(code, 0);
    assert_eq!(out["supportedVersions"], json!(VERSIONS));
}

#[test]
fn macvlan_bcqueuelen_and_mtu_are_applied() {
    let f = Fixture::new(1);
    let mut conf = f.macvlan_conf("1.0.0", "198.51.100.0/24");
    conf["bcqueuelen"] = json!(3000);
    conf["mtu"] = json!(1400);
    let (code, out) = f.cni("macvlan", "ADD", &conf, "ctr1", "eth0", Some(&f.netns(0)));
    assert_eq!(code, 0, "{out}");
    let link = f.link(0, "eth0").unwrap();
    assert_eq!(link["linkinfo"]["info_data"]["bcqueuelen"], 3000, "{link}");
    assert_eq!(link["mtu"], 1400);
}

#[test]
fn link_in_container_uses_a_master_inside_the_container() {
    let f = Fixture::new(1);
    let c = &f.containers[0];
    // A master that lives in the container (an SR-IOV VF moved in, say).
    ip(&[
        "-n", c, "link", "add", "vf0", "type", "veth", "peer", "name", "vf0p",
    ]);
    ip(&["-n", c, "link", "set", "vf0", "up"]);
    ip(&["-n", c, "link", "set", "vf0p", "up"]);
    let mut conf = f.macvlan_conf("1.0.0", "198.51.100.0/24");
    conf["master"] = json!("vf0");
    conf["linkInContainer"] = json!(true);
    let (code, out) = f.cni("macvlan", "ADD", &conf, "ctr1", "eth0", Some(&f.netns(0)));
    assert_eq!(code, 0, "{out}");
    let link = f.link(0, "eth0").expect("eth0");
    assert_eq!(
        link["link"], "vf0",
        "the macvlan hangs off the container's own vf0: {link}"
    );
    // Without linkInContainer, vf0 is looked up on the host, where it does not exist.
    conf["linkInContainer"] = json!(false);
    let (code, out) = f.cni("macvlan", "ADD", &conf, "ctr2", "eth1", Some(&f.netns(0)));
    assert_eq!((code, out["code"].as_u64()), (1, Some(102)), "{out}");
    assert_eq!(
        f.cni("macvlan", "DEL", &conf, "ctr1", "eth0", Some(&f.netns(0)))
            .0,
        0
    );
    assert!(f.link(0, "eth0").is_none());
}

/// Our `vlan` key's refusals, which need no 802.1Q in the kernel (the rest of the key is
/// tested in the kernel VM, tests/vm.rs): each gives its code and leaves nothing behind.
#[test]
fn vlan_key_refusals_give_their_codes_and_create_nothing() {
    let f = Fixture::new(1);
    let ns = f.netns(0);
    let mut conf = f.macvlan_conf("1.0.0", "198.51.100.0/24");
    conf["vlan"] = json!(100);
    // 2: the parent would have to live in the container.
    let mut inside = conf.clone();
    inside["linkInContainer"] = json!(true);
    let (code, out) = f.cni("macvlan", "ADD", &inside, "ctr1", "eth0", Some(&ns));
    assert_eq!((code, out["code"].as_u64()), (1, Some(2)), "{out}");
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains("vlan") && msg.contains("linkInContainer"),
        "{msg}"
    );
    // 103: `eth0.100` exists and is no VLAN (a veth here).
    ip(&[
        "-n", &f.host, "link", "add", "eth0.100", "type", "veth", "peer", "name", "p100",
    ]);
    let (code, out) = f.cni("macvlan", "ADD", &conf, "ctr1", "eth0", Some(&ns));
    assert_eq!((code, out["code"].as_u64()), (1, Some(103)), "{out}");
    assert!(
        out["msg"]
            .as_str()
            .unwrap()
            .contains("interface eth0.100 exists but is not VLAN 100 of eth0"),
        "{out}"
    );
    assert_eq!(
        f.host_link("eth0.100").unwrap()["linkinfo"]["info_kind"],
        "veth",
        "the user's interface is left alone"
    );
    // 102: the master is missing.
    let mut missing = conf.clone();
    missing["master"] = json!("eth9");
    let (code, out) = f.cni("macvlan", "ADD", &missing, "ctr1", "eth0", Some(&ns));
    assert_eq!((code, out["code"].as_u64()), (1, Some(102)), "{out}");
    // 7: a VLAN ID out of 1..=4094.
    let mut bad = conf.clone();
    bad["vlan"] = json!(4095);
    let (code, out) = f.cni("macvlan", "ADD", &bad, "ctr1", "eth0", Some(&ns));
    assert_eq!((code, out["code"].as_u64()), (1, Some(7)), "{out}");
    // Nothing was created: no address, no link, no parent, no record.
    assert!(f.reservations().is_empty(), "{:?}", f.reservations());
    assert!(f.link(0, "eth0").is_none());
    assert!(f.host_link("eth9.100").is_none());
    assert!(f.parent_records().is_empty(), "{:?}", f.parent_records());
    // DEL of what never came to be succeeds.
    let (code, out) = f.cni("macvlan", "DEL", &conf, "ctr1", "eth0", Some(&ns));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn status_reports_a_missing_master_as_50_and_a_master_without_carrier_as_51() {
    let f = Fixture::new(0);
    let conf = f.macvlan_conf("1.1.0", "198.51.100.0/24");
    let status = |conf: &Value| f.cni("macvlan", "STATUS", conf, "", "", None);
    assert_eq!(status(&conf).0, 0, "{}", status(&conf).1);

    // The veth peer goes down: eth0 is still up, but has lost its carrier.
    ip(&["-n", &f.host, "link", "set", "w0", "down"]);
    let (code, out) = status(&conf);
    assert_eq!((code, out["code"].clone()), (1, json!(51)), "{out}");
    assert!(
        out["msg"].as_str().unwrap().contains("eth0 has no carrier"),
        "{out}"
    );
    ip(&["-n", &f.host, "link", "set", "w0", "up"]);
    ip(&["-n", &f.host, "link", "set", "eth0", "down"]);
    let (_, out) = status(&conf);
    assert_eq!(out["code"], 51, "{out}");
    assert!(
        out["msg"].as_str().unwrap().contains("eth0 is down"),
        "{out}"
    );
    ip(&["-n", &f.host, "link", "set", "eth0", "up"]);
    assert_eq!(status(&conf).0, 0, "{}", status(&conf).1);

    let mut gone = conf.clone();
    gone["master"] = json!("eth9");
    let (code, out) = status(&gone);
    assert_eq!((code, out["code"].clone()), (1, json!(50)), "{out}");
    assert!(out["msg"].as_str().unwrap().contains("eth9"), "{out}");
}
