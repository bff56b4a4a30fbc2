//! The `dhcp` IPAM plugin and `dhcp daemon` against a real DHCP server: dnsmasq in a "LAN"
//! netns at the far end of the host's `eth0`, our keeper started as `dhcp daemon` with the
//! reference flags, the plugins called as a runtime calls them. Needs root and dnsmasq.

mod common;

use std::time::{Duration, Instant};

use common::dhcp::{address_of, wait_for, Lan, RANGE4, RANGE6};
use common::{ip, run_with_stdin, with_prev, VERSIONS};
use serde_json::json;

#[test]
fn macvlan_with_dhcp_in_every_spec_version_leases_configures_checks_and_releases() {
    let mut lan = Lan::new(1);
    lan.start_dnsmasq(&[RANGE4, "--dhcp-option=option:domain-search,lan.example"]);
    lan.start_keeper(&[]);
    let ns = lan.f.netns(0);
    for version in VERSIONS {
        let conf = lan.conf(version, json!({}));
        let (code, result) = lan.cni("ADD", &conf, "ctr1", Some(&ns));
        assert_eq!(code, 0, "{version}: {result}\n{}", lan.keeper_log());
        assert_eq!(result["cniVersion"], *version);
        let address = address_of(&result);
        let ip4 = address.split('/').next().unwrap().to_string();
        assert!(
            address.starts_with("198.51.100.1") && address.ends_with("/24"),
            "{address}"
        );
        assert_eq!(result["ips"][0]["gateway"], "198.51.100.1");
        assert_eq!(result["ips"][0]["interface"], 0);
        assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(result["routes"][0]["gw"], "198.51.100.1");
        assert_eq!(result["dns"]["nameservers"], json!(["198.51.100.53"]));
        assert_eq!(result["dns"]["search"], json!(["lan.example"]));
        // The kernel has it, the server has it, and the container reaches the LAN.
        assert_eq!(lan.addresses(0), std::slice::from_ref(&address));
        wait_for(Duration::from_secs(5), || lan.leases().contains(&ip4));
        assert!(
            lan.ping_router_from(0),
            "{version}: no ping from the container"
        );

        if !version.starts_with("0.3") {
            let checked = with_prev(&conf, &result);
            let (code, out) = lan.cni("CHECK", &checked, "ctr1", Some(&ns));
            assert_eq!(code, 0, "{version} CHECK: {out}");
            // A prevResult claiming an address the lease does not hold fails CHECK.
            let mut wrong = result.clone();
            wrong["ips"][0]["address"] = json!("198.51.100.99/24");
            let (code, out) = lan.cni("CHECK", &with_prev(&conf, &wrong), "ctr1", Some(&ns));
            assert_ne!(code, 0, "{version}: CHECK of a wrong address passed");
            assert_eq!(out["code"], 101, "{out}");
        }
        let (code, out) = lan.cni("DEL", &with_prev(&conf, &result), "ctr1", Some(&ns));
        assert_eq!(code, 0, "{version} DEL: {out}");
        assert!(
            lan.f.link(0, "eth0").is_none(),
            "{version}: eth0 left behind"
        );
        wait_for(Duration::from_secs(5), || !lan.leases().contains(&ip4));
        let (code, out) = lan.cni("DEL", &conf, "ctr1", Some(&ns));
        assert_eq!(code, 0, "{version} second DEL: {out}");
    }
}

#[test]
fn the_lease_survives_a_killed_daemon_and_del_with_the_netns_gone_succeeds() {
    let mut lan = Lan::new(1);
    lan.start_dnsmasq(&[RANGE4]);
    lan.start_keeper(&[]);
    let ns = lan.f.netns(0);
    let conf = lan.conf("1.1.0", json!({}));
    let (code, result) = lan.cni("ADD", &conf, "ctr1", Some(&ns));
    assert_eq!(code, 0, "{result}");

    // kill -9 and start again: the lease comes back from the state directory.
    lan.kill_keeper();
    let (code, out) = lan.cni("STATUS", &conf, "", None);
    assert_eq!((code, out["code"].clone()), (1, json!(50)), "{out}");
    lan.start_keeper(&[]);
    let (code, out) = lan.cni("STATUS", &conf, "", None);
    assert_eq!(code, 0, "{out}");
    let (code, out) = lan.cni("CHECK", &with_prev(&conf, &result), "ctr1", Some(&ns));
    assert_eq!(code, 0, "CHECK after the restart: {out}");

    // A DEL while the keeper is down must be retried, not forgotten.
    lan.kill_keeper();
    let (code, out) = lan.cni("DEL", &conf, "ctr1", Some(&ns));
    assert_eq!(out["code"], 11, "{code} {out}");
    lan.start_keeper(&[]);

    // The runtime removed the netns before retrying; DEL succeeds and the lease is gone.
    ip(&["netns", "del", &lan.f.containers[0]]);
    let (code, out) = lan.cni("DEL", &conf, "ctr1", Some(&ns));
    assert_eq!(code, 0, "{out}");
    let (code, out) = lan.f.cni(
        "dhcp",
        "CHECK",
        &with_prev(&conf, &result),
        "ctr1",
        "eth0",
        Some(&ns),
    );
    assert_eq!(
        (code, out["code"].clone()),
        (1, json!(101)),
        "the lease is still kept: {out}"
    );
    ip(&["netns", "add", &lan.f.containers[0]]);
}

#[test]
fn without_a_keeper_or_a_server_add_fails_clearly_and_leaves_nothing() {
    let mut lan = Lan::new(1);
    let ns = lan.f.netns(0);
    let conf = lan.conf("1.0.0", json!({}));
    let (code, out) = lan.cni("ADD", &conf, "ctr1", Some(&ns));
    assert_eq!((code, out["code"].clone()), (1, json!(5)), "{out}");
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains(&lan.socket().display().to_string()) && msg.contains("dhcp daemon"),
        "{msg}"
    );
    assert!(
        lan.f.link(0, "eth0").is_none(),
        "eth0 left behind without a keeper"
    );

    // A keeper but no server: "try again later" after the daemon's -timeout.
    lan.start_keeper(&["-timeout", "1s"]);
    let started = Instant::now();
    let (code, out) = lan.cni("ADD", &conf, "ctr1", Some(&ns));
    let took = started.elapsed();
    assert_eq!((code, out["code"].clone()), (1, json!(11)), "{out}");
    assert!(
        out["msg"].as_str().unwrap().contains("within 1000 ms"),
        "{out}"
    );
    assert!(
        took < Duration::from_secs(5),
        "the 1 s timeout took {took:?}"
    );
    assert!(
        lan.f.link(0, "eth0").is_none(),
        "eth0 left behind after a timeout"
    );
    let check = with_prev(&conf, &json!({"cniVersion": "1.0.0", "ips": []}));
    let (code, out) = lan.cni("CHECK", &check, "ctr1", Some(&ns));
    assert_eq!(
        out["code"], 101,
        "a failed ADD left a lease behind: {code} {out}"
    );
}

#[test]
fn provided_options_reach_the_server_and_a_missing_arg_is_refused() {
    let mut lan = Lan::new(1);
    lan.start_dnsmasq(&[RANGE4]);
    lan.start_keeper(&[]);
    let ns = lan.f.netns(0);
    let conf = lan.conf(
        "1.1.0",
        json!({"provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"},
                           {"option": "dhcp-client-identifier", "value": "pod-web-1"}],
               "request": [{"option": "42"}], "priority": 300}),
    );
    let (code, out) = lan.cni_args(
        "ADD",
        &conf,
        "ctr1",
        Some(&ns),
        "IgnoreUnknown=1;K8S_POD_NAME=web-1",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["routes"][0]["priority"], 300, "{out}");
    let leases = lan.leases();
    // dnsmasq's lease line: expiry MAC IP hostname client-id (hex).
    assert!(leases.contains(" web-1 "), "{leases}");
    let client_id_hex: Vec<String> = b"pod-web-1".iter().map(|b| format!("{b:02x}")).collect();
    assert!(leases.contains(&client_id_hex.join(":")), "{leases}");
    let (code, out) = lan.cni_args(
        "DEL",
        &conf,
        "ctr1",
        Some(&ns),
        "IgnoreUnknown=1;K8S_POD_NAME=web-1",
    );
    assert_eq!(code, 0, "{out}");

    let (code, out) = lan.cni_args("ADD", &conf, "ctr2", Some(&ns), "IgnoreUnknown=1");
    assert_eq!((code, out["code"].clone()), (1, json!(4)), "{out}");
    assert!(
        out["msg"].as_str().unwrap().contains("K8S_POD_NAME"),
        "{out}"
    );
    assert!(
        lan.f.link(0, "eth0").is_none(),
        "eth0 left behind after a refused ADD"
    );
}

#[test]
fn gc_releases_the_leases_of_attachments_the_runtime_no_longer_lists() {
    let mut lan = Lan::new(2);
    lan.start_dnsmasq(&[RANGE4]);
    lan.start_keeper(&[]);
    let conf = lan.conf("1.1.0", json!({}));
    let mut ips = Vec::new();
    for (i, id) in ["keep", "stale"].iter().enumerate() {
        let (code, out) = lan.cni("ADD", &conf, id, Some(&lan.f.netns(i)));
        assert_eq!(code, 0, "{out}");
        ips.push(address_of(&out).split('/').next().unwrap().to_string());
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let (code, out) = run_with_stdin(
        {
            let mut cmd = lan
                .f
                .command(&lan.f.bin.path().join("dhcp"), "GC", "", "", None);
            cmd.env_remove("CNI_CONTAINERID");
            cmd
        },
        gc.to_string().as_bytes(),
    );
    assert_eq!(code, 0, "{out}");
    // dnsmasq rewrites its lease file in place: read until it shows the outcome (a listed
    // lease released by mistake never comes back, and the wait fails).
    wait_for(Duration::from_secs(5), || {
        let leases = lan.leases();
        !leases.contains(&ips[1]) && leases.contains(&ips[0])
    });
    let (code, out) = lan.cni("DEL", &conf, "keep", Some(&lan.f.netns(0)));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn ipam_ipv6_also_leases_with_dhcpv6() {
    let mut lan = Lan::new(1);
    lan.start_dnsmasq(&[RANGE4, RANGE6]);
    lan.start_keeper(&[]);
    let ns = lan.f.netns(0);
    let conf = lan.conf("1.1.0", json!({"ipv6": true}));
    let (code, out) = lan.cni("ADD", &conf, "ctr1", Some(&ns));
    assert_eq!(code, 0, "{out}\n{}", lan.keeper_log());
    let v6 = out["ips"][1]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(v6.starts_with("2001:db8:d::1"), "{out}");
    let v6_addr = v6.split('/').next().unwrap();
    assert!(
        lan.addresses(0).iter().any(|a| a.starts_with(v6_addr)),
        "{:?}",
        lan.addresses(0)
    );
    wait_for(Duration::from_secs(5), || lan.leases().contains(v6_addr));
    let (code, out) = lan.cni("DEL", &conf, "ctr1", Some(&ns));
    assert_eq!(code, 0, "{out}");
    wait_for(Duration::from_secs(5), || !lan.leases().contains(v6_addr));
}

#[test]
fn the_daemon_refuses_bad_flags_and_a_second_keeper_on_the_same_state() {
    let mut lan = Lan::new(0);
    let out = lan.daemon_command(&["-timeout", "ten"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-timeout") && err.contains("\"ten\""), "{err}");
    let out = lan.daemon_command(&["-bogus"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    lan.start_keeper(&[
        "-pidfile",
        &lan.dir.path().join("d.pid").display().to_string(),
    ]);
    let pid = std::fs::read_to_string(lan.dir.path().join("d.pid")).unwrap();
    assert_eq!(pid.trim(), lan.keeper.as_ref().unwrap().id().to_string());
    let mut second = lan.daemon_command(&[]);
    second
        .arg("-socketpath")
        .arg(lan.dir.path().join("second.sock"));
    let out = second.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another lease keeper already runs"), "{err}");
}
