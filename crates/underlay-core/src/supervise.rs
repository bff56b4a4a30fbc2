//! Parent supervision (`underlay daemon`): looks at every network's parent whenever links
//! change and at least every few seconds, says so when one goes down or comes back, and when a
//! parent comes back after it was deleted (a NIC reset, a rebuilt bond) rebuilds what died with
//! it: the VLAN sub-interface, the host access link, and every endpoint's link in its netns.
//! It also releases endpoints whose netns is gone.

use std::collections::{HashMap, HashSet};

use underlay_linux::Kernel;

use crate::events::{Event, EventBus};
use crate::health::network_health;
use crate::parents::{restore_parents, Restored};
use crate::plumbing::{link_named, open_endpoint_netns};
use crate::{Engine, Error, Network};

/// What the supervisor last saw of each network's parent.
#[derive(Debug, Default)]
pub struct ParentsSeen {
    seen: HashMap<String, Seen>,
    /// Endpoints whose netns the host hears the death of (see [`Engine::watch_new_endpoints`]).
    watched: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// The parent's index: `None` while it is missing; another value when it was recreated.
    index: Option<u32>,
    /// `None` when healthy, else why not.
    trouble: Option<String>,
}

impl<K: Kernel> Engine<K> {
    /// One look at every network; with `settle`, endpoints are checked too (links recreated,
    /// dead ones released). A parent that came back always triggers that. Returns whether
    /// anything changed.
    pub fn supervise(
        &mut self,
        seen: &mut ParentsSeen,
        events: &EventBus,
        settle: bool,
    ) -> Result<bool, Error> {
        let _lock = self.state.lock()?;
        self.recover()?;
        for restored in restore_parents(&mut self.kernel, &self.state)? {
            if let Restored::Recreated(what) = restored {
                events.emit(Event::new("parent_recreated").detail(what));
            }
        }
        let mut changed = false;
        let mut came_back = false;
        let networks = self.state.networks()?;
        for net in &networks {
            let now = self.look_at(net)?;
            let before = seen.seen.insert(net.id.clone(), now.clone());
            if let Some(event) = transition(net, before.as_ref(), &now) {
                came_back |= event.event == "parent_back";
                changed = true;
                events.emit(event);
            }
        }
        seen.seen
            .retain(|id, _| networks.iter().any(|n| &n.id == id));
        if settle || came_back {
            changed |= self.settle(events)?;
        }
        self.watch_new_endpoints(&mut seen.watched)?;
        Ok(changed)
    }

    /// Asks the kernel to announce the death of each new endpoint's netns to the host, where
    /// the link monitor hears it and the daemon releases the endpoint at once. The kernel does
    /// so only for a netns with an id in the host's, and makes one by itself only when a link
    /// moves out of the host, while endpoint links are made straight inside their netns. (Done
    /// here rather than when a link is made: CNI ADD was 1.5 ms slower at 500 containers.)
    fn watch_new_endpoints(&mut self, watched: &mut HashSet<String>) -> Result<(), Error> {
        let endpoints = self.state.all_endpoints()?;
        let current: HashSet<&String> = endpoints.iter().map(|ep| &ep.id).collect();
        watched.retain(|id| current.contains(id));
        for ep in &endpoints {
            if watched.contains(&ep.id) {
                continue;
            }
            // A netns already gone is released by the next look at every endpoint.
            let Some(ns) = open_endpoint_netns(&mut self.kernel, ep)? else {
                continue;
            };
            match self.kernel.watch_netns(&ns) {
                Ok(()) => {
                    watched.insert(ep.id.clone());
                }
                Err(e) => {
                    tracing::debug!(netns = %ep.netns, error = %e, "cannot watch the netns; the periodic look will notice its death")
                }
            }
        }
        Ok(())
    }

    fn look_at(&mut self, net: &Network) -> Result<Seen, Error> {
        let index = link_named(self.kernel.host(), net.parent_name().as_str())?.map(|l| l.index);
        let health = network_health(self.kernel.host(), net)?;
        Ok(Seen {
            index,
            trouble: health.reason,
        })
    }

    /// Endpoints and host access links, after a parent came back (or on the periodic look).
    fn settle(&mut self, events: &EventBus) -> Result<bool, Error> {
        let (released, relinked) = self.settle_endpoints()?;
        for name in &relinked {
            events.emit(endpoint_event(
                "endpoint_recreated",
                name,
                "same name, MAC, addresses and routes",
            ));
        }
        for name in &released {
            events.emit(endpoint_event(
                "endpoint_released",
                name,
                "its netns is gone",
            ));
        }
        for net in self.state.networks()? {
            if let Err(e) = self.ensure_shim(&net) {
                events.emit(
                    Event::new("host_access_failed")
                        .network(net.name())
                        .detail(e.to_string()),
                );
            }
        }
        Ok(!released.is_empty() || !relinked.is_empty())
    }
}

fn endpoint_event(kind: &str, label: &str, detail: &str) -> Event {
    let (network, endpoint) = label.split_once('/').unwrap_or(("", label));
    Event::new(kind)
        .network(network)
        .endpoint(endpoint)
        .detail(detail)
}

/// The event a change of the parent's state makes, if any. The first look at a network only
/// reports trouble.
fn transition(net: &Network, before: Option<&Seen>, now: &Seen) -> Option<Event> {
    let parent = net.parent_name();
    let event =
        |kind: &str, detail: String| Some(Event::new(kind).network(net.name()).detail(detail));
    match (before, now) {
        (
            None,
            Seen {
                trouble: Some(why), ..
            },
        ) => event("parent_down", why.clone()),
        (None, _) => None,
        (Some(b), n) if b == n => None,
        (Some(_), Seen { index: None, .. }) => {
            event("parent_gone", format!("parent {parent} was deleted"))
        }
        (Some(Seen { index: None, .. }), Seen { trouble, .. }) => {
            let state = trouble.clone().unwrap_or_else(|| "up".into());
            event("parent_back", format!("parent {parent} is back ({state})"))
        }
        (Some(b), n) if b.index != n.index => {
            event("parent_back", format!("parent {parent} was recreated"))
        }
        (
            Some(_),
            Seen {
                trouble: Some(why), ..
            },
        ) => event("parent_down", why.clone()),
        (Some(_), Seen { trouble: None, .. }) => {
            event("parent_up", format!("parent {parent} is up"))
        }
    }
}
