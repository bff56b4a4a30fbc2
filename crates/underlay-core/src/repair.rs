//! Endpoints whose link is gone. A container that went away takes its netns (and the link)
//! with it: its addresses are released. A link gone while its netns lives means the parent
//! went away under it (a NIC reset, a rebuilt bond, a deleted and recreated VLAN): once the
//! parent is back, the link is made again in the same netns, with the same name, MAC,
//! addresses and routes, and the kernel announces it (`arp_notify`, `ndisc_notify`).

use underlay_linux::Kernel;

use crate::leases::endpoint_key;
use crate::link::plumb_link;
use crate::parents::host_link;
use crate::plumbing::{add_lease, endpoint_link_state, link_plan, LinkState};
use crate::{Driver, Endpoint, Engine, Error, MacAddr, Network, Parent, Phase};

impl<K: Kernel> Engine<K> {
    /// Releases endpoints whose netns is gone and relinks those whose link alone is; returns
    /// (released, relinked) as `network/endpoint`. Runs under the operation lock.
    pub(crate) fn settle_endpoints(&mut self) -> Result<(Vec<String>, Vec<String>), Error> {
        let (mut released, mut relinked) = (Vec::new(), Vec::new());
        for ep in self.state.all_endpoints()? {
            let Some(net) = self.state.network_by_id(&ep.network_id)? else {
                continue;
            };
            let label = format!("{}/{}", net.name(), ep.name);
            match endpoint_link_state(&mut self.kernel, &ep)? {
                LinkState::Present => {}
                LinkState::Missing if relinkable(&ep) => match self.relink(&net, &ep) {
                    Ok(true) => relinked.push(label),
                    Ok(false) => {} // the parent is not back yet
                    Err(e) => {
                        tracing::warn!(endpoint = %label, error = %e, "could not recreate the endpoint's link yet")
                    }
                },
                LinkState::Missing | LinkState::NetnsGone => {
                    if let Err(e) = self.release_lease(&net, &ep) {
                        tracing::warn!(endpoint = %label, error = %e, "could not release the DHCP lease of a vanished endpoint");
                    }
                    self.state.delete_endpoint(&net, &ep.id)?;
                    self.follow_endpoints(&net);
                    released.push(label);
                }
            }
        }
        Ok((released, relinked))
    }

    /// Makes the endpoint's link again in its netns; `Ok(false)` while its parent is missing.
    fn relink(&mut self, net: &Network, ep: &Endpoint) -> Result<bool, Error> {
        let restorable = !matches!(net.spec.parent, Parent::Link { .. });
        let parent = match host_link(&mut self.kernel, &net.parent_name(), restorable) {
            Ok(parent) => parent,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut ep = ep.clone();
        // ipvlan links carry their parent's MAC, and a recreated parent may have a new one.
        if let (Driver::Ipvlan { .. }, Some(mac)) = (&net.spec.driver, parent.mac) {
            ep.mac = MacAddr(mac);
        }
        let ns = self
            .kernel
            .open_netns(std::path::Path::new(&ep.netns))
            .map_err(Error::kernel(format!("opening netns {}", ep.netns)))?
            .ok_or_else(|| Error::NotFound(format!("netns {} is gone", ep.netns)))?;
        let mut nl = self.kernel.netlink_in(&ns).map_err(Error::kernel(format!(
            "opening netlink in netns {}",
            ep.netns
        )))?;
        let mut plan = link_plan(net, &pool_only(net, &ep), &parent);
        if net.uses_dhcp() {
            if let Some(stored) = self.state.lease(&endpoint_key(&ep.id))? {
                add_lease(&mut plan, net, &stored.lease);
            }
        }
        plumb_link(&mut self.kernel, &ns, &mut nl, &plan)?;
        self.state.update_endpoint(&ep)?;
        self.follow_endpoints(net);
        tracing::info!(network = %net.name(), endpoint = %ep.name, netns = %ep.netns, "endpoint link recreated");
        Ok(true)
    }
}

/// Only links underlay put into the netns itself can be made again there: a runtime that
/// moved a handed-off link named it, and configured it, itself.
fn relinkable(ep: &Endpoint) -> bool {
    ep.phase == Phase::Attached && !ep.handoff
}

/// The endpoint with only its pool addresses: leased ones come from the stored lease, with
/// their own prefixes.
fn pool_only(net: &Network, ep: &Endpoint) -> Endpoint {
    let mut out = ep.clone();
    for family in [crate::Family::V4, crate::Family::V6] {
        if net.pool(family).is_none() {
            out.set_address(family, None);
        }
    }
    out
}
