//! DHCPv4 leases: renew, rebind, expiry, resume, decline, release, options.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use dhcproto::Name;
use underlay_dhcp::v4::{Client4, Config4, Event4, Ignored, Lease4, Route4, State4};
use underlay_dhcp::{Duration, Instant, INFINITE};

use crate::fake4::*;

/// A 100 s lease with T1 10 s and T2 20 s, and a 1 s retransmission floor so renewals are visible.
fn short() -> (Config4, Server) {
    let mut config = config();
    config.retry.min_renew_interval = Duration::from_secs(1);
    let server = Server {
        lease_secs: Some(100),
        ..Server::new()
    }
    .with(DhcpOption::Renewal(10))
    .with(DhcpOption::Rebinding(20));
    (config, server)
}

fn bound(config: Config4, server: &Server) -> Client4 {
    let mut client = bound_client(config, server, 0);
    assert!(matches!(client.next_event(), Some(Event4::Bound(_))));
    client
}

#[test]
fn renews_at_t1_by_unicast_from_the_leased_address() {
    let (config, server) = short();
    let mut client = bound(config, &server);
    assert_eq!(client.deadline(), Some(Instant(10_000)));
    assert_eq!(client.poll(Instant(9_999)), None);
    let renew = client.poll(Instant(10_000)).expect("a REQUEST at T1");
    assert_eq!(client.state(), State4::Renewing);
    assert_eq!((renew.src, renew.dst), (OFFERED, SERVER));
    let msg = decode(&renew.payload);
    assert_eq!(msg.opts().msg_type(), Some(MessageType::Request));
    assert_eq!(msg.ciaddr(), OFFERED);
    assert_eq!(
        opt(&msg, OptionCode::RequestedIpAddress),
        None,
        "RENEWING puts the address in ciaddr"
    );
    assert_eq!(opt(&msg, OptionCode::ServerIdentifier), None);

    client
        .handle(Instant(10_050), &server.ack(&renew.payload))
        .unwrap();
    let Some(Event4::Renewed(lease)) = client.next_event() else {
        panic!("no Renewed event")
    };
    assert_eq!(lease.acquired, Instant(10_000));
    assert_eq!(client.state(), State4::Bound);
    assert_eq!(client.deadline(), Some(Instant(20_000)));
}

#[test]
fn renewal_retransmits_at_half_the_time_left_then_rebinds_by_broadcast_at_t2() {
    let (config, server) = short();
    let mut client = bound(config, &server);
    let sent = run_until(&mut client, Instant(19_999));
    let times: Vec<u64> = sent.iter().map(|(at, _)| at.0).collect();
    // Half the time to T2 (20 s), floored at 1 s: 10, 15, 17.5, 18.75, 19.75.
    assert_eq!(times, [10_000, 15_000, 17_500, 18_750, 19_750]);
    assert!(sent
        .iter()
        .all(|(_, tx)| tx.dst == SERVER && tx.src == OFFERED));

    let rebind = client.poll(Instant(20_000)).expect("a REQUEST at T2");
    assert_eq!(client.state(), State4::Rebinding);
    assert_eq!((rebind.src, rebind.dst), (OFFERED, Ipv4Addr::BROADCAST));
    assert_eq!(decode(&rebind.payload).ciaddr(), OFFERED);
    // A reply from the old server to a RENEW is now for the wrong transaction.
    let stale = server.ack(&sent[0].1.payload);
    assert!(matches!(
        client.handle(Instant(20_001), &stale),
        Err(Ignored::WrongXid { .. })
    ));
    // Any allowed server may answer a rebind.
    let other = Server {
        id: Ipv4Addr::new(192, 0, 2, 2),
        ..server.clone()
    };
    client
        .handle(Instant(20_010), &other.ack(&rebind.payload))
        .unwrap();
    let Some(Event4::Renewed(lease)) = client.next_event() else {
        panic!("no Renewed event")
    };
    assert_eq!(lease.server, other.id);
}

#[test]
fn lease_expires_at_its_end_and_a_fresh_discover_follows() {
    let (config, server) = short();
    let mut client = bound(config, &server);
    let sent = run_until(&mut client, Instant(99_999));
    let rebinds: Vec<u64> = sent
        .iter()
        .filter(|(_, tx)| tx.dst == Ipv4Addr::BROADCAST)
        .map(|(at, _)| at.0)
        .collect();
    assert_eq!(
        &rebinds[..3],
        [20_000, 60_000, 80_000],
        "half the time to expiry"
    );
    assert_eq!(client.next_event(), None);
    assert_eq!(client.deadline(), Some(Instant(100_000)));
    let discover = client.poll(Instant(100_000)).expect("a DISCOVER at expiry");
    assert_eq!(kind(&discover.payload), MessageType::Discover);
    assert_eq!(
        (discover.src, discover.dst),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    );
    assert!(matches!(client.next_event(), Some(Event4::Expired(l)) if l.address == OFFERED));
    assert_eq!(client.state(), State4::Selecting);
    assert_eq!(client.lease(), None);
}

#[test]
fn nak_while_renewing_drops_the_lease() {
    let (config, server) = short();
    let mut client = bound(config, &server);
    let renew = client.poll(Instant(10_000)).unwrap();
    let other = Server {
        id: Ipv4Addr::new(192, 0, 2, 2),
        ..server.clone()
    };
    assert!(matches!(
        client.handle(Instant(10_001), &other.nak(&renew.payload)),
        Err(Ignored::WrongServer { .. })
    ));
    client
        .handle(Instant(10_001), &server.nak(&renew.payload))
        .unwrap();
    assert_eq!(client.next_event(), Some(Event4::Nak));
    assert_eq!(client.lease(), None);
    assert_eq!(
        kind(&client.poll(Instant(10_001)).unwrap().payload),
        MessageType::Discover
    );
}

#[test]
fn ack_with_another_address_while_renewing_is_a_new_binding() {
    let (config, server) = short();
    let mut client = bound(config, &server);
    let renew = client.poll(Instant(10_000)).unwrap();
    let moved = Server {
        address: Ipv4Addr::new(192, 0, 2, 60),
        ..server
    };
    client
        .handle(Instant(10_001), &moved.ack(&renew.payload))
        .unwrap();
    assert!(matches!(client.next_event(), Some(Event4::Bound(l)) if l.address == moved.address));
}

fn persisted() -> Lease4 {
    let (config, server) = short();
    let client = bound(config, &server);
    client.lease().unwrap().clone()
}

#[test]
fn resume_picks_the_phase_of_a_persisted_lease() {
    let lease = persisted();
    let (config, _) = short();

    let early = Client4::resume(config.clone(), 3, lease.clone(), Instant(5_000));
    assert_eq!(early.state(), State4::Bound);
    assert_eq!(early.deadline(), Some(Instant(10_000)));

    let mut renewing = Client4::resume(config.clone(), 3, lease.clone(), Instant(12_000));
    assert_eq!(renewing.state(), State4::Renewing);
    let tx = renewing.poll(Instant(12_000)).expect("renews at once");
    assert_eq!((tx.src, tx.dst), (OFFERED, SERVER));

    let mut rebinding = Client4::resume(config.clone(), 3, lease.clone(), Instant(50_000));
    assert_eq!(rebinding.state(), State4::Rebinding);
    assert_eq!(
        rebinding.poll(Instant(50_000)).unwrap().dst,
        Ipv4Addr::BROADCAST
    );

    let mut expired = Client4::resume(config, 3, lease.clone(), Instant(100_000));
    assert_eq!(expired.next_event(), Some(Event4::Expired(lease)));
    assert_eq!(expired.state(), State4::Selecting);
    assert_eq!(
        kind(&expired.poll(Instant(100_000)).unwrap().payload),
        MessageType::Discover
    );
}

#[test]
fn decline_sends_a_broadcast_decline_and_discovers_after_the_wait() {
    let (config, server) = short();
    let mut client = bound(config, &server);
    let decline = client.decline(Instant(50)).expect("a DECLINE while bound");
    assert_eq!(
        (decline.src, decline.dst),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    );
    let msg = decode(&decline.payload);
    assert_eq!(msg.opts().msg_type(), Some(MessageType::Decline));
    assert_eq!(
        opt(&msg, OptionCode::RequestedIpAddress),
        Some(DhcpOption::RequestedIpAddress(OFFERED))
    );
    assert_eq!(
        opt(&msg, OptionCode::ServerIdentifier),
        Some(DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(opt(&msg, OptionCode::ParameterRequestList), None);
    assert_eq!(client.next_event(), Some(Event4::Declined(OFFERED)));
    assert_eq!((client.state(), client.lease()), (State4::Init, None));
    assert_eq!(client.deadline(), Some(Instant(1_050)));
    assert_eq!(client.poll(Instant(1_049)), None);
    assert_eq!(
        kind(&client.poll(Instant(1_050)).unwrap().payload),
        MessageType::Discover
    );
    assert_eq!(
        client.decline(Instant(1_051)),
        None,
        "nothing to decline without a lease"
    );
}

#[test]
fn release_unicasts_to_the_server_and_goes_idle() {
    let (config, server) = short();
    let mut client = bound(config, &server);
    let release = client.release(Instant(500)).expect("a RELEASE while bound");
    assert_eq!((release.src, release.dst), (OFFERED, SERVER));
    let msg = decode(&release.payload);
    assert_eq!(msg.opts().msg_type(), Some(MessageType::Release));
    assert_eq!(msg.ciaddr(), OFFERED);
    assert_eq!(
        opt(&msg, OptionCode::ServerIdentifier),
        Some(DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!((client.state(), client.deadline()), (State4::Init, None));
    assert_eq!(client.release(Instant(501)), None);
}

fn lease_from(server: Server) -> Lease4 {
    let mut client = bound_client(config(), &server, 0);
    match client.next_event() {
        Some(Event4::Bound(lease)) => lease,
        other => panic!("expected a lease, got {other:?}"),
    }
}

#[test]
fn classless_routes_replace_the_router_option() {
    let router = Ipv4Addr::new(192, 0, 2, 254);
    let plain = lease_from(Server::new());
    assert_eq!(
        plain.routes,
        [Route4 {
            dst: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            gateway: router
        }]
    );

    let gw = Ipv4Addr::new(192, 0, 2, 1);
    let routes = vec![
        ("10.0.0.0/8".parse().unwrap(), gw),
        ("0.0.0.0/0".parse().unwrap(), Ipv4Addr::new(192, 0, 2, 253)),
        ("198.51.100.0/25".parse().unwrap(), Ipv4Addr::UNSPECIFIED),
    ];
    let lease = lease_from(Server::new().with(DhcpOption::ClasslessStaticRoute(routes)));
    assert_eq!(lease.routers, [router], "option 3 is still reported");
    assert_eq!(
        lease.routes,
        [
            Route4 {
                dst: Ipv4Addr::new(10, 0, 0, 0),
                prefix: 8,
                gateway: gw
            },
            Route4 {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Ipv4Addr::new(192, 0, 2, 253)
            },
            Route4 {
                dst: Ipv4Addr::new(198, 51, 100, 0),
                prefix: 25,
                gateway: Ipv4Addr::UNSPECIFIED
            },
        ]
    );
}

#[test]
fn infinite_lease_never_renews() {
    let server = Server {
        lease_secs: Some(u32::MAX),
        ..Server::new()
    };
    let mut client = bound_client(config(), &server, 0);
    let Some(Event4::Bound(lease)) = client.next_event() else {
        panic!("no lease")
    };
    assert!(lease.is_infinite());
    assert_eq!(
        (lease.lease_time, lease.t1, lease.t2),
        (INFINITE, INFINITE, INFINITE)
    );
    assert_eq!(client.deadline(), None);
    let resumed = Client4::resume(config(), 1, lease, Instant(u64::MAX / 2));
    assert_eq!((resumed.state(), resumed.deadline()), (State4::Bound, None));
}

#[test]
fn timers_default_when_absent_or_inconsistent() {
    let lease = lease_from(Server::new());
    assert_eq!(
        (lease.t1, lease.t2),
        (Duration::from_secs(1800), Duration::from_secs(3150))
    );
    let odd = Server::new()
        .with(DhcpOption::Renewal(3000))
        .with(DhcpOption::Rebinding(2000));
    let lease = lease_from(odd);
    assert_eq!(
        (lease.t1, lease.t2),
        (Duration::from_secs(1800), Duration::from_secs(2000))
    );
    let beyond = Server::new().with(DhcpOption::Rebinding(4000));
    assert_eq!(lease_from(beyond).t2, Duration::from_secs(3150));
}

#[test]
fn dns_domain_search_and_mtu_are_read() {
    let names = vec![
        Name::from_ascii("corp.example.").unwrap(),
        Name::from_ascii("example.").unwrap(),
    ];
    let server = Server::new()
        .with(DhcpOption::DomainName("corp.example".into()))
        .with(DhcpOption::DomainSearch(names))
        .with(DhcpOption::InterfaceMtu(9000));
    let lease = lease_from(server);
    assert_eq!(lease.domain.as_deref(), Some("corp.example"));
    assert_eq!(lease.search, ["corp.example", "example"]);
    assert_eq!(lease.mtu, Some(9000));
    assert_eq!(
        lease_from(Server::new().with(DhcpOption::InterfaceMtu(67))).mtu,
        None
    );
}
