//! Request bodies of the remote network driver (`/NetworkDriver.*`), as
//! libnetwork's `drivers/remote/api` writes them.
//!
//! Unknown fields are ignored (newer engines add some); the fields we read
//! are type-checked, and address strings are parsed into [`IpNet`] and
//! [`MacAddr`].

use super::addr::{IpNet, MacAddr};
use super::de;
use super::options::Options;
use crate::PluginError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One address pool of a network, as the IPAM driver allocated it
/// (`driverapi.IPAMData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IpamData {
    /// The address space the pool belongs to.
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    /// The pool ("10.0.0.0/24").
    #[serde(rename = "Pool", default, deserialize_with = "de::empty_as_none")]
    pub pool: Option<IpNet>,
    /// The gateway with the pool's prefix length ("10.0.0.1/24").
    #[serde(rename = "Gateway", default, deserialize_with = "de::empty_as_none")]
    pub gateway: Option<IpNet>,
    /// Addresses reserved with `--aux-address name=ip`, with the pool's prefix length.
    #[serde(
        rename = "AuxAddresses",
        default,
        deserialize_with = "de::null_as_default"
    )]
    pub aux_addresses: BTreeMap<String, IpNet>,
}

/// `/NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateNetworkRequest {
    /// The network ID libnetwork generated.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Network options; see [`Options::generic_options`] for the `-o` options.
    #[serde(rename = "Options", default)]
    pub options: Options,
    /// IPv4 pools (empty when the network has no IPv4).
    #[serde(rename = "IPv4Data", default, deserialize_with = "de::null_as_default")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools (empty unless `--ipv6`).
    #[serde(rename = "IPv6Data", default, deserialize_with = "de::null_as_default")]
    pub ipv6_data: Vec<IpamData>,
}

/// `/NetworkDriver.AllocateNetwork` (global-scope drivers, swarm manager only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllocateNetworkRequest {
    /// The network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Driver options (a string map here, unlike [`CreateNetworkRequest`]).
    #[serde(rename = "Options", default, deserialize_with = "de::null_as_default")]
    pub options: BTreeMap<String, String>,
    /// IPv4 pools.
    #[serde(rename = "IPv4Data", default, deserialize_with = "de::null_as_default")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools.
    #[serde(rename = "IPv6Data", default, deserialize_with = "de::null_as_default")]
    pub ipv6_data: Vec<IpamData>,
}

/// A request naming only a network: `DeleteNetwork`, `FreeNetwork`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkRef {
    /// The network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// A request naming an endpoint: `EndpointOperInfo`, `DeleteEndpoint`,
/// `Leave`, `RevokeExternalConnectivity`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndpointRef {
    /// The network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `/NetworkDriver.GwAllocCheck` (only sent if the capabilities said
/// `GwAllocChecker`), before `CreateNetwork`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GwAllocCheckRequest {
    /// The same map `CreateNetwork` will carry.
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// The addresses of an endpoint's interface (`api.EndpointInterface`).
///
/// In a request these are what IPAM allocated; in a
/// [`CreateEndpointResponse`](crate::CreateEndpointResponse) they are what
/// the driver chose for the fields the request left empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct EndpointInterface {
    /// IPv4 address with prefix length ("10.0.0.5/24").
    #[serde(
        rename = "Address",
        default,
        deserialize_with = "de::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub address: Option<IpNet>,
    /// IPv6 address with prefix length.
    #[serde(
        rename = "AddressIPv6",
        default,
        deserialize_with = "de::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub address_ipv6: Option<IpNet>,
    /// MAC address.
    #[serde(
        rename = "MacAddress",
        default,
        deserialize_with = "de::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_address: Option<MacAddr>,
}

impl EndpointInterface {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.address.is_none() && self.address_ipv6.is_none() && self.mac_address.is_none()
    }
}

/// `/NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateEndpointRequest {
    /// The network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint ID libnetwork generated.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// What IPAM allocated (and the MAC if the user gave one); may be empty.
    #[serde(
        rename = "Interface",
        default,
        deserialize_with = "de::null_as_default"
    )]
    pub interface: EndpointInterface,
    /// Endpoint options (e.g. [`labels::ENDPOINT_IFNAME`](super::options::labels::ENDPOINT_IFNAME)).
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// `/NetworkDriver.Join`: put the endpoint into a container's sandbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JoinRequest {
    /// The network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox's network namespace path (`/var/run/docker/netns/…`).
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Sandbox options.
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// `/NetworkDriver.ProgramExternalConnectivity` (optional method).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProgramExternalConnectivityRequest {
    /// The network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox options given at Join (port mappings, exposed ports, ...).
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// `DiscoveryType` of a node joining or leaving the cluster.
pub const NODE_DISCOVERY: i64 = 1;

/// `/NetworkDriver.DiscoverNew` and `/NetworkDriver.DiscoverDelete`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DiscoveryNotification {
    /// 1 = node discovery (the only type the proxy forwards today).
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: i64,
    /// Type-specific data, kept as JSON; see [`DiscoveryNotification::node`].
    #[serde(rename = "DiscoveryData", default)]
    pub discovery_data: serde_json::Value,
}

/// The data of a node discovery (`discoverapi.NodeDiscoveryData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NodeDiscoveryData {
    /// The node's advertised address.
    #[serde(rename = "Address", default)]
    pub address: String,
    /// The node's bind address.
    #[serde(rename = "BindAddress", default)]
    pub bind_address: String,
    /// Whether the node is this one (remote.md spells it "self").
    #[serde(rename = "Self", alias = "self", default)]
    pub is_self: bool,
}

impl DiscoveryNotification {
    /// The node data, if this is a node discovery.
    pub fn node(&self) -> Result<Option<NodeDiscoveryData>, PluginError> {
        if self.discovery_type != NODE_DISCOVERY {
            return Ok(None);
        }
        serde_json::from_value(self.discovery_data.clone())
            .map(Some)
            .map_err(|e| {
                PluginError::new(format!(
                    "invalid node discovery data {}: {e}",
                    self.discovery_data
                ))
            })
    }
}
