//! The reference plugins' own example configurations parse with the same meaning.

use serde_json::{Map, Value};
use std::path::PathBuf;
use underlay_cni::args::CniArgs;
use underlay_cni::conf::dhcp::DhcpConf;
use underlay_cni::conf::host_local::HostLocalConf;
use underlay_cni::conf::ipvlan::{IpvlanConf, IpvlanMode};
use underlay_cni::conf::list::NetConfList;
use underlay_cni::conf::macvlan::{MacvlanConf, MacvlanMode};
use underlay_cni::conf::static_ipam::StaticConf;
use underlay_cni::conf::vlan::VlanConf;
use underlay_cni::CniVersion;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(p).unwrap()
}

#[test]
fn macvlan_host_local_conflist() {
    let list = NetConfList::parse(&fixture("macvlan-host-local.conflist")).unwrap();
    let version = list.version().unwrap();
    assert_eq!(version, CniVersion::V1_1_0);
    let runtime: Map<String, Value> = serde_json::from_str(
        r#"{"mac":"0a:58:0a:0a:01:99","ips":["10.10.1.30/16"],"portMappings":[]}"#,
    )
    .unwrap();
    let conf = list.plugin_config(0, version, &runtime, None).unwrap();
    let bytes = serde_json::to_vec(&conf).unwrap();

    let mac = MacvlanConf::parse(&bytes, &CniArgs::default()).unwrap();
    assert_eq!(mac.net.name, "mynet");
    assert_eq!(mac.net.cni_version, CniVersion::V1_1_0);
    assert_eq!(mac.net.ipam_type(), Some("host-local"));
    assert_eq!(mac.master.as_deref(), Some("eth0"));
    assert_eq!(mac.mode, MacvlanMode::Bridge);
    assert_eq!(mac.mac.unwrap().to_string(), "0a:58:0a:0a:01:99");
    assert!(!mac.link_in_container);

    let hl = HostLocalConf::parse(&bytes, &CniArgs::default()).unwrap();
    assert_eq!(hl.ranges.len(), 2);
    let r0 = &hl.ranges[0];
    assert_eq!(r0.len(), 2);
    assert_eq!(r0[0].gateway.to_string(), "10.10.0.254");
    assert_eq!(r0[0].range_start.to_string(), "10.10.1.20");
    assert_eq!(r0[0].range_end.to_string(), "10.10.3.50");
    assert_eq!(r0[1].gateway.to_string(), "172.16.5.1");
    assert_eq!(r0[1].range_start.to_string(), "172.16.5.1");
    assert_eq!(r0[1].range_end.to_string(), "172.16.5.254");
    let r1 = &hl.ranges[1][0];
    assert_eq!(r1.subnet.to_string(), "3ffe:ffff:0:1ff::/64");
    assert_eq!(r1.range_start.to_string(), "3ffe:ffff:0:1ff::10");
    assert_eq!(r1.gateway.to_string(), "3ffe:ffff:0:1ff::1");
    assert_eq!(hl.routes.len(), 3);
    assert_eq!(hl.routes[1].gw.unwrap().to_string(), "10.10.5.1");
    assert_eq!(
        hl.data_dir(),
        PathBuf::from("/run/my-orchestrator/container-ipam-state")
    );
    let ips: Vec<String> = hl.requested_ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["10.10.1.30"]);
}

#[test]
fn macvlan_dhcp() {
    let c = MacvlanConf::parse(&fixture("macvlan-dhcp.conf"), &CniArgs::default()).unwrap();
    assert_eq!(c.net.cni_version, CniVersion::V0_3_1);
    assert_eq!(c.net.ipam_type(), Some("dhcp"));
    let d = DhcpConf::parse(&fixture("macvlan-dhcp.conf")).unwrap();
    assert_eq!(d.daemon_socket_path, PathBuf::from("/run/cni/dhcp.sock"));
    assert!(d.request.is_empty() && d.provide.is_empty());
}

#[test]
fn ipvlan() {
    let c = IpvlanConf::parse(&fixture("ipvlan.conf")).unwrap();
    assert_eq!(c.master.as_deref(), Some("eth0"));
    assert_eq!(c.mode, IpvlanMode::L2);
    c.check_ipam_for_add().unwrap();
    let hl = HostLocalConf::parse(&fixture("ipvlan.conf"), &CniArgs::default()).unwrap();
    assert_eq!(hl.ranges[0][0].subnet.to_string(), "10.1.2.0/24");
    assert_eq!(hl.ranges[0][0].gateway.to_string(), "10.1.2.1");
}

#[test]
fn vlan() {
    let c = VlanConf::parse(&fixture("vlan.conf")).unwrap();
    assert_eq!(
        (c.master.as_str(), c.vlan_id, c.mtu),
        ("eth0", 5, Some(1500))
    );
    assert_eq!(c.net.dns.nameservers, ["10.1.1.1", "8.8.8.8"]);
    assert!(HostLocalConf::parse(&fixture("vlan.conf"), &CniArgs::default()).is_ok());
}

#[test]
fn static_ipam() {
    let c = StaticConf::parse(&fixture("static.conf"), &CniArgs::default()).unwrap();
    assert_eq!(c.addresses.len(), 2);
    assert_eq!(c.addresses[1].address.to_string(), "3ffe:ffff:0:1ff::1/64");
    assert_eq!(c.addresses[1].gateway.unwrap().to_string(), "3ffe:ffff::1");
    assert_eq!(c.routes[2].dst.to_string(), "3ffe:ffff:0:1ff::1/64");
    assert_eq!(c.dns.search, ["example.com"]);
}

#[test]
fn dhcp() {
    let c = DhcpConf::parse(&fixture("dhcp.conf")).unwrap();
    assert_eq!(c.request[0].option.code, 121);
    assert!(!c.request[0].skip_default);
    assert_eq!(c.provide[0].option.code, 12);
    assert_eq!(c.provide[0].from_arg.as_deref(), Some("K8S_POD_NAME"));
    assert_eq!(
        c.provide[1].value.as_deref(),
        Some("my-dhcp-client-identifier")
    );
}
