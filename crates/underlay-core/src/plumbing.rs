//! The kernel work of one endpoint: build its link inside the container's netns, or take it
//! away. Every function here is safe to repeat.

use std::net::IpAddr;
use std::path::Path;

use underlay_linux::{IpNet, IpvlanSpec, Kernel, Link, MacvlanSpec, Netlink, Route};

use crate::crash::crash_point;
use crate::{Driver, Endpoint, Error, Family, Network};

/// Creates and configures the endpoint's link in `ns`. On error the caller rolls back with
/// [`delete_endpoint_link`].
pub(crate) fn plumb<K: Kernel>(
    kernel: &mut K,
    ns: &K::Ns,
    nl: &mut K::Nl,
    net: &Network,
    ep: &Endpoint,
    parent: &Link,
) -> Result<(), Error> {
    create_child_link(kernel, ns, net, ep, parent)?;
    crash_point("attach-link-created");
    let index = link_named(nl, ep.tmp_ifname.as_str())?
        .ok_or_else(|| Error::Io(format!("{} vanished after creation", ep.tmp_ifname)))?
        .index;
    // Marked before it loses its unique temporary name: from here on the alias is what
    // proves the link is this endpoint's.
    nl.set_alias(index, &ep.link_alias())
        .map_err(Error::kernel(format!(
            "marking {} in netns {}",
            ep.tmp_ifname, ep.netns
        )))?;
    nl.rename_link(index, ep.ifname.as_str())
        .map_err(Error::kernel(format!(
            "renaming {} to {} in netns {}",
            ep.tmp_ifname, ep.ifname, ep.netns
        )))?;
    crash_point("attach-renamed");
    kernel
        .sysctls_in(ns, &announce_sysctls(ep))
        .map_err(Error::kernel(format!(
            "setting sysctls of {} in netns {}",
            ep.ifname, ep.netns
        )))?;
    configure_addresses(nl, index, net, ep)?;
    crash_point("attach-configured");
    Ok(())
}

/// Creates the endpoint's macvlan or ipvlan straight inside the container's netns: it never
/// shows up in the host's, so a crash cannot leave it there, and two attaches cannot race for a
/// host-side name.
fn create_child_link<K: Kernel>(
    kernel: &mut K,
    ns: &K::Ns,
    net: &Network,
    ep: &Endpoint,
    parent: &Link,
) -> Result<(), Error> {
    let name = ep.tmp_ifname.to_string();
    let mtu = net.spec.mtu;
    let created = match net.spec.driver {
        Driver::Macvlan { mode } => {
            let spec = MacvlanSpec {
                name,
                parent: parent.index,
                mode,
                mac: Some(ep.mac.0),
                mtu,
            };
            kernel.create_macvlan_in(&spec, ns)
        }
        Driver::Ipvlan { mode, flag } => {
            let spec = IpvlanSpec {
                name,
                parent: parent.index,
                mode,
                flag,
                mtu,
            };
            kernel.create_ipvlan_in(&spec, ns)
        }
    };
    created.map_err(|e| {
        // One rx handler per interface: a parent already serving macvlan cannot serve ipvlan
        // (and vice versa), nor can a bridge or bond port.
        if e.errno() == Some(nix::errno::Errno::EBUSY as i32) {
            return Error::Conflict(format!(
                "the kernel refused a {} link on parent {}: it already carries links of another kind or is a bridge or bond port",
                net.spec.driver.name(),
                parent.name
            ));
        }
        Error::kernel(format!("creating {} {} on parent {}", net.spec.driver.name(), ep.tmp_ifname, parent.name))(e)
    })
}

/// `arp_notify` / `ndisc_notify` make the kernel send a gratuitous ARP and an unsolicited
/// neighbour advertisement for the link's addresses when it comes up. Switches learn the new MAC
/// from it at once; neighbours that already had an entry for the address (a container that came
/// back with a new MAC) update it, and Linux hosts create one only with `arp_accept=1`. They
/// must be set before the link goes up.
fn announce_sysctls(ep: &Endpoint) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if ep.ipv4.is_some() {
        out.push((
            format!("net/ipv4/conf/{}/arp_notify", ep.ifname),
            "1".to_string(),
        ));
    }
    if ep.ipv6.is_some() {
        out.push((
            format!("net/ipv6/conf/{}/ndisc_notify", ep.ifname),
            "1".to_string(),
        ));
    }
    out
}

/// Addresses first, then up (so the announcements carry them), then the default routes (a
/// gateway is only reachable once the link is up and its subnet route exists).
fn configure_addresses<N: Netlink>(
    nl: &mut N,
    index: u32,
    net: &Network,
    ep: &Endpoint,
) -> Result<(), Error> {
    for (family, config) in net.spec.ip_configs() {
        if let Some(addr) = ep.address(family) {
            let addr = IpNet {
                addr,
                prefix: config.subnet.prefix(),
            };
            nl.add_address(index, addr).map_err(Error::kernel(format!(
                "adding {addr} to {} in netns {}",
                ep.ifname, ep.netns
            )))?;
        }
    }
    nl.set_up(index).map_err(Error::kernel(format!(
        "bringing {} up in netns {}",
        ep.ifname, ep.netns
    )))?;
    if net.spec.internal {
        return Ok(());
    }
    for (family, config) in net.spec.ip_configs() {
        if ep.address(family).is_none() {
            continue;
        }
        // ipvlan L3/L3S: a device route, as Docker does (the parent routes, there is no ARP).
        let route = if net.spec.driver.routes_via_device() {
            default_route(family, None, index, net.spec.metric)
        } else if let Some(gateway) = config.gateway {
            default_route(family, Some(gateway), index, net.spec.metric)
        } else {
            continue;
        };
        nl.add_route(&route)
            .map_err(|e| route_error(e, family, net, ep))?;
    }
    Ok(())
}

/// A second network in the same netns with the same metric collides with the first one's
/// default route (the kernel keys IPv4 routes on prefix and metric): say how to fix it.
fn route_error(err: underlay_linux::Error, family: Family, net: &Network, ep: &Endpoint) -> Error {
    if err.errno() == Some(nix::errno::Errno::EEXIST as i32) {
        return Error::Conflict(format!(
            "netns {} already has an {} default route with metric {}: give network {} another metric (-o metric=N) or make it --internal",
            ep.netns,
            family.name(),
            net.spec.metric,
            net.name()
        ));
    }
    Error::kernel(format!(
        "adding the {} default route (metric {}) in netns {}",
        family.name(),
        net.spec.metric,
        ep.netns
    ))(err)
}

fn default_route(family: Family, gateway: Option<IpAddr>, oif: u32, metric: u32) -> Route {
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
        oif,
        metric,
    }
}

/// Where the endpoint's link is now, if it still exists.
pub(crate) enum LinkState {
    /// The netns is gone, or another netns now sits at its path: the link went with it.
    NetnsGone,
    /// The netns is there but holds no link with the endpoint's MAC.
    Missing,
    Present,
}

/// Deletes the endpoint's link if it still exists, under its final or its temporary name, and
/// only if it is the endpoint's (its alias or its unique temporary name says so): a user's own
/// interface of the same name is left alone.
pub(crate) fn delete_endpoint_link<K: Kernel>(
    kernel: &mut K,
    ep: &Endpoint,
) -> Result<LinkState, Error> {
    match endpoint_netlink(kernel, ep)? {
        Some(mut nl) => delete_link_in(&mut nl, ep),
        None => Ok(LinkState::NetnsGone),
    }
}

pub(crate) fn delete_link_in<N: Netlink>(nl: &mut N, ep: &Endpoint) -> Result<LinkState, Error> {
    let mut state = LinkState::Missing;
    for name in [&ep.ifname, &ep.tmp_ifname] {
        if let Some(link) = link_named(nl, name.as_str())?.filter(|l| is_endpoint_link(l, ep)) {
            nl.delete_link(link.index).map_err(Error::kernel(format!(
                "deleting {} in netns {}",
                link.name, ep.netns
            )))?;
            state = LinkState::Present;
        }
    }
    Ok(state)
}

/// Whether the endpoint's link still exists (under any name).
pub(crate) fn endpoint_link_state<K: Kernel>(
    kernel: &mut K,
    ep: &Endpoint,
) -> Result<LinkState, Error> {
    let Some(mut nl) = endpoint_netlink(kernel, ep)? else {
        return Ok(LinkState::NetnsGone);
    };
    let links = nl.links().map_err(Error::kernel(format!(
        "listing links in netns {}",
        ep.netns
    )))?;
    Ok(if links.iter().any(|l| is_endpoint_link(l, ep)) {
        LinkState::Present
    } else {
        LinkState::Missing
    })
}

fn is_endpoint_link(link: &Link, ep: &Endpoint) -> bool {
    link.alias.as_deref() == Some(ep.link_alias().as_str()) || link.name == ep.tmp_ifname.as_str()
}

/// A netlink socket in the endpoint's netns, if the same netns is still at its path.
fn endpoint_netlink<K: Kernel>(kernel: &mut K, ep: &Endpoint) -> Result<Option<K::Nl>, Error> {
    let Some(ns) = open_endpoint_netns(kernel, ep)? else {
        return Ok(None);
    };
    kernel
        .netlink_in(&ns)
        .map(Some)
        .map_err(Error::kernel(format!(
            "opening netlink in netns {}",
            ep.netns
        )))
}

/// The endpoint's netns, if the same one is still at its path.
fn open_endpoint_netns<K: Kernel>(kernel: &mut K, ep: &Endpoint) -> Result<Option<K::Ns>, Error> {
    let path = Path::new(&ep.netns);
    let ns = match kernel.open_netns(path) {
        Ok(Some(ns)) => ns,
        Ok(None) | Err(underlay_linux::Error::NotNetns { .. }) => return Ok(None),
        Err(e) => return Err(Error::kernel(format!("opening netns {}", ep.netns))(e)),
    };
    let id = kernel
        .netns_id(&ns)
        .map_err(Error::kernel(format!("reading netns {}", ep.netns)))?;
    Ok((id == ep.netns_id).then_some(ns))
}

pub(crate) fn link_named<N: Netlink>(nl: &mut N, name: &str) -> Result<Option<Link>, Error> {
    nl.link_by_name(name)
        .map_err(Error::kernel(format!("looking up link {name}")))
}
