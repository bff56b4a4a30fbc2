//! Recovery of operations whose process died (kill -9, OOM, power cut) half-way.
//!
//! Runs under the operation lock, so every endpoint not in phase `Attached` belongs to a dead
//! process. Both intents roll back the same way: delete the link if it exists, then delete the
//! row and its reservations in one transaction. An attach that crashed after all its kernel
//! work but before its final commit is undone too: its caller never saw it succeed.

use underlay_linux::Kernel;

use crate::parents::release_unused_parents;
use crate::plumbing::delete_endpoint_link;
use crate::{Endpoint, Engine, Error};

impl<K: Kernel> Engine<K> {
    /// Rolls back every unsettled endpoint; returns the ones it cleaned. One that cannot be
    /// cleaned now (kernel error) stays recorded, holding its addresses, and is retried next
    /// time. A DHCP lease it may hold is given back; when the keeper cannot be reached the
    /// keeper drops it by itself later (the endpoint is gone).
    pub(crate) fn recover(&mut self) -> Result<Vec<Endpoint>, Error> {
        let mut cleaned = Vec::new();
        for ep in self.state.unsettled_endpoints()? {
            match self.roll_back(&ep) {
                Ok(()) => {
                    tracing::info!(endpoint = %ep.name, phase = ep.phase.as_str(), netns = %ep.netns, "rolled back an interrupted operation");
                    cleaned.push(ep);
                }
                Err(e) => {
                    tracing::warn!(endpoint = %ep.name, error = %e, "could not roll back an interrupted operation yet")
                }
            }
        }
        if let Err(e) = release_unused_parents(&mut self.kernel, &mut self.state) {
            tracing::warn!(error = %e, "could not release unused parent interfaces yet");
        }
        Ok(cleaned)
    }

    /// The lease goes first, while the link can still carry the RELEASE.
    fn roll_back(&mut self, ep: &Endpoint) -> Result<(), Error> {
        let net = self
            .state
            .network_by_id(&ep.network_id)?
            .ok_or_else(|| Error::State(format!("endpoint {} belongs to no network", ep.name)))?;
        if let Err(e) = self.release_lease(&net, ep) {
            tracing::warn!(endpoint = %ep.name, error = %e, "could not release the DHCP lease of an interrupted operation");
        }
        delete_endpoint_link(&mut self.kernel, ep)?;
        self.state.delete_endpoint(&net, &ep.id)
    }
}
