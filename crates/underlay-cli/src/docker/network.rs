//! Docker networks and IPAM pools.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use underlay_core::{CreateNetwork, Engine, Error};
use underlay_docker::{
    CreateNetworkRequest, IpNet, IpamData, RequestPoolRequest, RequestPoolResponse,
};
use underlay_linux::LinuxKernel;

use super::handler::network_name;
use super::pools::{self, Pool};

/// `--ipam-opt`s the Docker side reads itself; the others go to the engine as they are.
const DHCP_V4: &str = "dhcp";

/// RequestPool: a subnet (`--subnet`), or a DHCP pool (`--ipam-opt dhcp=true`, and
/// `dhcpv6=true` for IPv6), whose addresses the LAN's server gives out.
pub fn request_pool(
    engine: &mut Engine<LinuxKernel>,
    req: &RequestPoolRequest,
) -> Result<RequestPoolResponse, Error> {
    let dhcp = wants_dhcp(&req.options, req.v6)?;
    let cidr = match (req.pool, dhcp) {
        (Some(cidr), false) => cidr.network(),
        (Some(cidr), true) => {
            return Err(Error::Invalid(format!(
                "--subnet {cidr} and DHCP exclude each other: the LAN's DHCP server decides the subnet"
            )))
        }
        (None, true) => any_address(req.v6),
        (None, false) => {
            return Err(Error::Invalid(
                "the underlay IPAM driver needs --subnet, or --ipam-opt dhcp=true for addresses from the LAN's DHCP server".into(),
            ))
        }
    };
    let pool = Pool {
        pool: cidr.to_string(),
        v6: req.v6,
        sub_pool: req.sub_pool.map(|s| s.to_string()),
        options: req.options.clone(),
        dhcp,
        network_id: None,
        since: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    };
    let id = format!("ul-{}", random_id()?);
    pools::save(engine.state_mut(), &id, &pool)?;
    let response = RequestPoolResponse::new(id, cidr);
    // A DHCP network has no gateway of its own: say so, so that Docker asks for none.
    Ok(match dhcp {
        true => response.with_gateway(cidr),
        false => response,
    })
}

pub fn release_pool(engine: &mut Engine<LinuxKernel>, pool_id: &str) -> Result<(), Error> {
    pools::remove(engine.state_mut(), pool_id).map(drop)
}

fn wants_dhcp(options: &BTreeMap<String, String>, v6: bool) -> Result<bool, Error> {
    let flag = |key: &str| -> Result<bool, Error> {
        match options.get(key).map(String::as_str) {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(Error::Invalid(format!(
                "invalid --ipam-opt {key} {other:?}: expected true or false"
            ))),
        }
    };
    Ok(match v6 {
        false => flag(DHCP_V4)?,
        true => flag("dhcpv6")? || options.get("ipv6_mode").map(String::as_str) == Some("dhcpv6"),
    })
}

fn any_address(v6: bool) -> IpNet {
    let any = match v6 {
        false => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        true => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    IpNet::new(any, 0).expect("a /0 always fits")
}

fn random_id() -> Result<String, Error> {
    let mut bytes = [0u8; 6];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| Error::Io(e.to_string()))?,
        &mut bytes,
    )
    .map_err(|e| Error::Io(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// CreateNetwork: the engine network `docker-<id>`, from the `-o` options, the pools Docker
/// got (from underlay's IPAM or its own) and their `--ipam-opt`s.
pub fn create(engine: &mut Engine<LinuxKernel>, req: &CreateNetworkRequest) -> Result<(), Error> {
    let mut options = req.options.generic_options().map_err(invalid)?;
    let driver = options
        .remove("mode")
        .or_else(|| options.remove("driver"))
        .unwrap_or_else(|| "macvlan".into());
    let mut create = CreateNetwork {
        name: network_name(&req.network_id),
        driver,
        options: options
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        internal: req.options.internal().map_err(invalid)?,
        labels: vec![format!("com.docker.network.id={}", req.network_id)],
        ..CreateNetwork::default()
    };
    let v6 = req.options.ipv6_enabled().map_err(invalid)?;
    let mut bound = Vec::new();
    for data in req
        .ipv4_data
        .iter()
        .chain(if v6 { &req.ipv6_data[..] } else { &[] })
    {
        bound.extend(add_pool(engine, &mut create, data)?);
    }
    create.ipv6 = v6 && !req.ipv6_data.is_empty();
    engine.create_network(&create)?;
    for (id, mut pool) in bound {
        pool.network_id = Some(req.network_id.clone());
        pools::save(engine.state_mut(), &id, &pool)?;
    }
    Ok(())
}

/// One pool of a CreateNetwork into the engine request; returns underlay's pool record when
/// the pool is one of ours (to be bound once the network exists).
fn add_pool(
    engine: &Engine<LinuxKernel>,
    create: &mut CreateNetwork,
    data: &IpamData,
) -> Result<Option<(String, Pool)>, Error> {
    let Some(cidr) = data.pool else {
        return Ok(None);
    };
    let ours = pools::unbound(engine.state(), &cidr.network())?;
    if let Some((_, pool)) = &ours {
        for (key, value) in pool.options.iter().filter(|(k, _)| k.as_str() != DHCP_V4) {
            let option = format!("{key}={value}");
            if !create.ipam_options.contains(&option) {
                create.ipam_options.push(option);
            }
        }
        if let Some(range) = &pool.sub_pool {
            create.ip_ranges.push(range.clone());
        }
        if pool.dhcp {
            let dhcpv6_asked = create
                .ipam_options
                .iter()
                .any(|o| o.starts_with("ipv6_mode=") || o.starts_with("dhcpv6="));
            match pool.v6 {
                false => create.ipam_driver = Some("dhcp".into()),
                true if !dhcpv6_asked => create.ipam_options.push("ipv6_mode=dhcpv6".into()),
                true => {}
            }
            return Ok(ours);
        }
    }
    create.subnets.push(cidr.network().to_string());
    if let Some(gateway) = data.gateway {
        create.gateways.push(gateway.addr().to_string());
    }
    for (name, addr) in &data.aux_addresses {
        create.aux_addresses.push(format!("{name}={}", addr.addr()));
    }
    Ok(ours)
}

/// DeleteNetwork; a network already gone is fine (Docker retries after failures).
pub fn delete(engine: &mut Engine<LinuxKernel>, network_id: &str) -> Result<(), Error> {
    match engine.remove_network(&network_name(network_id), false) {
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    for (id, mut pool) in pools::bound_to(engine.state(), network_id)? {
        pool.network_id = None;
        pools::save(engine.state_mut(), &id, &pool)?;
    }
    Ok(())
}

fn invalid(e: underlay_docker::PluginError) -> Error {
    Error::Invalid(e.message)
}
