//! Parent links: the host interfaces networks hang off.
//!
//! An existing interface is used as it is. A VLAN sub-interface (`eth0.100`) or a dummy is
//! created when missing and then *owned*: recorded in `owned_parents` before the kernel creates
//! it (so a crash can never leave an unrecorded one), deleted with the last network that uses
//! it, and never deleted when the user made it.

use underlay_linux::{Kernel, Link, Netlink, VlanSpec};

use crate::plumbing::link_named;
use crate::{Error, IfName, Network, Parent, State};

/// Makes sure the network's parent exists, creating an owned VLAN sub-interface or dummy when
/// it is missing, and returns it.
pub(crate) fn ensure_parent<K: Kernel>(
    kernel: &mut K,
    state: &mut State,
    net: &Network,
) -> Result<Link, Error> {
    let name = net.parent_name();
    match &net.spec.parent {
        Parent::Link { .. } => host_link(kernel, &name, false),
        Parent::Vlan { trunk, id, .. } => {
            if let Some(link) = link_named(kernel.host(), name.as_str())? {
                check_vlan(kernel, &link, trunk, *id)?;
                return Ok(link);
            }
            let trunk = host_link(kernel, trunk, false)?;
            let spec = VlanSpec {
                name: name.to_string(),
                parent: trunk.index,
                id: *id,
                mtu: None,
            };
            create_owned(kernel, state, &name, "vlan", |nl| nl.create_vlan(&spec))
        }
        Parent::Dummy => match link_named(kernel.host(), name.as_str())? {
            Some(link) => Ok(link),
            None => create_owned(kernel, state, &name, "dummy", |nl| {
                nl.create_dummy(name.as_str())
            }),
        },
    }
}

/// A parent link in the host namespace: it must exist and not be loopback. `restorable`: it is
/// one `underlay restore` recreates (a VLAN sub-interface or a dummy), which the error says.
pub(crate) fn host_link<K: Kernel>(
    kernel: &mut K,
    name: &IfName,
    restorable: bool,
) -> Result<Link, Error> {
    let hint = if restorable {
        " (after a reboot, `underlay restore` recreates it)"
    } else {
        ""
    };
    let link = link_named(kernel.host(), name.as_str())?
        .ok_or_else(|| Error::NotFound(format!("parent interface {name} does not exist{hint}")))?;
    if link.loopback {
        return Err(Error::invalid(format!(
            "parent interface {name} is a loopback interface"
        )));
    }
    Ok(link)
}

/// An existing `eth0.100` must really be VLAN 100 of `eth0`.
fn check_vlan<K: Kernel>(
    kernel: &mut K,
    link: &Link,
    trunk: &IfName,
    id: u16,
) -> Result<(), Error> {
    let trunk_index = link_named(kernel.host(), trunk.as_str())?.map(|t| t.index);
    let is_it = link.kind.as_deref() == Some("vlan")
        && link.vlan_id == Some(id)
        && link.parent == trunk_index
        && trunk_index.is_some();
    if !is_it {
        return Err(Error::Conflict(format!(
            "interface {} exists but is not VLAN {id} of {trunk}",
            link.name
        )));
    }
    Ok(())
}

fn create_owned<K: Kernel>(
    kernel: &mut K,
    state: &mut State,
    name: &IfName,
    kind: &str,
    create: impl FnOnce(&mut K::Nl) -> Result<(), underlay_linux::Error>,
) -> Result<Link, Error> {
    state.insert_owned_parent(name.as_str(), kind)?;
    create(kernel.host()).map_err(Error::kernel(format!("creating {kind} parent {name}")))?;
    let link = link_named(kernel.host(), name.as_str())?
        .ok_or_else(|| Error::Io(format!("parent {name} vanished after creation")))?;
    kernel
        .host()
        .set_up(link.index)
        .map_err(Error::kernel(format!("bringing parent {name} up")))?;
    tracing::info!(parent = %name, kind, "created parent interface");
    Ok(link)
}

/// Deletes the parent `name` if underlay owns it and no network uses it any more.
pub(crate) fn release_parent<K: Kernel>(
    kernel: &mut K,
    state: &mut State,
    name: &IfName,
) -> Result<(), Error> {
    if !state.is_owned_parent(name.as_str())? || parent_in_use(state, name)? {
        return Ok(());
    }
    if let Some(link) = link_named(kernel.host(), name.as_str())? {
        kernel
            .host()
            .delete_link(link.index)
            .map_err(Error::kernel(format!("deleting parent {name}")))?;
        tracing::info!(parent = %name, "deleted parent interface");
    }
    state.delete_owned_parent(name.as_str())
}

/// Releases owned parents no network uses (left by a crash between creating the parent and
/// recording its network, or between removing the network and deleting the parent).
pub(crate) fn release_unused_parents<K: Kernel>(
    kernel: &mut K,
    state: &mut State,
) -> Result<(), Error> {
    for (name, _) in state.owned_parents()? {
        let name: IfName = name.parse()?;
        release_parent(kernel, state, &name)?;
    }
    Ok(())
}

/// A parent is in use while a network hangs off it; a host-access link while its network has
/// host access.
fn parent_in_use(state: &State, name: &IfName) -> Result<bool, Error> {
    Ok(state.networks()?.iter().any(|n| {
        &n.parent_name() == name || (n.spec.host_access.is_some() && &n.shim_name() == name)
    }))
}

/// What `restore` did to one parent.
pub(crate) enum Restored {
    Recreated(String),
    Missing(String),
}

/// Recreates every missing VLAN sub-interface and dummy parent of the stored networks (after a
/// reboot they are gone), bringing owned ones up. Ownership is kept as it was.
pub(crate) fn restore_parents<K: Kernel>(
    kernel: &mut K,
    state: &State,
) -> Result<Vec<Restored>, Error> {
    let mut done: Vec<IfName> = Vec::new();
    let mut out = Vec::new();
    for net in state.networks()? {
        let name = net.parent_name();
        if done.contains(&name) {
            continue;
        }
        done.push(name.clone());
        if let Some(link) = link_named(kernel.host(), name.as_str())? {
            if !link.up && state.is_owned_parent(name.as_str())? {
                bring_up_parent(kernel, &link, &name)?;
            }
            continue;
        }
        out.push(recreate_parent(kernel, &net, &name)?);
    }
    Ok(out)
}

/// A VLAN sub-interface cannot go up while its trunk is down (`ENETDOWN`): it is left down,
/// and brought up by the next `restore` or supervisor pass once the trunk is up.
fn bring_up_parent<K: Kernel>(kernel: &mut K, link: &Link, name: &IfName) -> Result<(), Error> {
    match kernel.host().set_up(link.index) {
        Err(e) if e.errno() == Some(nix::libc::ENETDOWN) => {
            tracing::info!(parent = %name, "parent left down: its trunk is down");
            Ok(())
        }
        other => other.map_err(Error::kernel(format!("bringing parent {name} up"))),
    }
}

fn recreate_parent<K: Kernel>(
    kernel: &mut K,
    net: &Network,
    name: &IfName,
) -> Result<Restored, Error> {
    let created = match &net.spec.parent {
        Parent::Link { .. } => {
            return Ok(Restored::Missing(format!(
                "parent {name} of network {} is missing",
                net.name()
            )));
        }
        Parent::Vlan { trunk, id, .. } => {
            let Some(trunk_link) = link_named(kernel.host(), trunk.as_str())? else {
                return Ok(Restored::Missing(format!(
                    "trunk {trunk} of VLAN parent {name} (network {}) is missing",
                    net.name()
                )));
            };
            let spec = VlanSpec {
                name: name.to_string(),
                parent: trunk_link.index,
                id: *id,
                mtu: None,
            };
            kernel.host().create_vlan(&spec)
        }
        Parent::Dummy => kernel.host().create_dummy(name.as_str()),
    };
    created.map_err(Error::kernel(format!("recreating parent {name}")))?;
    if let Some(link) = link_named(kernel.host(), name.as_str())? {
        bring_up_parent(kernel, &link, name)?;
    }
    Ok(Restored::Recreated(format!(
        "recreated parent {name} of network {}",
        net.name()
    )))
}
