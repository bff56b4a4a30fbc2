//! The kernel and address work of one attach, between the reservation and the commit: the
//! link, the DHCP lease, conflict detection, then addresses and routes.
//!
//! Without DHCP or conflict detection the link gets its addresses before it goes up, and the
//! kernel announces them (`arp_notify`). Otherwise the link goes up bare, so that the lease
//! keeper can talk DHCP on it and every address can be probed before it is configured; the
//! announcements are then ours.

use std::net::IpAddr;

use underlay_linux::{Kernel, Link, Netlink};

use crate::crash::crash_point;
use crate::leases::{endpoint_key, ApplyPolicy, LeaseReply, LeaseRequest};
use crate::link::{add_addresses, add_routes, create_link, set_link_up};
use crate::plumbing::{add_lease, link_plan, plumb};
use crate::probe::{announce, probe};
use crate::{Driver, Endpoint, Engine, Error, Family, IpamDriver, Ipv6Mode, LinkPlan, Network};

/// How often a pool address that turned out live is replaced before connect gives up.
const MAX_LIVE_SKIPS: usize = 8;

/// Conflict detection is on unless the network opted out; ipvlan L3/L3S carries no ARP, so
/// there is nothing to probe with (the routed fabric owns those addresses).
pub(crate) fn probes_addresses(net: &Network) -> bool {
    net.spec.ipam.conflict_detection() && !net.spec.driver.routes_via_device()
}

/// The endpoint's link as it is made before its addresses are known (DHCP, probes).
pub(crate) fn bare_link_plan(net: &Network, ep: &Endpoint, parent: &Link) -> LinkPlan {
    let bare = Endpoint {
        ipv4: None,
        ipv6: None,
        ..ep.clone()
    };
    link_plan(net, &bare, parent)
}

/// Which families of an attach were asked for a static address (`--ip`, `--ip6`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Statics {
    pub v4: bool,
    pub v6: bool,
}

impl Statics {
    fn of(self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// The DHCP identity an endpoint presents (see `identity` in underlay-dhcp).
#[derive(Debug, Clone)]
pub(crate) struct DhcpIdentity {
    pub client_id: Vec<u8>,
    pub duid: Vec<u8>,
    pub iaid: u32,
    pub hostname: String,
}

/// What an attach has decided before the kernel work starts.
pub(crate) struct Attach<'a> {
    pub net: &'a Network,
    pub parent: &'a Link,
    pub statics: Statics,
    pub identity: DhcpIdentity,
}

impl<K: Kernel> Engine<K> {
    /// Builds the endpoint's link in `ns`; returns the endpoint with the addresses it ended up
    /// with. On error the caller deletes the link and releases lease and reservations.
    pub(crate) fn build_endpoint(
        &mut self,
        ns: &K::Ns,
        nl: &mut K::Nl,
        attach: &Attach<'_>,
        ep: Endpoint,
    ) -> Result<Endpoint, Error> {
        let (net, parent) = (attach.net, attach.parent);
        let probing = probes_addresses(net) && (ep.ipv4.is_some() || ep.ipv6.is_some());
        if !probing && !net.uses_dhcp() {
            plumb(&mut self.kernel, ns, nl, net, &ep, parent)?;
            return Ok(ep);
        }
        let bare = bare_link_plan(net, &ep, parent);
        let index = create_link(&mut self.kernel, ns, nl, &bare)?;
        set_link_up(nl, index, &bare)?;
        let lease = match net.uses_dhcp() {
            true => Some(self.acquire_lease(net, &ep, &attach.identity)?),
            false => None,
        };
        let mut frames = self
            .kernel
            .frame_socket_in(ns, index)
            .map_err(Error::kernel(format!(
                "opening a packet socket on {} in netns {}",
                ep.ifname, ep.netns
            )))?;
        let ep = match probing {
            true => self.settle_pool_addresses(&mut frames, net, ep, attach.statics)?,
            false => ep,
        };
        let mut plan = link_plan(net, &ep, parent);
        let ep = match &lease {
            Some(lease) => self.record_lease(&ep, lease, &mut plan, net)?,
            None => ep,
        };
        if let Some(mtu) = plan.mtu.filter(|_| lease.is_some()) {
            nl.set_mtu(index, mtu)
                .map_err(Error::kernel(format!("setting mtu {mtu} on {}", ep.ifname)))?;
        }
        add_addresses(nl, index, &plan)?;
        let addresses: Vec<IpAddr> = plan.addresses.iter().map(|a| a.addr).collect();
        announce(&mut frames, ep.mac, &addresses)?;
        add_routes(nl, index, &plan)?;
        crash_point("attach-configured");
        Ok(ep)
    }

    /// Probes the endpoint's pool addresses; one found live is replaced by the next free one
    /// (and stays marked) unless it was asked for statically, which fails the attach.
    pub(crate) fn settle_pool_addresses<F: underlay_linux::FrameSocket>(
        &mut self,
        frames: &mut F,
        net: &Network,
        mut ep: Endpoint,
        statics: Statics,
    ) -> Result<Endpoint, Error> {
        let wait = net.spec.ipam.probe_time();
        let mut pending: Vec<IpAddr> = [ep.ipv4, ep.ipv6].into_iter().flatten().collect();
        let mut skipped = Vec::new();
        while !pending.is_empty() {
            let conflicts = probe(frames, ep.mac, &pending, wait)?;
            pending.clear();
            for conflict in conflicts {
                let family = Family::of(conflict.address);
                let answered_by = crate::MacAddr(conflict.mac);
                if statics.of(family) {
                    return Err(Error::Conflict(format!(
                        "address {} is already in use on the LAN: {answered_by} answered a probe for it",
                        conflict.address
                    )));
                }
                skipped.push(format!("{} (answered by {answered_by})", conflict.address));
                if skipped.len() > MAX_LIVE_SKIPS {
                    return Err(Error::Conflict(format!(
                        "network {} handed out {} addresses in a row that were live on the LAN: {}",
                        net.name(),
                        skipped.len(),
                        skipped.join(", ")
                    )));
                }
                ep = self
                    .state
                    .skip_live_address(net, &ep, family, answered_by)?;
                tracing::warn!(network = %net.name(), endpoint = %ep.name, live = %conflict.address,
                    by = %answered_by, next = ?ep.address(family), "address in use on the LAN: skipped");
                pending.extend(ep.address(family));
            }
        }
        Ok(ep)
    }

    pub(crate) fn acquire_lease(
        &mut self,
        net: &Network,
        ep: &Endpoint,
        identity: &DhcpIdentity,
    ) -> Result<LeaseReply, Error> {
        let ipam = &net.spec.ipam;
        let request = LeaseRequest {
            key: endpoint_key(&ep.id),
            netns: ep.netns.clone(),
            ifname: ep.ifname.to_string(),
            alias: Some(ep.link_alias()),
            client_id: identity.client_id.clone(),
            duid: identity.duid.clone(),
            iaid: identity.iaid,
            hostname: Some(identity.hostname.clone()),
            v4: ipam.driver == IpamDriver::Dhcp,
            v6: net.spec.ipv6_mode() == Ipv6Mode::Dhcpv6,
            broadcast: ipam
                .dhcp_broadcast
                .unwrap_or(matches!(net.spec.driver, Driver::Ipvlan { .. })),
            servers: ipam.dhcp_servers.clone(),
            timeout_ms: ipam.dhcp_timeout().as_millis() as u64,
            probe_ms: probes_addresses(net).then(|| ipam.probe_time().as_millis() as u64),
            apply: ApplyPolicy {
                metric: net.spec.metric,
                default_route: !net.spec.internal,
            },
            vendor_class: None,
            params: Vec::new(),
            options: Vec::new(),
            resend_max_ms: None,
        };
        let leases = self.leases.as_mut().ok_or_else(|| {
            Error::Io(format!(
                "network {} takes addresses from DHCP, but no lease keeper is configured",
                net.name()
            ))
        })?;
        let lease = leases.acquire(&request)?;
        crash_point("attach-leased");
        Ok(lease)
    }

    /// Stores the leased addresses with the endpoint and adds them to the plan.
    fn record_lease(
        &mut self,
        ep: &Endpoint,
        lease: &LeaseReply,
        plan: &mut crate::LinkPlan,
        net: &Network,
    ) -> Result<Endpoint, Error> {
        let mut ep = ep.clone();
        if let Some(v4) = &lease.v4 {
            ep.ipv4 = Some(v4.address.into());
        }
        if let Some(v6) = &lease.v6 {
            ep.ipv6 = Some(v6.address.into());
        }
        self.state.set_endpoint_addresses(&ep)?;
        add_lease(plan, net, lease);
        Ok(ep)
    }
}
