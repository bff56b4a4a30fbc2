//! The use cases every front-end calls: create/remove networks, connect/disconnect endpoints,
//! garbage-collect.
//!
//! Each mutating call takes the operation lock, first rolls back what dead processes left
//! half-done, validates everything it can before it changes anything, and orders its work so
//! that a crash at any point leaves a state that the next call repairs (docs/state.md).

use std::path::Path;

use underlay_linux::{Kernel, Link, MacvlanMode};

use crate::crash::crash_point;
use crate::names::random_hex;
use crate::plumbing::{
    delete_endpoint_link, delete_link_in, endpoint_link_state, link_named, plumb, LinkState,
};
use crate::recover::recover;
use crate::request::check_endpoint_name;
use crate::state::now_rfc3339;
use crate::{
    Connect, CreateNetwork, Disconnect, Driver, Endpoint, Error, Family, IfName, MacAddr, Network,
    Phase, State, Target,
};

/// What `gc` cleaned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Endpoints of interrupted operations, rolled back.
    pub rolled_back: Vec<String>,
    /// Endpoints whose netns or link is gone; their addresses were released.
    pub released: Vec<String>,
}

/// The engine: a kernel and a state.
pub struct Engine<K: Kernel> {
    kernel: K,
    state: State,
}

impl<K: Kernel> Engine<K> {
    pub fn new(kernel: K, state: State) -> Self {
        Engine { kernel, state }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn kernel(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// `network create`.
    pub fn create_network(&mut self, req: &CreateNetwork) -> Result<Network, Error> {
        let spec = req.validate()?;
        let _lock = self.state.lock()?;
        recover(&mut self.kernel, &mut self.state)?;
        if self.state.network(&spec.name)?.is_some() {
            return Err(Error::Conflict(format!(
                "network {} already exists",
                spec.name
            )));
        }
        let parent = self.host_parent(&spec.parent)?;
        if let Some(mtu) = spec.mtu.filter(|mtu| *mtu > parent.mtu) {
            return Err(Error::invalid(format!(
                "mtu {mtu} is larger than the mtu {} of parent {}",
                parent.mtu, parent.name
            )));
        }
        let net = Network {
            id: random_hex(32)?,
            created: now_rfc3339(),
            spec,
        };
        self.check_parent_sharing(&net)?;
        self.state.insert_network(&net)?;
        tracing::info!(network = %net.name(), id = %net.id, parent = %net.spec.parent, "network created");
        Ok(net)
    }

    /// The parent link in the host namespace: it must exist and not be loopback.
    fn host_parent(&mut self, name: &IfName) -> Result<Link, Error> {
        let link = link_named(self.kernel.host(), name.as_str())?
            .ok_or_else(|| Error::NotFound(format!("parent interface {name} does not exist")))?;
        if link.loopback {
            return Err(Error::invalid(format!(
                "parent interface {name} is a loopback interface"
            )));
        }
        Ok(link)
    }

    /// Several macvlan networks may share a parent, but not with overlapping subnets, and a
    /// passthru network takes its parent for itself (the kernel allows one passthru macvlan).
    fn check_parent_sharing(&self, net: &Network) -> Result<(), Error> {
        for other in self.state.networks()? {
            if other.spec.parent != net.spec.parent {
                continue;
            }
            if is_passthru(&other) || is_passthru(net) {
                return Err(Error::Conflict(format!(
                    "parent {} is already used by network {}, and passthru mode needs the parent for itself",
                    net.spec.parent,
                    other.name()
                )));
            }
            for (family, mine) in net.spec.ip_configs() {
                if let Some(theirs) = other
                    .spec
                    .ip_config(family)
                    .filter(|t| t.subnet.overlaps(&mine.subnet))
                {
                    return Err(Error::Conflict(format!(
                        "subnet {} overlaps subnet {} of network {} on the same parent {}",
                        mine.subnet,
                        theirs.subnet,
                        other.name(),
                        net.spec.parent
                    )));
                }
            }
        }
        Ok(())
    }

    /// `network rm`: refuses while endpoints are attached unless `force`, which detaches them.
    pub fn remove_network(&mut self, name: &str, force: bool) -> Result<Network, Error> {
        let _lock = self.state.lock()?;
        recover(&mut self.kernel, &mut self.state)?;
        let net = self.network(name)?;
        let endpoints = self.state.endpoints(&net.id)?;
        if !endpoints.is_empty() && !force {
            let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
            return Err(Error::Conflict(format!(
                "network {} has {} attached endpoint(s) ({}): disconnect them first or use --force",
                net.name(),
                endpoints.len(),
                names.join(", ")
            )));
        }
        for ep in &endpoints {
            self.detach(&net, ep)?;
        }
        crash_point("rm-detached");
        self.state.delete_network(&net)?;
        tracing::info!(network = %net.name(), detached = endpoints.len(), "network removed");
        Ok(net)
    }

    /// `connect`: reserves addresses, then builds the link; any failure undoes both.
    pub fn connect(&mut self, req: &Connect) -> Result<Endpoint, Error> {
        req.validate()?;
        let target = Target::parse(&req.target)?;
        let _lock = self.state.lock()?;
        recover(&mut self.kernel, &mut self.state)?;
        let net = self.network(&req.network)?;
        let requested = [
            self.requested_ip(&net, req, Family::V4)?,
            self.requested_ip(&net, req, Family::V6)?,
        ];
        let path = target.path();
        let ns = self.open_target(&path, &req.target)?;
        let netns_id = self
            .kernel
            .netns_id(&ns)
            .map_err(Error::kernel(format!("reading netns {}", path.display())))?;
        let ep = self.new_endpoint(&net, req, &target, &path, netns_id)?;
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
        let parent = self.host_parent(&net.spec.parent)?;
        let ep = self.state.begin_attach(&net, ep, requested)?;
        crash_point("attach-reserved");
        if let Err(err) = plumb(&mut self.kernel, &ns, &mut nl, &net, &ep, &parent) {
            return Err(self.roll_back_attach(&mut nl, &net, &ep, err));
        }
        self.state.set_phase(&ep.id, Phase::Attached)?;
        crash_point("attach-committed");
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
        let undo = delete_link_in(nl, ep).and_then(|_| self.state.delete_endpoint(net, &ep.id));
        match undo {
            Ok(()) => err,
            Err(undo_err) => Error::Many(vec![err, undo_err]),
        }
    }

    fn requested_ip(
        &self,
        net: &Network,
        req: &Connect,
        family: Family,
    ) -> Result<Option<std::net::IpAddr>, Error> {
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
    ) -> Result<Endpoint, Error> {
        let endpoints = self.state.endpoints(&net.id)?;
        if let Some(existing) = endpoints.iter().find(|e| e.netns_id == netns_id) {
            return Err(Error::Conflict(format!(
                "netns {} is already connected to network {} as endpoint {}",
                path.display(),
                net.name(),
                existing.name
            )));
        }
        if is_passthru(net) && !endpoints.is_empty() {
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
        Ok(Endpoint {
            network_id: net.id.clone(),
            name,
            phase: Phase::Attaching,
            netns: path.display().to_string(),
            netns_id,
            ifname: req.ifname()?,
            // "ul" + 12 hex digits: unique per endpoint, 14 bytes, fits IFNAMSIZ.
            tmp_ifname: format!("ul{}", &id[..12]).parse()?,
            mac: match req.mac()? {
                Some(mac) => mac,
                None => MacAddr::random()?,
            },
            ipv4: None,
            ipv6: None,
            id,
        })
    }

    /// `disconnect`: TARGET is an endpoint name or a netns (name, path, PID).
    pub fn disconnect(&mut self, req: &Disconnect) -> Result<Endpoint, Error> {
        let _lock = self.state.lock()?;
        recover(&mut self.kernel, &mut self.state)?;
        let net = self.network(&req.network)?;
        let ep = self.find_endpoint(&net, &req.target)?;
        self.detach(&net, &ep)?;
        Ok(ep)
    }

    fn find_endpoint(&mut self, net: &Network, target: &str) -> Result<Endpoint, Error> {
        let endpoints = self.state.endpoints(&net.id)?;
        if let Some(ep) = endpoints.iter().find(|e| e.name == target) {
            return Ok(ep.clone());
        }
        let path = Target::parse(target)?.path();
        let netns_id = match self.kernel.open_netns(&path) {
            Ok(Some(ns)) => self.kernel.netns_id(&ns).ok(),
            _ => None,
        };
        let path_text = path.display().to_string();
        endpoints
            .into_iter()
            .find(|e| Some(e.netns_id) == netns_id || e.netns == path_text)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{target} is not connected to network {}",
                    net.name()
                ))
            })
    }

    /// Marks, unplumbs, forgets. A crash in between leaves phase `Detaching`, which recovery
    /// finishes.
    fn detach(&mut self, net: &Network, ep: &Endpoint) -> Result<(), Error> {
        self.state.set_phase(&ep.id, Phase::Detaching)?;
        crash_point("detach-marked");
        delete_endpoint_link(&mut self.kernel, ep)?;
        crash_point("detach-unplumbed");
        self.state.delete_endpoint(net, &ep.id)?;
        tracing::info!(network = %net.name(), endpoint = %ep.name, "endpoint detached");
        Ok(())
    }

    /// `gc`: rolls back interrupted operations and releases endpoints whose netns or link is
    /// gone (a container that died without a `disconnect`).
    pub fn gc(&mut self) -> Result<GcReport, Error> {
        let _lock = self.state.lock()?;
        let rolled_back = recover(&mut self.kernel, &mut self.state)?;
        let mut report = GcReport {
            rolled_back: rolled_back.into_iter().map(|e| e.name).collect(),
            released: Vec::new(),
        };
        for ep in self.state.all_endpoints()? {
            if matches!(
                endpoint_link_state(&mut self.kernel, &ep)?,
                LinkState::Present
            ) {
                continue;
            }
            if let Some(net) = self.state.network_by_id(&ep.network_id)? {
                self.state.delete_endpoint(&net, &ep.id)?;
                report.released.push(format!("{}/{}", net.name(), ep.name));
            }
        }
        Ok(report)
    }

    fn network(&self, name: &str) -> Result<Network, Error> {
        self.state
            .network(name)?
            .ok_or_else(|| Error::NotFound(format!("network {name} does not exist")))
    }
}

fn is_passthru(net: &Network) -> bool {
    matches!(
        net.spec.driver,
        Driver::Macvlan {
            mode: MacvlanMode::Passthru
        }
    )
}
