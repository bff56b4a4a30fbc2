//! Docker endpoints: IPAM addresses, CreateEndpoint, Join, Leave, DeleteEndpoint.

use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Map};
use underlay_core::{CreateHandoff, Engine, Error, Family, MacAddr, PrepareAddress};
use underlay_docker::{
    CreateEndpointRequest, CreateEndpointResponse, EndpointInterface, EndpointOperInfoResponse,
    EndpointRef, InterfaceName, IpNet, JoinRequest, JoinResponse, ReleaseAddressRequest,
    RequestAddressRequest, RequestAddressResponse, StaticRoute,
};
use underlay_linux::LinuxKernel;

use super::handler::network_name;
use super::pools;

/// RequestAddress. Before the network exists (the gateway, aux addresses) the address is only
/// checked against the pool: the engine reserves those when it creates the network. After,
/// it is an endpoint's: prepared by the engine (reserved or leased, probed on the LAN).
pub fn request_address(
    engine: &mut Engine<LinuxKernel>,
    req: &RequestAddressRequest,
) -> Result<RequestAddressResponse, Error> {
    tracing::debug!(pool = %req.pool_id, address = ?req.address, options = ?req.options, "RequestAddress");
    let pool = pools::load(engine.state(), &req.pool_id)?;
    let cidr = pool.cidr()?;
    let Some(network_id) = pool.network_id.as_deref().filter(|_| !req.is_gateway()) else {
        return Ok(RequestAddressResponse::new(network_address(
            &pool,
            cidr,
            req.address,
        )?));
    };
    let prepared = engine.prepare_address(&PrepareAddress {
        network: network_name(network_id),
        family: Some(if pool.v6 { Family::V6 } else { Family::V4 }),
        address: req.address,
        mac: req.mac_address().map_err(invalid)?.map(|m| MacAddr(m.0)),
        name: req.endpoint_name().map(String::from),
    })?;
    Ok(RequestAddressResponse::new(ipnet(
        prepared.address,
        prepared.prefix,
    )?))
}

/// A gateway or aux address: the one asked for, or the pool's first host for the gateway.
fn network_address(pool: &pools::Pool, cidr: IpNet, asked: Option<IpAddr>) -> Result<IpNet, Error> {
    if pool.dhcp {
        return Ok(cidr); // no gateway of ours: the DHCP server names the router
    }
    let addr = match asked {
        Some(addr) => addr,
        None => first_host(cidr),
    };
    ipnet(addr, cidr.prefix())
}

fn first_host(cidr: IpNet) -> IpAddr {
    match cidr.network().addr() {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4).wrapping_add(1)).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6).wrapping_add(1)).into()),
    }
}

pub fn release_address(
    engine: &mut Engine<LinuxKernel>,
    req: &ReleaseAddressRequest,
) -> Result<(), Error> {
    let pool = match pools::load(engine.state(), &req.pool_id) {
        Ok(pool) => pool,
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(network_id) = pool.network_id else {
        return Ok(());
    };
    match engine.release_prepared(&network_name(&network_id), req.address) {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// CreateEndpoint: the engine adopts what IPAM prepared (or, with Docker's own IPAM, builds
/// it now); the MAC is reported when Docker did not choose one.
pub fn create(
    engine: &mut Engine<LinuxKernel>,
    req: &CreateEndpointRequest,
) -> Result<CreateEndpointResponse, Error> {
    let iface = &req.interface;
    let ep = engine.create_handoff(&CreateHandoff {
        network: network_name(&req.network_id),
        runtime_id: req.endpoint_id.clone(),
        ipv4: iface.address.map(|a| a.addr()),
        ipv6: iface.address_ipv6.map(|a| a.addr()),
        mac: iface.mac_address.map(|m| MacAddr(m.0)),
    })?;
    let chosen = EndpointInterface {
        mac_address: Some(underlay_docker::MacAddr(ep.mac.0))
            .filter(|_| iface.mac_address.is_none()),
        ..EndpointInterface::default()
    };
    CreateEndpointResponse::fill(iface, chosen).map_err(|e| Error::Invalid(e.message))
}

/// Join: the link Docker is to move, and the routes it is to add.
pub fn join(engine: &mut Engine<LinuxKernel>, req: &JoinRequest) -> Result<JoinResponse, Error> {
    let handoff = engine.join_handoff(
        &network_name(&req.network_id),
        &req.endpoint_id,
        Path::new(&req.sandbox_key),
    )?;
    let static_routes = handoff
        .routes
        .iter()
        .map(|r| {
            let destination = ipnet(r.dst.addr, r.dst.prefix)?;
            Ok(match r.gateway {
                Some(next_hop) => StaticRoute::Via {
                    destination,
                    next_hop,
                },
                None => StaticRoute::Connected { destination },
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let gateway = handoff.gateway4.and_then(|g| match g {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    });
    let gateway_ipv6 = handoff.gateway6.and_then(|g| match g {
        IpAddr::V6(v6) => Some(v6),
        IpAddr::V4(_) => None,
    });
    Ok(JoinResponse {
        interface_name: Some(InterfaceName {
            src_name: handoff.link.to_string(),
            dst_prefix: "eth".into(),
            dst_name: None,
        }),
        // Without a gateway (internal networks, ipvlan L3) Docker would add a docker_gwbridge
        // leg for outbound traffic: an underlay network does not want one.
        disable_gateway_service: gateway.is_none() && gateway_ipv6.is_none(),
        gateway,
        gateway_ipv6,
        static_routes,
    })
}

pub fn leave(engine: &mut Engine<LinuxKernel>, req: &EndpointRef) -> Result<(), Error> {
    match engine.leave_handoff(&network_name(&req.network_id), &req.endpoint_id) {
        Ok(()) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn delete(engine: &mut Engine<LinuxKernel>, req: &EndpointRef) -> Result<(), Error> {
    match engine.delete_handoff(&network_name(&req.network_id), &req.endpoint_id) {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// EndpointOperInfo: what `docker network inspect -v`/`docker inspect` show of the endpoint.
pub fn info(
    engine: &mut Engine<LinuxKernel>,
    req: &EndpointRef,
) -> Result<EndpointOperInfoResponse, Error> {
    let name = network_name(&req.network_id);
    let net = engine
        .state()
        .network(&name)?
        .ok_or_else(|| Error::NotFound(format!("network {name} does not exist")))?;
    let Some(ep) = engine
        .state()
        .endpoint_by_runtime_id(&net.id, &req.endpoint_id)?
    else {
        return Ok(EndpointOperInfoResponse::default());
    };
    let mut value = Map::new();
    value.insert("underlay.endpoint".into(), json!(ep.name));
    value.insert("underlay.network".into(), json!(net.name()));
    value.insert("underlay.mac".into(), json!(ep.mac.to_string()));
    value.insert("underlay.ipv4".into(), json!(ep.ipv4));
    value.insert("underlay.ipv6".into(), json!(ep.ipv6));
    value.insert(
        "underlay.phase".into(),
        json!(format!("{:?}", ep.phase).to_lowercase()),
    );
    // Read from the kernel now: a parent that went down shows here at once.
    let health =
        underlay_core::network_health(underlay_linux::Kernel::host(engine.kernel()), &net)?;
    value.insert("underlay.status".into(), json!(health.name()));
    if let Some(reason) = &health.reason {
        value.insert("underlay.status_reason".into(), json!(reason));
    }
    Ok(EndpointOperInfoResponse { value })
}

fn ipnet(addr: IpAddr, prefix: u8) -> Result<IpNet, Error> {
    IpNet::new(addr, prefix)
        .ok_or_else(|| Error::State(format!("prefix /{prefix} does not fit {addr}")))
}

fn invalid(e: underlay_docker::PluginError) -> Error {
    Error::Invalid(e.message)
}
