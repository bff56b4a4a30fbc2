//! The DHCP scenario: the router also runs a DHCP server (dnsmasq, v4 and v6), the docker host
//! runs underlay's lease keeper, and a network takes its addresses from the LAN. c1 gets a
//! lease, reaches the gateway over it, keeps its address across a reconnect (stable identity),
//! and gives it back on disconnect. Listed as skipped where dnsmasq is not installed.

use anyhow::Context;

use super::checks::Step;
use super::scenario::{ping, Lab};
use super::topology::{self, C1, GATEWAY4, ROUTER};

const NETWORK: &str = "dhcp";
const RANGE4: &str = "--dhcp-range=198.51.100.150,198.51.100.199,255.255.255.0,10m";
const RANGE6: &str = "--dhcp-range=2001:db8:babe:cafe::1:0,2001:db8:babe:cafe::1:ff,64,10m";

pub const CHECKS: [Step<Lab>; 7] = [
    Step {
        provides: "dhcp server",
        title: "router runs dnsmasq, docker host the lease keeper",
        needs: &[],
        run: start_servers,
    },
    Step {
        provides: "network dhcp",
        title: "create network dhcp (--ipam-driver dhcp, dhcpv6=true)",
        needs: &["dhcp server"],
        run: create_network,
    },
    Step {
        provides: "c1 leased",
        title: "connect c1 -> leases from .150-.199 and ::1:0/112",
        needs: &["network dhcp"],
        run: connect_c1,
    },
    Step {
        provides: "c1 reaches gw",
        title: "c1 pings the gateway from its leased address",
        needs: &["c1 leased"],
        run: c1_pings_gateway,
    },
    Step {
        provides: "server knows c1",
        title: "the router's lease file lists c1's leases",
        needs: &["c1 leased"],
        run: server_lists_c1,
    },
    Step {
        provides: "c1 keeps its address",
        title: "disconnect + connect c1: the same IPv4 lease again",
        needs: &["c1 leased"],
        run: reconnect_keeps_address,
    },
    Step {
        provides: "c1 released",
        title: "disconnect c1: the server saw DHCPRELEASE",
        needs: &["c1 leased"],
        run: disconnect_releases,
    },
];

fn file(lab: &Lab, name: &str) -> String {
    format!("{}/{name}", lab.underlay.state_dir())
}

fn start_servers(lab: &mut Lab) -> anyhow::Result<()> {
    let leases = format!("--dhcp-leasefile={}", file(lab, "dnsmasq.leases"));
    let log = format!("--log-facility={}", file(lab, "dnsmasq.log"));
    // Not the default /run/dnsmasq.pid: that belongs to the machine's own dnsmasq, if any.
    let pid = format!("--pid-file={}", file(lab, "dnsmasq.pid"));
    let args = [
        "netns",
        "exec",
        ROUTER,
        "dnsmasq",
        "-k",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        "--interface=eth0",
        "--bind-interfaces",
        "--user=root",
        "--log-dhcp",
        "--no-ping",
        RANGE4,
        RANGE6,
        "--dhcp-option=option:router,198.51.100.1",
        &leases,
        &log,
        &pid,
    ];
    let dnsmasq = std::process::Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting dnsmasq")?;
    lab.background.push(dnsmasq);
    wait_until(|| {
        std::fs::read_to_string(file(lab, "dnsmasq.log")).is_ok_and(|l| l.contains("sockets bound"))
    })
    .context("dnsmasq did not start")?;
    let keeper = lab.underlay.spawn_keeper()?;
    lab.background.push(keeper);
    Ok(())
}

fn create_network(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay.ok(&[
        "network",
        "create",
        "--ipam-driver",
        "dhcp",
        "--ipam-opt",
        "dhcpv6=true",
        "-o",
        "parent=eth0",
        "-o",
        "metric=200",
        NETWORK,
    ])?;
    Ok(())
}

fn connect_c1(lab: &mut Lab) -> anyhow::Result<()> {
    lab.underlay.ok(&["connect", NETWORK, C1])?;
    let ep = lab.underlay.endpoint(NETWORK, C1)?;
    let last: u8 = ep
        .ipv4
        .split('/')
        .next()
        .and_then(|a| a.rsplit('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(
        ep.ipv4.starts_with("198.51.100.")
            && ep.ipv4.ends_with("/24")
            && (150..=199).contains(&last),
        "c1's IPv4 lease {:?} is not from the server's range",
        ep.ipv4
    );
    anyhow::ensure!(
        ep.ipv6.starts_with("2001:db8:babe:cafe::1:") && ep.ipv6.ends_with("/128"),
        "c1's IPv6 lease {:?} is not from the server's range",
        ep.ipv6
    );
    anyhow::ensure!(topology::has_link(C1, "eth0")?, "no eth0 in {C1}");
    lab.c1_lease = Some(ep.ipv4);
    Ok(())
}

fn c1_pings_gateway(_: &mut Lab) -> anyhow::Result<()> {
    ping(C1, GATEWAY4)
}

fn server_lists_c1(lab: &mut Lab) -> anyhow::Result<()> {
    let leases = std::fs::read_to_string(file(lab, "dnsmasq.leases"))
        .context("reading dnsmasq's lease file")?;
    let address = bare(lab)?;
    anyhow::ensure!(
        leases
            .lines()
            .any(|l| l.contains(&address) && l.contains(C1)),
        "dnsmasq's lease file does not list {address} for {C1}: {leases:?}"
    );
    Ok(())
}

/// The endpoint's MAC and client identifier follow from (host, network, endpoint name), so the
/// server hands the same address back.
fn reconnect_keeps_address(lab: &mut Lab) -> anyhow::Result<()> {
    let before = lab.c1_lease.clone().context("c1's lease is unknown")?;
    lab.underlay.ok(&["disconnect", NETWORK, C1])?;
    lab.underlay.ok(&["connect", NETWORK, C1])?;
    let after = lab.underlay.endpoint(NETWORK, C1)?.ipv4;
    anyhow::ensure!(after == before, "c1 came back with {after}, had {before}");
    Ok(())
}

fn disconnect_releases(lab: &mut Lab) -> anyhow::Result<()> {
    let address = bare(lab)?;
    lab.underlay.ok(&["disconnect", NETWORK, C1])?;
    let seen = format!("DHCPRELEASE(eth0) {address}");
    wait_until(|| {
        std::fs::read_to_string(file(lab, "dnsmasq.log"))
            .is_ok_and(|l| l.matches(&seen).count() >= 2)
    })
    .with_context(|| format!("dnsmasq did not log `{seen}` for the second disconnect"))?;
    lab.underlay.ok(&["network", "rm", NETWORK])?;
    Ok(())
}

fn bare(lab: &Lab) -> anyhow::Result<String> {
    let lease = lab.c1_lease.as_deref().context("c1's lease is unknown")?;
    Ok(lease.split('/').next().unwrap_or(lease).to_string())
}

/// Polls `done` for up to 5 s.
fn wait_until(mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "not within 5 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}
