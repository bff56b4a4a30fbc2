//! Whether a network can carry traffic now: its parent must exist, be up and have carrier. A
//! macvlan or ipvlan child of a parent without them passes nothing, and nothing says so unless
//! somebody looks; `inspect`, `ls`, CNI STATUS and Docker's EndpointOperInfo look here.

use serde::Serialize;
use underlay_linux::Netlink;

use crate::{Error, Network};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Healthy,
    Degraded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    #[serde(rename = "State")]
    pub state: HealthState,
    /// What is wrong, when degraded ("parent eth0 has no carrier").
    #[serde(rename = "Reason", skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Health {
    fn degraded(reason: String) -> Health {
        Health {
            state: HealthState::Degraded,
            reason: Some(reason),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.state == HealthState::Healthy
    }

    pub fn name(&self) -> &'static str {
        match self.state {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
        }
    }
}

/// The network's health, read from the host netns through `nl`.
pub fn network_health<N: Netlink>(nl: &mut N, net: &Network) -> Result<Health, Error> {
    let name = net.parent_name();
    let link = nl
        .link_by_name(name.as_str())
        .map_err(Error::kernel(format!("looking up parent {name}")))?;
    Ok(match link {
        None => Health::degraded(format!("parent {name} is missing")),
        Some(l) if !l.up => Health::degraded(format!("parent {name} is down")),
        Some(l) if !l.carrier => Health::degraded(format!("parent {name} has no carrier")),
        Some(_) => Health {
            state: HealthState::Healthy,
            reason: None,
        },
    })
}
