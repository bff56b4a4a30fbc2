//! JSON views shaped like `docker network inspect` / `docker network ls --format json`.

use serde_json::{json, Map, Value};

use crate::leases::{endpoint_key, LeaseReply};
use crate::state::ConflictMark;
use crate::{Endpoint, Error, Family, Health, IpConfig, IpamDriver, Ipv6Mode, Network, State};

/// `network inspect` for one network, with its endpoints and (when known) its health.
pub fn inspect_json(state: &State, net: &Network, health: Option<&Health>) -> Result<Value, Error> {
    let mut endpoints = Map::new();
    for ep in state.endpoints(&net.id)? {
        let lease = match net.uses_dhcp() {
            true => state.lease(&endpoint_key(&ep.id))?.map(|l| l.lease),
            false => None,
        };
        endpoints.insert(ep.name.clone(), endpoint_json(net, &ep, lease.as_ref()));
    }
    let spec = &net.spec;
    Ok(json!({
        "Name": spec.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": spec.driver.name(),
        "EnableIPv4": spec.ipv4.is_some() || spec.ipam.driver == IpamDriver::Dhcp,
        "EnableIPv6": spec.ipv6_mode() != Ipv6Mode::Off,
        "IPAM": {
            "Driver": spec.ipam.driver.name(),
            "Options": spec.ipam.options,
            "Config": spec.ip_configs().map(|(_, c)| ipam_config_json(c)).collect::<Vec<_>>(),
            "IPv6Mode": spec.ipv6_mode().name(),
            "ConflictDetection": spec.ipam.conflict_detection(),
            "ProbeMs": spec.ipam.probe_time().as_millis() as u64,
            "LiveOnLan": live_on_lan(state, net)?,
        },
        "Internal": spec.internal,
        "Attachable": true,
        "Options": spec.options,
        "Labels": spec.labels,
        "Endpoints": endpoints,
        "Status": health,
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

/// Addresses conflict detection found answering on the LAN, with who answered.
fn live_on_lan(state: &State, net: &Network) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for family in [Family::V4, Family::V6] {
        for r in state.reservations(net, family)? {
            if let Some(mark) = ConflictMark::parse(&r.owner) {
                out.insert(
                    r.ip.to_string(),
                    json!({"AnsweredBy": mark.mac, "Since": mark.since}),
                );
            }
        }
    }
    Ok(out)
}

fn endpoint_json(net: &Network, ep: &Endpoint, lease: Option<&LeaseReply>) -> Value {
    let prefix = |family: Family| -> Option<u8> {
        let leased = lease.and_then(|l| match family {
            Family::V4 => l.v4.as_ref().map(|v| v.prefix),
            Family::V6 => l.v6.as_ref().map(|v| v.prefix),
        });
        leased.or_else(|| net.spec.ip_config(family).map(|c| c.subnet.prefix()))
    };
    let with_prefix = |family: Family| -> String {
        match (ep.address(family), prefix(family)) {
            (Some(ip), Some(prefix)) => format!("{ip}/{prefix}"),
            _ => String::new(),
        }
    };
    let mut out = json!({
        "EndpointID": ep.id,
        "MacAddress": ep.mac.to_string(),
        "IPv4Address": with_prefix(Family::V4),
        "IPv6Address": with_prefix(Family::V6),
        "Netns": ep.netns,
        "Interface": ep.ifname.as_str(),
    });
    if let Some(lease) = lease {
        out["Lease"] = json!(lease);
    }
    out
}

/// One row of `network ls --format json`.
pub fn list_json(state: &State, net: &Network, health: Option<&Health>) -> Result<Value, Error> {
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
        "Status": health.map_or("unknown", Health::name),
    }))
}
