//! The ADD result (and IPAM result): interfaces, IPs, routes and DNS, parsed
//! from any supported version and written in any supported version.

mod wire;

use crate::addr::{ip_serde, IpNet};
use crate::error::CniError;
use crate::version::CniVersion;
use serde::{Deserialize, Deserializer, Serialize};
use std::net::IpAddr;

/// A version-independent result. Write it with [`CniResult::to_json`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CniResult {
    /// Interfaces created (host side included).
    #[serde(default, deserialize_with = "null_default")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, deserialize_with = "null_default")]
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    #[serde(default, deserialize_with = "null_default")]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default, deserialize_with = "null_default")]
    pub dns: Dns,
}

/// An interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(default, deserialize_with = "opt_nonempty")]
    pub mac: Option<String>,
    /// MTU (written from 1.0.0 on).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Netns path; `None` for a host interface.
    #[serde(default, deserialize_with = "opt_nonempty")]
    pub sandbox: Option<String>,
    /// Socket path (written in 1.1.0 only).
    #[serde(default, rename = "socketPath", deserialize_with = "opt_nonempty")]
    pub socket_path: Option<String>,
    /// PCI id (written in 1.1.0 only).
    #[serde(default, rename = "pciID", deserialize_with = "opt_nonempty")]
    pub pci_id: Option<String>,
}

/// An address in a result. `ips[].version` (0.x) is derived from the address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    /// The gateway.
    #[serde(default, deserialize_with = "ip_serde::opt")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

/// A route (results and IPAM configs). `mtu`, `advmss`, `priority`,
/// `table` and `scope` are written in 1.1.0 only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop (absent: the default gateway / on-link).
    #[serde(default, deserialize_with = "ip_serde::opt")]
    pub gw: Option<IpAddr>,
    /// Route MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Advertised MSS.
    #[serde(default)]
    pub advmss: Option<u32>,
    /// Metric (lower is preferred).
    #[serde(default)]
    pub priority: Option<u32>,
    /// Routing table.
    #[serde(default)]
    pub table: Option<u32>,
    /// Scope (0 global, 253 link, 254 host).
    #[serde(default)]
    pub scope: Option<u8>,
}

impl Route {
    /// A route with only a destination and a gateway.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings (configs and results).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_nonempty"
    )]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Dns::default()
    }
}

impl CniResult {
    /// Parses a result written in any supported version (0.3.0–1.1.0).
    /// A 0.1.0/0.2.0-shaped result (`ip4`/`ip6`) is refused with code 1.
    pub fn parse(json: &[u8]) -> Result<CniResult, CniError> {
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| CniError::decode(format!("invalid result JSON: {e}")))?;
        CniResult::from_value(&value)
    }

    /// Parses a result already decoded as JSON (e.g. `prevResult`).
    pub fn from_value(value: &serde_json::Value) -> Result<CniResult, CniError> {
        if value.get("ip4").is_some() || value.get("ip6").is_some() {
            return Err(CniError::incompatible_version(
                "result in 0.1.0/0.2.0 format (ip4/ip6) is not supported",
            ));
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            CniError::invalid_config(format!("invalid result: {}: {}", e.path(), e.inner()))
        })
    }

    /// The result as a JSON value in `version`'s shape.
    pub fn to_value(&self, version: CniVersion) -> serde_json::Value {
        wire::to_value(self, version)
    }

    /// The result as JSON text in `version`'s shape.
    pub fn to_json(&self, version: CniVersion) -> String {
        wire::to_string(self, version)
    }

    /// The IPAM form: no interfaces and no `ips[].interface`.
    pub fn into_ipam(mut self) -> CniResult {
        self.interfaces.clear();
        for ip in &mut self.ips {
            ip.interface = None;
        }
        self
    }
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn opt_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}
