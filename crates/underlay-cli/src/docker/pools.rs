//! IPAM pools between Docker's RequestPool and its CreateNetwork: Docker asks for a pool (and
//! its gateway) before it tells the driver about the network, and never says which pool a
//! network got. A pool is kept (in the state's annotations) with what it was asked with, and
//! bound to the first network created on that subnet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use underlay_core::{Error, State};
use underlay_docker::IpNet;

const SCOPE: &str = "docker-pool";

/// A pool as Docker asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub pool: String,
    pub v6: bool,
    /// `--ip-range`.
    pub sub_pool: Option<String>,
    /// `--ipam-opt`s.
    pub options: BTreeMap<String, String>,
    /// Addresses come from the LAN's DHCP server (`--ipam-opt dhcp=true` / `dhcpv6=true`).
    pub dhcp: bool,
    /// The Docker network it was bound to, once created.
    pub network_id: Option<String>,
    /// When it was requested (Unix milliseconds): the newest unbound pool of a subnet is the one
    /// a CreateNetwork belongs to.
    pub since: u128,
}

impl Pool {
    pub fn cidr(&self) -> Result<IpNet, Error> {
        self.pool
            .parse()
            .map_err(|e| Error::State(format!("stored pool {}: {e}", self.pool)))
    }
}

pub fn save(state: &mut State, id: &str, pool: &Pool) -> Result<(), Error> {
    let json = serde_json::to_string(pool).map_err(|e| Error::State(e.to_string()))?;
    state.put_annotation(SCOPE, id, &json)
}

pub fn load(state: &State, id: &str) -> Result<Pool, Error> {
    let json = state
        .annotation(SCOPE, id)?
        .ok_or_else(|| Error::NotFound(format!("IPAM pool {id} is not one of underlay's")))?;
    serde_json::from_str(&json).map_err(|e| Error::State(format!("corrupt pool {id}: {e}")))
}

pub fn remove(state: &mut State, id: &str) -> Result<bool, Error> {
    state.delete_annotation(SCOPE, id)
}

/// The unbound pool of this subnet and family (the most recently requested one), with its ID.
pub fn unbound(state: &State, cidr: &IpNet) -> Result<Option<(String, Pool)>, Error> {
    let mut found: Option<(String, Pool)> = None;
    for (id, json) in state.annotations(SCOPE)? {
        let Ok(pool) = serde_json::from_str::<Pool>(&json) else {
            continue;
        };
        let fits = pool.network_id.is_none() && pool.cidr().ok().as_ref() == Some(cidr);
        if fits && found.as_ref().is_none_or(|(_, f)| f.since <= pool.since) {
            found = Some((id, pool));
        }
    }
    Ok(found)
}

/// Every pool bound to Docker network `network_id`.
pub fn bound_to(state: &State, network_id: &str) -> Result<Vec<(String, Pool)>, Error> {
    Ok(state
        .annotations(SCOPE)?
        .into_iter()
        .filter_map(|(id, json)| Some((id, serde_json::from_str::<Pool>(&json).ok()?)))
        .filter(|(_, p)| p.network_id.as_deref() == Some(network_id))
        .collect())
}
