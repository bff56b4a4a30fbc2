//! Every response serialised and compared with the JSON libnetwork's Go
//! structs decode (field names from drivers/remote/api and ipams/remote/api).

use serde_json::json;
use std::collections::BTreeMap;
use underlay_docker::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

#[test]
fn empty_and_activate() {
    assert_eq!(Response::Empty.to_json(), "{}");
    assert_eq!(
        Response::Activate(ActivateResponse::network_and_ipam()).to_json(),
        r#"{"Implements":["NetworkDriver","IpamDriver"]}"#
    );
}

#[test]
fn network_capabilities() {
    let local = NetworkCapabilities {
        scope: Scope::Local,
        connectivity_scope: None,
        gw_alloc_checker: false,
    };
    assert_eq!(
        Response::NetworkCapabilities(local).to_json(),
        r#"{"Scope":"local","GwAllocChecker":false}"#
    );
    let global = NetworkCapabilities {
        scope: Scope::Global,
        connectivity_scope: Some(Scope::Local),
        gw_alloc_checker: true,
    };
    assert_eq!(
        Response::NetworkCapabilities(global).to_json(),
        r#"{"Scope":"global","ConnectivityScope":"local","GwAllocChecker":true}"#
    );
}

#[test]
fn gw_alloc_check_and_allocate_network() {
    let skip = GwAllocCheckResponse {
        skip_ipv4: true,
        skip_ipv6: false,
    };
    assert_eq!(
        Response::GwAllocCheck(skip).to_json(),
        r#"{"SkipIPv4":true,"SkipIPv6":false}"#
    );
    let options = BTreeMap::from([("vni".to_owned(), "4097".to_owned())]);
    assert_eq!(
        Response::AllocateNetwork(AllocateNetworkResponse { options }).to_json(),
        r#"{"Options":{"vni":"4097"}}"#
    );
    assert_eq!(
        Response::AllocateNetwork(AllocateNetworkResponse::default()).to_json(),
        r#"{"Options":{}}"#
    );
}

#[test]
fn create_endpoint_unchanged_is_empty() {
    assert_eq!(
        Response::CreateEndpoint(CreateEndpointResponse::unchanged()).to_json(),
        "{}"
    );
    let requested = EndpointInterface {
        address: Some(net("10.0.0.5/24")),
        ..Default::default()
    };
    let same = CreateEndpointResponse::fill(&requested, EndpointInterface::default()).unwrap();
    assert_eq!(same, CreateEndpointResponse::unchanged());
    assert_eq!(same.interface(), None);
}

#[test]
fn create_endpoint_fills_only_missing_fields() {
    let requested = EndpointInterface {
        address: Some(net("10.0.0.5/24")),
        ..Default::default()
    };
    let chosen = EndpointInterface {
        mac_address: Some(mac("02:42:0a:00:00:05")),
        ..Default::default()
    };
    let reply = CreateEndpointResponse::fill(&requested, chosen).unwrap();
    assert_eq!(reply.interface(), Some(&chosen));
    assert_eq!(
        Response::CreateEndpoint(reply).to_json(),
        r#"{"Interface":{"MacAddress":"02:42:0a:00:00:05"}}"#
    );

    let everything = EndpointInterface {
        address: Some(net("10.0.0.5/24")),
        address_ipv6: Some(net("fd00::5/64")),
        mac_address: Some(mac("02:42:0a:00:00:05")),
    };
    let reply = CreateEndpointResponse::fill(&EndpointInterface::default(), everything).unwrap();
    assert_eq!(
        Response::CreateEndpoint(reply).to_json(),
        r#"{"Interface":{"Address":"10.0.0.5/24","AddressIPv6":"fd00::5/64","MacAddress":"02:42:0a:00:00:05"}}"#
    );
}

#[test]
fn create_endpoint_refuses_to_replace_or_mix_families() {
    let requested = EndpointInterface {
        address: Some(net("10.0.0.5/24")),
        mac_address: Some(mac("02:00:00:00:00:01")),
        ..Default::default()
    };
    let replace = EndpointInterface {
        address: Some(net("10.0.0.6/24")),
        ..Default::default()
    };
    assert_eq!(
        CreateEndpointResponse::fill(&requested, replace).unwrap_err().message,
        "endpoint interface Address was given by the engine (10.0.0.5/24) and cannot be replaced with 10.0.0.6/24"
    );
    let replace_mac = EndpointInterface {
        mac_address: Some(mac("02:00:00:00:00:01")),
        ..Default::default()
    };
    assert!(CreateEndpointResponse::fill(&requested, replace_mac)
        .unwrap_err()
        .message
        .starts_with("endpoint interface MacAddress was given"));
    let v6_in_v4 = EndpointInterface {
        address: Some(net("fd00::5/64")),
        ..Default::default()
    };
    assert_eq!(
        CreateEndpointResponse::fill(&EndpointInterface::default(), v6_in_v4)
            .unwrap_err()
            .message,
        "endpoint interface Address must be an IPv4 address, got fd00::5/64"
    );
    let v4_in_v6 = EndpointInterface {
        address_ipv6: Some(net("10.0.0.5/24")),
        ..Default::default()
    };
    assert_eq!(
        CreateEndpointResponse::fill(&EndpointInterface::default(), v4_in_v6)
            .unwrap_err()
            .message,
        "endpoint interface AddressIPv6 must be an IPv6 address, got 10.0.0.5/24"
    );
}

#[test]
fn endpoint_oper_info() {
    let value = json!({"parent": "eth0", "vlan": 10})
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(
        Response::EndpointOperInfo(EndpointOperInfoResponse { value }).to_json(),
        r#"{"Value":{"parent":"eth0","vlan":10}}"#
    );
    assert_eq!(
        Response::EndpointOperInfo(EndpointOperInfoResponse::default()).to_json(),
        r#"{"Value":{}}"#
    );
}

#[test]
fn join_with_everything() {
    let join = JoinResponse {
        interface_name: Some(InterfaceName {
            src_name: "ul1a2b3c".into(),
            dst_prefix: "eth".into(),
            dst_name: None,
        }),
        gateway: Some("10.0.0.1".parse().unwrap()),
        gateway_ipv6: Some("fd00::1".parse().unwrap()),
        static_routes: vec![
            StaticRoute::Via {
                destination: net("10.1.0.0/16"),
                next_hop: "10.0.0.254".parse().unwrap(),
            },
            StaticRoute::Connected {
                destination: net("10.2.0.0/16"),
            },
        ],
        disable_gateway_service: true,
    };
    assert_eq!(
        Response::Join(join).to_json(),
        concat!(
            r#"{"InterfaceName":{"SrcName":"ul1a2b3c","DstPrefix":"eth"},"Gateway":"10.0.0.1","GatewayIPv6":"fd00::1","#,
            r#""StaticRoutes":[{"Destination":"10.1.0.0/16","RouteType":0,"NextHop":"10.0.0.254"},"#,
            r#"{"Destination":"10.2.0.0/16","RouteType":1}],"DisableGatewayService":true}"#
        )
    );
}

#[test]
fn join_omits_what_is_unset() {
    let join = JoinResponse {
        interface_name: Some(InterfaceName {
            src_name: "ul9".into(),
            dst_prefix: "eth".into(),
            dst_name: Some("lan0".into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        Response::Join(join).to_json(),
        r#"{"InterfaceName":{"SrcName":"ul9","DstPrefix":"eth","DstName":"lan0"}}"#
    );
    assert_eq!(Response::Join(JoinResponse::default()).to_json(), "{}");
}

#[test]
fn ipam_capabilities_and_address_spaces() {
    let caps = IpamCapabilities {
        requires_mac_address: true,
        requires_request_replay: false,
    };
    assert_eq!(
        Response::IpamCapabilities(caps).to_json(),
        r#"{"RequiresMACAddress":true,"RequiresRequestReplay":false}"#
    );
    let spaces = DefaultAddressSpaces {
        local: "UnderlayLocal".into(),
        global: "UnderlayGlobal".into(),
    };
    assert_eq!(
        Response::DefaultAddressSpaces(spaces).to_json(),
        r#"{"LocalDefaultAddressSpace":"UnderlayLocal","GlobalDefaultAddressSpace":"UnderlayGlobal"}"#
    );
}

#[test]
fn request_pool_and_address() {
    let pool = RequestPoolResponse::new("UnderlayLocal/10.0.0.0/24", net("10.0.0.0/24"));
    assert_eq!(
        Response::RequestPool(pool.clone()).to_json(),
        r#"{"PoolID":"UnderlayLocal/10.0.0.0/24","Pool":"10.0.0.0/24","Data":{}}"#
    );
    assert_eq!(
        Response::RequestPool(pool.with_gateway(net("10.0.0.1/24"))).to_json(),
        r#"{"PoolID":"UnderlayLocal/10.0.0.0/24","Pool":"10.0.0.0/24","Data":{"com.docker.network.gateway":"10.0.0.1/24"}}"#
    );
    let address = RequestAddressResponse::new(net("10.0.0.5/24"));
    assert_eq!(
        Response::RequestAddress(address).to_json(),
        r#"{"Address":"10.0.0.5/24","Data":{}}"#
    );
    let v6 = RequestAddressResponse::new(net("fd00:1::5/64"));
    assert_eq!(
        Response::RequestAddress(v6).to_json(),
        r#"{"Address":"fd00:1::5/64","Data":{}}"#
    );
}

fn one_of_each_response() -> Vec<Response> {
    vec![
        Response::Empty,
        Response::Activate(ActivateResponse::network_and_ipam()),
        Response::NetworkCapabilities(NetworkCapabilities {
            scope: Scope::Local,
            connectivity_scope: None,
            gw_alloc_checker: false,
        }),
        Response::GwAllocCheck(GwAllocCheckResponse::default()),
        Response::AllocateNetwork(AllocateNetworkResponse::default()),
        Response::CreateEndpoint(CreateEndpointResponse::unchanged()),
        Response::EndpointOperInfo(EndpointOperInfoResponse::default()),
        Response::Join(JoinResponse::default()),
        Response::IpamCapabilities(IpamCapabilities::default()),
        Response::DefaultAddressSpaces(DefaultAddressSpaces {
            local: "l".into(),
            global: "g".into(),
        }),
        Response::RequestPool(RequestPoolResponse::new("p", net("10.0.0.0/24"))),
        Response::RequestAddress(RequestAddressResponse::new(net("10.0.0.5/24"))),
    ]
}

#[test]
fn every_method_has_exactly_one_reply_shape() {
    let responses = one_of_each_response();
    for method in PluginMethod::all() {
        let shapes: Vec<&Response> = responses.iter().filter(|r| r.answers(method)).collect();
        assert_eq!(shapes.len(), 1, "{}: {shapes:?}", method.name());
    }
    assert!(Response::Empty.answers(PluginMethod::Leave));
    assert!(!Response::Empty.answers(PluginMethod::Join));
    assert!(!Response::Empty.answers(PluginMethod::RequestAddress));
}
