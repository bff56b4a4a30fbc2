//! JSON views shaped like `docker network inspect` / `docker network ls --format json`.

use serde_json::{json, Map, Value};

use crate::{Endpoint, Error, Family, IpConfig, Network, State};

/// `network inspect` for one network, with its endpoints.
pub fn inspect_json(state: &State, net: &Network) -> Result<Value, Error> {
    let endpoints: Map<String, Value> = state
        .endpoints(&net.id)?
        .iter()
        .map(|ep| (ep.name.clone(), endpoint_json(net, ep)))
        .collect();
    let spec = &net.spec;
    Ok(json!({
        "Name": spec.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": spec.driver.name(),
        "EnableIPv4": spec.ipv4.is_some(),
        "EnableIPv6": spec.ipv6.is_some(),
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": spec.ip_configs().map(|(_, c)| ipam_config_json(c)).collect::<Vec<_>>(),
        },
        "Internal": spec.internal,
        "Attachable": true,
        "Options": spec.options,
        "Labels": spec.labels,
        "Endpoints": endpoints,
    }))
}

fn ipam_config_json(config: &IpConfig) -> Value {
    let mut out = json!({ "Subnet": config.subnet.to_string() });
    if let Some(gateway) = config.gateway {
        out["Gateway"] = json!(gateway.to_string());
    }
    if let Some(range) = config.ip_range {
        out["IPRange"] = json!(range.to_string());
    }
    if !config.aux_addresses.is_empty() {
        out["AuxiliaryAddresses"] = json!(config.aux_addresses);
    }
    out
}

fn endpoint_json(net: &Network, ep: &Endpoint) -> Value {
    let with_prefix = |family: Family| -> String {
        match (ep.address(family), net.spec.ip_config(family)) {
            (Some(ip), Some(config)) => format!("{ip}/{}", config.subnet.prefix()),
            _ => String::new(),
        }
    };
    json!({
        "EndpointID": ep.id,
        "MacAddress": ep.mac.to_string(),
        "IPv4Address": with_prefix(Family::V4),
        "IPv6Address": with_prefix(Family::V6),
        "Netns": ep.netns,
        "Interface": ep.ifname.as_str(),
    })
}

/// One row of `network ls --format json`.
pub fn list_json(state: &State, net: &Network) -> Result<Value, Error> {
    let spec = &net.spec;
    Ok(json!({
        "Name": spec.name,
        "ID": &net.id[..12],
        "Driver": spec.driver.name(),
        "Parent": net.parent_name().as_str(),
        "Subnets": spec.ip_configs().map(|(_, c)| c.subnet.to_string()).collect::<Vec<_>>(),
        "Endpoints": state.endpoints(&net.id)?.len(),
        "Internal": spec.internal,
        "Created": net.created,
    }))
}
