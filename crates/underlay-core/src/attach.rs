//! `connect` and `disconnect`: the endpoint half of the engine.

use std::net::IpAddr;
use std::path::Path;

use underlay_linux::Kernel;

use crate::build::{Attach, Statics};
use crate::crash::crash_point;
use crate::engine::is_passthru;
use crate::identity::{derived_mac, dhcp_identity};
use crate::leases::endpoint_key;
use crate::names::random_hex;
use crate::parents::host_link;
use crate::plumbing::{delete_endpoint_link, delete_link_in, link_named};
use crate::request::check_endpoint_name;
use crate::state::unix_now;
use crate::{
    Connect, Disconnect, Driver, Endpoint, Engine, Error, Family, MacAddr, Network, Parent, Phase,
    Target,
};

impl<K: Kernel> Engine<K> {
    /// `connect`: reserves addresses, then builds the link; any failure undoes both.
    pub fn connect(&mut self, req: &Connect) -> Result<Endpoint, Error> {
        req.validate()?;
        let target = Target::parse(&req.target)?;
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(&req.network)?;
        let requested = [
            requested_ip(&net, req, Family::V4)?,
            requested_ip(&net, req, Family::V6)?,
        ];
        let path = target.path();
        let ns = self.open_target(&path, &req.target)?;
        let netns_id = self
            .kernel
            .netns_id(&ns)
            .map_err(Error::kernel(format!("reading netns {}", path.display())))?;
        let restorable = !matches!(net.spec.parent, Parent::Link { .. });
        let parent = host_link(&mut self.kernel, &net.parent_name(), restorable)?;
        let parent_mac = MacAddr(parent.mac.unwrap_or_default());
        let ep = self.new_endpoint(&net, req, &target, &path, netns_id, parent_mac)?;
        let mut nl = self.kernel.netlink_in(&ns).map_err(Error::kernel(format!(
            "opening netlink in netns {}",
            path.display()
        )))?;
        if link_named(&mut nl, ep.ifname.as_str())?.is_some() {
            return Err(Error::Conflict(format!(
                "interface {} already exists in netns {}",
                ep.ifname,
                path.display()
            )));
        }
        let identity = dhcp_identity(&net, &ep.name, req)?;
        let ep = self.state.begin_attach(&net, ep, requested)?;
        crash_point("attach-reserved");
        let attach = Attach {
            net: &net,
            parent: &parent,
            statics: Statics {
                v4: requested[0].is_some(),
                v6: requested[1].is_some(),
            },
            identity,
        };
        let built = self.build_endpoint(&ns, &mut nl, &attach, ep.clone());
        let ep = match built {
            Ok(ep) => ep,
            Err(err) => return Err(self.roll_back_attach(&mut nl, &net, &ep, err)),
        };
        self.state.set_phase(&ep.id, Phase::Attached)?;
        crash_point("attach-committed");
        self.follow_endpoints(&net);
        tracing::info!(network = %net.name(), endpoint = %ep.name, netns = %ep.netns, mac = %ep.mac,
            ipv4 = ?ep.ipv4, ipv6 = ?ep.ipv6, "endpoint attached");
        Ok(Endpoint {
            phase: Phase::Attached,
            ..ep
        })
    }

    fn roll_back_attach(
        &mut self,
        nl: &mut K::Nl,
        net: &Network,
        ep: &Endpoint,
        err: Error,
    ) -> Error {
        // The lease goes first, while the link can still carry the RELEASE. A link that
        // cannot be deleted keeps the intent recorded (phase attaching, holding its addresses):
        // the next command's recovery finishes the rollback.
        if let Err(e) = self.release_lease(net, ep) {
            tracing::warn!(endpoint = %ep.name, error = %e, "could not release the DHCP lease of a failed attach");
        }
        if let Err(undo) = delete_link_in(nl, ep) {
            return Error::Many(vec![err, undo]);
        }
        match self.state.delete_endpoint(net, &ep.id) {
            Ok(()) => err,
            Err(undo) => Error::Many(vec![err, undo]),
        }
    }

    fn open_target(&mut self, path: &Path, as_given: &str) -> Result<K::Ns, Error> {
        self.kernel
            .open_netns(path)
            .map_err(|e| match e {
                underlay_linux::Error::NotNetns { .. } => {
                    Error::invalid(format!("target {as_given}: {e}"))
                }
                e => Error::kernel(format!("opening netns {}", path.display()))(e),
            })?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "target netns {as_given} does not exist ({} is missing)",
                    path.display()
                ))
            })
    }

    fn new_endpoint(
        &self,
        net: &Network,
        req: &Connect,
        target: &Target,
        path: &Path,
        netns_id: (u64, u64),
        parent_mac: MacAddr,
    ) -> Result<Endpoint, Error> {
        if let Some(existing) = self.state.endpoint_in_netns(&net.id, netns_id)? {
            return Err(Error::Conflict(format!(
                "netns {} is already connected to network {} as endpoint {}",
                path.display(),
                net.name(),
                existing.name
            )));
        }
        if is_passthru(net) && self.state.endpoint_count(&net.id)? > 0 {
            return Err(Error::Conflict(format!(
                "network {} is in passthru mode and already has an endpoint",
                net.name()
            )));
        }
        let id = random_hex(32)?;
        let name = match req.name.clone().or_else(|| target.default_endpoint_name()) {
            Some(name) => name,
            None => id[..12].to_string(),
        };
        check_endpoint_name(&name)?;
        let mac = endpoint_mac(net, req, parent_mac, &name)?;
        Ok(Endpoint {
            network_id: net.id.clone(),
            name,
            phase: Phase::Attaching,
            netns: path.display().to_string(),
            netns_id,
            ifname: req.ifname()?,
            // "ul" + 12 hex digits: unique per endpoint, 14 bytes, fits IFNAMSIZ.
            tmp_ifname: format!("ul{}", &id[..12]).parse()?,
            mac,
            ipv4: None,
            ipv6: None,
            handoff: false,
            runtime_id: None,
            since: unix_now(),
            id,
        })
    }

    /// `disconnect`: TARGET is an endpoint name or a netns (name, path, PID).
    pub fn disconnect(&mut self, req: &Disconnect) -> Result<Endpoint, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        let net = self.network(&req.network)?;
        let ep = self.find_endpoint(&net, &req.target)?;
        self.detach(&net, &ep)?;
        Ok(ep)
    }

    fn find_endpoint(&mut self, net: &Network, target: &str) -> Result<Endpoint, Error> {
        // An endpoint name need not parse as a target; a netns is matched by identity (it may
        // have been reached by another path) or, when it is gone, by the path recorded.
        let path = Target::parse(target).map(|t| t.path()).ok();
        let netns_id = match path.as_deref().map(|p| self.kernel.open_netns(p)) {
            Some(Ok(Some(ns))) => self.kernel.netns_id(&ns).ok(),
            _ => None,
        };
        let path_text = path.map(|p| p.display().to_string()).unwrap_or_default();
        self.state
            .find_endpoint(&net.id, target, netns_id, &path_text)?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{target} is not connected to network {}",
                    net.name()
                ))
            })
    }

    /// Marks, unplumbs, forgets. A crash in between leaves phase `Detaching`, which recovery
    /// finishes. A DHCP lease is given back first, while the link can still say so; a keeper
    /// that cannot be reached does not block the detach (it drops leases of endpoints that are
    /// gone by itself).
    pub(crate) fn detach(&mut self, net: &Network, ep: &Endpoint) -> Result<(), Error> {
        self.state.set_phase(&ep.id, Phase::Detaching)?;
        crash_point("detach-marked");
        if let Err(e) = self.release_lease(net, ep) {
            tracing::warn!(network = %net.name(), endpoint = %ep.name, error = %e, "could not release the DHCP lease");
        }
        delete_endpoint_link(&mut self.kernel, ep)?;
        crash_point("detach-unplumbed");
        self.state.delete_endpoint(net, &ep.id)?;
        self.follow_endpoints(net);
        tracing::info!(network = %net.name(), endpoint = %ep.name, "endpoint detached");
        Ok(())
    }
}

impl<K: Kernel> Engine<K> {
    /// Gives an endpoint's DHCP lease back, if its network uses DHCP.
    pub(crate) fn release_lease(&mut self, net: &Network, ep: &Endpoint) -> Result<(), Error> {
        if !net.uses_dhcp() {
            return Ok(());
        }
        match self.leases.as_mut() {
            Some(leases) => leases.release(&endpoint_key(&ep.id)).map(drop),
            None => Err(Error::Io(format!(
                "network {} uses DHCP, but no lease keeper is configured",
                net.name()
            ))),
        }
    }
}

fn requested_ip(net: &Network, req: &Connect, family: Family) -> Result<Option<IpAddr>, Error> {
    let ip = req.requested_ip(family)?;
    if let (Some(ip), None) = (ip, net.spec.ip_config(family)) {
        return Err(Error::invalid(format!(
            "network {} has no {} subnet for {ip}",
            net.name(),
            family.name()
        )));
    }
    Ok(ip)
}

/// A random locally administered MAC unless `--mac` (on DHCP networks: the derived, stable
/// one, which a DHCP reservation can follow); ipvlan slaves always have the parent's.
fn endpoint_mac(
    net: &Network,
    req: &Connect,
    parent_mac: MacAddr,
    name: &str,
) -> Result<MacAddr, Error> {
    match (&net.spec.driver, req.mac()?) {
        (Driver::Ipvlan { .. }, Some(_)) => Err(Error::invalid(format!(
            "ipvlan endpoints share their parent's MAC: --mac cannot be used on ipvlan network {}",
            net.name()
        ))),
        (Driver::Ipvlan { .. }, None) => Ok(parent_mac),
        (Driver::Macvlan { .. }, Some(mac)) => Ok(mac),
        (Driver::Macvlan { .. }, None) if net.uses_dhcp() => Ok(derived_mac(net, name)),
        (Driver::Macvlan { .. }, None) => MacAddr::random(),
    }
}
