//! One container link, plumbed: the kernel work every front-end's attach comes down to,
//! independent of any state. The engine builds a [`LinkPlan`] from its network and endpoint;
//! a CNI plugin builds one from its config and its IPAM plugin's result.

use std::net::IpAddr;

use underlay_linux::{
    IpNet, IpvlanFlag, IpvlanMode, IpvlanSpec, Kernel, MacvlanMode, MacvlanSpec, Netlink, Route,
    VlanSpec,
};

use crate::crash::crash_point;
use crate::{Error, Family, IfName, Ipv6Mode, MacAddr};

/// The kind of link a container gets on its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Macvlan {
        mode: MacvlanMode,
        mac: MacAddr,
        /// `IFLA_MACVLAN_BC_QUEUE_LEN`; `None` keeps the kernel's default.
        bc_queue_len: Option<u32>,
    },
    /// ipvlan slaves carry their parent's MAC.
    Ipvlan { mode: IpvlanMode, flag: IpvlanFlag },
    /// An 802.1Q sub-interface of the parent, born inside the container as its interface (the
    /// CNI `vlan` plugin).
    Vlan { id: u16 },
}

impl LinkKind {
    pub fn name(&self) -> &'static str {
        match self {
            LinkKind::Macvlan { .. } => "macvlan",
            LinkKind::Ipvlan { .. } => "ipvlan",
            LinkKind::Vlan { .. } => "vlan",
        }
    }
}

/// Everything needed to give a container one configured link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    pub kind: LinkKind,
    /// Index and name of the parent, in the host namespace (or in the container's, with
    /// `parent_in_container`).
    pub parent_index: u32,
    pub parent_name: String,
    /// The parent lives in the container's netns (CNI `linkInContainer`): the link is created
    /// there, by the container's socket, instead of from the host into the container.
    pub parent_in_container: bool,
    /// Unique name the link is born with, inside the container.
    pub tmp_ifname: IfName,
    pub ifname: IfName,
    /// Marks the link as ours (`IFLA_IFALIAS`) before it loses its temporary name.
    pub alias: String,
    pub mtu: Option<u32>,
    pub addresses: Vec<IpNet>,
    /// Routes through the new link (`oif` is filled in).
    pub routes: Vec<Route>,
    /// The container's netns as the user knows it, for messages.
    pub netns: String,
    /// What to tell the user when a default route collides with one already there.
    pub route_conflict_hint: String,
    /// The IPv6 behaviour to set on the link; `None` keeps the kernel's defaults.
    pub ipv6_mode: Option<Ipv6Mode>,
}

/// Creates and configures the link in `ns` and returns its index. On error the caller rolls
/// back by deleting the link (under either name); nothing else is left behind.
pub fn plumb_link<K: Kernel>(
    kernel: &mut K,
    ns: &K::Ns,
    nl: &mut K::Nl,
    plan: &LinkPlan,
) -> Result<u32, Error> {
    let index = create_link(kernel, ns, nl, plan)?;
    configure(nl, index, plan)?;
    crash_point("attach-configured");
    Ok(index)
}

/// Creates the link in `ns` under its final name, marked as ours, with its sysctls set, still
/// down and without addresses; returns its index.
pub fn create_link<K: Kernel>(
    kernel: &mut K,
    ns: &K::Ns,
    nl: &mut K::Nl,
    plan: &LinkPlan,
) -> Result<u32, Error> {
    create_in_netns(kernel, ns, nl, plan)?;
    crash_point("attach-link-created");
    let index = nl
        .link_by_name(plan.tmp_ifname.as_str())
        .map_err(Error::kernel(format!(
            "looking up link {}",
            plan.tmp_ifname
        )))?
        .ok_or_else(|| Error::Io(format!("{} vanished after creation", plan.tmp_ifname)))?
        .index;
    // Marked before it loses its unique temporary name: from here on the alias is what proves
    // the link is ours.
    nl.set_alias(index, &plan.alias)
        .map_err(Error::kernel(format!(
            "marking {} in netns {}",
            plan.tmp_ifname, plan.netns
        )))?;
    nl.rename_link(index, plan.ifname.as_str())
        .map_err(Error::kernel(format!(
            "renaming {} to {} in netns {}",
            plan.tmp_ifname, plan.ifname, plan.netns
        )))?;
    crash_point("attach-renamed");
    kernel
        .sysctls_in(ns, &link_sysctls(plan))
        .map_err(Error::kernel(format!(
            "setting sysctls of {} in netns {}",
            plan.ifname, plan.netns
        )))?;
    Ok(index)
}

/// Created straight inside the container's netns: it never shows up in the host's, so a crash
/// cannot leave it there, and two attaches cannot race for a host-side name.
fn create_in_netns<K: Kernel>(
    kernel: &mut K,
    ns: &K::Ns,
    nl: &mut K::Nl,
    plan: &LinkPlan,
) -> Result<(), Error> {
    let name = plan.tmp_ifname.to_string();
    let (parent, mtu) = (plan.parent_index, plan.mtu);
    let created = match (&plan.kind, plan.parent_in_container) {
        (
            &LinkKind::Macvlan {
                mode,
                mac,
                bc_queue_len,
            },
            inside,
        ) => {
            let spec = MacvlanSpec {
                name,
                parent,
                mode,
                mac: Some(mac.0),
                mtu,
                bc_queue_len,
            };
            if inside {
                nl.create_macvlan(&spec)
            } else {
                kernel.create_macvlan_in(&spec, ns)
            }
        }
        (&LinkKind::Ipvlan { mode, flag }, inside) => {
            let spec = IpvlanSpec {
                name,
                parent,
                mode,
                flag,
                mtu,
            };
            if inside {
                nl.create_ipvlan(&spec)
            } else {
                kernel.create_ipvlan_in(&spec, ns)
            }
        }
        (&LinkKind::Vlan { id }, inside) => {
            let spec = VlanSpec {
                name,
                parent,
                id,
                mtu,
            };
            if inside {
                nl.create_vlan(&spec)
            } else {
                kernel.create_vlan_in(&spec, ns)
            }
        }
    };
    created.map_err(|e| {
        // One rx handler per interface: a parent already serving macvlan cannot serve ipvlan
        // (and vice versa), nor can a bridge or bond port.
        if e.errno() == Some(nix::errno::Errno::EBUSY as i32) {
            return Error::Conflict(format!(
                "the kernel refused a {} link on parent {}: it already carries links of another kind or is a bridge or bond port",
                plan.kind.name(),
                plan.parent_name
            ));
        }
        Error::kernel(format!("creating {} {} on parent {}", plan.kind.name(), plan.tmp_ifname, plan.parent_name))(e)
    })
}

fn link_sysctls(plan: &LinkPlan) -> Vec<(String, String)> {
    let mut out = announce_sysctls(plan);
    if let Some(mode) = plan.ipv6_mode {
        out.extend(ipv6_sysctls(&plan.ifname, mode));
    }
    out
}

/// The kernel's IPv6 behaviour per mode, set before the link goes up so that no router
/// advertisement is acted on first.
fn ipv6_sysctls(ifname: &IfName, mode: Ipv6Mode) -> Vec<(String, String)> {
    let settings: &[(&str, &str)] = match mode {
        Ipv6Mode::Off => &[("disable_ipv6", "1")],
        Ipv6Mode::Static => &[("accept_ra", "0"), ("autoconf", "0")],
        // The DHCPv6 client speaks from the link-local address: optimistic DAD (RFC 4429)
        // makes it usable at once instead of after a second of duplicate address detection.
        Ipv6Mode::Dhcpv6 => &[
            ("accept_ra", "1"),
            ("autoconf", "0"),
            ("optimistic_dad", "1"),
            ("use_optimistic", "1"),
        ],
        Ipv6Mode::Slaac => &[("accept_ra", "1"), ("autoconf", "1")],
    };
    settings
        .iter()
        .map(|(key, value)| (format!("net/ipv6/conf/{ifname}/{key}"), value.to_string()))
        .collect()
}

/// `arp_notify` / `ndisc_notify` make the kernel send a gratuitous ARP and an unsolicited
/// neighbour advertisement for the link's addresses when it comes up. Switches learn the new MAC
/// from it at once; neighbours that already had an entry for the address (a container that came
/// back with a new MAC) update it, and Linux hosts create one only with `arp_accept=1`. They
/// must be set before the link goes up.
fn announce_sysctls(plan: &LinkPlan) -> Vec<(String, String)> {
    // Set even when the plan has no address of that family yet: a DHCP lease brings one later.
    vec![
        (
            format!("net/ipv4/conf/{}/arp_notify", plan.ifname),
            "1".to_string(),
        ),
        (
            format!("net/ipv6/conf/{}/ndisc_notify", plan.ifname),
            "1".to_string(),
        ),
    ]
}

/// Addresses first, then up (so the kernel's announcements carry them), then the routes (a
/// gateway is only reachable once the link is up and its subnet route exists).
/// Gives the link made by [`create_link`] its addresses, brings it up and adds its routes.
pub fn configure_link<N: Netlink>(nl: &mut N, index: u32, plan: &LinkPlan) -> Result<(), Error> {
    configure(nl, index, plan)
}

fn configure<N: Netlink>(nl: &mut N, index: u32, plan: &LinkPlan) -> Result<(), Error> {
    add_addresses(nl, index, plan)?;
    set_link_up(nl, index, plan)?;
    add_routes(nl, index, plan)
}

pub(crate) fn add_addresses<N: Netlink>(
    nl: &mut N,
    index: u32,
    plan: &LinkPlan,
) -> Result<(), Error> {
    for addr in &plan.addresses {
        nl.add_address(index, *addr).map_err(Error::kernel(format!(
            "adding {addr} to {} in netns {}",
            plan.ifname, plan.netns
        )))?;
    }
    Ok(())
}

/// How long a MAC still held by a link of a dying netns is waited for.
const MAC_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Brings the link up. A macvlan cannot go up while another macvlan of the same parent has its
/// MAC (EADDRINUSE). That other one may be the same container's previous link, in a netns the
/// kernel is still tearing down (netns cleanup is deferred work): a runtime that restarts a
/// container at once (dockerd after its own restart) gets there first. So that is waited out,
/// briefly.
pub(crate) fn set_link_up<N: Netlink>(
    nl: &mut N,
    index: u32,
    plan: &LinkPlan,
) -> Result<(), Error> {
    let give_up = std::time::Instant::now() + MAC_RELEASE_WAIT;
    loop {
        let Err(e) = nl.set_up(index) else {
            return Ok(());
        };
        if e.errno() != Some(nix::errno::Errno::EADDRINUSE as i32) {
            return Err(Error::kernel(format!(
                "bringing {} up in netns {}",
                plan.ifname, plan.netns
            ))(e));
        }
        if std::time::Instant::now() >= give_up {
            return Err(Error::Conflict(format!(
                "cannot bring {} up in netns {}: another link on parent {} has its MAC address",
                plan.ifname, plan.netns, plan.parent_name
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub(crate) fn add_routes<N: Netlink>(nl: &mut N, index: u32, plan: &LinkPlan) -> Result<(), Error> {
    for route in &plan.routes {
        let route = Route {
            oif: index,
            ..route.clone()
        };
        nl.add_route(&route)
            .map_err(|e| route_error(e, &route, plan))?;
    }
    Ok(())
}

/// A second network in the same netns with the same metric collides with the first one's
/// default route (the kernel keys IPv4 routes on prefix and metric): say how to fix it.
fn route_error(err: underlay_linux::Error, route: &Route, plan: &LinkPlan) -> Error {
    let family = Family::of(route.dst.addr);
    if route.dst.prefix == 0 && err.errno() == Some(nix::errno::Errno::EEXIST as i32) {
        return Error::Conflict(format!(
            "netns {} already has an {} default route with metric {}: {}",
            plan.netns,
            family.name(),
            route.metric,
            plan.route_conflict_hint
        ));
    }
    let via = route
        .gateway
        .map(|g| format!(" via {g}"))
        .unwrap_or_default();
    Error::kernel(format!(
        "adding route {}{via} (metric {}) in netns {}",
        route.dst, route.metric, plan.netns
    ))(err)
}

/// A default route of `family`: via `gateway`, or through the device when `None`.
pub fn default_route(family: Family, gateway: Option<IpAddr>, metric: u32) -> Route {
    let any: IpAddr = match family {
        Family::V4 => IpAddr::from([0u8; 4]),
        Family::V6 => IpAddr::from([0u8; 16]),
    };
    Route {
        dst: IpNet {
            addr: any,
            prefix: 0,
        },
        gateway,
        oif: 0,
        metric,
    }
}
