//! The typed response: one variant per reply shape, serialised exactly as
//! libnetwork's Go structs expect.

use crate::request::PluginMethod;
use crate::types::ipam::{
    DefaultAddressSpaces, IpamCapabilities, RequestAddressResponse, RequestPoolResponse,
};
use crate::types::network_response::{
    AllocateNetworkResponse, CreateEndpointResponse, EndpointOperInfoResponse,
    GwAllocCheckResponse, JoinResponse, NetworkCapabilities,
};
use serde::Serialize;

/// The plugin interfaces a process implements (`Plugin.Activate` reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivateResponse {
    /// E.g. `["NetworkDriver", "IpamDriver"]`.
    #[serde(rename = "Implements")]
    pub implements: Vec<String>,
}

impl ActivateResponse {
    /// Both interfaces this crate serves.
    pub fn network_and_ipam() -> ActivateResponse {
        ActivateResponse {
            implements: vec!["NetworkDriver".to_owned(), "IpamDriver".to_owned()],
        }
    }
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `{}`: CreateNetwork, DeleteNetwork, FreeNetwork, DeleteEndpoint,
    /// Leave, Program/RevokeExternalConnectivity, DiscoverNew/Delete,
    /// ReleasePool, ReleaseAddress.
    Empty,
    /// Plugin.Activate.
    Activate(ActivateResponse),
    /// NetworkDriver.GetCapabilities.
    NetworkCapabilities(NetworkCapabilities),
    /// NetworkDriver.GwAllocCheck.
    GwAllocCheck(GwAllocCheckResponse),
    /// NetworkDriver.AllocateNetwork.
    AllocateNetwork(AllocateNetworkResponse),
    /// NetworkDriver.CreateEndpoint.
    CreateEndpoint(CreateEndpointResponse),
    /// NetworkDriver.EndpointOperInfo.
    EndpointOperInfo(EndpointOperInfoResponse),
    /// NetworkDriver.Join.
    Join(JoinResponse),
    /// IpamDriver.GetCapabilities.
    IpamCapabilities(IpamCapabilities),
    /// IpamDriver.GetDefaultAddressSpaces.
    DefaultAddressSpaces(DefaultAddressSpaces),
    /// IpamDriver.RequestPool.
    RequestPool(RequestPoolResponse),
    /// IpamDriver.RequestAddress.
    RequestAddress(RequestAddressResponse),
}

impl Response {
    /// The JSON body.
    pub fn to_json(&self) -> String {
        let json = match self {
            Response::Empty => return "{}".to_owned(),
            Response::Activate(r) => serde_json::to_string(r),
            Response::NetworkCapabilities(r) => serde_json::to_string(r),
            Response::GwAllocCheck(r) => serde_json::to_string(r),
            Response::AllocateNetwork(r) => serde_json::to_string(r),
            Response::CreateEndpoint(r) => serde_json::to_string(r),
            Response::EndpointOperInfo(r) => serde_json::to_string(r),
            Response::Join(r) => serde_json::to_string(r),
            Response::IpamCapabilities(r) => serde_json::to_string(r),
            Response::DefaultAddressSpaces(r) => serde_json::to_string(r),
            Response::RequestPool(r) => serde_json::to_string(r),
            Response::RequestAddress(r) => serde_json::to_string(r),
        };
        // These types only hold strings, bools, string-keyed maps and
        // serde_json values, whose serialisation cannot fail.
        json.unwrap_or_else(|e| error_body(&format!("cannot encode the response: {e}")))
    }

    /// Whether this is the reply shape of `method` (the server answers a
    /// mismatch with HTTP 500 instead of sending Docker a wrong shape).
    pub fn answers(&self, method: PluginMethod) -> bool {
        use PluginMethod as M;
        match self {
            Response::Empty => matches!(
                method,
                M::CreateNetwork
                    | M::DeleteNetwork
                    | M::FreeNetwork
                    | M::DeleteEndpoint
                    | M::Leave
                    | M::ProgramExternalConnectivity
                    | M::RevokeExternalConnectivity
                    | M::DiscoverNew
                    | M::DiscoverDelete
                    | M::ReleasePool
                    | M::ReleaseAddress
            ),
            Response::Activate(_) => method == M::Activate,
            Response::NetworkCapabilities(_) => method == M::NetworkGetCapabilities,
            Response::GwAllocCheck(_) => method == M::GwAllocCheck,
            Response::AllocateNetwork(_) => method == M::AllocateNetwork,
            Response::CreateEndpoint(_) => method == M::CreateEndpoint,
            Response::EndpointOperInfo(_) => method == M::EndpointOperInfo,
            Response::Join(_) => method == M::Join,
            Response::IpamCapabilities(_) => method == M::IpamGetCapabilities,
            Response::DefaultAddressSpaces(_) => method == M::GetDefaultAddressSpaces,
            Response::RequestPool(_) => method == M::RequestPool,
            Response::RequestAddress(_) => method == M::RequestAddress,
        }
    }
}

/// `{"Err": message}`: read by the plugin client on any non-200 status.
pub(crate) fn error_body(message: &str) -> String {
    serde_json::json!({ "Err": message }).to_string()
}
