//! Every request decoded from a body shaped like libnetwork's (Go's
//! encoding/json writes struct fields in declaration order, map keys
//! sorted, nil maps/slices/pointers as `null`, and a trailing newline).

use std::net::IpAddr;
use underlay_docker::*;

fn parse(path: &str, body: &str) -> Request {
    Request::parse(path, body.as_bytes()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn invalid(path: &str, body: &str) -> (Option<String>, String) {
    match Request::parse(path, body.as_bytes()) {
        Err(RequestError::InvalidBody { field, message, .. }) => (field, message),
        other => panic!("{path} {body}: expected InvalidBody, got {other:?}"),
    }
}

#[test]
fn methods_without_payload_accept_empty_null_and_any_body() {
    for body in ["", "\n", "null", "{}", "{\"x\":1}"] {
        assert_eq!(parse("/Plugin.Activate", body), Request::Activate);
        assert_eq!(
            parse("/NetworkDriver.GetCapabilities", body),
            Request::NetworkGetCapabilities
        );
        assert_eq!(
            parse("/IpamDriver.GetCapabilities", body),
            Request::IpamGetCapabilities
        );
        assert_eq!(
            parse("/IpamDriver.GetDefaultAddressSpaces", body),
            Request::GetDefaultAddressSpaces
        );
    }
}

#[test]
fn every_method_round_trips_through_its_path() {
    let methods: Vec<PluginMethod> = PluginMethod::all().collect();
    assert_eq!(methods.len(), 22);
    for method in methods {
        let path = format!("/{}", method.name());
        assert_eq!(PluginMethod::from_path(&path), Some(method), "{path}");
        assert_eq!(
            PluginMethod::from_path(&format!("{path}?x=1")),
            Some(method)
        );
    }
    for unknown in [
        "/NetworkDriver.Nope",
        "NetworkDriver.Join",
        "/networkdriver.join",
        "/",
        "",
        "/Plugin.Activate/x",
    ] {
        assert_eq!(PluginMethod::from_path(unknown), None, "{unknown}");
        let err = Request::parse(unknown, b"{}").unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(
            err.to_string(),
            format!("unknown plugin method {unknown:?}")
        );
    }
}

#[test]
fn create_network_as_dockerd_sends_it() {
    let body = r#"{"NetworkID":"8f1c2a","Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"mode":"bridge","parent":"eth0.10"},"com.docker.network.internal":false},"IPv4Data":[{"AddressSpace":"LocalDefault","AuxAddresses":{"router":"192.168.10.2/24"},"Gateway":"192.168.10.1/24","Pool":"192.168.10.0/24"}],"IPv6Data":null}
"#;
    let Request::CreateNetwork(req) = parse("/NetworkDriver.CreateNetwork", body) else {
        panic!()
    };
    assert_eq!(req.network_id, "8f1c2a");
    assert!(req.options.ipv4_enabled().unwrap());
    assert!(!req.options.ipv6_enabled().unwrap());
    assert!(!req.options.internal().unwrap());
    let generic = req.options.generic_options().unwrap();
    assert_eq!(generic.get("parent").map(String::as_str), Some("eth0.10"));
    assert_eq!(req.ipv4_data.len(), 1);
    let pool = &req.ipv4_data[0];
    assert_eq!(pool.address_space, "LocalDefault");
    assert_eq!(pool.pool, Some(net("192.168.10.0/24")));
    assert_eq!(pool.gateway, Some(net("192.168.10.1/24")));
    assert_eq!(
        pool.aux_addresses.get("router"),
        Some(&net("192.168.10.2/24"))
    );
    assert!(req.ipv6_data.is_empty());
}

#[test]
fn create_network_dual_stack_without_gateway_or_options() {
    let body = r#"{"NetworkID":"n2","Options":null,"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.0.0.0/16"}],"IPv6Data":[{"AddressSpace":"LocalDefault","Gateway":"fd00:1::1/64","Pool":"fd00:1::/64"}],"FutureField":{"a":[1,2]}}"#;
    let Request::CreateNetwork(req) = parse("/NetworkDriver.CreateNetwork", body) else {
        panic!()
    };
    assert_eq!(req.options, Options::default());
    assert_eq!(req.ipv4_data[0].gateway, None);
    assert!(req.ipv4_data[0].aux_addresses.is_empty());
    assert_eq!(req.ipv6_data[0].pool, Some(net("fd00:1::/64")));
    assert_eq!(req.ipv6_data[0].gateway, Some(net("fd00:1::1/64")));
}

#[test]
fn network_and_endpoint_references() {
    let Request::DeleteNetwork(r) = parse("/NetworkDriver.DeleteNetwork", r#"{"NetworkID":"n1"}"#)
    else {
        panic!()
    };
    assert_eq!(r.network_id, "n1");
    let Request::FreeNetwork(r) = parse("/NetworkDriver.FreeNetwork", r#"{"NetworkID":"n2"}"#)
    else {
        panic!()
    };
    assert_eq!(r.network_id, "n2");
    let body = r#"{"NetworkID":"n1","EndpointID":"e1"}"#;
    let expected = EndpointRef {
        network_id: "n1".into(),
        endpoint_id: "e1".into(),
    };
    assert_eq!(
        parse("/NetworkDriver.EndpointOperInfo", body),
        Request::EndpointOperInfo(expected.clone())
    );
    assert_eq!(
        parse("/NetworkDriver.DeleteEndpoint", body),
        Request::DeleteEndpoint(expected.clone())
    );
    assert_eq!(
        parse("/NetworkDriver.Leave", body),
        Request::Leave(expected.clone())
    );
    assert_eq!(
        parse("/NetworkDriver.RevokeExternalConnectivity", body),
        Request::RevokeExternalConnectivity(expected)
    );
}

#[test]
fn allocate_network_has_string_options() {
    let body = r#"{"NetworkID":"g1","Options":{"com.docker.network.driver.overlay.vxlanid_list":"4097"},"IPv4Data":[{"AddressSpace":"GlobalDefault","Pool":"10.10.0.0/24","Gateway":"10.10.0.1/24"}],"IPv6Data":null}"#;
    let Request::AllocateNetwork(req) = parse("/NetworkDriver.AllocateNetwork", body) else {
        panic!()
    };
    assert_eq!(req.network_id, "g1");
    assert_eq!(
        req.options
            .get("com.docker.network.driver.overlay.vxlanid_list")
            .map(String::as_str),
        Some("4097")
    );
    assert_eq!(req.ipv4_data[0].gateway, Some(net("10.10.0.1/24")));
    let (field, message) = invalid(
        "/NetworkDriver.AllocateNetwork",
        r#"{"NetworkID":"g1","Options":{"mtu":1500}}"#,
    );
    assert_eq!(field.as_deref(), Some("Options.mtu"));
    assert!(
        message.starts_with("invalid type: integer `1500`, expected a string"),
        "{message}"
    );
}

#[test]
fn create_endpoint_with_what_ipam_allocated() {
    let body = r#"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"192.168.10.5/24","AddressIPv6":"","MacAddress":""},"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.endpoint.ifname":"lan0","com.docker.network.portmap":null}}"#;
    let Request::CreateEndpoint(req) = parse("/NetworkDriver.CreateEndpoint", body) else {
        panic!()
    };
    assert_eq!(
        (req.network_id.as_str(), req.endpoint_id.as_str()),
        ("n1", "e1")
    );
    assert_eq!(req.interface.address, Some(net("192.168.10.5/24")));
    assert_eq!(req.interface.address_ipv6, None);
    assert_eq!(req.interface.mac_address, None);
    assert!(!req.interface.is_empty());
    assert_eq!(
        req.options.string(labels::ENDPOINT_IFNAME).unwrap(),
        Some("lan0")
    );
    assert_eq!(req.options.get("com.docker.network.portmap"), None);
}

#[test]
fn create_endpoint_with_mac_or_without_interface() {
    let body = r#"{"NetworkID":"n1","EndpointID":"e2","Interface":{"Address":"10.0.0.9/8","AddressIPv6":"fd00::9/64","MacAddress":"02:42:0a:00:00:09"},"Options":{}}"#;
    let Request::CreateEndpoint(req) = parse("/NetworkDriver.CreateEndpoint", body) else {
        panic!()
    };
    assert_eq!(req.interface.address_ipv6, Some(net("fd00::9/64")));
    assert_eq!(
        req.interface.mac_address,
        Some(MacAddr([0x02, 0x42, 0x0a, 0, 0, 0x09]))
    );
    for body in [
        r#"{"NetworkID":"n1","EndpointID":"e3","Interface":null,"Options":null}"#,
        r#"{"NetworkID":"n1","EndpointID":"e3"}"#,
    ] {
        let Request::CreateEndpoint(req) = parse("/NetworkDriver.CreateEndpoint", body) else {
            panic!()
        };
        assert!(req.interface.is_empty());
    }
}

#[test]
fn join_carries_the_sandbox() {
    let body = r#"{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/4b2e0a1c","Options":{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}],"com.docker.network.portmap":[]}}"#;
    let Request::Join(req) = parse("/NetworkDriver.Join", body) else {
        panic!()
    };
    assert_eq!(req.sandbox_key, "/var/run/docker/netns/4b2e0a1c");
    assert_eq!(req.endpoint_id, "e1");
    assert_eq!(req.options.as_map().len(), 2);
}

#[test]
fn program_external_connectivity_keeps_nested_options() {
    let body = r#"{"NetworkID":"n1","EndpointID":"e1","Options":{"com.docker.network.driver.private.no_proxy_6to4":true,"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080}]}}"#;
    let Request::ProgramExternalConnectivity(req) =
        parse("/NetworkDriver.ProgramExternalConnectivity", body)
    else {
        panic!()
    };
    assert_eq!(
        req.options
            .bool("com.docker.network.driver.private.no_proxy_6to4")
            .unwrap(),
        Some(true)
    );
    let portmap = req.options.get("com.docker.network.portmap").unwrap();
    assert_eq!(portmap[0]["HostPort"], 8080);
}

#[test]
fn discovery_notifications() {
    let body = r#"{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.10","BindAddress":"0.0.0.0","Self":true}}"#;
    let Request::DiscoverNew(req) = parse("/NetworkDriver.DiscoverNew", body) else {
        panic!()
    };
    let node = req.node().unwrap().unwrap();
    assert_eq!(
        node,
        NodeDiscoveryData {
            address: "192.0.2.10".into(),
            bind_address: "0.0.0.0".into(),
            is_self: true
        }
    );
    // remote.md spells the flag "self".
    let body = r#"{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.11","self":false}}"#;
    let Request::DiscoverDelete(req) = parse("/NetworkDriver.DiscoverDelete", body) else {
        panic!()
    };
    assert_eq!(req.node().unwrap().unwrap().address, "192.0.2.11");
    let body = r#"{"DiscoveryType":2,"DiscoveryData":{"Keys":["a2V5"],"Tags":[1]}}"#;
    let Request::DiscoverNew(req) = parse("/NetworkDriver.DiscoverNew", body) else {
        panic!()
    };
    assert_eq!(req.node().unwrap(), None);
    let body = r#"{"DiscoveryType":1,"DiscoveryData":"192.0.2.10"}"#;
    let Request::DiscoverNew(req) = parse("/NetworkDriver.DiscoverNew", body) else {
        panic!()
    };
    assert!(req
        .node()
        .unwrap_err()
        .message
        .starts_with("invalid node discovery data \"192.0.2.10\""));
}

#[test]
fn gw_alloc_check_carries_network_options() {
    let body = r#"{"Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"parent":"eth0"}}}"#;
    let Request::GwAllocCheck(req) = parse("/NetworkDriver.GwAllocCheck", body) else {
        panic!()
    };
    assert!(req.options.ipv6_enabled().unwrap());
    assert_eq!(req.options.generic_options().unwrap().len(), 1);
}

#[test]
fn request_pool_variants() {
    let body = r#"{"AddressSpace":"LocalDefault","Pool":"192.168.10.0/24","SubPool":"192.168.10.128/25","Options":{"dhcp":"off"},"V6":false}"#;
    let Request::RequestPool(req) = parse("/IpamDriver.RequestPool", body) else {
        panic!()
    };
    assert_eq!(req.address_space, "LocalDefault");
    assert_eq!(req.pool, Some(net("192.168.10.0/24")));
    assert_eq!(req.sub_pool, Some(net("192.168.10.128/25")));
    assert_eq!(req.options.get("dhcp").map(String::as_str), Some("off"));
    assert!(!req.v6);
    let body = r#"{"AddressSpace":"LocalDefault","Pool":"","SubPool":"","Options":null,"V6":true}"#;
    let Request::RequestPool(req) = parse("/IpamDriver.RequestPool", body) else {
        panic!()
    };
    assert_eq!((req.pool, req.sub_pool, req.v6), (None, None, true));
    assert!(req.options.is_empty());
}

#[test]
fn release_pool_and_addresses() {
    let Request::ReleasePool(r) = parse(
        "/IpamDriver.ReleasePool",
        r#"{"PoolID":"LocalDefault/10.0.0.0/24"}"#,
    ) else {
        panic!()
    };
    assert_eq!(r.pool_id, "LocalDefault/10.0.0.0/24");
    let Request::ReleaseAddress(r) = parse(
        "/IpamDriver.ReleaseAddress",
        r#"{"PoolID":"p1","Address":"10.0.0.5"}"#,
    ) else {
        panic!()
    };
    assert_eq!((r.pool_id.as_str(), r.address), ("p1", ip("10.0.0.5")));
    let (field, message) = invalid(
        "/IpamDriver.ReleaseAddress",
        r#"{"PoolID":"p1","Address":""}"#,
    );
    assert_eq!(field.as_deref(), Some("Address"));
    assert!(message.starts_with("invalid IP address \"\""), "{message}");
}

#[test]
fn request_address_for_gateway_container_and_any() {
    let body = r#"{"PoolID":"p1","Address":"10.0.0.1","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#;
    let Request::RequestAddress(req) = parse("/IpamDriver.RequestAddress", body) else {
        panic!()
    };
    assert_eq!(req.address, Some(ip("10.0.0.1")));
    assert!(req.is_gateway());
    let body = r#"{"PoolID":"p1","Address":"","Options":{"com.docker.network.endpoint.macaddress":"02:42:0a:00:00:05","com.docker.network.endpoint.name":"web"}}"#;
    let Request::RequestAddress(req) = parse("/IpamDriver.RequestAddress", body) else {
        panic!()
    };
    assert_eq!(req.address, None);
    assert!(!req.is_gateway());
    assert_eq!(
        req.mac_address().unwrap(),
        Some(MacAddr([2, 0x42, 10, 0, 0, 5]))
    );
    assert_eq!(req.endpoint_name(), Some("web"));
    let body = r#"{"PoolID":"p1","Address":"fd00::7","Options":{"com.docker.network.endpoint.macaddress":"bogus"}}"#;
    let Request::RequestAddress(req) = parse("/IpamDriver.RequestAddress", body) else {
        panic!()
    };
    assert_eq!(req.address, Some(ip("fd00::7")));
    assert_eq!(
        req.mac_address().unwrap_err().message,
        "option com.docker.network.endpoint.macaddress: invalid MAC address \"bogus\""
    );
}

#[test]
fn malformed_json_is_a_400_for_the_whole_body() {
    let err = Request::parse("/NetworkDriver.Join", b"{\"NetworkID\": ").unwrap_err();
    assert_eq!(err.status(), 400);
    let RequestError::InvalidBody {
        method,
        field,
        message,
    } = &err
    else {
        panic!()
    };
    // The decoder was inside NetworkID's value when the input ended.
    assert_eq!(
        (*method, field.as_deref()),
        ("NetworkDriver.Join", Some("NetworkID"))
    );
    assert!(
        message.starts_with("EOF while parsing a value"),
        "{message}"
    );
    assert!(
        err.to_string()
            .starts_with("invalid NetworkDriver.Join body: NetworkID: EOF while parsing"),
        "{err}"
    );
    let (field, message) = invalid("/NetworkDriver.Join", "{not json}");
    assert_eq!(field, None);
    assert!(
        message.starts_with("key must be a string at line 1 column 2"),
        "{message}"
    );
    let (field, message) = invalid(
        "/NetworkDriver.Leave",
        r#"{"NetworkID":"n","EndpointID":"e"} trailing"#,
    );
    assert_eq!(field, None);
    assert!(message.starts_with("trailing characters"), "{message}");
    for body in [r#"["n","e"]"#, "\"n\"", "7", "true"] {
        assert_eq!(
            invalid("/NetworkDriver.Leave", body),
            (None, "the body must be a JSON object".to_owned()),
            "{body}"
        );
    }
}

#[test]
fn wrong_types_and_values_name_the_field() {
    let cases = [
        (
            "/NetworkDriver.DeleteNetwork",
            r#"{"NetworkID":5}"#,
            "NetworkID",
            "invalid type: integer `5`, expected a string",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n","IPv4Data":[{"Pool":"10.0.0.0"}]}"#,
            "IPv4Data[0].Pool",
            "invalid CIDR \"10.0.0.0\": missing prefix length",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n","IPv6Data":[{"Pool":"fd00::/64","AuxAddresses":{"r":"fd00::1/200"}}]}"#,
            "IPv6Data[0].AuxAddresses.r",
            "invalid CIDR \"fd00::1/200\": prefix length out of range",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n","Options":"x"}"#,
            "Options",
            "invalid type: string \"x\", expected a map",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            r#"{"NetworkID":"n","EndpointID":"e","Interface":{"MacAddress":"02:42"}}"#,
            "Interface.MacAddress",
            "invalid MAC address \"02:42\"",
        ),
        (
            "/NetworkDriver.Join",
            r#"{"NetworkID":"n","EndpointID":"e","SandboxKey":null}"#,
            "SandboxKey",
            "invalid type: null, expected a string",
        ),
        (
            "/IpamDriver.RequestPool",
            r#"{"AddressSpace":"s","V6":"yes"}"#,
            "V6",
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            "/IpamDriver.RequestAddress",
            r#"{"PoolID":"p","Address":"10.0.0.5/24"}"#,
            "Address",
            "invalid IP address \"10.0.0.5/24\"",
        ),
        (
            "/NetworkDriver.DiscoverNew",
            r#"{"DiscoveryType":"node"}"#,
            "DiscoveryType",
            "invalid type: string \"node\", expected i64",
        ),
    ];
    for (path, body, expected_field, expected_message) in cases {
        let (field, message) = invalid(path, body);
        assert_eq!(field.as_deref(), Some(expected_field), "{path} {body}");
        assert!(
            message.starts_with(expected_message),
            "{path} {body}: {message}"
        );
    }
}

#[test]
fn missing_required_fields_are_named() {
    let cases = [
        (
            "/NetworkDriver.CreateNetwork",
            "",
            "missing field `NetworkID`",
        ),
        (
            "/NetworkDriver.Join",
            r#"{"NetworkID":"n","EndpointID":"e"}"#,
            "missing field `SandboxKey`",
        ),
        ("/NetworkDriver.Leave", "null", "missing field `NetworkID`"),
        (
            "/IpamDriver.RequestPool",
            "{}",
            "missing field `AddressSpace`",
        ),
        (
            "/IpamDriver.ReleaseAddress",
            r#"{"PoolID":"p"}"#,
            "missing field `Address`",
        ),
        (
            "/NetworkDriver.DiscoverNew",
            "{}",
            "missing field `DiscoveryType`",
        ),
    ];
    for (path, body, expected) in cases {
        let (field, message) = invalid(path, body);
        assert_eq!(field, None, "{path}");
        assert!(message.starts_with(expected), "{path}: {message}");
    }
}
