//! The kernel work of one endpoint: build its link inside the container's netns, or take it
//! away. Every function here is safe to repeat.

use std::net::IpAddr;
use std::path::Path;

use underlay_linux::{IpNet, Kernel, Link, MacvlanSpec, Netlink, Route};

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
    let Driver::Macvlan { mode } = net.spec.driver;
    let spec = MacvlanSpec {
        name: ep.tmp_ifname.to_string(),
        parent: parent.index,
        mode,
        mac: Some(ep.mac.0),
        mtu: net.spec.mtu,
    };
    // Created straight inside the container's netns: it never shows up in the host's, so a
    // crash cannot leave it there, and two attaches cannot race for a host-side name.
    kernel
        .create_macvlan_in(&spec, ns)
        .map_err(Error::kernel(format!(
            "creating macvlan {} on parent {}",
            spec.name, parent.name
        )))?;
    crash_point("attach-link-created");
    let index = link_named(nl, ep.tmp_ifname.as_str())?
        .ok_or_else(|| Error::Io(format!("macvlan {} vanished after creation", ep.tmp_ifname)))?
        .index;
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
        if ep.address(family).is_some() {
            let route = default_route(family, config.gateway, index, net.spec.metric);
            nl.add_route(&route)
                .map_err(|e| route_error(e, family, net, ep, config.gateway))?;
        }
    }
    Ok(())
}

/// A second network in the same netns with the same metric collides with the first one's
/// default route (the kernel keys IPv4 routes on prefix and metric): say how to fix it.
fn route_error(
    err: underlay_linux::Error,
    family: Family,
    net: &Network,
    ep: &Endpoint,
    gateway: IpAddr,
) -> Error {
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
        "adding default route via {gateway} (metric {}) in netns {}",
        net.spec.metric, ep.netns
    ))(err)
}

fn default_route(family: Family, gateway: IpAddr, oif: u32, metric: u32) -> Route {
    let any: IpAddr = match family {
        Family::V4 => IpAddr::from([0u8; 4]),
        Family::V6 => IpAddr::from([0u8; 16]),
    };
    Route {
        dst: IpNet {
            addr: any,
            prefix: 0,
        },
        gateway: Some(gateway),
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

/// Deletes the endpoint's link if it still exists (under its final or its temporary name, and
/// only if it carries the endpoint's MAC: a user's own interface of that name is left alone).
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
        if let Some(link) = link_named(nl, name.as_str())?.filter(|l| l.mac == Some(ep.mac.0)) {
            nl.delete_link(link.index).map_err(Error::kernel(format!(
                "deleting {} in netns {}",
                link.name, ep.netns
            )))?;
            state = LinkState::Present;
        }
    }
    Ok(state)
}

/// Whether the endpoint's link still exists (under any name, matched by MAC).
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
    Ok(if links.iter().any(|l| l.mac == Some(ep.mac.0)) {
        LinkState::Present
    } else {
        LinkState::Missing
    })
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
