//! The demo scenario, one function per check, replayed with the real CLI against the lab.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::checks::Step;
use super::sys::{self, ip};
use super::topology::{self, C1, C2, C3, GATEWAY4, GATEWAY6, HOST_ADDRESS, PRINTER, ROUTER};
use super::underlay::Underlay;

pub const NETWORK: &str = "lab";
const METRIC: &str = "100";
/// The docker host's address on the lab network once host access is on.
const HOST_ACCESS_ADDRESS: &str = "198.51.100.4";
/// How long the router may take to learn c1's MAC from its gratuitous ARP.
const LEARN_DEADLINE_SECS: u64 = 3;

/// What the steps share: the CLI, what an earlier step learned, and the daemons a step
/// started (killed when the lab is dropped).
pub struct Lab {
    pub underlay: Underlay,
    /// c1's MAC as `network inspect` reported it after connecting.
    c1_mac: Option<String>,
    /// The DHCP scenario's address for c1, to check it comes back.
    pub c1_lease: Option<String>,
    pub background: Vec<std::process::Child>,
}

impl Lab {
    pub fn new(underlay: Underlay) -> Self {
        Lab {
            underlay,
            c1_mac: None,
            c1_lease: None,
            background: Vec::new(),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.background {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The network and two containers: what `lab up` leaves running.
pub const SETUP: [Step<Lab>; 3] = [
    Step {
        provides: "network lab",
        title: "create network lab (IPv4 + IPv6, aux host=.10)",
        needs: &[],
        run: create_network,
    },
    Step {
        provides: "c1 connected",
        title: "connect c1 -> 198.51.100.2",
        needs: &["network lab"],
        run: connect_c1,
    },
    Step {
        provides: "c2 connected",
        title: "connect c2 -> 198.51.100.3",
        needs: &["network lab"],
        run: connect_c2,
    },
];

/// Everything `lab run` checks after [`SETUP`].
pub const CHECKS: [Step<Lab>; 21] = [
    Step {
        provides: "router knows c1",
        title: "router learned c1's MAC from its gratuitous ARP",
        needs: &["c1 connected"],
        run: router_learned_c1_mac,
    },
    Step {
        provides: "c1-c2 v4",
        title: "c1 pings c2 (IPv4)",
        needs: &["c1 connected", "c2 connected"],
        run: c1_pings_c2_v4,
    },
    Step {
        provides: "c1-c2 v6",
        title: "c1 pings c2 (IPv6)",
        needs: &["c1 connected", "c2 connected"],
        run: c1_pings_c2_v6,
    },
    Step {
        provides: "c1-gw v4",
        title: "c1 pings the gateway (IPv4)",
        needs: &["c1 connected"],
        run: c1_pings_gateway_v4,
    },
    Step {
        provides: "c1-gw v6",
        title: "c1 pings the gateway (IPv6)",
        needs: &["c1 connected"],
        run: c1_pings_gateway_v6,
    },
    Step {
        provides: "parent isolated",
        title: "c1 cannot reach the parent's own 198.51.100.10",
        needs: &["c1 connected"],
        run: c1_cannot_reach_parent,
    },
    Step {
        provides: "host access",
        title: "--host-access on: the docker host pings c1",
        needs: &["parent isolated"],
        run: host_access_on,
    },
    Step {
        provides: "host reachable",
        title: "and c1 reaches the host at its host-access address",
        needs: &["host access"],
        run: c1_reaches_host,
    },
    Step {
        provides: "host access off",
        title: "--host-access off: isolated again, the host link gone",
        needs: &["host access"],
        run: host_access_off,
    },
    Step {
        provides: "in-use refused",
        title: "connect c3 --ip 198.51.100.2 (in use) refused",
        needs: &["c1 connected"],
        run: address_in_use_refused,
    },
    Step {
        provides: "live address refused",
        title: "connect c3 --ip 198.51.100.50 (the printer's) refused",
        needs: &["network lab"],
        run: live_address_refused,
    },
    Step {
        provides: "double connect refused",
        title: "connect c1 a second time refused",
        needs: &["c1 connected"],
        run: second_connect_refused,
    },
    Step {
        provides: "bad metric refused",
        title: "network create -o metric=4294967296 refused",
        needs: &[],
        run: bad_metric_refused,
    },
    Step {
        provides: "c3 connected",
        title: "connect c3 static 198.51.100.200 / ::200",
        needs: &["network lab"],
        run: connect_c3_static,
    },
    Step {
        provides: "c3-gw",
        title: "c3 pings the gateway (IPv4 + IPv6)",
        needs: &["c3 connected"],
        run: c3_pings_gateway,
    },
    Step {
        provides: "c1-c3",
        title: "c1 pings c3 at 198.51.100.200",
        needs: &["c1 connected", "c3 connected"],
        run: c1_pings_c3,
    },
    Step {
        provides: "default route",
        title: "c1's default routes: via the gateway, metric 100",
        needs: &["c1 connected"],
        run: c1_default_routes,
    },
    Step {
        provides: "c2 disconnected",
        title: "disconnect c2 removes its eth0",
        needs: &["c2 connected"],
        run: disconnect_c2,
    },
    Step {
        provides: "c2 reconnected",
        title: "connect c2 again gets 198.51.100.3 back",
        needs: &["c2 disconnected"],
        run: reconnect_c2,
    },
    Step {
        provides: "rm refused",
        title: "network rm lab with endpoints refused",
        needs: &["network lab"],
        run: remove_with_endpoints_refused,
    },
    Step {
        provides: "rm forced",
        title: "network rm --force lab clears everything",
        needs: &["network lab"],
        run: forced_remove_clears_everything,
    },
];

// --- setup --------------------------------------------------------------------------------

/// The network, with the host's own address reserved as an aux address (else the IPAM could
/// hand 198.51.100.10 to a container and clash with the host) and a route metric to check later.
fn create_network(lab: &mut Lab) -> anyhow::Result<()> {
    let metric = format!("metric={METRIC}");
    let aux = format!("host={HOST_ADDRESS}");
    let mut args = create_args(&aux);
    args.extend(["-o", &metric, NETWORK]);
    let id = lab.underlay.ok(&args)?;
    anyhow::ensure!(!id.trim().is_empty(), "network create printed no id");
    Ok(())
}

/// `network create` with the lab's subnets and parent, without options and name.
fn create_args(aux: &str) -> Vec<&str> {
    vec![
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "198.51.100.0/24",
        "--gateway",
        GATEWAY4,
        "--ipv6",
        "--subnet",
        "2001:db8:babe:cafe::/64",
        "--gateway",
        GATEWAY6,
        "--aux-address",
        aux,
        "-o",
        "parent=eth0",
    ]
}

fn connect_c1(lab: &mut Lab) -> anyhow::Result<()> {
    let mac = connect_expecting(lab, C1, &[], "198.51.100.2", "2001:db8:babe:cafe::2")?;
    lab.c1_mac = Some(mac);
    Ok(())
}

fn connect_c2(lab: &mut Lab) -> anyhow::Result<()> {
    connect_expecting(lab, C2, &[], "198.51.100.3", "2001:db8:babe:cafe::3").map(drop)
}

/// Connects `ns` (the endpoint is named after it) and checks inspect shows the expected
/// addresses; returns its MAC.
fn connect_expecting(
    lab: &Lab,
    ns: &str,
    extra: &[&str],
    ipv4: &str,
    ipv6: &str,
) -> anyhow::Result<String> {
    let mut args = vec!["connect", NETWORK, ns];
    args.extend_from_slice(extra);
    lab.underlay.ok(&args)?;
    let ep = lab.underlay.endpoint(NETWORK, ns)?;
    let (want4, want6) = (format!("{ipv4}/24"), format!("{ipv6}/64"));
    anyhow::ensure!(
        ep.ipv4 == want4 && ep.ipv6 == want6,
        "inspect shows {ns} at {} and {}, expected {want4} and {want6}",
        ep.ipv4,
        ep.ipv6
    );
    anyhow::ensure!(
        topology::has_link(ns, "eth0")?,
        "no eth0 in {ns} after connect"
    );
    Ok(ep.mac)
}

// --- reachability -------------------------------------------------------------------------

/// Nobody has pinged from c1, yet the router knows c1's MAC: underlay sets `arp_notify` on the
/// new link before bringing it up, so the kernel broadcasts a gratuitous ARP ("198.51.100.2 is at
/// <mac>") the moment it comes up, and the router (with `arp_accept`) records it. It takes
/// milliseconds; the generous deadline is for slow emulated machines (the kernel-VM harness).
fn router_learned_c1_mac(lab: &mut Lab) -> anyhow::Result<()> {
    let mac = lab.c1_mac.clone().context("c1's MAC is unknown")?;
    let deadline = Instant::now() + Duration::from_secs(LEARN_DEADLINE_SECS);
    loop {
        let neigh = ip(&["-n", ROUTER, "neigh", "show", "198.51.100.2"])?;
        if neigh.to_lowercase().contains(&mac.to_lowercase()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "after {LEARN_DEADLINE_SECS} s `ip -n {ROUTER} neigh show 198.51.100.2` shows {:?}, expected lladdr {mac}",
                neigh.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn c1_pings_c2_v4(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, "198.51.100.3")
}

fn c1_pings_c2_v6(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, "2001:db8:babe:cafe::3")
}

fn c1_pings_gateway_v4(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, GATEWAY4)
}

fn c1_pings_gateway_v6(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, GATEWAY6)
}

/// Passes when the ping FAILS. A macvlan child and its parent cannot talk: a frame a child
/// sends is either delivered to a sibling macvlan or transmitted out of the parent's wire, and
/// never handed back up to the parent's own stack. Here it goes to the switch, which does not
/// send a frame back out of the port it arrived on, so the host never even sees c1's ARP
/// request. (Docker documents the same limitation; the fix is a macvlan for the host too.)
fn c1_cannot_reach_parent(_: &mut Lab) -> anyhow::Result<()> {
    let ran = sys::run("ip", &ping_args(C1, HOST_ADDRESS))?;
    anyhow::ensure!(
        !ran.succeeded(),
        "`{}` succeeded, but a macvlan child should not reach its parent's address",
        ran.cmdline
    );
    // ping exits 1 for "no reply"; anything else (2, or ip's own 255) means it did not run.
    ran.expect_exit(1).map(drop)
}

/// Host access gives the docker host a link of its own on the parent, with the first free
/// address (.4: c1 and c2 hold .2 and .3), and a route to each endpoint through it.
fn host_access_on(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay
        .ok(&["network", "update", NETWORK, "--host-access", "on"])?;
    ping(topology::HOST, "198.51.100.2").context("the docker host cannot reach c1")
}

fn c1_reaches_host(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, HOST_ACCESS_ADDRESS)
}

fn host_access_off(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay
        .ok(&["network", "update", NETWORK, "--host-access", "off"])?;
    let ran = sys::run("ip", &ping_args(topology::HOST, "198.51.100.2"))?;
    anyhow::ensure!(
        !ran.succeeded(),
        "the docker host still reaches c1 without host access"
    );
    let links = ip(&["-n", topology::HOST, "-br", "link", "show"])?;
    anyhow::ensure!(
        !links.contains("ulh"),
        "the host access link is still there: {links}"
    );
    Ok(())
}

/// `ping -c1 -W1` from `ns`, tried up to three times: the first IPv6 echo may be lost while
/// neighbour discovery is still resolving the target.
pub(super) fn ping(ns: &str, address: &str) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..3 {
        let ran = sys::run("ip", &ping_args(ns, address))?;
        if ran.succeeded() {
            return Ok(());
        }
        last = Some(ran);
    }
    match last {
        Some(ran) => anyhow::bail!("3 attempts, last: {}", ran.describe()),
        None => anyhow::bail!("ping never ran"),
    }
}

pub(super) fn ping_args<'a>(ns: &'a str, address: &'a str) -> Vec<&'a str> {
    let mut args = vec!["netns", "exec", ns, "ping", "-c1", "-W1"];
    if address.contains(':') {
        args.push("-6");
    }
    args.push(address);
    args
}

// --- refusals -----------------------------------------------------------------------------

/// Checked while c3 is still unconnected, so the address conflict (and not "c3 is already
/// connected") is what gets refused.
fn address_in_use_refused(lab: &mut Lab) -> anyhow::Result<()> {
    let before = endpoint_names(lab)?;
    lab.underlay
        .run(&["connect", NETWORK, C3, "--ip", "198.51.100.2"])?
        .expect_exit(1)?;
    anyhow::ensure!(
        !topology::has_link(C3, "eth0")?,
        "the refused connect left an eth0 in {C3}"
    );
    let after = endpoint_names(lab)?;
    anyhow::ensure!(
        before == after,
        "endpoints changed: {before:?} -> {after:?}"
    );
    Ok(())
}

/// The printer holds 198.51.100.50 without the network knowing: the ARP probe from inside c3
/// finds it before the address is configured, and the connect fails naming its MAC.
fn live_address_refused(lab: &mut Lab) -> anyhow::Result<()> {
    let ran = lab
        .underlay
        .run(&["connect", NETWORK, C3, "--ip", PRINTER])?
        .expect_exit(1)?;
    anyhow::ensure!(
        ran.stderr
            .contains(&format!("address {PRINTER} is already in use on the LAN")),
        "unexpected refusal: {}",
        ran.stderr.trim()
    );
    anyhow::ensure!(
        !topology::has_link(C3, "eth0")?,
        "the refused connect left an eth0 in {C3}"
    );
    Ok(())
}

fn second_connect_refused(lab: &mut Lab) -> anyhow::Result<()> {
    let mac = lab.c1_mac.clone().context("c1's MAC is unknown")?;
    lab.underlay
        .run(&["connect", NETWORK, C1])?
        .expect_exit(1)?;
    let ep = lab.underlay.endpoint(NETWORK, C1)?;
    anyhow::ensure!(
        ep.mac == mac && ep.ipv4 == "198.51.100.2/24",
        "c1's endpoint changed: now {} {}, was {mac} 198.51.100.2/24",
        ep.mac,
        ep.ipv4
    );
    Ok(())
}

/// One past the largest u32: invalid input, exit 2, and no network appears.
fn bad_metric_refused(lab: &mut Lab) -> anyhow::Result<()> {
    let before = lab.underlay.network_names()?;
    let mut args = create_args("host=198.51.100.10");
    args.extend(["-o", "metric=4294967296", "lab-bad-metric"]);
    lab.underlay.run(&args)?.expect_exit(2)?;
    let after = lab.underlay.network_names()?;
    anyhow::ensure!(before == after, "networks changed: {before:?} -> {after:?}");
    Ok(())
}

fn endpoint_names(lab: &Lab) -> anyhow::Result<Vec<String>> {
    Ok(lab.underlay.endpoints(NETWORK)?.keys().cloned().collect())
}

// --- static addresses and routes ----------------------------------------------------------

fn connect_c3_static(lab: &mut Lab) -> anyhow::Result<()> {
    let extra = ["--ip", "198.51.100.200", "--ip6", "2001:db8:babe:cafe::200"];
    connect_expecting(lab, C3, &extra, "198.51.100.200", "2001:db8:babe:cafe::200").map(drop)
}

fn c3_pings_gateway(_: &mut Lab) -> anyhow::Result<()> {
    ping(C3, GATEWAY4).context("IPv4")?;
    ping(C3, GATEWAY6).context("IPv6")
}

fn c1_pings_c3(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, "198.51.100.200")
}

fn c1_default_routes(_: &mut Lab) -> anyhow::Result<()> {
    for (family, gateway) in [("-4", GATEWAY4), ("-6", GATEWAY6)] {
        let routes = ip(&["-n", C1, family, "route", "show", "default"])?;
        let via = format!("via {gateway} ");
        let metric = format!("metric {METRIC} ");
        anyhow::ensure!(
            routes
                .lines()
                .any(|r| r.contains(&via) && r.contains(&metric)),
            "`ip -n {C1} {family} route show default` is {:?}, expected a route with \
             `{via}` and `{metric}`",
            routes.trim()
        );
    }
    Ok(())
}

// --- teardown through the CLI -------------------------------------------------------------

fn disconnect_c2(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay.ok(&["disconnect", NETWORK, C2])?;
    anyhow::ensure!(
        !topology::has_link(C2, "eth0")?,
        "eth0 is still in {C2} after disconnect"
    );
    anyhow::ensure!(
        !endpoint_names(lab)?.iter().any(|name| name == C2),
        "inspect still lists {C2} after disconnect"
    );
    Ok(())
}

/// 198.51.100.3 was released by the disconnect and is again the first free address.
fn reconnect_c2(lab: &mut Lab) -> anyhow::Result<()> {
    connect_expecting(lab, C2, &[], "198.51.100.3", "2001:db8:babe:cafe::3").map(drop)
}

fn remove_with_endpoints_refused(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay
        .run(&["network", "rm", NETWORK])?
        .expect_exit(1)?;
    anyhow::ensure!(
        lab.underlay.network_names()? == [NETWORK],
        "network lab is gone after a refused rm"
    );
    anyhow::ensure!(
        topology::has_link(C1, "eth0")?,
        "c1 lost its eth0 after a refused rm"
    );
    Ok(())
}

fn forced_remove_clears_everything(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay.ok(&["network", "rm", "--force", NETWORK])?;
    for ns in topology::containers() {
        anyhow::ensure!(
            !topology::has_link(ns, "eth0")?,
            "eth0 is still in {ns} after network rm --force"
        );
    }
    let listed = lab.underlay.ok(&["network", "ls", "--format", "json"])?;
    anyhow::ensure!(
        listed.trim() == "[]",
        "`network ls --format json` is {:?}, expected []",
        listed.trim()
    );
    Ok(())
}
