//! Recovery of operations whose process died (kill -9, OOM, power cut) half-way.
//!
//! Runs under the operation lock, so every endpoint not in phase `Attached` belongs to a dead
//! process. Both intents roll back the same way: delete the link if it exists, then delete the
//! row and its reservations in one transaction. An attach that crashed after all its kernel
//! work but before its final commit is undone too: its caller never saw it succeed.

use underlay_linux::Kernel;

use crate::parents::release_unused_parents;
use crate::plumbing::delete_endpoint_link;
use crate::{Endpoint, Error, State};

/// Rolls back every unsettled endpoint; returns the ones it cleaned. One that cannot be
/// cleaned now (kernel error) stays recorded, holding its addresses, and is retried next time.
pub(crate) fn recover<K: Kernel>(
    kernel: &mut K,
    state: &mut State,
) -> Result<Vec<Endpoint>, Error> {
    let mut cleaned = Vec::new();
    for ep in state.unsettled_endpoints()? {
        match roll_back(kernel, state, &ep) {
            Ok(()) => {
                tracing::info!(endpoint = %ep.name, phase = ep.phase.as_str(), netns = %ep.netns, "rolled back an interrupted operation");
                cleaned.push(ep);
            }
            Err(e) => {
                tracing::warn!(endpoint = %ep.name, error = %e, "could not roll back an interrupted operation yet")
            }
        }
    }
    if let Err(e) = release_unused_parents(kernel, state) {
        tracing::warn!(error = %e, "could not release unused parent interfaces yet");
    }
    Ok(cleaned)
}

fn roll_back<K: Kernel>(kernel: &mut K, state: &mut State, ep: &Endpoint) -> Result<(), Error> {
    delete_endpoint_link(kernel, ep)?;
    match state.network_by_id(&ep.network_id)? {
        Some(net) => state.delete_endpoint(&net, &ep.id),
        None => Err(Error::State(format!(
            "endpoint {} belongs to no network",
            ep.name
        ))),
    }
}
