//! # underlay-docker: the Docker plugin protocol
//!
//! The wire format and server of a Docker (libnetwork) **remote network
//! driver** and **remote IPAM driver** in one process, with no knowledge of
//! what the driver does: `underlay docker-plugin` implements [`Handler`]
//! over the engine and calls [`serve`].
//!
//! - [`Request`] / [`Response`] / [`PluginError`]: the one typed boundary.
//!   A request is decoded from (path, body) with [`Request::parse`]; a
//!   response is encoded with [`Response::to_json`]; [`dispatch()`] joins
//!   them to a handler and maps every outcome to an HTTP status.
//! - [`types`]: the JSON bodies of `/NetworkDriver.*` and `/IpamDriver.*`
//!   with Docker's PascalCase field names, addresses parsed into [`IpNet`],
//!   [`IpAddr`](std::net::IpAddr) and [`MacAddr`], the free-form `Options`
//!   map with typed accessors ([`Options`]).
//! - [`server`]: HTTP/1.1 over a unix socket ([`bind`], [`serve`],
//!   [`Server`]). Hand-written (a few hundred lines with the connection loop)
//!   rather than a dependency: the protocol needs a sliver of HTTP, POST
//!   with a JSON body and keep-alive, and owning it keeps every limit,
//!   timeout and error answer in view.
//!
//! ## Status codes
//!
//! | status | when | body |
//! | --- | --- | --- |
//! | 200 | success | the method's reply (`{}` for most) |
//! | 400 | malformed HTTP, malformed JSON, a field of the wrong type or value | `{"Err": "invalid NetworkDriver.Join body: SandboxKey: …"}` |
//! | 404 | unknown method: libnetwork then treats an optional method (Program/RevokeExternalConnectivity, IpamDriver.GetCapabilities) as not implemented | `{"Err": …}` |
//! | 405 | anything but POST | `{"Err": …}` |
//! | 408 / 413 / 431 | request not read in time, body over 4 MiB, headers over 64 KiB | `{"Err": …}`, then the connection is closed |
//! | 501 / 505 | a transfer coding other than chunked, HTTP other than 1.0/1.1 | `{"Err": …}`, then the connection is closed |
//! | 500 | the handler failed ([`PluginError`]) | `{"Err": message}` |
//! | 503 | too many connections | `{"Err": …}` |
//!
//! The network-driver proxy reads `Err` from a 200 body while the IPAM
//! proxy reads `Error`; on any other status the plugin client reads `Err`.
//! Failures are therefore always sent as 500 + `Err`, which both read.
//!
//! ## Decisions
//!
//! - Unknown JSON fields are ignored (newer engines add fields); the types
//!   of the fields we read are checked. Go writes nil maps, slices and
//!   pointers as `null` and unset strings as `""`: both read as absent.
//! - `Plugin.Activate` is answered by the server with
//!   `{"Implements": ["NetworkDriver", "IpamDriver"]}` and never reaches
//!   the handler.
//! - [`CreateEndpointResponse`] may only fill in interface fields the
//!   request left empty (libnetwork's rule, checked per field).
//! - A handler answer of the wrong shape for the method is a 500, not a
//!   reply Docker would misread.

mod connection;
pub mod dispatch;
pub mod error;
mod http;
pub mod request;
pub mod response;
pub mod server;
mod socket;
pub mod types;

pub use dispatch::{dispatch, Reply};
pub use error::{PluginError, RequestError};
pub use request::{PluginMethod, Request};
pub use response::{ActivateResponse, Response};
pub use server::{serve, serve_with, Server, ServerConfig};
pub use socket::bind;
pub use types::addr::{AddrError, IpNet, MacAddr};
pub use types::ipam::*;
pub use types::network::*;
pub use types::network_response::*;
pub use types::options::{labels, Options};

/// The driver: answers every request but `Plugin.Activate`.
///
/// Called from one thread per connection, so possibly concurrently.
pub trait Handler: Send + Sync {
    /// Handles one request. Return the [`Response`] variant of the
    /// request's method (see [`Response::answers`]); a [`PluginError`] is
    /// sent as HTTP 500 `{"Err": message}`.
    fn handle(&self, request: Request) -> Result<Response, PluginError>;
}
