//! Link events in a namespace the test makes: creation, down and up (carrier), removal. Needs
//! root.

mod common;

use std::time::{Duration, Instant};

use common::TestNetns;
use underlay_linux::{LinkEvent, LinkMonitor};

/// Collects events for up to 2 s until `done` says the one looked for arrived.
fn wait_for(monitor: &mut LinkMonitor, mut done: impl FnMut(&LinkEvent) -> bool) -> LinkEvent {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        for event in monitor.next(Duration::from_millis(200)).expect("events") {
            if done(&event) {
                return event;
            }
        }
    }
    panic!("the expected link event did not come within 2 s");
}

fn changed(name: &str, up: bool, carrier: bool) -> impl FnMut(&LinkEvent) -> bool + '_ {
    move |e| matches!(e, LinkEvent::Changed(l) if l.name == name && l.up == up && l.carrier == carrier)
}

#[test]
fn creation_carrier_and_removal_are_announced() {
    let ns = TestNetns::new();
    let mut monitor = LinkMonitor::open_in(&ns.open()).expect("subscribe");
    assert!(
        monitor.next(Duration::from_millis(50)).unwrap().is_empty(),
        "quiet before"
    );

    ns.veth("mon0", "mon1");
    wait_for(&mut monitor, changed("mon0", false, false));
    ns.ip(&["link", "set", "mon0", "up"]);
    ns.ip(&["link", "set", "mon1", "up"]);
    wait_for(&mut monitor, changed("mon0", true, true));
    // The peer going down takes mon0's carrier, not its administrative state.
    ns.ip(&["link", "set", "mon1", "down"]);
    wait_for(&mut monitor, changed("mon0", true, false));
    ns.ip(&["link", "del", "mon0"]);
    let removed = wait_for(
        &mut monitor,
        |e| matches!(e, LinkEvent::Removed(l) if l.name == "mon0"),
    );
    assert!(matches!(removed, LinkEvent::Removed(l) if l.index > 0));
}

#[test]
fn events_of_other_namespaces_are_not_seen() {
    let ns = TestNetns::new();
    let other = TestNetns::new();
    let mut monitor = LinkMonitor::open_in(&ns.open()).expect("subscribe");
    other.veth("oa", "ob");
    let seen = monitor.next(Duration::from_millis(300)).unwrap();
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn the_death_of_a_namespace_a_link_was_moved_to_is_announced() {
    let ns = TestNetns::new();
    let container = TestNetns::new();
    let mut monitor = LinkMonitor::open_in(&ns.open()).expect("subscribe");
    ns.veth("na", "nb");
    // Moving a link gives the target namespace an id in ours, as an endpoint's link does.
    ns.ip(&["link", "set", "nb", "netns", &container.name]);
    let quiet = monitor.next(Duration::from_millis(100)).unwrap();
    assert!(
        !quiet.contains(&LinkEvent::NetnsGone),
        "no namespace died yet: {quiet:?}"
    );
    drop(container); // ip netns del: the kernel tears it down asynchronously
    wait_for(&mut monitor, |e| *e == LinkEvent::NetnsGone);
}
