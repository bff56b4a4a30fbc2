//! Response bodies of the remote network driver. Field names are those of
//! libnetwork's Go structs; optional fields that are unset are left out
//! (Go decodes a missing field as its zero value, which is what libnetwork
//! tests for: `""`, nil, false).

use super::addr::IpNet;
use super::network::EndpointInterface;
use crate::PluginError;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a driver's allocations (`Scope`) or connectivity live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// This host only.
    #[serde(rename = "local")]
    Local,
    /// The whole swarm cluster.
    #[serde(rename = "global")]
    Global,
}

/// Reply to `/NetworkDriver.GetCapabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NetworkCapabilities {
    /// Allocation scope (required; anything but local/global fails registration).
    #[serde(rename = "Scope")]
    pub scope: Scope,
    /// Connectivity scope; libnetwork uses `scope` when absent.
    #[serde(rename = "ConnectivityScope", skip_serializing_if = "Option::is_none")]
    pub connectivity_scope: Option<Scope>,
    /// Whether libnetwork should send `GwAllocCheck` before `CreateNetwork`.
    #[serde(rename = "GwAllocChecker")]
    pub gw_alloc_checker: bool,
}

/// Reply to `/NetworkDriver.GwAllocCheck`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GwAllocCheckResponse {
    /// Do not reserve an IPv4 gateway address when the user gave none.
    #[serde(rename = "SkipIPv4")]
    pub skip_ipv4: bool,
    /// Do not reserve an IPv6 gateway address when the user gave none.
    #[serde(rename = "SkipIPv6")]
    pub skip_ipv6: bool,
}

/// Reply to `/NetworkDriver.AllocateNetwork`: options passed on to
/// `CreateNetwork` on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AllocateNetworkResponse {
    /// Driver-specific options.
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, String>,
}

/// Reply to `/NetworkDriver.CreateEndpoint`.
///
/// libnetwork refuses (and rolls the endpoint back) if the reply sets a
/// field the request already carried: each of `Address`, `AddressIPv6` and
/// `MacAddress` may only be filled in when the request left it empty. So a
/// request with a non-empty `Interface` — the usual case, IPAM having
/// allocated the addresses — is answered with an empty `Interface`, or at
/// most with the fields it lacked (typically the MAC address of a macvlan
/// link). The constructors enforce this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CreateEndpointResponse {
    #[serde(rename = "Interface", skip_serializing_if = "Option::is_none")]
    interface: Option<EndpointInterface>,
}

impl CreateEndpointResponse {
    /// Keeps what the request carried (`{}`).
    pub fn unchanged() -> CreateEndpointResponse {
        CreateEndpointResponse { interface: None }
    }

    /// Fills in the fields `requested` left empty with those of `chosen`.
    ///
    /// Fails if `chosen` sets a field `requested` already has, or puts an
    /// address of the wrong family into `Address`/`AddressIPv6`.
    pub fn fill(
        requested: &EndpointInterface,
        chosen: EndpointInterface,
    ) -> Result<CreateEndpointResponse, PluginError> {
        check_unset("Address", requested.address, chosen.address)?;
        check_unset("AddressIPv6", requested.address_ipv6, chosen.address_ipv6)?;
        check_unset("MacAddress", requested.mac_address, chosen.mac_address)?;
        check_family("Address", chosen.address, true)?;
        check_family("AddressIPv6", chosen.address_ipv6, false)?;
        let interface = (!chosen.is_empty()).then_some(chosen);
        Ok(CreateEndpointResponse { interface })
    }

    /// The interface fields the reply sets, if any.
    pub fn interface(&self) -> Option<&EndpointInterface> {
        self.interface.as_ref()
    }
}

fn check_unset<T: std::fmt::Display>(
    field: &str,
    requested: Option<T>,
    chosen: Option<T>,
) -> Result<(), PluginError> {
    match (requested, chosen) {
        (Some(had), Some(new)) => Err(PluginError::new(format!(
            "endpoint interface {field} was given by the engine ({had}) and cannot be replaced with {new}"
        ))),
        _ => Ok(()),
    }
}

fn check_family(field: &str, address: Option<IpNet>, ipv4: bool) -> Result<(), PluginError> {
    match address {
        Some(net) if net.is_ipv4() != ipv4 => {
            let family = if ipv4 { "IPv4" } else { "IPv6" };
            Err(PluginError::new(format!(
                "endpoint interface {field} must be an {family} address, got {net}"
            )))
        }
        _ => Ok(()),
    }
}

/// Reply to `/NetworkDriver.EndpointOperInfo`: free-form data shown by
/// `docker inspect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointOperInfoResponse {
    /// Arbitrary values.
    #[serde(rename = "Value")]
    pub value: serde_json::Map<String, serde_json::Value>,
}

/// The link to move into the sandbox and how to name it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceName {
    /// The host-side name of the link the driver created.
    #[serde(rename = "SrcName")]
    pub src_name: String,
    /// The name prefix inside the container; the engine appends an index ("eth" → "eth0").
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
    /// An exact name inside the container. Engines up to 29.7 ignore it
    /// and use `dst_prefix`; set both.
    #[serde(rename = "DstName", skip_serializing_if = "Option::is_none")]
    pub dst_name: Option<String>,
}

/// A route the engine adds in the sandbox after moving the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticRoute {
    /// `RouteType` 0: via a next hop.
    Via {
        /// The destination prefix.
        destination: IpNet,
        /// The gateway.
        next_hop: IpAddr,
    },
    /// `RouteType` 1: directly connected, no next hop.
    Connected {
        /// The destination prefix.
        destination: IpNet,
    },
}

impl Serialize for StaticRoute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire {
            #[serde(rename = "Destination")]
            destination: IpNet,
            #[serde(rename = "RouteType")]
            route_type: u8,
            #[serde(rename = "NextHop", skip_serializing_if = "Option::is_none")]
            next_hop: Option<IpAddr>,
        }
        let wire = match *self {
            StaticRoute::Via {
                destination,
                next_hop,
            } => Wire {
                destination,
                route_type: 0,
                next_hop: Some(next_hop),
            },
            StaticRoute::Connected { destination } => Wire {
                destination,
                route_type: 1,
                next_hop: None,
            },
        };
        wire.serialize(s)
    }
}

/// Reply to `/NetworkDriver.Join`.
///
/// If neither a gateway nor a default static route is given, the engine
/// adds a second interface on `docker_gwbridge` for outbound traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JoinResponse {
    /// The link to move into the sandbox.
    #[serde(rename = "InterfaceName", skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<InterfaceName>,
    /// IPv4 default gateway.
    #[serde(rename = "Gateway", skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 default gateway.
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "Option::is_none")]
    pub gateway_ipv6: Option<Ipv6Addr>,
    /// Extra routes.
    #[serde(rename = "StaticRoutes", skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
    /// Do not connect the sandbox to `docker_gwbridge` even without a gateway.
    #[serde(
        rename = "DisableGatewayService",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_gateway_service: bool,
}
