//! A toy network + IPAM plugin for checking the wire format against a real
//! dockerd. Not underlay's driver: addresses live in memory and each
//! endpoint is one end of a veth pair made with `ip link`.
//!
//! ```text
//! cargo run -p underlay-docker --example toy_plugin -- /run/docker/plugins/toy.sock
//! docker network create -d toy --ipam-driver toy --subnet 10.77.0.0/24 toynet
//! ```
//!
//! `RUST_LOG=debug` shows every call.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use underlay_docker::*;

#[derive(Default)]
struct State {
    /// Pool ID → (pool, addresses in use).
    pools: BTreeMap<String, (IpNet, BTreeSet<IpAddr>)>,
    /// Network ID → IPv4 gateway.
    gateways: BTreeMap<String, Option<IpAddr>>,
}

#[derive(Default)]
struct Toy {
    state: Mutex<State>,
}

fn error(message: impl Into<String>) -> PluginError {
    PluginError::new(message)
}

impl Handler for Toy {
    fn handle(&self, request: Request) -> Result<Response, PluginError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| error("state lock poisoned"))?;
        match request {
            Request::NetworkGetCapabilities => {
                Ok(Response::NetworkCapabilities(NetworkCapabilities {
                    scope: Scope::Local,
                    connectivity_scope: None,
                    gw_alloc_checker: false,
                }))
            }
            Request::CreateNetwork(r) => create_network(&mut state, &r),
            Request::DeleteNetwork(r) => {
                state.gateways.remove(&r.network_id);
                Ok(Response::Empty)
            }
            Request::CreateEndpoint(r) => create_endpoint(&r),
            Request::EndpointOperInfo(r) => Ok(Response::EndpointOperInfo(oper_info(&r))),
            Request::DeleteEndpoint(r) => delete_endpoint(&r),
            Request::Join(r) => join(&state, &r),
            Request::Leave(_) | Request::DiscoverNew(_) | Request::DiscoverDelete(_) => {
                Ok(Response::Empty)
            }
            Request::ProgramExternalConnectivity(_) | Request::RevokeExternalConnectivity(_) => {
                Ok(Response::Empty)
            }
            Request::IpamGetCapabilities => {
                Ok(Response::IpamCapabilities(IpamCapabilities::default()))
            }
            Request::GetDefaultAddressSpaces => {
                Ok(Response::DefaultAddressSpaces(DefaultAddressSpaces {
                    local: "ToyLocal".into(),
                    global: "ToyGlobal".into(),
                }))
            }
            Request::RequestPool(r) => request_pool(&mut state, &r),
            Request::ReleasePool(r) => {
                state.pools.remove(&r.pool_id);
                Ok(Response::Empty)
            }
            Request::RequestAddress(r) => request_address(&mut state, &r),
            Request::ReleaseAddress(r) => {
                let (_, used) = state
                    .pools
                    .get_mut(&r.pool_id)
                    .ok_or_else(|| error(format!("unknown pool {}", r.pool_id)))?;
                used.remove(&r.address);
                Ok(Response::Empty)
            }
            other => Err(error(format!(
                "{} is not supported by the toy plugin",
                other.method().name()
            ))),
        }
    }
}

fn create_network(
    state: &mut State,
    request: &CreateNetworkRequest,
) -> Result<Response, PluginError> {
    let generic = request.options.generic_options()?;
    tracing::info!(network = %request.network_id, ?generic, ipv6 = request.options.ipv6_enabled()?, "create network");
    let gateway = request
        .ipv4_data
        .first()
        .and_then(|data| data.gateway)
        .map(|g| g.addr());
    state.gateways.insert(request.network_id.clone(), gateway);
    Ok(Response::Empty)
}

fn veth_name(endpoint_id: &str) -> String {
    format!("toy{}", endpoint_id.chars().take(8).collect::<String>())
}

fn ip(args: &[&str]) -> Result<(), PluginError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| error(format!("run ip: {e}")))?;
    if !output.status.success() {
        return Err(error(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Creates the veth pair and reports its MAC if the engine did not pick one.
fn create_endpoint(request: &CreateEndpointRequest) -> Result<Response, PluginError> {
    let name = veth_name(&request.endpoint_id);
    ip(&[
        "link",
        "add",
        &name,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{name}p"),
    ])?;
    // libnetwork does not call DeleteEndpoint after a failed CreateEndpoint.
    configure_endpoint(&name, &request.interface).inspect_err(|_| {
        let _ = ip(&["link", "del", &name]);
    })
}

fn configure_endpoint(name: &str, requested: &EndpointInterface) -> Result<Response, PluginError> {
    if let Some(mac) = requested.mac_address {
        ip(&["link", "set", name, "address", &mac.to_string()])?;
        return Ok(Response::CreateEndpoint(CreateEndpointResponse::unchanged()));
    }
    let mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .map_err(|e| error(format!("read MAC of {name}: {e}")))?;
    let mac = mac
        .trim()
        .parse()
        .map_err(|e: AddrError| error(e.to_string()))?;
    let chosen = EndpointInterface {
        mac_address: Some(mac),
        ..Default::default()
    };
    Ok(Response::CreateEndpoint(CreateEndpointResponse::fill(
        requested, chosen,
    )?))
}

fn oper_info(request: &EndpointRef) -> EndpointOperInfoResponse {
    let mut value = serde_json::Map::new();
    value.insert("veth".into(), veth_name(&request.endpoint_id).into());
    EndpointOperInfoResponse { value }
}

fn delete_endpoint(request: &EndpointRef) -> Result<Response, PluginError> {
    // The container side was moved away and is gone with its namespace;
    // deleting the host side removes the pair if it is still here.
    let _ = ip(&[
        "link",
        "del",
        &format!("{}p", veth_name(&request.endpoint_id)),
    ]);
    let _ = ip(&["link", "del", &veth_name(&request.endpoint_id)]);
    Ok(Response::Empty)
}

fn join(state: &State, request: &JoinRequest) -> Result<Response, PluginError> {
    let gateway = match state.gateways.get(&request.network_id) {
        Some(Some(IpAddr::V4(gateway))) => Some(*gateway),
        _ => None,
    };
    let src_name = veth_name(&request.endpoint_id);
    let interface_name = Some(InterfaceName {
        src_name,
        dst_prefix: "eth".into(),
        dst_name: None,
    });
    Ok(Response::Join(JoinResponse {
        interface_name,
        gateway,
        disable_gateway_service: true,
        ..Default::default()
    }))
}

fn request_pool(state: &mut State, request: &RequestPoolRequest) -> Result<Response, PluginError> {
    let pool = request
        .pool
        .ok_or_else(|| error("the toy plugin needs --subnet"))?
        .network();
    let pool_id = format!("{}/{pool}", request.address_space);
    state
        .pools
        .entry(pool_id.clone())
        .or_insert((pool, BTreeSet::new()));
    Ok(Response::RequestPool(RequestPoolResponse::new(
        pool_id, pool,
    )))
}

fn request_address(
    state: &mut State,
    request: &RequestAddressRequest,
) -> Result<Response, PluginError> {
    let (pool, used) = state
        .pools
        .get_mut(&request.pool_id)
        .ok_or_else(|| error(format!("unknown pool {}", request.pool_id)))?;
    let address = match request.address {
        Some(address) => address,
        None => next_free(pool, used).ok_or_else(|| error(format!("pool {pool} is full")))?,
    };
    if !used.insert(address) {
        return Err(error(format!("address {address} is in use")));
    }
    let address = IpNet::new(address, pool.prefix()).ok_or_else(|| error("prefix out of range"))?;
    Ok(Response::RequestAddress(RequestAddressResponse::new(
        address,
    )))
}

fn next_free(pool: &IpNet, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    let IpAddr::V4(base) = pool.addr() else {
        return None;
    };
    let size = 1u32.checked_shl(32 - u32::from(pool.prefix())).unwrap_or(0);
    (1..size.saturating_sub(1))
        .map(|offset| IpAddr::V4((u32::from(base) + offset).into()))
        .find(|a| !used.contains(a))
}

fn main() -> std::io::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::from_default_env();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "/run/docker/plugins/toy.sock".into());
    let listener = bind(&path)?;
    tracing::info!("serving {}", path.display());
    serve(listener, Arc::new(Toy::default()))
}
