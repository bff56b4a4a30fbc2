//! Networks whose addresses come from DHCP, against a fake kernel and a fake lease keeper: what
//! the keeper is asked, what the link gets, and that every failure gives the lease back.

mod support;

use std::net::Ipv4Addr;

use support::{fixture, fixture_with_leases, ip, FakeLeases, Fixture};
use underlay_core::leases::{Lease4Info, LeaseReply, Route4Info};
use underlay_core::{Connect, CreateNetwork, Disconnect, Error};

fn dhcp_lan(driver: &str, extra_ipam: &[&str]) -> CreateNetwork {
    CreateNetwork {
        name: "lan".into(),
        driver: driver.into(),
        ipam_driver: Some("dhcp".into()),
        options: vec!["parent=eth0".into(), "metric=77".into()],
        ipam_options: extra_ipam.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn connect(target: &str) -> Connect {
    Connect {
        network: "lan".into(),
        target: target.into(),
        ..Default::default()
    }
}

fn v4(address: &str) -> LeaseReply {
    let router = Ipv4Addr::new(198, 51, 100, 1);
    LeaseReply {
        v4: Some(Lease4Info {
            address: address.parse().unwrap(),
            prefix: 25,
            server: router,
            routers: vec![router],
            routes: vec![
                Route4Info {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    gateway: router,
                },
                Route4Info {
                    dst: Ipv4Addr::new(203, 0, 113, 0),
                    prefix: 24,
                    gateway: Ipv4Addr::UNSPECIFIED,
                },
            ],
            dns: vec![router],
            domain: Some("lan".into()),
            search: vec![],
            mtu: Some(1400),
            lease_secs: 600,
            t1_secs: 300,
            t2_secs: 525,
            acquired_ms: 1,
        }),
        v6: None,
    }
}

fn setup(driver: &str) -> (Fixture, FakeLeases) {
    let (mut f, leases) = fixture_with_leases(&["/run/netns/c1", "/run/netns/c2"]);
    *leases.reply.lock().unwrap() = v4("198.51.100.40");
    f.engine.create_network(&dhcp_lan(driver, &[])).unwrap();
    (f, leases)
}

#[test]
fn a_connect_configures_what_the_lease_says() {
    let (mut f, leases) = setup("macvlan");
    let ep = f.engine.connect(&connect("c1")).unwrap();
    assert_eq!(ep.ipv4, Some(ip("198.51.100.40")));
    let requests = leases.requests.lock().unwrap();
    let req = &requests[0];
    assert_eq!(req.key, format!("endpoint/{}", ep.id));
    assert_eq!(
        (req.netns.as_str(), req.ifname.as_str()),
        ("/run/netns/c1", "eth0")
    );
    assert!(req.v4 && !req.v6 && !req.broadcast);
    assert_eq!(req.hostname.as_deref(), Some("c1"));
    assert_eq!(req.apply.metric, 77);
    assert_eq!(req.probe_ms, Some(100));
    assert_eq!(req.client_id[0], 0xff, "an RFC 4361 client identifier");

    let mut w = f.world.borrow_mut();
    let ns = w.ns("/run/netns/c1");
    let link = ns.links.values().next().unwrap().clone();
    assert!(link.up);
    assert_eq!(link.mtu, 1400, "option 26 applied");
    let addresses: Vec<String> = ns.addresses.iter().map(|(_, a)| a.to_string()).collect();
    assert_eq!(addresses, ["198.51.100.40/25"]);
    let routes: Vec<String> = ns
        .routes
        .iter()
        .map(|r| format!("{} {:?} {}", r.dst, r.gateway, r.metric))
        .collect();
    assert_eq!(
        routes,
        ["203.0.113.0/24 None 77", "0.0.0.0/0 Some(198.51.100.1) 77"],
        "on-link first"
    );
}

#[test]
fn the_identity_is_stable_for_a_name_and_differs_between_names() {
    let (mut f, leases) = setup("macvlan");
    let first = f.engine.connect(&connect("c1")).unwrap();
    f.engine
        .disconnect(&Disconnect {
            network: "lan".into(),
            target: "c1".into(),
        })
        .unwrap();
    let again = f.engine.connect(&connect("c1")).unwrap();
    let other = f.engine.connect(&connect("c2")).unwrap();
    assert_eq!(first.mac, again.mac, "a recreated container keeps its MAC");
    assert_ne!(first.mac, other.mac);
    assert_eq!(first.mac.0[0] & 3, 2, "locally administered unicast");
    let requests = leases.requests.lock().unwrap();
    assert_eq!(requests[0].client_id, requests[1].client_id);
    assert_eq!(requests[0].duid, requests[1].duid);
    assert_ne!(requests[0].client_id, requests[2].client_id);
}

#[test]
fn ipvlan_asks_for_broadcast_answers() {
    let (mut f, leases) = setup("ipvlan");
    f.engine.connect(&connect("c1")).unwrap();
    assert!(
        leases.requests.lock().unwrap()[0].broadcast,
        "the MAC is shared"
    );
}

#[test]
fn overrides_reach_the_keeper() {
    let (mut f, leases) = setup("macvlan");
    let mut req = connect("c1");
    req.dhcp_client_id = Some("01:02:00:00:00:00:09".into());
    req.hostname = Some("web-1".into());
    req.mac = Some("02:aa:bb:cc:dd:ee".into());
    let ep = f.engine.connect(&req).unwrap();
    assert_eq!(ep.mac.to_string(), "02:aa:bb:cc:dd:ee");
    let r = &leases.requests.lock().unwrap()[0];
    assert_eq!(r.client_id, [1, 2, 0, 0, 0, 0, 9]);
    assert_eq!(r.hostname.as_deref(), Some("web-1"));
}

#[test]
fn a_refused_lease_leaves_nothing() {
    let (mut f, leases) = setup("macvlan");
    *leases.refuse.lock().unwrap() =
        Some("every address the DHCPv4 server offered is already in use".into());
    let err = f.engine.connect(&connect("c1")).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(f.world.borrow_mut().link_names("/run/netns/c1").is_empty());
    assert!(f.engine.state().all_endpoints().unwrap().is_empty());
}

#[test]
fn a_failure_after_the_lease_gives_it_back() {
    let (mut f, leases) = setup("macvlan");
    f.world.borrow_mut().fail = vec!["add_route"];
    f.engine.connect(&connect("c1")).unwrap_err();
    let key = leases.requests.lock().unwrap()[0].key.clone();
    assert_eq!(*leases.released.lock().unwrap(), [key]);
    assert!(f.world.borrow_mut().link_names("/run/netns/c1").is_empty());
    assert!(f.engine.state().all_endpoints().unwrap().is_empty());
}

#[test]
fn disconnect_gives_the_lease_back() {
    let (mut f, leases) = setup("macvlan");
    let ep = f.engine.connect(&connect("c1")).unwrap();
    f.engine
        .disconnect(&Disconnect {
            network: "lan".into(),
            target: "c1".into(),
        })
        .unwrap();
    assert_eq!(
        *leases.released.lock().unwrap(),
        [format!("endpoint/{}", ep.id)]
    );
    let calls = f.world.borrow_mut().calls.clone();
    assert!(
        calls.last().unwrap().starts_with("delete_link"),
        "{calls:?}"
    );
}

#[test]
fn without_a_keeper_a_dhcp_connect_says_so() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine.create_network(&dhcp_lan("macvlan", &[])).unwrap();
    let err = f.engine.connect(&connect("c1")).unwrap_err().to_string();
    assert_eq!(
        err,
        "network lan takes addresses from DHCP, but no lease keeper is configured"
    );
    assert!(f.world.borrow_mut().link_names("/run/netns/c1").is_empty());
}
