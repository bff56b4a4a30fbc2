//! The kernel work of one endpoint: build its link inside the container's netns, or take it
//! away. Every function here is safe to repeat.

use std::path::Path;

use underlay_linux::{IpNet, Kernel, Link, Netlink, Route};

use crate::leases::{Lease4Info, Lease6Info, LeaseReply, Route4Info};
use crate::link::{default_route, plumb_link, LinkKind, LinkPlan};
use crate::{Driver, Endpoint, Error, Network};

/// Creates and configures the endpoint's link in `ns`. On error the caller rolls back with
/// [`delete_link_in`].
pub(crate) fn plumb<K: Kernel>(
    kernel: &mut K,
    ns: &K::Ns,
    nl: &mut K::Nl,
    net: &Network,
    ep: &Endpoint,
    parent: &Link,
) -> Result<(), Error> {
    plumb_link(kernel, ns, nl, &link_plan(net, ep, parent)).map(drop)
}

/// The engine's endpoint as a [`LinkPlan`]: addresses with the subnets' prefixes, and default
/// routes unless the network is internal (ipvlan L3/L3S: through the device, as Docker does).
pub(crate) fn link_plan(net: &Network, ep: &Endpoint, parent: &Link) -> LinkPlan {
    let kind = match net.spec.driver {
        Driver::Macvlan { mode } => LinkKind::Macvlan {
            mode,
            mac: ep.mac,
            bc_queue_len: None,
        },
        Driver::Ipvlan { mode, flag } => LinkKind::Ipvlan { mode, flag },
    };
    let mut addresses = Vec::new();
    let mut routes = Vec::new();
    for (family, config) in net.spec.ip_configs() {
        let Some(addr) = ep.address(family) else {
            continue;
        };
        addresses.push(IpNet {
            addr,
            prefix: config.subnet.prefix(),
        });
        let via_device = net.spec.driver.routes_via_device();
        if !net.spec.internal && (via_device || config.gateway.is_some()) {
            let gateway = if via_device { None } else { config.gateway };
            routes.push(default_route(family, gateway, net.spec.metric));
        }
    }
    LinkPlan {
        kind,
        parent_index: parent.index,
        parent_name: parent.name.clone(),
        parent_in_container: false,
        tmp_ifname: ep.tmp_ifname.clone(),
        ifname: ep.ifname.clone(),
        alias: ep.link_alias(),
        mtu: net.spec.mtu,
        addresses,
        routes,
        netns: ep.netns.clone(),
        route_conflict_hint: format!(
            "give network {} another metric (-o metric=N) or make it --internal",
            net.name()
        ),
        ipv6_mode: Some(net.spec.ipv6_mode()),
    }
}

/// Adds what a DHCP lease gives to the plan: the addresses with the server's prefix, its
/// routes at the network's metric, and its MTU unless the network sets one.
pub(crate) fn add_lease(plan: &mut LinkPlan, net: &Network, lease: &LeaseReply) {
    if let Some(v4) = &lease.v4 {
        plan.addresses.push(lease4_address(v4));
        plan.routes
            .extend(lease4_routes(v4, net.spec.metric, !net.spec.internal));
        if net.spec.mtu.is_none() {
            plan.mtu = v4.mtu.map(u32::from);
        }
    }
    if let Some(v6) = &lease.v6 {
        plan.addresses.push(lease6_address(v6));
    }
}

pub(crate) fn lease4_address(v4: &Lease4Info) -> IpNet {
    IpNet {
        addr: v4.address.into(),
        prefix: v4.prefix,
    }
}

pub(crate) fn lease6_address(v6: &Lease6Info) -> IpNet {
    IpNet {
        addr: v6.address.into(),
        prefix: v6.prefix,
    }
}

/// The routes of a DHCPv4 lease (option 121, or the default route via the router) at
/// `metric`, on-link ones first so that every gateway is reachable when its route goes in;
/// without `default_route` (an internal network) the default route is left out.
pub(crate) fn lease4_routes(v4: &Lease4Info, metric: u32, default_route: bool) -> Vec<Route> {
    let mut routes: Vec<&Route4Info> = v4
        .routes
        .iter()
        .filter(|r| r.prefix > 0 || default_route)
        .collect();
    routes.sort_by_key(|r| !r.gateway.is_unspecified());
    routes
        .into_iter()
        .map(|r| Route {
            dst: IpNet {
                addr: r.dst.into(),
                prefix: r.prefix,
            },
            gateway: (!r.gateway.is_unspecified()).then_some(r.gateway.into()),
            oif: 0,
            metric,
        })
        .collect()
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
    let state = match endpoint_netlink(kernel, ep)? {
        Some(mut nl) => delete_link_in(&mut nl, ep)?,
        None => LinkState::NetnsGone,
    };
    // A handed-off link the runtime moved back out of its container (Docker does on Leave)
    // is in the host netns under its own name.
    if ep.handoff && !matches!(state, LinkState::Present) {
        let host = delete_link_in(kernel.host(), ep)?;
        if matches!(host, LinkState::Present) {
            return Ok(host);
        }
    }
    Ok(state)
}

pub(crate) fn delete_link_in<N: Netlink>(nl: &mut N, ep: &Endpoint) -> Result<LinkState, Error> {
    if ep.handoff {
        return delete_handed_off(nl, ep);
    }
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

/// A handed-off link may carry any name the runtime gave it: it is found by its alias.
fn delete_handed_off<N: Netlink>(nl: &mut N, ep: &Endpoint) -> Result<LinkState, Error> {
    let links = nl.links().map_err(Error::kernel(format!(
        "listing links in netns {}",
        ep.netns
    )))?;
    let mut state = LinkState::Missing;
    for link in links.iter().filter(|l| is_endpoint_link(l, ep)) {
        nl.delete_link(link.index).map_err(Error::kernel(format!(
            "deleting {} in netns {}",
            link.name, ep.netns
        )))?;
        state = LinkState::Present;
    }
    Ok(state)
}

/// Whether the endpoint's link still exists (under any name).
pub(crate) fn endpoint_link_state<K: Kernel>(
    kernel: &mut K,
    ep: &Endpoint,
) -> Result<LinkState, Error> {
    let state = match endpoint_netlink(kernel, ep)? {
        Some(mut nl) => link_state_in(&mut nl, ep)?,
        None => LinkState::NetnsGone,
    };
    // A handed-off link is in the host netns until the runtime moved it (and after it moved
    // it back).
    if ep.handoff && !matches!(state, LinkState::Present) {
        if let LinkState::Present = link_state_in(kernel.host(), ep)? {
            return Ok(LinkState::Present);
        }
    }
    Ok(state)
}

fn link_state_in<N: Netlink>(nl: &mut N, ep: &Endpoint) -> Result<LinkState, Error> {
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
pub(crate) fn open_endpoint_netns<K: Kernel>(
    kernel: &mut K,
    ep: &Endpoint,
) -> Result<Option<K::Ns>, Error> {
    let path = Path::new(&ep.netns);
    let ns = match kernel.open_netns(path) {
        Ok(Some(ns)) => ns,
        Ok(None) | Err(underlay_linux::Error::NotNetns { .. }) => return Ok(None),
        Err(e) => return Err(Error::kernel(format!("opening netns {}", ep.netns))(e)),
    };
    let id = kernel
        .netns_id(&ns)
        .map_err(Error::kernel(format!("reading netns {}", ep.netns)))?;
    Ok((id == ep.netns_id || ep.netns_id == UNKNOWN_NETNS).then_some(ns))
}

/// The identity of a netns that did not exist yet when it was recorded: a runtime's sandbox
/// is named at Join and created when the container starts.
pub(crate) const UNKNOWN_NETNS: (u64, u64) = (0, 0);

pub(crate) fn link_named<N: Netlink>(nl: &mut N, name: &str) -> Result<Option<Link>, Error> {
    nl.link_by_name(name)
        .map_err(Error::kernel(format!("looking up link {name}")))
}
