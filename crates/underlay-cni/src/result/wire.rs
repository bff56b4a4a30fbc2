//! Per-version serialization of [`CniResult`].

use super::{CniResult, Dns, Interface, IpConfig, Route};
use crate::addr::IpNet;
use crate::version::CniVersion;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Serialize)]
struct WireResult<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<WireInterface<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
    dns: &'a Dns,
}

#[derive(Serialize)]
struct WireInterface<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<&'a str>,
    #[serde(rename = "socketPath", skip_serializing_if = "Option::is_none")]
    socket_path: Option<&'a str>,
    #[serde(rename = "pciID", skip_serializing_if = "Option::is_none")]
    pci_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireIp {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

#[derive(Serialize)]
struct WireRoute {
    dst: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advmss: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
}

pub(super) fn to_value(r: &CniResult, v: CniVersion) -> serde_json::Value {
    serde_json::to_value(build(r, v)).unwrap_or(serde_json::Value::Null)
}

/// The JSON text, keeping the field order of the reference encoder.
pub(super) fn to_string(r: &CniResult, v: CniVersion) -> String {
    serde_json::to_string(&build(r, v)).unwrap_or_default()
}

fn build(r: &CniResult, v: CniVersion) -> WireResult<'_> {
    WireResult {
        cni_version: v.as_str(),
        interfaces: r.interfaces.iter().map(|i| interface(i, v)).collect(),
        ips: r.ips.iter().map(|i| ip(i, v)).collect(),
        routes: r.routes.iter().map(|rt| route(rt, v)).collect(),
        dns: &r.dns,
    }
}

fn interface(i: &Interface, v: CniVersion) -> WireInterface<'_> {
    let v1 = v >= CniVersion::V1_0_0;
    let v11 = v >= CniVersion::V1_1_0;
    WireInterface {
        name: &i.name,
        mac: i.mac.as_deref(),
        mtu: i.mtu.filter(|_| v1),
        sandbox: i.sandbox.as_deref(),
        socket_path: i.socket_path.as_deref().filter(|_| v11),
        pci_id: i.pci_id.as_deref().filter(|_| v11),
    }
}

fn ip(i: &IpConfig, v: CniVersion) -> WireIp {
    let family = if i.address.is_ipv4() { "4" } else { "6" };
    WireIp {
        version: v.has_ip_version().then_some(family),
        interface: i.interface,
        address: i.address,
        gateway: i.gateway,
    }
}

fn route(r: &Route, v: CniVersion) -> WireRoute {
    let keep = |x: Option<u32>| x.filter(|_| v >= CniVersion::V1_1_0);
    WireRoute {
        dst: r.dst,
        gw: r.gw,
        mtu: keep(r.mtu),
        advmss: keep(r.advmss),
        priority: keep(r.priority),
        table: keep(r.table),
        scope: r.scope.filter(|_| v >= CniVersion::V1_1_0),
    }
}
