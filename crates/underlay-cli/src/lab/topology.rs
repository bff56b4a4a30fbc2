//! The lab's little world, built from network namespaces with `ip`:
//!
//! ```text
//!   ul-lab-router eth0 ─┐                 198.51.100.1, 2001:db8:babe:cafe::1 (the gateway);
//!                       │                 198.51.100.50 (a "printer" the IPAM knows nothing of)
//!                       ├─ br0 in ul-lab-switch
//!   ul-lab-host   eth0 ─┘                 198.51.100.10 (the "docker host"; the macvlan parent)
//!                   └─ macvlan children → ul-lab-c1, ul-lab-c2, ul-lab-c3 (empty to begin with)
//! ```
//!
//! When the kernel has 802.1Q support, the host's `eth0` is also a VLAN trunk: the router gets
//! `eth0.10` (192.168.10.1/24) and `eth0.20` (192.168.20.1/24), and br0 (no `vlan_filtering`)
//! passes the tagged frames between the two untouched. The host's sub-interfaces are left to
//! underlay.
//!
//! Nothing is connected to the namespace `underlay lab` is started from, so no lab packet can
//! ever reach a real network.

use anyhow::Context;

use super::sys::{self, ip};

/// Every namespace of the lab starts with this, so leftovers are easy to find.
pub const PREFIX: &str = "ul-lab-";
pub const SWITCH: &str = "ul-lab-switch";
pub const ROUTER: &str = "ul-lab-router";
pub const HOST: &str = "ul-lab-host";
pub const C1: &str = "ul-lab-c1";
pub const C2: &str = "ul-lab-c2";
pub const C3: &str = "ul-lab-c3";
const CONTAINERS: [&str; 3] = [C1, C2, C3];

pub const GATEWAY4: &str = "198.51.100.1";
pub const GATEWAY6: &str = "2001:db8:babe:cafe::1";
pub const HOST_ADDRESS: &str = "198.51.100.10";
/// An address another machine on the LAN uses without the network knowing: conflict detection
/// must find it.
pub const PRINTER: &str = "198.51.100.50";
/// The interface holding the host's address, and the parent of the macvlan network.
pub const PARENT: &str = "eth0";

/// A scratch namespace for probing kernel features; removed right after (and by `down()`).
const PROBE: &str = "ul-lab-probe";

/// The VLANs the router serves on its `eth0` trunk: (VLAN ID, router address).
pub const ROUTER_VLANS: [(u16, &str); 2] = [(10, "192.168.10.1/24"), (20, "192.168.20.1/24")];

/// Whether 802.1Q VLAN links work on this kernel.
pub enum VlanSupport {
    Available,
    /// Why not, as one phrase ("this kernel has no 802.1Q support (8021q module missing)").
    Missing(String),
}

/// The lab's namespaces. `up()` builds them, `down()` removes every `ul-lab-*` namespace,
/// including leftovers of an earlier run.
pub struct Topology {
    pub vlan: VlanSupport,
}

impl Topology {
    /// Builds the switch, the router, the docker host and the three empty containers, then
    /// checks that a macvlan can be created on the host's `eth0`, and whether VLAN links can be
    /// created at all; if they can, the router gets its VLAN sub-interfaces.
    pub fn up() -> anyhow::Result<Topology> {
        for ns in [SWITCH, ROUTER, HOST].iter().chain(CONTAINERS.iter()) {
            ip(&["netns", "add", ns]).with_context(|| {
                format!("creating netns {ns} (needs root and network namespace support)")
            })?;
        }
        build_switch().context("creating bridge br0 (needs bridge support: modprobe bridge)")?;
        build_router().context("building the router")?;
        build_host().context("building the docker host")?;
        probe_macvlan()?;
        let vlan = probe_vlan()?;
        if let VlanSupport::Available = vlan {
            build_router_vlans().context("giving the router its VLAN sub-interfaces")?;
        }
        Ok(Topology { vlan })
    }

    /// Removes every `ul-lab-*` namespace and reports how many there were. Deleting a namespace
    /// takes its links with it: the veths, the bridge, and the macvlans (whose parent dies with
    /// `ul-lab-host`), so nothing else needs undoing.
    pub fn down() -> anyhow::Result<usize> {
        let leftovers = lab_namespaces()?;
        let mut failures = Vec::new();
        for ns in &leftovers {
            if let Err(err) = ip(&["netns", "delete", ns]) {
                failures.push(format!("{err:#}"));
            }
        }
        if !failures.is_empty() {
            anyhow::bail!("removing lab namespaces: {}", failures.join("; "));
        }
        Ok(leftovers.len())
    }
}

/// Names of the existing `ul-lab-*` namespaces (`ip netns list` prints "NAME (id: N)").
fn lab_namespaces() -> anyhow::Result<Vec<String>> {
    let list = ip(&["netns", "list"]).context("listing network namespaces")?;
    Ok(list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

fn build_switch() -> anyhow::Result<()> {
    ip(&["-n", SWITCH, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", SWITCH, "link", "set", "br0", "up"])?;
    Ok(())
}

/// The router holds the gateway addresses. `nodad` skips IPv6 duplicate address detection,
/// which would otherwise keep the address "tentative" (unusable) for a second or two.
fn build_router() -> anyhow::Result<()> {
    plug_into_switch(ROUTER, "router")?;
    ip(&[
        "-n",
        ROUTER,
        "addr",
        "add",
        "198.51.100.1/24",
        "dev",
        "eth0",
    ])?;
    ip(&[
        "-n",
        ROUTER,
        "addr",
        "add",
        &format!("{PRINTER}/24"),
        "dev",
        "eth0",
    ])?;
    let v6 = "2001:db8:babe:cafe::1/64";
    ip(&["-n", ROUTER, "addr", "add", v6, "dev", "eth0", "nodad"])?;
    accept_gratuitous_arp(ROUTER)?;
    ip(&["-n", ROUTER, "link", "set", "eth0", "up"])?;
    Ok(())
}

fn build_host() -> anyhow::Result<()> {
    plug_into_switch(HOST, "host")?;
    ip(&["-n", HOST, "addr", "add", "198.51.100.10/24", "dev", PARENT])?;
    ip(&["-n", HOST, "link", "set", PARENT, "up"])?;
    Ok(())
}

/// A veth pair: `eth0` in `ns`, its peer `port` in the switch, enslaved to br0 and up.
fn plug_into_switch(ns: &str, port: &str) -> anyhow::Result<()> {
    ip(&[
        "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", SWITCH,
    ])
    .context("creating a veth pair (needs veth support: modprobe veth)")?;
    ip(&["-n", SWITCH, "link", "set", port, "master", "br0", "up"])?;
    Ok(())
}

/// By default (`arp_accept=0`) Linux does not create a neighbour entry from an unsolicited
/// ARP: a gratuitous ARP only refreshes an entry that already exists. Many real routers and
/// every switch do learn from it, and that is the behaviour the lab wants to show, so the lab
/// router is told to accept them. std cannot enter a netns, hence the shell inside `ip netns
/// exec` (sysctls under /proc/sys/net belong to the netns of whoever opens them).
fn accept_gratuitous_arp(ns: &str) -> anyhow::Result<()> {
    let script = "echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_accept";
    ip(&["netns", "exec", ns, "sh", "-c", script])
        .with_context(|| format!("setting arp_accept on eth0 in {ns}"))?;
    Ok(())
}

/// Creates and deletes a throw-away macvlan on the host's eth0, so a kernel without macvlan
/// is reported once, clearly, instead of as twenty failed checks.
fn probe_macvlan() -> anyhow::Result<()> {
    let probe = "ul-probe";
    let created = sys::run(
        "ip",
        &[
            "-n", HOST, "link", "add", probe, "link", PARENT, "type", "macvlan", "mode", "bridge",
        ],
    )?;
    if !created.succeeded() {
        anyhow::bail!(
            "macvlan does not work on this host ({}); load it with `modprobe macvlan`",
            created.describe()
        );
    }
    ip(&["-n", HOST, "link", "delete", probe])?;
    Ok(())
}

/// Creates a VLAN link on a veth in a scratch namespace. A kernel without 802.1Q support
/// (no `8021q` module, and none to load) refuses with "Unknown device type"; that is a skip of
/// the VLAN checks, not an error. Only failing to set up the probe itself is an error.
fn probe_vlan() -> anyhow::Result<VlanSupport> {
    ip(&["netns", "add", PROBE]).with_context(|| format!("creating netns {PROBE}"))?;
    let outcome = (|| {
        ip(&[
            "-n", PROBE, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
        ])?;
        sys::run(
            "ip",
            &[
                "-n", PROBE, "link", "add", "link", "p0", "name", "p0.5", "type", "vlan", "id", "5",
            ],
        )
    })();
    ip(&["netns", "delete", PROBE]).with_context(|| format!("removing netns {PROBE}"))?;
    let created = outcome.context("probing for 802.1Q VLAN support")?;
    if created.succeeded() {
        return Ok(VlanSupport::Available);
    }
    let module_loaded = std::path::Path::new("/sys/module/8021q").exists();
    if created.stderr.contains("Unknown device type") && !module_loaded {
        return Ok(VlanSupport::Missing(
            "this kernel has no 802.1Q support (8021q module missing)".to_string(),
        ));
    }
    Ok(VlanSupport::Missing(format!(
        "creating a VLAN link failed: {}",
        created.describe()
    )))
}

/// The router's `eth0.10` and `eth0.20`, addressed and up.
fn build_router_vlans() -> anyhow::Result<()> {
    for (id, address) in ROUTER_VLANS {
        let (name, id) = (format!("{PARENT}.{id}"), id.to_string());
        ip(&[
            "-n", ROUTER, "link", "add", "link", PARENT, "name", &name, "type", "vlan", "id", &id,
        ])?;
        ip(&["-n", ROUTER, "addr", "add", address, "dev", &name])?;
        ip(&["-n", ROUTER, "link", "set", &name, "up"])?;
    }
    Ok(())
}

/// Whether `ns` holds a link named `name` (`ip -br` prints "eth0@if2   UP ...").
pub fn has_link(ns: &str, name: &str) -> anyhow::Result<bool> {
    let links = ip(&["-n", ns, "-br", "link", "show"])?;
    Ok(links
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|link| link.split('@').next() == Some(name)))
}

/// The container namespaces, for checks that look at all of them.
pub fn containers() -> [&'static str; 3] {
    CONTAINERS
}
