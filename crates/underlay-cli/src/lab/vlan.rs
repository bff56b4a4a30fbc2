//! The VLAN-trunk scenario: the host's `eth0` carries 802.1Q-tagged VLANs 10 and 20 through the
//! switch to the router's `eth0.10` and `eth0.20`. Networks on VLAN parents are created with the
//! real CLI, which makes (and later deletes) the host's sub-interfaces; a sub-interface the user
//! made is left alone; `underlay restore` brings back one deleted by hand.
//!
//! The lab's untagged network is gone by the time this runs; the containers still join the VLAN
//! networks as `eth1`, each network with its own default-route metric, as a container on several
//! networks would.

use anyhow::Context;
use serde_json::Value;

use super::checks::Step;
use super::scenario::{ping, ping_args, Lab};
use super::sys::{self, ip};
use super::topology::{self, C1, C2, C3, HOST, PARENT};

const V10: &str = "v10";
const V20: &str = "v20";
const V30: &str = "v30";
/// The interface name the containers get on the VLAN networks.
const IFNAME: &str = "eth1";
const GATEWAY10: &str = "192.168.10.1";
const GATEWAY20: &str = "192.168.20.1";
const C1_V10: &str = "192.168.10.2";
const C2_V10: &str = "192.168.10.3";
const C3_V20: &str = "192.168.20.2";
const METRIC10: &str = "110";
const METRIC20: &str = "120";

pub const CHECKS: [Step<Lab>; 13] = [
    Step {
        provides: "v10",
        title: "create v10 (-o parent=eth0.10) makes VLAN 10 eth0.10",
        needs: &[],
        run: create_v10,
    },
    Step {
        provides: "v20",
        title: "create v20 (-o parent=eth0 -o vlan=20) makes eth0.20",
        needs: &[],
        run: create_v20,
    },
    Step {
        provides: "c1 on v10",
        title: "connect c1 to v10 -> eth1 192.168.10.2, metric 110",
        needs: &["v10"],
        run: connect_c1_v10,
    },
    Step {
        provides: "c2 on v10",
        title: "connect c2 to v10 -> eth1 192.168.10.3",
        needs: &["v10"],
        run: connect_c2_v10,
    },
    Step {
        provides: "c3 on v20",
        title: "connect c3 to v20 -> eth1 192.168.20.2, metric 120",
        needs: &["v20"],
        run: connect_c3_v20,
    },
    Step {
        provides: "c1-c2 vlan 10",
        title: "c1 pings c2 over VLAN 10",
        needs: &["c1 on v10", "c2 on v10"],
        run: c1_pings_c2,
    },
    Step {
        provides: "c1-gw10",
        title: "c1 pings the VLAN 10 gateway 192.168.10.1",
        needs: &["c1 on v10"],
        run: c1_pings_gateway10,
    },
    Step {
        provides: "c3-gw20",
        title: "c3 pings the VLAN 20 gateway 192.168.20.1",
        needs: &["c3 on v20"],
        run: c3_pings_gateway20,
    },
    Step {
        provides: "vlans isolated",
        title: "c1 (VLAN 10) cannot reach c3 (VLAN 20), even on-link",
        needs: &["c1 on v10", "c3-gw20"],
        run: c1_cannot_reach_c3,
    },
    Step {
        provides: "user vlan kept",
        title: "user-made eth0.30 survives network rm --force v30",
        needs: &[],
        run: user_made_parent_kept,
    },
    Step {
        provides: "restored",
        title: "eth0.10 deleted by hand: restore rebuilds it, c1's, c2's",
        needs: &["c1 on v10", "c2 on v10", "c3 on v20"],
        run: restore_recreates_parent,
    },
    Step {
        provides: "reconnected",
        title: "c1 pings c2 again, with no reconnect",
        needs: &["restored"],
        run: ping_after_restore,
    },
    Step {
        provides: "owned vlans deleted",
        title: "network rm --force v10 v20 deletes eth0.10, eth0.20",
        needs: &["v10", "v20"],
        run: remove_deletes_owned_parents,
    },
];

// --- networks and endpoints ---------------------------------------------------------------

fn create_v10(lab: &mut Lab) -> anyhow::Result<()> {
    create_vlan_network(
        lab,
        V10,
        "192.168.10.0/24",
        GATEWAY10,
        METRIC10,
        &["parent=eth0.10"],
    )?;
    expect_vlan(HOST, "eth0.10", 10)
}

fn create_v20(lab: &mut Lab) -> anyhow::Result<()> {
    create_vlan_network(
        lab,
        V20,
        "192.168.20.0/24",
        GATEWAY20,
        METRIC20,
        &["parent=eth0", "vlan=20"],
    )?;
    expect_vlan(HOST, "eth0.20", 20)
}

fn create_vlan_network(
    lab: &Lab,
    name: &str,
    subnet: &str,
    gateway: &str,
    metric: &str,
    options: &[&str],
) -> anyhow::Result<()> {
    let metric = format!("metric={metric}");
    let mut args = vec![
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        subnet,
        "--gateway",
        gateway,
    ];
    for option in options.iter().copied().chain([metric.as_str()]) {
        args.extend(["-o", option]);
    }
    args.push(name);
    let id = lab.underlay.ok(&args)?;
    anyhow::ensure!(!id.trim().is_empty(), "network create printed no id");
    Ok(())
}

fn connect_c1_v10(lab: &mut Lab) -> anyhow::Result<()> {
    connect_expecting(lab, V10, C1, C1_V10)?;
    expect_default_route(C1, GATEWAY10, METRIC10)
}

fn connect_c2_v10(lab: &mut Lab) -> anyhow::Result<()> {
    connect_expecting(lab, V10, C2, C2_V10)
}

fn connect_c3_v20(lab: &mut Lab) -> anyhow::Result<()> {
    connect_expecting(lab, V20, C3, C3_V20)?;
    expect_default_route(C3, GATEWAY20, METRIC20)
}

/// Connects `ns` to `network` as `eth1` and checks inspect shows the expected address and the
/// link is there.
fn connect_expecting(lab: &Lab, network: &str, ns: &str, ipv4: &str) -> anyhow::Result<()> {
    lab.underlay
        .ok(&["connect", network, ns, "--ifname", IFNAME])?;
    let ep = lab.underlay.endpoint(network, ns)?;
    let want = format!("{ipv4}/24");
    anyhow::ensure!(
        ep.ipv4 == want,
        "inspect shows {ns} on {network} at {}, expected {want}",
        ep.ipv4
    );
    anyhow::ensure!(
        topology::has_link(ns, IFNAME)?,
        "no {IFNAME} in {ns} after connect"
    );
    Ok(())
}

/// A default route in `ns` via `gateway` on eth1 with `metric`.
fn expect_default_route(ns: &str, gateway: &str, metric: &str) -> anyhow::Result<()> {
    let routes = ip(&["-n", ns, "-4", "route", "show", "default"])?;
    let found = routes.lines().any(|route| {
        let words: Vec<&str> = route.split_whitespace().collect();
        let has = |key: &str, value: &str| words.windows(2).any(|w| w == [key, value]);
        has("via", gateway) && has("dev", IFNAME) && has("metric", metric)
    });
    anyhow::ensure!(
        found,
        "`ip -n {ns} -4 route show default` is {:?}, expected one via {gateway} dev {IFNAME} \
         metric {metric}",
        routes.trim()
    );
    Ok(())
}

// --- reachability -------------------------------------------------------------------------

fn c1_pings_c2(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, C2_V10)
}

/// 192.168.10.1 exists only on the router's eth0.10, so a reply proves the frames crossed the
/// switch tagged with VLAN 10.
fn c1_pings_gateway10(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, GATEWAY10)
}

/// The positive control of the isolation check: VLAN 20 itself works.
fn c3_pings_gateway20(_: &mut Lab) -> anyhow::Result<()> {
    ping(C3, GATEWAY20)
}

/// Passes when the ping FAILS, at layer 2: c1 is told c3's address is on-link on its eth1
/// (a /32 route, more specific than the default route, so no router is involved whatever it
/// forwards), so it ARPs for 192.168.20.2 on VLAN 10. c3 sits on VLAN 20 and never sees the
/// request, so the ping fails and c1's neighbour entry never gets a MAC.
fn c1_cannot_reach_c3(_: &mut Lab) -> anyhow::Result<()> {
    let target = format!("{C3_V20}/32");
    ip(&["-n", C1, "route", "add", &target, "dev", IFNAME])?;
    let outcome = (|| {
        let ran = sys::run("ip", &ping_args(C1, C3_V20))?;
        anyhow::ensure!(
            !ran.succeeded(),
            "`{}` succeeded, but VLAN 10 and VLAN 20 should be isolated",
            ran.cmdline
        );
        // ping exits 1 for "no reply"; anything else means it did not run.
        ran.expect_exit(1)?;
        let neigh = ip(&["-n", C1, "neigh", "show", C3_V20, "dev", IFNAME])?;
        anyhow::ensure!(
            !neigh.contains("lladdr"),
            "c1 resolved c3's MAC across VLANs: `ip -n {C1} neigh show {C3_V20}` is {:?}",
            neigh.trim()
        );
        Ok(())
    })();
    ip(&["-n", C1, "route", "del", &target, "dev", IFNAME])?;
    outcome
}

// --- parent ownership ---------------------------------------------------------------------

/// The user makes eth0.30 with `ip`; a network on it (with an endpoint, removed by `--force`)
/// must leave the very same link behind (same ifindex).
fn user_made_parent_kept(lab: &mut Lab) -> anyhow::Result<()> {
    let name = "eth0.30";
    ip(&[
        "-n", HOST, "link", "add", "link", PARENT, "name", name, "type", "vlan", "id", "30",
    ])?;
    ip(&["-n", HOST, "link", "set", name, "up"])?;
    let outcome = (|| {
        let before = expect_vlan_link(HOST, name, 30)?;
        lab.underlay.ok(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "192.168.30.0/24",
            "--internal",
            "-o",
            "parent=eth0.30",
            V30,
        ])?;
        lab.underlay.ok(&["connect", V30, C2, "--ifname", "eth2"])?;
        anyhow::ensure!(
            topology::has_link(C2, "eth2")?,
            "no eth2 in {C2} after connect"
        );
        lab.underlay.ok(&["network", "rm", "--force", V30])?;
        anyhow::ensure!(
            !topology::has_link(C2, "eth2")?,
            "eth2 is still in {C2} after network rm --force {V30}"
        );
        let after = vlan_link(HOST, name)?.with_context(|| {
            format!("network rm {V30} deleted {name}, which the user made, not underlay")
        })?;
        anyhow::ensure!(
            after.index == before.index,
            "{name} was replaced (ifindex {} -> {})",
            before.index,
            after.index
        );
        Ok(())
    })();
    // The user's own cleanup; best effort when the check already failed.
    let deleted = ip(&["-n", HOST, "link", "delete", name]);
    outcome?;
    deleted.map(drop)
}

/// A NIC reset, in small: the owned eth0.10 disappears (and with it the macvlans of c1 and
/// c2, which die with their parent). `restore` recreates eth0.10 from its trunk, up, and makes
/// the two endpoints' links again in their namespaces, which are still there, with the same
/// MAC and addresses; c3 on VLAN 20 is untouched.
fn restore_recreates_parent(lab: &mut Lab) -> anyhow::Result<()> {
    let before = [
        lab.underlay.endpoint(V10, C1)?,
        lab.underlay.endpoint(V10, C2)?,
    ];
    ip(&["-n", HOST, "link", "delete", "eth0.10"])?;
    for ns in [C1, C2] {
        anyhow::ensure!(
            !topology::has_link(ns, IFNAME)?,
            "{IFNAME} in {ns} survived the deletion of its parent eth0.10"
        );
    }
    let out = lab.underlay.ok(&["restore"])?;
    let expected = [
        format!("recreated parent eth0.10 of network {V10}"),
        format!("recreated the link of endpoint {V10}/{C1} "),
        format!("recreated the link of endpoint {V10}/{C2} "),
    ];
    for line in &expected {
        anyhow::ensure!(
            out.contains(line.as_str()),
            "`underlay restore` printed {:?}, expected a line with {:?}",
            out.trim(),
            line.trim()
        );
    }
    anyhow::ensure!(
        !out.contains(&format!("{V20}/")),
        "`underlay restore` touched an endpoint of {V20}: {:?}",
        out.trim()
    );
    let link = expect_vlan_link(HOST, "eth0.10", 10)?;
    anyhow::ensure!(link.up, "restore recreated eth0.10 but left it down");
    for (ns, was) in [C1, C2].into_iter().zip(before) {
        let now = lab.underlay.endpoint(V10, ns)?;
        anyhow::ensure!(
            now.mac == was.mac && now.ipv4 == was.ipv4,
            "{ns} came back as {} {} instead of {} {}",
            now.mac,
            now.ipv4,
            was.mac,
            was.ipv4
        );
        anyhow::ensure!(
            topology::has_link(ns, IFNAME)?,
            "restore did not make {IFNAME} in {ns} again"
        );
    }
    lab.underlay.endpoint(V20, C3).context("c3 left v20")?;
    anyhow::ensure!(
        topology::has_link(C3, IFNAME)?,
        "c3 lost its {IFNAME} on VLAN 20"
    );
    Ok(())
}

fn ping_after_restore(_lab: &mut Lab) -> anyhow::Result<()> {
    ping(C1, C2_V10)
}

fn remove_deletes_owned_parents(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay.ok(&["network", "rm", "--force", V10, V20])?;
    for name in ["eth0.10", "eth0.20"] {
        anyhow::ensure!(
            !topology::has_link(HOST, name)?,
            "{name} is still on the host after its last network was removed"
        );
    }
    for ns in topology::containers() {
        anyhow::ensure!(
            !topology::has_link(ns, IFNAME)?,
            "{IFNAME} is still in {ns} after network rm --force"
        );
    }
    anyhow::ensure!(
        topology::has_link(HOST, PARENT)?,
        "the trunk {PARENT} is gone"
    );
    let listed = lab.underlay.ok(&["network", "ls", "--format", "json"])?;
    anyhow::ensure!(
        listed.trim() == "[]",
        "`network ls --format json` is {:?}, expected []",
        listed.trim()
    );
    Ok(())
}

// --- VLAN links as `ip -d -j link` shows them ---------------------------------------------

struct VlanLink {
    index: u64,
    up: bool,
}

/// `name` in `ns` must be VLAN `id` of the trunk eth0.
fn expect_vlan(ns: &str, name: &str, id: u64) -> anyhow::Result<()> {
    expect_vlan_link(ns, name, id).map(drop)
}

fn expect_vlan_link(ns: &str, name: &str, id: u64) -> anyhow::Result<VlanLink> {
    vlan_link_checked(ns, name, id)?.with_context(|| format!("there is no {name} in {ns}"))
}

/// The link `name` of `ns`, whatever its kind; `None` if missing.
fn vlan_link(ns: &str, name: &str) -> anyhow::Result<Option<VlanLink>> {
    Ok(find_link(ns, name)?.as_ref().map(VlanLink::of))
}

/// The link `name` of `ns`, checked to be `kind vlan`, `id`, on eth0; `None` if missing.
fn vlan_link_checked(ns: &str, name: &str, id: u64) -> anyhow::Result<Option<VlanLink>> {
    let Some(link) = find_link(ns, name)? else {
        return Ok(None);
    };
    let kind = link.pointer("/linkinfo/info_kind").and_then(Value::as_str);
    let vid = link
        .pointer("/linkinfo/info_data/id")
        .and_then(Value::as_u64);
    let protocol = link
        .pointer("/linkinfo/info_data/protocol")
        .and_then(Value::as_str);
    let trunk = link.get("link").and_then(Value::as_str);
    anyhow::ensure!(
        kind == Some("vlan")
            && vid == Some(id)
            && protocol == Some("802.1Q")
            && trunk == Some(PARENT),
        "{name} in {ns} is kind {kind:?}, id {vid:?}, protocol {protocol:?}, on {trunk:?}; \
         expected vlan, {id}, 802.1Q, on {PARENT}"
    );
    Ok(Some(VlanLink::of(&link)))
}

/// The JSON object of link `name` from `ip -d -j -n NS link show`.
fn find_link(ns: &str, name: &str) -> anyhow::Result<Option<Value>> {
    let out = ip(&["-d", "-j", "-n", ns, "link", "show"])?;
    let json: Value = serde_json::from_str(&out)
        .with_context(|| format!("parsing `ip -d -j -n {ns} link show` output: {out}"))?;
    let links = json
        .as_array()
        .with_context(|| format!("`ip -d -j -n {ns} link show` is not an array"))?;
    Ok(links
        .iter()
        .find(|link| link.get("ifname").and_then(Value::as_str) == Some(name))
        .cloned())
}

impl VlanLink {
    /// `up`: administratively up (the UP flag; operstate depends on the carrier).
    fn of(link: &Value) -> Self {
        VlanLink {
            index: link.get("ifindex").and_then(Value::as_u64).unwrap_or(0),
            up: link
                .get("flags")
                .and_then(Value::as_array)
                .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some("UP"))),
        }
    }
}
