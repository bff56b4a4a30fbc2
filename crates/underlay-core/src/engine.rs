//! The use cases every front-end calls: create/remove networks, connect/disconnect endpoints
//! (in `attach.rs`), garbage-collect and restore.
//!
//! Each mutating call takes the operation lock, first rolls back what dead processes left
//! half-done, validates everything it can before it changes anything, and orders its work so
//! that a crash at any point leaves a state that the next call repairs (docs/state.md).

use underlay_linux::{Kernel, MacvlanMode};

use crate::crash::crash_point;
use crate::leases::Leases;
use crate::names::random_hex;
use crate::parents::{ensure_parent, release_parent, restore_parents, Restored};
use crate::state::now_rfc3339;
use crate::{CreateNetwork, Driver, Error, Network, State};

/// What `gc` and `restore` repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Endpoints of interrupted operations, rolled back.
    pub rolled_back: Vec<String>,
    /// Endpoints whose netns or link is gone; their addresses were released.
    pub released: Vec<String>,
    /// Parent interfaces recreated (`restore`).
    pub recreated: Vec<String>,
    /// Parents that could not be recreated (`restore`): what is missing.
    pub missing: Vec<String>,
    /// Endpoints whose link had gone while their netns lived (their parent was reset), made
    /// again with the same name, MAC, addresses and routes.
    pub relinked: Vec<String>,
    /// Addresses found live on the LAN long enough ago to be handed out again (`gc`).
    pub conflicts_forgotten: Vec<std::net::IpAddr>,
}

/// How long an address found live on the LAN stays out of the pool.
pub const CONFLICT_MEMORY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The engine: a kernel, a state, and (for DHCP networks) a lease keeper.
pub struct Engine<K: Kernel> {
    pub(crate) kernel: K,
    pub(crate) state: State,
    pub(crate) leases: Option<Box<dyn Leases + Send>>,
}

impl<K: Kernel> Engine<K> {
    pub fn new(kernel: K, state: State) -> Self {
        Engine {
            kernel,
            state,
            leases: None,
        }
    }

    /// The lease keeper DHCP networks get their addresses from.
    pub fn with_leases(mut self, leases: Box<dyn Leases + Send>) -> Self {
        self.leases = Some(leases);
        self
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, for a front-end's own records (annotations); mutating operations on networks
    /// and endpoints go through the engine's methods.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    pub fn kernel(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// `network create`.
    pub fn create_network(&mut self, req: &CreateNetwork) -> Result<Network, Error> {
        let spec = req.validate()?;
        let _lock = self.state.lock()?;
        self.recover()?;
        if self.state.network(&spec.name)?.is_some() {
            return Err(Error::Conflict(format!(
                "network {} already exists",
                spec.name
            )));
        }
        let net = Network {
            id: random_hex(32)?,
            created: now_rfc3339(),
            spec,
        };
        self.check_parent_sharing(&net)?;
        let parent = ensure_parent(&mut self.kernel, &mut self.state, &net)?;
        let stored = check_mtu(&net, parent.mtu).and_then(|()| self.state.insert_network(&net));
        if let Err(err) = stored {
            // The network was not recorded: a parent created for it goes again.
            let _ = release_parent(&mut self.kernel, &mut self.state, &net.parent_name());
            return Err(err);
        }
        if let Err(err) = self.ensure_shim(&net) {
            let _ = self.remove_shim(&net);
            let _ = self.state.delete_network(&net);
            let _ = release_parent(&mut self.kernel, &mut self.state, &net.parent_name());
            return Err(err);
        }
        tracing::info!(network = %net.name(), id = %net.id, parent = %net.parent_name(), "network created");
        Ok(net)
    }

    /// Which networks may share a parent: several macvlan networks (not with a passthru one),
    /// several ipvlan networks whose mode and flag agree (the kernel keeps them per parent),
    /// never macvlan with ipvlan (one rx handler per interface); never overlapping subnets.
    fn check_parent_sharing(&self, net: &Network) -> Result<(), Error> {
        let parent = net.parent_name();
        for other in self.state.networks()? {
            if other.parent_name() != parent {
                continue;
            }
            sharing_conflict(net, &other)?;
            for (family, mine) in net.spec.ip_configs() {
                if let Some(theirs) = other
                    .spec
                    .ip_config(family)
                    .filter(|t| t.subnet.overlaps(&mine.subnet))
                {
                    return Err(Error::Conflict(format!(
                        "subnet {} overlaps subnet {} of network {} on the same parent {parent}",
                        mine.subnet,
                        theirs.subnet,
                        other.name(),
                    )));
                }
            }
        }
        Ok(())
    }

    /// `network rm`: refuses while endpoints are attached unless `force`, which detaches them.
    /// A parent underlay created for the network goes with the last network using it.
    pub fn remove_network(&mut self, name: &str, force: bool) -> Result<Network, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
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
        self.remove_shim(&net)?;
        self.state.delete_network(&net)?;
        release_parent(&mut self.kernel, &mut self.state, &net.parent_name())?;
        tracing::info!(network = %net.name(), detached = endpoints.len(), "network removed");
        Ok(net)
    }

    /// `gc`: rolls back interrupted operations and releases endpoints whose netns or link is
    /// gone (a container that died without a `disconnect`).
    pub fn gc(&mut self) -> Result<RepairReport, Error> {
        let _lock = self.state.lock()?;
        let mut report = self.roll_back_interrupted()?;
        (report.released, report.relinked) = self.settle_endpoints()?;
        report.released.extend(self.expire_pending_locked()?);
        self.ensure_shims()?;
        report.conflicts_forgotten = self.state.forget_old_conflicts(CONFLICT_MEMORY)?;
        Ok(report)
    }

    /// `restore` (at boot, before container runtimes start): recreates missing VLAN
    /// sub-interfaces and dummy parents, then does what `gc` does.
    pub fn restore(&mut self) -> Result<RepairReport, Error> {
        let _lock = self.state.lock()?;
        let mut report = self.roll_back_interrupted()?;
        for restored in restore_parents(&mut self.kernel, &self.state)? {
            match restored {
                Restored::Recreated(what) => report.recreated.push(what),
                Restored::Missing(what) => report.missing.push(what),
            }
        }
        (report.released, report.relinked) = self.settle_endpoints()?;
        self.ensure_shims()?;
        Ok(report)
    }

    /// Every network with host access gets its link back (after a reboot, a parent reset) and
    /// routes that match its endpoints.
    fn ensure_shims(&mut self) -> Result<(), Error> {
        for net in self.state.networks()? {
            if let Err(e) = self.ensure_shim(&net) {
                tracing::warn!(network = %net.name(), error = %e, "could not restore host access");
            }
        }
        Ok(())
    }

    fn roll_back_interrupted(&mut self) -> Result<RepairReport, Error> {
        let rolled_back = self.recover()?;
        Ok(RepairReport {
            rolled_back: rolled_back.into_iter().map(|e| e.name).collect(),
            ..RepairReport::default()
        })
    }

    pub(crate) fn network(&self, name: &str) -> Result<Network, Error> {
        self.state
            .network(name)?
            .ok_or_else(|| Error::NotFound(format!("network {name} does not exist")))
    }
}

fn sharing_conflict(net: &Network, other: &Network) -> Result<(), Error> {
    let why = match (&net.spec.driver, &other.spec.driver) {
        (Driver::Macvlan { .. }, Driver::Macvlan { .. })
            if is_passthru(net) || is_passthru(other) =>
        {
            "passthru mode needs the parent for itself".to_string()
        }
        (Driver::Ipvlan { mode, flag }, Driver::Ipvlan { mode: m2, flag: f2 })
            if (mode, flag) != (m2, f2) =>
        {
            format!(
            "it is in ipvlan mode {} flag {}, and ipvlan networks on one parent must agree on both",
            m2.as_str(),
            f2.as_str()
        )
        }
        (a, b) if a.name() != b.name() => format!(
            "the kernel cannot put {} and {} links on one parent",
            a.name(),
            b.name()
        ),
        _ => return Ok(()),
    };
    Err(Error::Conflict(format!(
        "parent {} is already used by network {}: {why}",
        net.parent_name(),
        other.name()
    )))
}

fn check_mtu(net: &Network, parent_mtu: u32) -> Result<(), Error> {
    match net.spec.mtu {
        Some(mtu) if mtu > parent_mtu => Err(Error::invalid(format!(
            "mtu {mtu} is larger than the mtu {parent_mtu} of parent {}",
            net.parent_name()
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn is_passthru(net: &Network) -> bool {
    matches!(
        net.spec.driver,
        Driver::Macvlan {
            mode: MacvlanMode::Passthru
        }
    )
}
