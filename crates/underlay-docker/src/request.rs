//! The typed request: which plugin method was called, with its decoded body.

use crate::error::RequestError;
use crate::types::ipam::{
    ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestPoolRequest,
};
use crate::types::network::{
    AllocateNetworkRequest, CreateEndpointRequest, CreateNetworkRequest, DiscoveryNotification,
    EndpointRef, GwAllocCheckRequest, JoinRequest, NetworkRef, ProgramExternalConnectivityRequest,
};
use serde::de::DeserializeOwned;

/// A plugin method: the URL path is `/` + [`PluginMethod::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginMethod {
    /// `Plugin.Activate`
    Activate,
    /// `NetworkDriver.GetCapabilities`
    NetworkGetCapabilities,
    /// `NetworkDriver.CreateNetwork`
    CreateNetwork,
    /// `NetworkDriver.DeleteNetwork`
    DeleteNetwork,
    /// `NetworkDriver.AllocateNetwork`
    AllocateNetwork,
    /// `NetworkDriver.FreeNetwork`
    FreeNetwork,
    /// `NetworkDriver.CreateEndpoint`
    CreateEndpoint,
    /// `NetworkDriver.EndpointOperInfo`
    EndpointOperInfo,
    /// `NetworkDriver.DeleteEndpoint`
    DeleteEndpoint,
    /// `NetworkDriver.Join`
    Join,
    /// `NetworkDriver.Leave`
    Leave,
    /// `NetworkDriver.ProgramExternalConnectivity`
    ProgramExternalConnectivity,
    /// `NetworkDriver.RevokeExternalConnectivity`
    RevokeExternalConnectivity,
    /// `NetworkDriver.DiscoverNew`
    DiscoverNew,
    /// `NetworkDriver.DiscoverDelete`
    DiscoverDelete,
    /// `NetworkDriver.GwAllocCheck`
    GwAllocCheck,
    /// `IpamDriver.GetCapabilities`
    IpamGetCapabilities,
    /// `IpamDriver.GetDefaultAddressSpaces`
    GetDefaultAddressSpaces,
    /// `IpamDriver.RequestPool`
    RequestPool,
    /// `IpamDriver.ReleasePool`
    ReleasePool,
    /// `IpamDriver.RequestAddress`
    RequestAddress,
    /// `IpamDriver.ReleaseAddress`
    ReleaseAddress,
}

const METHOD_NAMES: [(PluginMethod, &str); 22] = [
    (PluginMethod::Activate, "Plugin.Activate"),
    (
        PluginMethod::NetworkGetCapabilities,
        "NetworkDriver.GetCapabilities",
    ),
    (PluginMethod::CreateNetwork, "NetworkDriver.CreateNetwork"),
    (PluginMethod::DeleteNetwork, "NetworkDriver.DeleteNetwork"),
    (
        PluginMethod::AllocateNetwork,
        "NetworkDriver.AllocateNetwork",
    ),
    (PluginMethod::FreeNetwork, "NetworkDriver.FreeNetwork"),
    (PluginMethod::CreateEndpoint, "NetworkDriver.CreateEndpoint"),
    (
        PluginMethod::EndpointOperInfo,
        "NetworkDriver.EndpointOperInfo",
    ),
    (PluginMethod::DeleteEndpoint, "NetworkDriver.DeleteEndpoint"),
    (PluginMethod::Join, "NetworkDriver.Join"),
    (PluginMethod::Leave, "NetworkDriver.Leave"),
    (
        PluginMethod::ProgramExternalConnectivity,
        "NetworkDriver.ProgramExternalConnectivity",
    ),
    (
        PluginMethod::RevokeExternalConnectivity,
        "NetworkDriver.RevokeExternalConnectivity",
    ),
    (PluginMethod::DiscoverNew, "NetworkDriver.DiscoverNew"),
    (PluginMethod::DiscoverDelete, "NetworkDriver.DiscoverDelete"),
    (PluginMethod::GwAllocCheck, "NetworkDriver.GwAllocCheck"),
    (
        PluginMethod::IpamGetCapabilities,
        "IpamDriver.GetCapabilities",
    ),
    (
        PluginMethod::GetDefaultAddressSpaces,
        "IpamDriver.GetDefaultAddressSpaces",
    ),
    (PluginMethod::RequestPool, "IpamDriver.RequestPool"),
    (PluginMethod::ReleasePool, "IpamDriver.ReleasePool"),
    (PluginMethod::RequestAddress, "IpamDriver.RequestAddress"),
    (PluginMethod::ReleaseAddress, "IpamDriver.ReleaseAddress"),
];

impl PluginMethod {
    /// Every method, in protocol order.
    pub fn all() -> impl Iterator<Item = PluginMethod> {
        METHOD_NAMES.iter().map(|(method, _)| *method)
    }

    /// The name, e.g. `NetworkDriver.Join`.
    pub fn name(self) -> &'static str {
        METHOD_NAMES
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("", |(_, name)| name)
    }

    /// The method for a URL path such as `/NetworkDriver.Join` (a query string is ignored).
    pub fn from_path(path: &str) -> Option<PluginMethod> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let name = path.strip_prefix('/')?;
        METHOD_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(method, _)| *method)
    }
}

/// A decoded plugin request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The handshake; the server answers it itself.
    Activate,
    /// Network-driver capabilities.
    NetworkGetCapabilities,
    /// A network was created with this driver.
    CreateNetwork(CreateNetworkRequest),
    /// A network was removed.
    DeleteNetwork(NetworkRef),
    /// Swarm manager: allocate a global-scope network.
    AllocateNetwork(AllocateNetworkRequest),
    /// Swarm manager: free a global-scope network.
    FreeNetwork(NetworkRef),
    /// An endpoint (container attachment) is being created.
    CreateEndpoint(CreateEndpointRequest),
    /// Operational data about an endpoint, for `docker inspect`.
    EndpointOperInfo(EndpointRef),
    /// An endpoint was removed.
    DeleteEndpoint(EndpointRef),
    /// Put the endpoint's interface into a sandbox.
    Join(JoinRequest),
    /// The sandbox leaves the endpoint.
    Leave(EndpointRef),
    /// Set up outside access (port mappings) for an endpoint.
    ProgramExternalConnectivity(ProgramExternalConnectivityRequest),
    /// Remove what `ProgramExternalConnectivity` set up.
    RevokeExternalConnectivity(EndpointRef),
    /// A node joined the cluster.
    DiscoverNew(DiscoveryNotification),
    /// A node left the cluster.
    DiscoverDelete(DiscoveryNotification),
    /// Whether to skip gateway allocation for a network about to be created.
    GwAllocCheck(GwAllocCheckRequest),
    /// IPAM-driver capabilities.
    IpamGetCapabilities,
    /// The default local and global address space names.
    GetDefaultAddressSpaces,
    /// Reserve an address pool.
    RequestPool(RequestPoolRequest),
    /// Release an address pool.
    ReleasePool(ReleasePoolRequest),
    /// Allocate an address from a pool.
    RequestAddress(RequestAddressRequest),
    /// Release an address.
    ReleaseAddress(ReleaseAddressRequest),
}

impl Request {
    /// Decodes the request for a URL path and body.
    ///
    /// Methods without a payload (Activate, GetCapabilities,
    /// GetDefaultAddressSpaces) ignore the body, which Docker sends empty.
    /// For the others, an empty body or `null` reads as `{}` (so a missing
    /// field is reported by name), and unknown fields are ignored.
    pub fn parse(path: &str, body: &[u8]) -> Result<Request, RequestError> {
        let method = PluginMethod::from_path(path)
            .ok_or_else(|| RequestError::UnknownMethod(path.to_owned()))?;
        Request::decode(method, body)
    }

    /// Decodes the body of a known method.
    pub fn decode(method: PluginMethod, body: &[u8]) -> Result<Request, RequestError> {
        use PluginMethod as M;
        let json = JsonBody { method, body };
        Ok(match method {
            M::Activate => Request::Activate,
            M::NetworkGetCapabilities => Request::NetworkGetCapabilities,
            M::IpamGetCapabilities => Request::IpamGetCapabilities,
            M::GetDefaultAddressSpaces => Request::GetDefaultAddressSpaces,
            M::CreateNetwork => Request::CreateNetwork(json.decode()?),
            M::DeleteNetwork => Request::DeleteNetwork(json.decode()?),
            M::AllocateNetwork => Request::AllocateNetwork(json.decode()?),
            M::FreeNetwork => Request::FreeNetwork(json.decode()?),
            M::CreateEndpoint => Request::CreateEndpoint(json.decode()?),
            M::EndpointOperInfo => Request::EndpointOperInfo(json.decode()?),
            M::DeleteEndpoint => Request::DeleteEndpoint(json.decode()?),
            M::Join => Request::Join(json.decode()?),
            M::Leave => Request::Leave(json.decode()?),
            M::ProgramExternalConnectivity => Request::ProgramExternalConnectivity(json.decode()?),
            M::RevokeExternalConnectivity => Request::RevokeExternalConnectivity(json.decode()?),
            M::DiscoverNew => Request::DiscoverNew(json.decode()?),
            M::DiscoverDelete => Request::DiscoverDelete(json.decode()?),
            M::GwAllocCheck => Request::GwAllocCheck(json.decode()?),
            M::RequestPool => Request::RequestPool(json.decode()?),
            M::ReleasePool => Request::ReleasePool(json.decode()?),
            M::RequestAddress => Request::RequestAddress(json.decode()?),
            M::ReleaseAddress => Request::ReleaseAddress(json.decode()?),
        })
    }

    /// The method this request was sent to.
    pub fn method(&self) -> PluginMethod {
        use PluginMethod as M;
        match self {
            Request::Activate => M::Activate,
            Request::NetworkGetCapabilities => M::NetworkGetCapabilities,
            Request::CreateNetwork(_) => M::CreateNetwork,
            Request::DeleteNetwork(_) => M::DeleteNetwork,
            Request::AllocateNetwork(_) => M::AllocateNetwork,
            Request::FreeNetwork(_) => M::FreeNetwork,
            Request::CreateEndpoint(_) => M::CreateEndpoint,
            Request::EndpointOperInfo(_) => M::EndpointOperInfo,
            Request::DeleteEndpoint(_) => M::DeleteEndpoint,
            Request::Join(_) => M::Join,
            Request::Leave(_) => M::Leave,
            Request::ProgramExternalConnectivity(_) => M::ProgramExternalConnectivity,
            Request::RevokeExternalConnectivity(_) => M::RevokeExternalConnectivity,
            Request::DiscoverNew(_) => M::DiscoverNew,
            Request::DiscoverDelete(_) => M::DiscoverDelete,
            Request::GwAllocCheck(_) => M::GwAllocCheck,
            Request::IpamGetCapabilities => M::IpamGetCapabilities,
            Request::GetDefaultAddressSpaces => M::GetDefaultAddressSpaces,
            Request::RequestPool(_) => M::RequestPool,
            Request::ReleasePool(_) => M::ReleasePool,
            Request::RequestAddress(_) => M::RequestAddress,
            Request::ReleaseAddress(_) => M::ReleaseAddress,
        }
    }
}

struct JsonBody<'a> {
    method: PluginMethod,
    body: &'a [u8],
}

impl JsonBody<'_> {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, RequestError> {
        let trimmed = self.body.trim_ascii();
        // Go's encoder writes nil as `null`; an absent body means the same.
        let body = if trimmed.is_empty() || trimmed == b"null" {
            b"{}"
        } else {
            trimmed
        };
        // serde's derived structs would also take a positional array.
        if body[0] != b'{' {
            return Err(self.invalid(None, "the body must be a JSON object".to_owned()));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let value =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| self.error(e))?;
        deserializer
            .end()
            .map_err(|e| self.invalid(None, e.to_string()))?;
        Ok(value)
    }

    fn error(&self, e: serde_path_to_error::Error<serde_json::Error>) -> RequestError {
        let field = e.path().to_string();
        // "." is the root; "?" an unparsable key at the root.
        let field = (field != "." && field != "?").then_some(field);
        self.invalid(field, e.inner().to_string())
    }

    fn invalid(&self, field: Option<String>, message: String) -> RequestError {
        RequestError::InvalidBody {
            method: self.method.name(),
            field,
            message,
        }
    }
}
