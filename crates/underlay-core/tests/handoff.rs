//! Handoff endpoints against a fake kernel: the order Docker calls in (IPAM RequestAddress per
//! family, CreateEndpoint, Join, the runtime moving the link, Leave, DeleteEndpoint), the other
//! IPAM's order (CreateEndpoint with addresses), and the failures that must leave nothing.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::{fixture, ip, Fixture, HOST};
use underlay_core::{CreateHandoff, CreateNetwork, Family, MacAddr, Phase, PrepareAddress};

const SANDBOX: &str = "/var/run/docker/netns/abc";
const MAC: MacAddr = MacAddr([0x02, 0x42, 0, 0, 0, 7]);

fn setup(ipam: &[&str]) -> Fixture {
    let mut f = fixture(&[SANDBOX]);
    f.engine
        .create_network(&CreateNetwork {
            name: "lan".into(),
            driver: "macvlan".into(),
            subnets: vec!["198.51.100.0/24".into(), "2001:db8:1::/64".into()],
            ipv6: true,
            options: vec!["parent=eth0".into()],
            ipam_options: ipam.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap();
    f
}

fn prepare(f: &mut Fixture, family: Family, address: Option<&str>) -> underlay_core::Prepared {
    f.engine
        .prepare_address(&PrepareAddress {
            network: "lan".into(),
            family: Some(family),
            address: address.map(ip),
            mac: Some(MAC),
            name: Some("web".into()),
        })
        .unwrap()
}

fn reserved(f: &Fixture) -> BTreeSet<String> {
    let net = f.engine.state().network("lan").unwrap().unwrap();
    [Family::V4, Family::V6]
        .into_iter()
        .flat_map(|fam| f.engine.state().reservations(&net, fam).unwrap())
        .map(|r| r.ip.to_string())
        .collect()
}

fn gateways_only() -> BTreeSet<String> {
    ["198.51.100.1", "2001:db8:1::1"].map(String::from).into()
}

fn host_links(f: &Fixture) -> Vec<String> {
    f.world.borrow().link_names(HOST)
}

#[test]
fn docker_order_prepares_adopts_joins_and_deletes() {
    let mut f = setup(&[]);
    let v4 = prepare(&mut f, Family::V4, None);
    let v6 = prepare(&mut f, Family::V6, None);
    assert_eq!(
        (v4.address, v4.prefix, v4.mac),
        (ip("198.51.100.2"), 24, MAC)
    );
    assert_eq!((v6.address, v6.prefix), (ip("2001:db8:1::2"), 64));
    let pending = f.engine.state().all_endpoints().unwrap();
    assert_eq!(pending.len(), 1, "one pending endpoint for both families");
    let ep = &pending[0];
    assert_eq!(ep.phase, Phase::Pending);
    assert!(ep.handoff);
    // Its link waits in the host netns, up, with the runtime's MAC and our alias.
    let link = f.world.borrow().link(HOST, ep.tmp_ifname.as_str()).unwrap();
    assert!(link.up);
    assert_eq!(link.mac, Some(MAC.0));
    assert_eq!(link.alias.as_deref(), Some(ep.link_alias().as_str()));
    // Both addresses were probed from it, before anything was handed out.
    assert_eq!(
        f.world
            .borrow()
            .frames
            .iter()
            .filter(|(ns, _)| ns == HOST)
            .count(),
        6
    );

    let created = f
        .engine
        .create_handoff(&CreateHandoff {
            network: "lan".into(),
            runtime_id: "dockerep1".into(),
            ipv4: Some(v4.address),
            ipv6: Some(v6.address),
            mac: Some(MAC),
        })
        .unwrap();
    assert_eq!(
        (created.id.as_str(), created.phase),
        (ep.id.as_str(), Phase::Created)
    );
    let joined = f
        .engine
        .join_handoff("lan", "dockerep1", Path::new(SANDBOX))
        .unwrap();
    assert_eq!(joined.link, ep.tmp_ifname);
    assert_eq!(joined.gateway4, Some(ip("198.51.100.1")));
    assert_eq!(joined.gateway6, Some(ip("2001:db8:1::1")));
    let row = f.engine.state().all_endpoints().unwrap().remove(0);
    assert_eq!((row.phase, row.netns.as_str()), (Phase::Attached, SANDBOX));

    // The runtime moves the link into the container and renames it.
    f.world
        .borrow_mut()
        .move_link(HOST, SANDBOX, ep.tmp_ifname.as_str(), "eth3");
    assert!(f.engine.delete_handoff("lan", "dockerep1").unwrap());
    assert!(
        f.world.borrow().link_names(SANDBOX).is_empty(),
        "found by its alias and deleted"
    );
    assert_eq!(reserved(&f), gateways_only());
    assert!(f.engine.state().all_endpoints().unwrap().is_empty());
    assert!(
        !f.engine.delete_handoff("lan", "dockerep1").unwrap(),
        "a second delete is a no-op"
    );
}

#[test]
fn leave_then_delete_finds_the_link_back_in_the_host_netns() {
    let mut f = setup(&[]);
    let v4 = prepare(&mut f, Family::V4, None);
    let create = CreateHandoff {
        network: "lan".into(),
        runtime_id: "ep2".into(),
        ipv4: Some(v4.address),
        mac: Some(MAC),
        ..Default::default()
    };
    let ep = f.engine.create_handoff(&create).unwrap();
    assert_eq!(
        f.engine.create_handoff(&create).unwrap().id,
        ep.id,
        "idempotent"
    );
    f.engine
        .join_handoff("lan", "ep2", Path::new(SANDBOX))
        .unwrap();
    f.world
        .borrow_mut()
        .move_link(HOST, SANDBOX, ep.tmp_ifname.as_str(), "eth0");
    f.world
        .borrow_mut()
        .move_link(SANDBOX, HOST, "eth0", ep.tmp_ifname.as_str());
    f.engine.leave_handoff("lan", "ep2").unwrap();
    assert_eq!(
        f.engine.state().all_endpoints().unwrap()[0].phase,
        Phase::Created
    );
    f.engine.delete_handoff("lan", "ep2").unwrap();
    assert!(!host_links(&f).contains(&ep.tmp_ifname.to_string()));
    assert_eq!(reserved(&f), gateways_only());
}

#[test]
fn with_another_ipam_create_reserves_the_runtimes_addresses_and_builds_the_link() {
    let mut f = setup(&[]);
    let ep = f
        .engine
        .create_handoff(&CreateHandoff {
            network: "lan".into(),
            runtime_id: "ep3".into(),
            ipv4: Some(ip("198.51.100.77")),
            ipv6: None,
            mac: None,
        })
        .unwrap();
    assert_eq!(ep.ipv4, Some(ip("198.51.100.77")));
    assert!(reserved(&f).contains("198.51.100.77"));
    assert!(host_links(&f).contains(&ep.tmp_ifname.to_string()));
    assert_eq!(ep.mac.0[0] & 3, 2, "a random locally administered MAC");
}

#[test]
fn a_second_family_asking_for_a_static_address_gets_it() {
    let mut f = setup(&[]);
    prepare(&mut f, Family::V4, Some("198.51.100.50"));
    let v6 = prepare(&mut f, Family::V6, Some("2001:db8:1::99"));
    assert_eq!(v6.address, ip("2001:db8:1::99"));
    let held = reserved(&f);
    assert!(
        held.contains("198.51.100.50") && held.contains("2001:db8:1::99"),
        "{held:?}"
    );
    assert!(
        !held.contains("2001:db8:1::2"),
        "the allocated one went back: {held:?}"
    );
}

#[test]
fn a_live_static_address_is_refused_and_leaves_nothing_in_the_host() {
    let mut f = setup(&[]);
    f.world
        .borrow_mut()
        .lan
        .push((ip("198.51.100.60"), [2, 0, 0, 0, 0, 0x60]));
    let before = host_links(&f);
    let err = f
        .engine
        .prepare_address(&PrepareAddress {
            network: "lan".into(),
            family: Some(Family::V4),
            address: Some(ip("198.51.100.60")),
            mac: Some(MAC),
            name: Some("web".into()),
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("198.51.100.60 is already in use on the LAN: 02:00:00:00:00:60"),
        "{err}"
    );
    assert_eq!(host_links(&f), before);
    assert_eq!(reserved(&f), gateways_only());
}

#[test]
fn released_and_expired_pending_endpoints_are_removed() {
    let mut f = setup(&[]);
    let v4 = prepare(&mut f, Family::V4, None);
    assert!(f.engine.release_prepared("lan", v4.address).unwrap());
    assert_eq!(reserved(&f), gateways_only());
    assert!(f.engine.state().all_endpoints().unwrap().is_empty());
    assert_eq!(host_links(&f), ["lo", "eth0"]);

    prepare(&mut f, Family::V4, None);
    assert!(
        f.engine.expire_pending().unwrap().is_empty(),
        "a fresh one stays"
    );
    let db = rusqlite::Connection::open(f.engine.state().dir().join("state.db")).unwrap();
    db.execute("UPDATE endpoints SET since = since - 3600", [])
        .unwrap();
    assert_eq!(f.engine.expire_pending().unwrap(), ["lan/web"]);
    assert_eq!(reserved(&f), gateways_only());
    assert_eq!(host_links(&f), ["lo", "eth0"]);
}

#[test]
fn a_failure_while_building_leaves_nothing() {
    let mut f = setup(&[]);
    f.world.borrow_mut().fail = vec!["set_up"];
    let err = f
        .engine
        .prepare_address(&PrepareAddress {
            network: "lan".into(),
            family: Some(Family::V4),
            mac: Some(MAC),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("bringing"), "{err}");
    assert_eq!(host_links(&f), ["lo", "eth0"]);
    assert_eq!(reserved(&f), gateways_only());
    assert!(f.engine.state().all_endpoints().unwrap().is_empty());
}
