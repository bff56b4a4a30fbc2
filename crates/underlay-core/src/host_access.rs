//! Host access: macvlan (and ipvlan) children cannot talk to their parent, so a container on
//! the underlay cannot reach its own host. A network with host access gets a link of the host's
//! own on the parent (the "shim", `ulh<12 of the ID>`): a macvlan in bridge mode (an ipvlan in
//! the network's mode and flag), owned like a VLAN parent, with an address from each pool
//! (or `-o host_access_ip=`), added as a /32 (/128) so it adds no subnet route that would
//! compete with the parent's own. The host then routes each endpoint's addresses through the
//! shim (one /32 or /128 per address, kept in step with the endpoints), and the containers
//! reach the host at the shim's addresses, which are in their subnet.

use std::collections::BTreeSet;
use std::net::IpAddr;

use underlay_linux::{IpNet, IpvlanSpec, Kernel, Link, MacvlanMode, MacvlanSpec, Netlink, Route};

use crate::parents::host_link;
use crate::plumbing::link_named;
use crate::{Driver, Engine, Error, MacAddr, Network, Parent, Phase};

/// Owner recorded for a shim in `owned_parents`.
pub(crate) const SHIM_KIND: &str = "shim";

fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl<K: Kernel> Engine<K> {
    /// `network update NAME --host-access on|off`.
    pub fn set_host_access(&mut self, name: &str, on: bool) -> Result<Network, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(name)?;
        match (on, net.spec.host_access.is_some()) {
            (true, true) | (false, false) => Ok(net),
            (true, false) => {
                let access = crate::request::host_access(
                    &[("host_access".to_string(), "true".to_string())].into(),
                    net.spec.ipv4.as_ref(),
                    net.spec.ipv6.as_ref(),
                    &net.spec.ipam,
                )?;
                let net = self.state.set_host_access(&net, access)?;
                if let Err(err) = self.ensure_shim(&net) {
                    let _ = self.remove_shim(&net);
                    let _ = self.state.set_host_access(&net, None);
                    return Err(err);
                }
                Ok(net)
            }
            (false, true) => {
                self.remove_shim(&net)?;
                self.state.set_host_access(&net, None)
            }
        }
    }

    /// Makes the shim of a network with host access exist, carry its addresses and route to
    /// every endpoint.
    pub(crate) fn ensure_shim(&mut self, net: &Network) -> Result<(), Error> {
        if net.spec.host_access.is_none() {
            return Ok(());
        }
        let name = net.shim_name();
        let link = match link_named(self.kernel.host(), name.as_str())? {
            Some(link) => link,
            None => self.create_shim(net)?,
        };
        let have = self
            .kernel
            .host()
            .addresses(link.index)
            .map_err(Error::kernel(format!("listing addresses of {name}")))?;
        for ip in self.state.host_access_addresses(net)? {
            let addr = IpNet {
                addr: ip,
                prefix: host_prefix(ip),
            };
            if !have.contains(&addr) {
                self.kernel
                    .host()
                    .add_address(link.index, addr)
                    .map_err(Error::kernel(format!("adding {addr} to {name}")))?;
            }
        }
        self.reconcile_shim_routes(net)
    }

    fn create_shim(&mut self, net: &Network) -> Result<Link, Error> {
        let name = net.shim_name();
        let restorable = !matches!(net.spec.parent, Parent::Link { .. });
        let parent = host_link(&mut self.kernel, &net.parent_name(), restorable)?;
        // Recorded before it exists, like every link underlay owns (docs/state.md).
        self.state.insert_owned_parent(name.as_str(), SHIM_KIND)?;
        let host = self.kernel.host();
        let created = match net.spec.driver {
            Driver::Macvlan { .. } => host.create_macvlan(&MacvlanSpec {
                name: name.to_string(),
                parent: parent.index,
                mode: MacvlanMode::Bridge,
                mac: Some(MacAddr::random()?.0),
                mtu: net.spec.mtu,
                bc_queue_len: None,
            }),
            Driver::Ipvlan { mode, flag } => host.create_ipvlan(&IpvlanSpec {
                name: name.to_string(),
                parent: parent.index,
                mode,
                flag,
                mtu: net.spec.mtu,
            }),
        };
        created.map_err(Error::kernel(format!("creating host access link {name}")))?;
        let link = link_named(self.kernel.host(), name.as_str())?
            .ok_or_else(|| Error::Io(format!("{name} vanished after creation")))?;
        self.kernel
            .host()
            .set_alias(link.index, &format!("underlay-host:{}", net.id))
            .map_err(Error::kernel(format!("marking {name}")))?;
        self.kernel
            .host()
            .set_up(link.index)
            .map_err(Error::kernel(format!("bringing {name} up")))?;
        tracing::info!(network = %net.name(), link = %name, "host access link created");
        Ok(link)
    }

    /// Deletes the shim (if underlay made it) and forgets it.
    pub(crate) fn remove_shim(&mut self, net: &Network) -> Result<(), Error> {
        let name = net.shim_name();
        if !self.state.is_owned_parent(name.as_str())? {
            return Ok(());
        }
        if let Some(link) = link_named(self.kernel.host(), name.as_str())? {
            self.kernel
                .host()
                .delete_link(link.index)
                .map_err(Error::kernel(format!("deleting host access link {name}")))?;
        }
        self.state.delete_owned_parent(name.as_str())
    }

    /// Makes the shim's host routes exactly the network's attached endpoints' addresses.
    pub(crate) fn reconcile_shim_routes(&mut self, net: &Network) -> Result<(), Error> {
        if net.spec.host_access.is_none() {
            return Ok(());
        }
        let name = net.shim_name();
        let Some(link) = link_named(self.kernel.host(), name.as_str())? else {
            return Ok(()); // restore (or the supervisor) recreates it with its routes
        };
        let own: BTreeSet<IpAddr> = self.state.host_access_addresses(net)?.into_iter().collect();
        let wanted: BTreeSet<IpAddr> = self
            .state
            .endpoints(&net.id)?
            .iter()
            .filter(|e| e.phase == Phase::Attached)
            .flat_map(|e| [e.ipv4, e.ipv6])
            .flatten()
            .filter(|ip| !own.contains(ip))
            .collect();
        let routes = self
            .kernel
            .host()
            .routes(link.index)
            .map_err(Error::kernel(format!("listing routes of {name}")))?;
        let host_route = |r: &Route| r.gateway.is_none() && r.dst.prefix == host_prefix(r.dst.addr);
        let present: BTreeSet<IpAddr> = routes
            .iter()
            .filter(|r| host_route(r))
            .map(|r| r.dst.addr)
            .collect();
        for route in routes
            .iter()
            .filter(|r| host_route(r) && !wanted.contains(&r.dst.addr))
        {
            self.kernel
                .host()
                .delete_route(route)
                .map_err(Error::kernel(format!(
                    "deleting route {} from {name}",
                    route.dst
                )))?;
        }
        for ip in wanted.difference(&present) {
            let route = Route {
                dst: IpNet {
                    addr: *ip,
                    prefix: host_prefix(*ip),
                },
                gateway: None,
                oif: link.index,
                metric: 0,
            };
            self.kernel
                .host()
                .add_route(&route)
                .map_err(Error::kernel(format!(
                    "adding route {} via {name}",
                    route.dst
                )))?;
        }
        Ok(())
    }

    /// After a change to a network's endpoints: the shim's routes follow (a failure is logged;
    /// the next reconcile, from `gc`, `restore` or the supervisor, repairs it).
    pub(crate) fn follow_endpoints(&mut self, net: &Network) {
        if let Err(e) = self.reconcile_shim_routes(net) {
            tracing::warn!(network = %net.name(), error = %e, "could not update the host access routes");
        }
    }
}
