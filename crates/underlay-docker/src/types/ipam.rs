//! Request and response bodies of the remote IPAM driver (`/IpamDriver.*`),
//! as libnetwork's `ipams/remote/api` writes and reads them. Options here
//! are string maps (Go `map[string]string`).

use super::addr::{IpNet, MacAddr};
use super::de;
use crate::PluginError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Option keys libnetwork puts into IPAM `Options`.
pub mod ipam_labels {
    /// Carries the container's MAC in `RequestAddress` when the driver
    /// declared `RequiresMACAddress`.
    pub const MAC_ADDRESS: &str = "com.docker.network.endpoint.macaddress";
    /// The endpoint (container) name in `RequestAddress`.
    pub const ENDPOINT_NAME: &str = "com.docker.network.endpoint.name";
    /// Key whose value [`GATEWAY`] marks a `RequestAddress` for the network gateway.
    pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
    /// The gateway: a `RequestAddressType` value, and the `RequestPool`
    /// `Data` key through which the driver supplies a gateway (CIDR).
    pub const GATEWAY: &str = "com.docker.network.gateway";
}

/// `/IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestPoolRequest {
    /// The address space, one of the names from `GetDefaultAddressSpaces`.
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// The subnet the user asked for; `None` lets the driver choose.
    #[serde(rename = "Pool", default, deserialize_with = "de::empty_as_none")]
    pub pool: Option<IpNet>,
    /// `--ip-range`: allocate container addresses from this part of `pool` only.
    #[serde(rename = "SubPool", default, deserialize_with = "de::empty_as_none")]
    pub sub_pool: Option<IpNet>,
    /// `--ipam-opt key=value`.
    #[serde(rename = "Options", default, deserialize_with = "de::null_as_default")]
    pub options: BTreeMap<String, String>,
    /// Whether an IPv6 pool is wanted (when `pool` is `None`).
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// `/IpamDriver.ReleasePool`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleasePoolRequest {
    /// A pool ID this driver returned.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `/IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestAddressRequest {
    /// A pool ID this driver returned.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address the user asked for (`--ip`, gateway, aux address); `None`: any.
    #[serde(rename = "Address", default, deserialize_with = "de::opt_ip")]
    pub address: Option<IpAddr>,
    /// See [`ipam_labels`].
    #[serde(rename = "Options", default, deserialize_with = "de::null_as_default")]
    pub options: BTreeMap<String, String>,
}

impl RequestAddressRequest {
    /// Whether this allocates the network's gateway rather than a container address.
    pub fn is_gateway(&self) -> bool {
        self.options
            .get(ipam_labels::REQUEST_ADDRESS_TYPE)
            .map(String::as_str)
            == Some(ipam_labels::GATEWAY)
    }

    /// The container's MAC address, if the engine sent one.
    pub fn mac_address(&self) -> Result<Option<MacAddr>, PluginError> {
        match self
            .options
            .get(ipam_labels::MAC_ADDRESS)
            .filter(|s| !s.is_empty())
        {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e| PluginError::new(format!("option {}: {e}", ipam_labels::MAC_ADDRESS))),
        }
    }

    /// The endpoint (container) name, if the engine sent one.
    pub fn endpoint_name(&self) -> Option<&str> {
        self.options
            .get(ipam_labels::ENDPOINT_NAME)
            .map(String::as_str)
    }
}

/// `/IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleaseAddressRequest {
    /// A pool ID this driver returned.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address to release.
    #[serde(rename = "Address", deserialize_with = "de::ip")]
    pub address: IpAddr,
}

/// Reply to `/IpamDriver.GetCapabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IpamCapabilities {
    /// Ask the engine to send the container MAC in `RequestAddress` options.
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    /// Ask the engine to replay `RequestPool`/gateway `RequestAddress` on daemon start.
    #[serde(rename = "RequiresRequestReplay")]
    pub requires_request_replay: bool,
}

/// Reply to `/IpamDriver.GetDefaultAddressSpaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultAddressSpaces {
    /// For local-scope networks.
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local: String,
    /// For global-scope (swarm) networks.
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global: String,
}

/// Reply to `/IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestPoolResponse {
    /// The ID of the pool; the same pool requested twice gets the same ID.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The pool.
    #[serde(rename = "Pool")]
    pub pool: IpNet,
    /// Metadata; see [`RequestPoolResponse::with_gateway`].
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

impl RequestPoolResponse {
    /// A reply with no metadata.
    pub fn new(pool_id: impl Into<String>, pool: IpNet) -> RequestPoolResponse {
        RequestPoolResponse {
            pool_id: pool_id.into(),
            pool,
            data: BTreeMap::new(),
        }
    }

    /// Supplies the network gateway (with the pool's prefix length, e.g.
    /// "10.0.0.1/24"); the engine then does not request one.
    pub fn with_gateway(mut self, gateway: IpNet) -> RequestPoolResponse {
        self.data
            .insert(ipam_labels::GATEWAY.to_owned(), gateway.to_string());
        self
    }
}

/// Reply to `/IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestAddressResponse {
    /// The address with the pool's prefix length ("10.0.0.5/24").
    #[serde(rename = "Address")]
    pub address: IpNet,
    /// Metadata (unused by the engine today).
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

impl RequestAddressResponse {
    /// A reply with no metadata.
    pub fn new(address: IpNet) -> RequestAddressResponse {
        RequestAddressResponse {
            address,
            data: BTreeMap::new(),
        }
    }
}
