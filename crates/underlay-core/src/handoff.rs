//! Handoff endpoints: the container runtime moves the link into the container itself and
//! configures its addresses (Docker's remote network drivers work so). underlay makes the link
//! in the host netns, probes its addresses there (or gets its DHCP lease on it), and hands its
//! name over; the runtime moves it.
//!
//! Docker asks in this order, and each step is one call here:
//!
//! ```text
//! IPAM RequestAddress (v4, then v6) -> prepare_address   row "pending", link in the host netns
//! CreateEndpoint                    -> create_handoff    row "created", the runtime's ID
//! Join (sandbox path)               -> join_handoff      row "attached"; the runtime moves the link
//! Leave                             -> leave_handoff     row "created"; the runtime moved it back
//! DeleteEndpoint                    -> delete_handoff    link, lease, row and addresses gone
//! IPAM ReleaseAddress               -> release_prepared  a pending row the runtime gave up on
//! ```
//!
//! With another IPAM than underlay's, `create_handoff` gets the addresses the runtime chose and
//! does what `prepare_address` would have (reserve, link, probe). Every step that changes the
//! kernel goes through phase `attaching`/`detaching` first, so a crash is rolled back like a
//! connect's (docs/state.md); pending rows the runtime never comes back for expire.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use underlay_linux::{Kernel, Link, Route};

use crate::build::{bare_link_plan, probes_addresses, Statics};
use crate::crash::crash_point;
use crate::identity::dhcp_identity;
use crate::leases::{endpoint_key, LeaseReply};
use crate::link::{create_link, set_link_up};
use crate::names::random_hex;
use crate::parents::host_link;
use crate::plumbing::{delete_endpoint_link, lease4_routes, link_named, UNKNOWN_NETNS};
use crate::state::unix_now;
use crate::{
    Connect, Driver, Endpoint, Engine, Error, Family, IfName, MacAddr, Network, Parent, Phase,
};

/// How long a pending endpoint waits for the runtime's CreateEndpoint.
pub const PENDING_LIFETIME_SECS: u64 = 600;

/// An address for an endpoint the runtime is about to create (Docker's IPAM RequestAddress).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareAddress {
    pub network: String,
    pub family: Option<Family>,
    /// The address asked for (`docker run --ip`), if any.
    pub address: Option<IpAddr>,
    /// The MAC the runtime will give the endpoint; both families' requests carry it.
    pub mac: Option<MacAddr>,
    /// The endpoint's name (the container's), for the DHCP identity.
    pub name: Option<String>,
}

/// What was prepared for one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub address: IpAddr,
    pub prefix: u8,
    pub mac: MacAddr,
}

/// The runtime's CreateEndpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateHandoff {
    pub network: String,
    pub runtime_id: String,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub mac: Option<MacAddr>,
}

/// What the runtime needs to finish the job (Docker's Join answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The link's name in the host netns: the runtime moves it and renames it.
    pub link: IfName,
    pub mac: MacAddr,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    /// Routes besides the default ones (a DHCP server's option 121): `gateway` `None` is
    /// on-link.
    pub routes: Vec<Route>,
}

/// The name a handoff endpoint's DHCP identity follows: the runtime's endpoint name when it
/// sends one (Docker from 29.8 does), else the MAC it gives (`docker run --mac-address` keeps
/// it stable), else nothing stable (a random name).
fn identity_name(name: Option<&str>, mac: Option<MacAddr>) -> String {
    match (name.filter(|n| !n.is_empty()), mac) {
        (Some(name), _) => name.to_string(),
        (None, Some(mac)) => format!("mac-{}", mac.to_string().replace(':', "")),
        (None, None) => String::new(),
    }
}

/// The key a pending endpoint waits under until the runtime names it.
fn pending_key(mac: Option<MacAddr>, name: &str) -> String {
    match mac {
        Some(mac) => format!("pending-mac:{mac}"),
        None => format!("pending-name:{name}"),
    }
}

impl<K: Kernel> Engine<K> {
    /// IPAM side: reserves (or leases) both families' addresses of an endpoint-to-be on a link
    /// made in the host netns, probes them, and returns the one of `family`. The runtime's
    /// second request (the other family) finds the same pending endpoint by its MAC.
    pub fn prepare_address(&mut self, req: &PrepareAddress) -> Result<Prepared, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(&req.network)?;
        let name = identity_name(req.name.as_deref(), req.mac);
        let key = pending_key(req.mac, &name);
        let ep = match self.state.endpoint_by_runtime_id(&net.id, &key)? {
            Some(ep) => self.adjust_pending(&net, ep, req)?,
            None => self.new_handoff(&net, req.mac, &name, [req.address, None], Some(key))?,
        };
        prepared(
            &net,
            &ep,
            req.family.unwrap_or(Family::V4),
            self.lease_of(&net, &ep)?,
        )
    }

    /// A second family's request asked for a specific address: take it instead.
    fn adjust_pending(
        &mut self,
        net: &Network,
        ep: Endpoint,
        req: &PrepareAddress,
    ) -> Result<Endpoint, Error> {
        let Some(want) = req.address else {
            return Ok(ep);
        };
        if ep.address(Family::of(want)) == Some(want) {
            return Ok(ep);
        }
        let ep = self.state.swap_to_static(net, &ep, want)?;
        let (host_ns, _) = self.host_ns()?;
        let index = self.handoff_link(&ep)?.index;
        let mut frames = self
            .kernel
            .frame_socket_in(&host_ns, index)
            .map_err(Error::kernel("opening a packet socket in the host netns"))?;
        let statics = Statics {
            v4: want.is_ipv4(),
            v6: !want.is_ipv4(),
        };
        if net.spec.ipam.conflict_detection() && !net.spec.driver.routes_via_device() {
            return self.settle_pool_addresses(&mut frames, net, ep, statics);
        }
        Ok(ep)
    }

    /// Driver side (Docker's CreateEndpoint): adopts the pending endpoint that holds the
    /// runtime's addresses, or (another IPAM chose them) reserves them and builds the link now.
    pub fn create_handoff(&mut self, req: &CreateHandoff) -> Result<Endpoint, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(&req.network)?;
        if let Some(ep) = self
            .state
            .endpoint_by_runtime_id(&net.id, &req.runtime_id)?
        {
            return Ok(ep); // asked again: the same endpoint
        }
        let addresses: Vec<IpAddr> = [req.ipv4, req.ipv6].into_iter().flatten().collect();
        let pending = match req.mac {
            Some(mac) => self
                .state
                .endpoint_by_runtime_id(&net.id, &pending_key(Some(mac), ""))?,
            None => None,
        };
        let pending = match pending {
            Some(ep) => Some(ep),
            None => self.state.pending_holding(&net.id, &addresses)?,
        };
        let mut ep = match pending {
            Some(ep) => ep,
            None => {
                let name = req.runtime_id.chars().take(12).collect::<String>();
                self.new_handoff(&net, req.mac, &name, [req.ipv4, req.ipv6], None)?
            }
        };
        ep.runtime_id = Some(req.runtime_id.clone());
        ep.phase = Phase::Created;
        self.state.update_endpoint(&ep)?;
        tracing::info!(network = %net.name(), endpoint = %ep.name, runtime_id = %req.runtime_id, "handoff endpoint created");
        Ok(ep)
    }

    /// Driver side (Docker's Join): the runtime is about to move the link into `sandbox`.
    pub fn join_handoff(
        &mut self,
        network: &str,
        runtime_id: &str,
        sandbox: &Path,
    ) -> Result<Handoff, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(network)?;
        let mut ep = self.handoff_endpoint(&net, runtime_id)?;
        let link = self.handoff_link(&ep)?;
        // Docker names the sandbox at Join but creates it when the container starts.
        ep.netns_id = match self.kernel.open_netns(sandbox) {
            Ok(Some(ns)) => self.kernel.netns_id(&ns).map_err(Error::kernel(format!(
                "reading netns {}",
                sandbox.display()
            )))?,
            _ => UNKNOWN_NETNS,
        };
        ep.netns = sandbox.display().to_string();
        ep.phase = Phase::Attached;
        self.state.update_endpoint(&ep)?;
        let lease = self.lease_of(&net, &ep)?;
        if net.uses_dhcp() {
            if let Some(leases) = self.leases.as_mut() {
                leases.relocate(&endpoint_key(&ep.id), &ep.netns, &ep.link_alias())?;
            }
        }
        self.follow_endpoints(&net);
        tracing::info!(network = %net.name(), endpoint = %ep.name, sandbox = %ep.netns, link = %link.name, "handoff endpoint joined");
        Ok(handoff(&net, &ep, lease.as_ref()))
    }

    /// Driver side (Docker's Leave): the runtime moved the link back to the host netns.
    pub fn leave_handoff(&mut self, network: &str, runtime_id: &str) -> Result<(), Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(network)?;
        let mut ep = self.handoff_endpoint(&net, runtime_id)?;
        let (host_ns, host_path) = self.host_ns()?;
        ep.netns_id = self
            .kernel
            .netns_id(&host_ns)
            .map_err(Error::kernel("reading the host netns"))?;
        ep.netns = host_path.display().to_string();
        ep.phase = Phase::Created;
        self.state.update_endpoint(&ep)?;
        if net.uses_dhcp() {
            if let Some(leases) = self.leases.as_mut() {
                leases.relocate(&endpoint_key(&ep.id), &ep.netns, &ep.link_alias())?;
            }
        }
        Ok(())
    }

    /// Driver side (Docker's DeleteEndpoint): lease, link, row and addresses go. Succeeds when
    /// the endpoint is already gone.
    pub fn delete_handoff(&mut self, network: &str, runtime_id: &str) -> Result<bool, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(network)?;
        let Some(ep) = self.state.endpoint_by_runtime_id(&net.id, runtime_id)? else {
            return Ok(false);
        };
        self.detach(&net, &ep)?;
        Ok(true)
    }

    /// IPAM side (Docker's ReleaseAddress): a pending endpoint holding `address` is given up;
    /// an address of an endpoint the runtime created goes with that endpoint instead.
    pub fn release_prepared(&mut self, network: &str, address: IpAddr) -> Result<bool, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(network)?;
        match self.state.pending_holding(&net.id, &[address])? {
            Some(ep) => self.detach(&net, &ep).map(|()| true),
            None => Ok(false),
        }
    }

    /// Deletes pending endpoints older than [`PENDING_LIFETIME_SECS`] (a runtime that died
    /// between its IPAM and driver calls); returns their names.
    pub fn expire_pending(&mut self) -> Result<Vec<String>, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        self.expire_pending_locked()
    }

    pub(crate) fn expire_pending_locked(&mut self) -> Result<Vec<String>, Error> {
        let before = unix_now().saturating_sub(PENDING_LIFETIME_SECS);
        let mut expired = Vec::new();
        for ep in self.state.pending_before(before)? {
            if let Some(net) = self.state.network_by_id(&ep.network_id)? {
                self.detach(&net, &ep)?;
                expired.push(format!("{}/{}", net.name(), ep.name));
            }
        }
        Ok(expired)
    }

    fn handoff_endpoint(&self, net: &Network, runtime_id: &str) -> Result<Endpoint, Error> {
        self.state
            .endpoint_by_runtime_id(&net.id, runtime_id)?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "endpoint {runtime_id} does not exist on network {}",
                    net.name()
                ))
            })
    }

    /// The handed-off link, in the host netns (before the runtime moved it, or after it moved
    /// it back).
    fn handoff_link(&mut self, ep: &Endpoint) -> Result<Link, Error> {
        let alias = ep.link_alias();
        link_named(self.kernel.host(), ep.tmp_ifname.as_str())?
            .filter(|l| l.alias.as_deref() == Some(alias.as_str()))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "the link {} of endpoint {} is not in the host netns",
                    ep.tmp_ifname, ep.name
                ))
            })
    }

    fn host_ns(&mut self) -> Result<(K::Ns, PathBuf), Error> {
        self.kernel
            .host_netns()
            .map_err(Error::kernel("opening the host netns"))
    }

    /// A new handoff endpoint: reservations, its link in the host netns, probes, DHCP; phase
    /// `pending` on success (with `key` as its runtime ID until the runtime names it), nothing
    /// left on failure.
    fn new_handoff(
        &mut self,
        net: &Network,
        mac: Option<MacAddr>,
        name: &str,
        requested: [Option<IpAddr>; 2],
        key: Option<String>,
    ) -> Result<Endpoint, Error> {
        let restorable = !matches!(net.spec.parent, Parent::Link { .. });
        let parent = host_link(&mut self.kernel, &net.parent_name(), restorable)?;
        let (host_ns, host_path) = self.host_ns()?;
        let host_id = self
            .kernel
            .netns_id(&host_ns)
            .map_err(Error::kernel("reading the host netns"))?;
        let id = random_hex(32)?;
        let tmp: IfName = format!("ul{}", &id[..12]).parse()?;
        let name = self.free_name(net, name, &id)?;
        let request = Connect {
            network: net.name().to_string(),
            name: Some(name.clone()),
            mac: mac.map(|m| m.to_string()),
            ..Connect::default()
        };
        let ep = Endpoint {
            id,
            network_id: net.id.clone(),
            name: name.clone(),
            phase: Phase::Attaching,
            netns: host_path.display().to_string(),
            netns_id: host_id,
            ifname: tmp.clone(),
            tmp_ifname: tmp,
            mac: handoff_mac(net, mac, parent.mac, &name)?,
            ipv4: None,
            ipv6: None,
            handoff: true,
            runtime_id: key,
            since: unix_now(),
        };
        let identity = dhcp_identity(net, &name, &request)?;
        let requested = [
            requested.iter().flatten().find(|a| a.is_ipv4()).copied(),
            requested.iter().flatten().find(|a| a.is_ipv6()).copied(),
        ];
        let ep = self.state.begin_attach(net, ep, requested)?;
        crash_point("attach-reserved");
        let statics = Statics {
            v4: requested[0].is_some(),
            v6: requested[1].is_some(),
        };
        match self.build_handoff(&host_ns, net, ep.clone(), &parent, statics, &identity) {
            Ok(mut built) => {
                built.phase = Phase::Pending;
                self.state.update_endpoint(&built)?;
                Ok(built)
            }
            Err(err) => Err(self.roll_back_handoff(net, &ep, err)),
        }
    }

    fn build_handoff(
        &mut self,
        host_ns: &K::Ns,
        net: &Network,
        ep: Endpoint,
        parent: &Link,
        statics: Statics,
        identity: &crate::build::DhcpIdentity,
    ) -> Result<Endpoint, Error> {
        let mut plan = bare_link_plan(net, &ep, parent);
        // Made where the parent is; the runtime sets addresses, routes and IPv6 behaviour.
        plan.parent_in_container = true;
        plan.ipv6_mode = None;
        plan.routes.clear();
        let mut host_nl = self
            .kernel
            .netlink_in(host_ns)
            .map_err(Error::kernel("opening netlink in the host netns"))?;
        let index = create_link(&mut self.kernel, host_ns, &mut host_nl, &plan)?;
        set_link_up(&mut host_nl, index, &plan)?;
        let lease = match net.uses_dhcp() {
            true => Some(self.acquire_lease(net, &ep, identity)?),
            false => None,
        };
        let mut ep = match probes_addresses(net) && (ep.ipv4.is_some() || ep.ipv6.is_some()) {
            true => {
                let mut frames = self
                    .kernel
                    .frame_socket_in(host_ns, index)
                    .map_err(Error::kernel("opening a packet socket in the host netns"))?;
                self.settle_pool_addresses(&mut frames, net, ep, statics)?
            }
            false => ep,
        };
        if let Some(lease) = &lease {
            if let Some(v4) = &lease.v4 {
                ep.ipv4 = Some(v4.address.into());
            }
            if let Some(v6) = &lease.v6 {
                ep.ipv6 = Some(v6.address.into());
            }
            self.state.set_endpoint_addresses(&ep)?;
        }
        crash_point("attach-configured");
        Ok(ep)
    }

    fn roll_back_handoff(&mut self, net: &Network, ep: &Endpoint, err: Error) -> Error {
        if let Err(e) = self.release_lease(net, ep) {
            tracing::warn!(endpoint = %ep.name, error = %e, "could not release the DHCP lease of a failed handoff");
        }
        if let Err(undo) = delete_endpoint_link(&mut self.kernel, ep) {
            return Error::Many(vec![err, undo]);
        }
        match self.state.delete_endpoint(net, &ep.id) {
            Ok(()) => err,
            Err(undo) => Error::Many(vec![err, undo]),
        }
    }

    /// `name`, or `name-<6 hex>` when the network already has an endpoint of that name (a
    /// stale one), or 12 hex digits of the ID when there is no name.
    fn free_name(&self, net: &Network, name: &str, id: &str) -> Result<String, Error> {
        if name.is_empty() || crate::request::check_endpoint_name(name).is_err() {
            return Ok(id[..12].to_string());
        }
        let taken = self
            .state
            .endpoints(&net.id)?
            .iter()
            .any(|e| e.name == name);
        Ok(match taken {
            true => format!("{name}-{}", &id[..6]),
            false => name.to_string(),
        })
    }

    /// The lease of a DHCP endpoint, as the keeper stored it.
    fn lease_of(&self, net: &Network, ep: &Endpoint) -> Result<Option<LeaseReply>, Error> {
        if !net.uses_dhcp() {
            return Ok(None);
        }
        Ok(self.state.lease(&endpoint_key(&ep.id))?.map(|l| l.lease))
    }
}

/// The MAC of a new handoff endpoint: the runtime's, the derived one on DHCP networks, or a
/// random one; ipvlan links always carry their parent's.
fn handoff_mac(
    net: &Network,
    asked: Option<MacAddr>,
    parent: Option<[u8; 6]>,
    name: &str,
) -> Result<MacAddr, Error> {
    match (&net.spec.driver, asked) {
        (Driver::Ipvlan { .. }, _) => Ok(MacAddr(parent.unwrap_or_default())),
        (Driver::Macvlan { .. }, Some(mac)) => Ok(mac),
        (Driver::Macvlan { .. }, None) if net.uses_dhcp() => {
            Ok(crate::identity::derived_mac(net, name))
        }
        (Driver::Macvlan { .. }, None) => MacAddr::random(),
    }
}

fn prepared(
    net: &Network,
    ep: &Endpoint,
    family: Family,
    lease: Option<LeaseReply>,
) -> Result<Prepared, Error> {
    let address = ep.address(family).ok_or_else(|| {
        Error::invalid(format!(
            "network {} gives no {} address",
            net.name(),
            family.name()
        ))
    })?;
    let leased = lease.as_ref().and_then(|l| match family {
        Family::V4 => l.v4.as_ref().map(|v| v.prefix),
        Family::V6 => l.v6.as_ref().map(|v| v.prefix),
    });
    let prefix = leased
        .or_else(|| net.spec.ip_config(family).map(|c| c.subnet.prefix()))
        .unwrap_or(match family {
            Family::V4 => 32,
            Family::V6 => 128,
        });
    Ok(Prepared {
        address,
        prefix,
        mac: ep.mac,
    })
}

/// The Join answer: gateways from the network's subnets (none on internal networks, none on
/// ipvlan L3, which routes through the device), or from the DHCP lease.
fn handoff(net: &Network, ep: &Endpoint, lease: Option<&LeaseReply>) -> Handoff {
    let routed = !net.spec.internal && !net.spec.driver.routes_via_device();
    let gateway = |family: Family| {
        routed
            .then(|| net.spec.ip_config(family).and_then(|c| c.gateway))
            .flatten()
    };
    let mut out = Handoff {
        link: ep.tmp_ifname.clone(),
        mac: ep.mac,
        gateway4: gateway(Family::V4),
        gateway6: gateway(Family::V6),
        routes: Vec::new(),
    };
    if let Some(v4) = lease.and_then(|l| l.v4.as_ref()) {
        let routes = lease4_routes(v4, net.spec.metric, routed);
        out.gateway4 = routes
            .iter()
            .find(|r| r.dst.prefix == 0)
            .and_then(|r| r.gateway);
        out.routes = routes.into_iter().filter(|r| r.dst.prefix > 0).collect();
    }
    out
}
