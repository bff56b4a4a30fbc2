//! Parent interfaces: VLAN sub-interfaces and dummies created on demand, owned, deleted with
//! the last network using them (never when the user made them), recreated by `restore`.

mod support;

use support::{fixture, plain_link, Fixture, HOST};
use underlay_core::{Connect, CreateNetwork};

fn net(name: &str, subnet: &str, options: &[&str]) -> CreateNetwork {
    CreateNetwork {
        name: name.into(),
        driver: "macvlan".into(),
        subnets: vec![subnet.into()],
        options: options.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn host_has(f: &Fixture, name: &str) -> bool {
    f.world.borrow().link(HOST, name).is_some()
}

#[test]
fn a_vlan_parent_is_created_shared_and_deleted_with_the_last_network() {
    let mut f = fixture(&["/run/netns/c1"]);
    f.engine
        .create_network(&net("v100", "198.51.100.0/24", &["parent=eth0.100"]))
        .unwrap();
    let link = f.world.borrow().link(HOST, "eth0.100").expect("created");
    assert_eq!(
        (link.kind.as_deref(), link.vlan_id, link.up),
        (Some("vlan"), Some(100), true)
    );
    let eth0 = f.world.borrow().link(HOST, "eth0").unwrap().index;
    assert_eq!(link.parent, Some(eth0));

    // A second network on the same VLAN (the -o vlan spelling) shares it.
    f.engine
        .create_network(&net(
            "v100b",
            "203.0.113.0/24",
            &["parent=eth0", "vlan=100"],
        ))
        .unwrap();
    f.engine
        .connect(&Connect {
            network: "v100".into(),
            target: "c1".into(),
            ..Default::default()
        })
        .unwrap();
    f.engine.remove_network("v100", true).unwrap();
    assert!(host_has(&f, "eth0.100"), "still used by v100b");
    f.engine.remove_network("v100b", false).unwrap();
    assert!(!host_has(&f, "eth0.100"), "deleted with the last network");
}

#[test]
fn a_vlan_parent_the_user_made_is_used_and_never_deleted() {
    let mut f = fixture(&[]);
    let eth0 = f.world.borrow().link(HOST, "eth0").unwrap().index;
    let mut user_vlan = plain_link("eth0.200", Some([2, 9, 9, 9, 9, 9]));
    user_vlan.kind = Some("vlan".into());
    user_vlan.vlan_id = Some(200);
    user_vlan.parent = Some(eth0);
    f.world.borrow_mut().insert_link(HOST, user_vlan);
    f.engine
        .create_network(&net("v200", "198.51.100.0/24", &["parent=eth0.200"]))
        .unwrap();
    f.engine.remove_network("v200", false).unwrap();
    assert!(host_has(&f, "eth0.200"), "the user's sub-interface stays");
}

#[test]
fn an_existing_interface_that_is_not_that_vlan_is_refused() {
    let mut f = fixture(&[]);
    f.world
        .borrow_mut()
        .add_link(HOST, "eth0.300", [2, 0, 0, 0, 3, 3], false);
    let err = f
        .engine
        .create_network(&net("v300", "198.51.100.0/24", &["parent=eth0.300"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "interface eth0.300 exists but is not VLAN 300 of eth0"
    );
}

#[test]
fn a_missing_trunk_is_refused_and_nothing_is_left_behind() {
    let mut f = fixture(&[]);
    let err = f
        .engine
        .create_network(&net("v1", "198.51.100.0/24", &["parent=eth9.10"]))
        .unwrap_err();
    assert_eq!(err.to_string(), "parent interface eth9 does not exist");
    assert!(f.engine.state().owned_parents().unwrap().is_empty());
}

#[test]
fn a_failed_network_create_takes_its_new_parent_away() {
    let mut f = fixture(&[]);
    // mtu above the parent's is only known once the parent exists.
    let err = f
        .engine
        .create_network(&net(
            "v1",
            "198.51.100.0/24",
            &["parent=eth0.10", "mtu=9000"],
        ))
        .unwrap_err();
    assert!(err.to_string().contains("mtu 9000 is larger"), "{err}");
    assert!(!host_has(&f, "eth0.10"));
    assert!(f.engine.state().owned_parents().unwrap().is_empty());
}

#[test]
fn a_failed_vlan_creation_leaves_no_record_after_recovery() {
    let mut f = fixture(&[]);
    f.world.borrow_mut().fail = vec!["create_vlan"];
    assert!(f
        .engine
        .create_network(&net("v1", "198.51.100.0/24", &["parent=eth0.10"]))
        .is_err());
    // The record written before the attempt is cleaned by the next command.
    f.engine.gc().unwrap();
    assert!(f.engine.state().owned_parents().unwrap().is_empty());
    f.engine
        .create_network(&net("v1", "198.51.100.0/24", &["parent=eth0.10"]))
        .unwrap();
    assert!(host_has(&f, "eth0.10"));
}

#[test]
fn internal_networks_without_a_parent_own_a_dummy() {
    let mut f = fixture(&["/run/netns/c1"]);
    let mut req = net("int", "198.51.100.0/24", &[]);
    req.internal = true;
    let created = f.engine.create_network(&req).unwrap();
    let dummy = format!("dm-{}", &created.id[..12]);
    assert_eq!(
        f.world
            .borrow()
            .link(HOST, &dummy)
            .and_then(|l| l.kind)
            .as_deref(),
        Some("dummy")
    );
    f.engine
        .connect(&Connect {
            network: "int".into(),
            target: "c1".into(),
            ..Default::default()
        })
        .unwrap();
    assert!(f.world.borrow_mut().ns("/run/netns/c1").routes.is_empty());
    f.engine.remove_network("int", true).unwrap();
    assert!(!host_has(&f, &dummy));
}

#[test]
fn restore_recreates_vlan_and_dummy_parents_and_releases_dead_endpoints() {
    let mut f = fixture(&["/run/netns/c1", "/run/netns/c2"]);
    f.engine
        .create_network(&net("v10", "198.51.100.0/24", &["parent=eth0.10"]))
        .unwrap();
    let mut internal = net("int", "203.0.113.0/24", &[]);
    internal.internal = true;
    let int = f.engine.create_network(&internal).unwrap();
    f.engine
        .create_network(&net("plain", "192.168.50.0/24", &["parent=eth1"]))
        .unwrap_err();
    f.engine
        .connect(&Connect {
            network: "v10".into(),
            target: "c1".into(),
            ..Default::default()
        })
        .unwrap();
    f.engine
        .connect(&Connect {
            network: "v10".into(),
            target: "c2".into(),
            ..Default::default()
        })
        .unwrap();

    // "Reboot": the sub-interface and the dummy are gone, and so is c1's namespace.
    let dummy = format!("dm-{}", &int.id[..12]);
    f.world.borrow_mut().remove_link(HOST, "eth0.10");
    f.world.borrow_mut().remove_link(HOST, &dummy);
    f.world.borrow_mut().namespaces.remove("/run/netns/c1");

    let report = f.engine.restore().unwrap();
    assert_eq!(report.recreated.len(), 2, "{report:?}");
    assert!(report.missing.is_empty(), "{report:?}");
    assert_eq!(report.released, ["v10/c1"]);
    assert!(host_has(&f, "eth0.10") && host_has(&f, &dummy));
    assert!(f.world.borrow().link(HOST, "eth0.10").unwrap().up);
    // Ownership survives: removing the network still deletes the sub-interface.
    f.engine.remove_network("v10", true).unwrap();
    assert!(!host_has(&f, "eth0.10"));
}

#[test]
fn restore_reports_what_it_cannot_recreate() {
    let mut f = fixture(&[]);
    f.world
        .borrow_mut()
        .add_link(HOST, "eth1", [2, 0, 0, 0, 0, 7], false);
    f.engine
        .create_network(&net("plain", "198.51.100.0/24", &["parent=eth1"]))
        .unwrap();
    f.engine
        .create_network(&net("v5", "203.0.113.0/24", &["parent=eth1.5"]))
        .unwrap();
    f.world.borrow_mut().remove_link(HOST, "eth1.5");
    f.world.borrow_mut().remove_link(HOST, "eth1");
    let report = f.engine.restore().unwrap();
    assert_eq!(
        report.missing,
        [
            "parent eth1 of network plain is missing",
            "trunk eth1 of VLAN parent eth1.5 (network v5) is missing"
        ]
    );
}
