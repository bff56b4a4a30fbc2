//! DHCPv6: the four-message and rapid-commit exchanges, timers, status codes, decline, release.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, MessageType, OptionCode};
use underlay_dhcp::v6::{Client6, Event6, Ignored6, Lease6, State6, Status6, ALL_SERVERS};
use underlay_dhcp::{Duration, Instant};

use crate::fake6::*;

fn bound(server: &Server6) -> Client6 {
    let mut client = bound6(config6(), server, 0);
    assert!(matches!(client.next_event(), Some(Event6::Bound(_))));
    client
}

#[test]
fn solicit_advertise_request_reply() {
    let mut config = config6();
    config.hostname = Some("web-1".into());
    let server = Server6::new();
    let mut client = Client6::new(config, 1, Instant(0));
    let solicit = client.poll(Instant(0)).expect("a SOLICIT at once");
    assert_eq!(solicit.dst, ALL_SERVERS);
    let msg = decode6(&solicit.payload);
    assert_eq!(msg.msg_type(), MessageType::Solicit);
    assert_eq!(
        msg.opts().get(OptionCode::ClientId),
        Some(&DhcpOption::ClientId(DUID.to_vec()))
    );
    assert_eq!(
        msg.opts().get(OptionCode::ElapsedTime),
        Some(&DhcpOption::ElapsedTime(0))
    );
    assert_eq!(msg.opts().get(OptionCode::RapidCommit), None);
    let Some(DhcpOption::ORO(oro)) = msg.opts().get(OptionCode::ORO) else {
        panic!("no ORO")
    };
    assert_eq!(
        oro.opts,
        [OptionCode::DomainNameServers, OptionCode::DomainSearchList]
    );
    assert!(msg.opts().get(OptionCode::ClientFqdn).is_some());
    assert_eq!((ia_of(&msg).id, ia_address(&msg)), (IAID, None));

    client
        .handle(Instant(20), &server.advertise(&solicit.payload), SERVER_LL)
        .unwrap();
    assert_eq!(client.state(), State6::Requesting);
    let request = client.poll(Instant(20)).expect("a REQUEST at once");
    let msg = decode6(&request.payload);
    assert_eq!(msg.msg_type(), MessageType::Request);
    assert_ne!(
        msg.xid(),
        decode6(&solicit.payload).xid(),
        "REQUEST is a new transaction"
    );
    assert_eq!(
        msg.opts().get(OptionCode::ServerId),
        Some(&DhcpOption::ServerId(SERVER_DUID.to_vec()))
    );
    assert_eq!(ia_address(&msg), Some(ADDRESS));
    assert_eq!(request.dst, ALL_SERVERS);

    client
        .handle(Instant(30), &server.reply(&request.payload), SERVER_LL)
        .unwrap();
    let Some(Event6::Bound(lease)) = client.next_event() else {
        panic!("no Bound event")
    };
    let expected = Lease6 {
        address: ADDRESS,
        preferred: Duration::from_secs(50),
        valid: Duration::from_secs(100),
        t1: Duration::from_secs(10),
        t2: Duration::from_secs(20),
        server_duid: SERVER_DUID.to_vec(),
        server_addr: SERVER_LL,
        server_unicast: None,
        dns: vec![DNS],
        search: vec!["corp.example".into()],
        acquired: Instant(20),
    };
    assert_eq!(lease, expected);
    assert_eq!(client.state(), State6::Bound);
    assert_eq!(client.deadline(), Some(Instant(10_020)));
}

#[test]
fn rapid_commit_binds_on_the_first_reply() {
    let mut config = config6();
    config.rapid_commit = true;
    let mut client = Client6::new(config, 1, Instant(0));
    let solicit = client.poll(Instant(0)).unwrap();
    assert_eq!(
        decode6(&solicit.payload)
            .opts()
            .get(OptionCode::RapidCommit),
        Some(&DhcpOption::RapidCommit)
    );
    client
        .handle(
            Instant(5),
            &Server6::new().rapid_reply(&solicit.payload),
            SERVER_LL,
        )
        .unwrap();
    assert!(
        matches!(client.next_event(), Some(Event6::Bound(l)) if l.address == ADDRESS && l.acquired == Instant(0))
    );

    let mut plain = Client6::new(config6(), 1, Instant(0));
    let solicit = plain.poll(Instant(0)).unwrap();
    let unasked = plain.handle(
        Instant(5),
        &Server6::new().rapid_reply(&solicit.payload),
        SERVER_LL,
    );
    assert!(matches!(unasked, Err(Ignored6::UnexpectedInState { .. })));
}

#[test]
fn solicit_retransmissions_double_and_give_up() {
    let mut client = Client6::new(config6(), 1, Instant(0));
    let sent = run6(&mut client, Instant(60_000));
    let times: Vec<u64> = sent.iter().map(|(at, _)| *at).collect();
    assert_eq!(times, [0, 500, 1500, 3500, 7500]);
    let elapsed: Vec<DhcpOption> = sent
        .iter()
        .map(|(_, tx)| {
            decode6(&tx.payload)
                .opts()
                .get(OptionCode::ElapsedTime)
                .cloned()
                .unwrap()
        })
        .collect();
    let hundredths = [0u16, 50, 150, 350, 750].map(DhcpOption::ElapsedTime);
    assert_eq!(elapsed, hundredths);
    assert_eq!(client.next_event(), Some(Event6::GaveUp));
    assert_eq!(client.deadline(), None);
}

#[test]
fn randomized_times_follow_rfc8415_bounds() {
    let mut config = config6();
    config.retry.randomize = true;
    config.retry.timeout = Duration::from_secs(60);
    let mut client = Client6::new(config, 42, Instant(0));
    let times: Vec<u64> = run6(&mut client, Instant(30_000))
        .iter()
        .map(|(at, _)| *at)
        .collect();
    let rts: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        rts[0] > 500 && rts[0] <= 550,
        "first RT {} must be in (IRT, 1.1 IRT]",
        rts[0]
    );
    for pair in rts.windows(2) {
        let (prev, rt) = (pair[0] as f64, pair[1] as f64);
        // 2 RTprev ± 0.1 RTprev, or MRT ± 0.1 MRT once past MRT (4 s).
        let doubled = rt >= 1.9 * prev - 1.0 && rt <= 2.1 * prev + 1.0;
        let capped = (3600.0..=4400.0).contains(&rt);
        assert!(doubled || capped, "{rt} after {prev}");
    }
    assert!(rts.iter().all(|rt| *rt <= 4400));
}

#[test]
fn advertise_without_addresses_keeps_soliciting() {
    let mut client = Client6::new(config6(), 1, Instant(0));
    let solicit = client.poll(Instant(0)).unwrap();
    let top = Server6 {
        status: Some(Status6::NO_ADDRS_AVAIL),
        ..Server6::new()
    };
    let inner = Server6 {
        ia_status: Some(Status6::NO_ADDRS_AVAIL),
        ..Server6::new()
    };
    for server in [top, inner] {
        let result = client.handle(Instant(1), &server.advertise(&solicit.payload), SERVER_LL);
        assert!(
            matches!(result, Err(Ignored6::NoAddrsAvail(s)) if s.code == Status6::NO_ADDRS_AVAIL)
        );
    }
    let withdrawn = Server6 {
        valid: 0,
        preferred: 0,
        ..Server6::new()
    };
    assert!(matches!(
        client.handle(
            Instant(1),
            &withdrawn.advertise(&solicit.payload),
            SERVER_LL
        ),
        Err(Ignored6::NoAddrsAvail(_))
    ));
    assert_eq!(client.state(), State6::Soliciting);
    assert_eq!(
        kind6(&client.poll(Instant(500)).unwrap().payload),
        MessageType::Solicit
    );
}

#[test]
fn no_addrs_avail_in_the_reply_restarts_soliciting() {
    let mut client = Client6::new(config6(), 1, Instant(0));
    let solicit = client.poll(Instant(0)).unwrap();
    client
        .handle(
            Instant(1),
            &Server6::new().advertise(&solicit.payload),
            SERVER_LL,
        )
        .unwrap();
    let request = client.poll(Instant(1)).unwrap();
    let refusing = Server6 {
        ia_status: Some(Status6::NO_ADDRS_AVAIL),
        ..Server6::new()
    };
    client
        .handle(Instant(2), &refusing.reply(&request.payload), SERVER_LL)
        .unwrap();
    assert!(
        matches!(client.next_event(), Some(Event6::Rejected(s)) if s.code == Status6::NO_ADDRS_AVAIL)
    );
    assert_eq!(client.state(), State6::Soliciting);
    assert_eq!(
        kind6(&client.poll(Instant(2)).unwrap().payload),
        MessageType::Solicit
    );
}

#[test]
fn replies_for_another_transaction_client_or_server_are_ignored() {
    let mut config = config6();
    config.servers = vec![SERVER_DUID.to_vec()];
    let mut client = Client6::new(config, 1, Instant(0));
    let solicit = client.poll(Instant(0)).unwrap();
    let advertise = Server6::new().advertise(&solicit.payload);

    let mut wrong_xid = advertise.clone();
    wrong_xid[3] ^= 0xff;
    assert!(matches!(
        client.handle(Instant(1), &wrong_xid, SERVER_LL),
        Err(Ignored6::WrongXid { .. })
    ));
    let mut other = decode6(&solicit.payload);
    other.opts_mut().remove(OptionCode::ClientId);
    other
        .opts_mut()
        .insert(DhcpOption::ClientId(vec![0, 4, 9, 9, 9]));
    let other_advertise = Server6::new().advertise(&dhcproto::Encodable::to_vec(&other).unwrap());
    assert!(matches!(
        client.handle(Instant(1), &other_advertise, SERVER_LL),
        Err(Ignored6::WrongClientId(_))
    ));
    let silent = Server6 {
        echo_client_id: false,
        ..Server6::new()
    }
    .advertise(&solicit.payload);
    assert_eq!(
        client.handle(Instant(1), &silent, SERVER_LL),
        Err(Ignored6::MissingClientId)
    );
    let rogue = Server6 {
        duid: vec![0, 2, 0, 0, 0, 9, 1],
        ..Server6::new()
    }
    .advertise(&solicit.payload);
    assert!(matches!(
        client.handle(Instant(1), &rogue, SERVER_LL),
        Err(Ignored6::ServerNotAllowed(_))
    ));
    let mut solicit_echo = advertise.clone();
    solicit_echo[0] = 1;
    assert_eq!(
        client.handle(Instant(1), &solicit_echo, SERVER_LL),
        Err(Ignored6::NotForClient(1))
    );
    assert_eq!(client.state(), State6::Soliciting);
    assert_eq!(client.next_event(), None);
}

#[test]
fn renew_at_t1_then_rebind_at_t2_then_expire_at_the_valid_lifetime() {
    let client = bound(&Server6::new());
    let mut config = config6();
    config.retry.renew_initial = Duration::from_secs(2);
    config.retry.renew_max = Duration::from_secs(16);
    let mut client = Client6::resume(config, 1, client.lease().unwrap().clone(), Instant(0));
    let sent = run6(&mut client, Instant(99_999));
    let summary: Vec<(u64, MessageType, bool)> = sent
        .iter()
        .map(|(at, tx)| {
            let msg = decode6(&tx.payload);
            (
                *at,
                msg.msg_type(),
                msg.opts().get(OptionCode::ServerId).is_some(),
            )
        })
        .collect();
    use MessageType::{Rebind, Renew};
    assert_eq!(
        summary,
        [
            (10_000, Renew, true),
            (12_000, Renew, true),
            (16_000, Renew, true),
            (20_000, Rebind, false),
            (22_000, Rebind, false),
            (26_000, Rebind, false),
            (34_000, Rebind, false),
            (50_000, Rebind, false),
            (66_000, Rebind, false),
            (82_000, Rebind, false),
            (98_000, Rebind, false),
        ]
    );
    assert!(sent.iter().all(|(_, tx)| tx.dst == ALL_SERVERS));
    assert_eq!(client.next_event(), None);
    let solicit = client
        .poll(Instant(100_000))
        .expect("a SOLICIT at the end of the valid lifetime");
    assert_eq!(kind6(&solicit.payload), MessageType::Solicit);
    assert!(matches!(client.next_event(), Some(Event6::Expired(l)) if l.address == ADDRESS));
}

#[test]
fn renew_reply_renews_and_server_unicast_is_used() {
    let server = Server6 {
        unicast: Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ..Server6::new()
    };
    let mut client = bound(&server);
    let renew = client.poll(Instant(10_000)).expect("a RENEW at T1");
    assert_eq!(renew.dst, server.unicast.unwrap());
    let other = Server6 {
        duid: vec![0, 3, 0, 1, 9, 9, 9, 9, 9, 9],
        ..server.clone()
    };
    assert!(matches!(
        client.handle(Instant(10_001), &other.reply(&renew.payload), SERVER_LL),
        Err(Ignored6::WrongServer { .. })
    ));
    client
        .handle(Instant(10_001), &server.reply(&renew.payload), SERVER_LL)
        .unwrap();
    assert!(
        matches!(client.next_event(), Some(Event6::Renewed(l)) if l.acquired == Instant(10_000))
    );
    assert_eq!(client.deadline(), Some(Instant(20_000)));

    let renew = client.poll(Instant(20_000)).unwrap();
    let use_multicast = Server6 {
        status: Some(Status6::USE_MULTICAST),
        ..server.clone()
    };
    let result = client.handle(
        Instant(20_001),
        &use_multicast.reply(&renew.payload),
        SERVER_LL,
    );
    assert!(matches!(result, Err(Ignored6::Status(s)) if s.code == Status6::USE_MULTICAST));
    assert_eq!(
        client.poll(Instant(20_001)).expect("resent at once").dst,
        ALL_SERVERS
    );
}

#[test]
fn zero_t1_t2_let_the_client_choose() {
    let server = Server6 {
        t1: 0,
        t2: 0,
        preferred: 1000,
        valid: 2000,
        ..Server6::new()
    };
    let client = bound(&server);
    let lease = client.lease().unwrap();
    assert_eq!(
        (lease.t1, lease.t2),
        (Duration::from_secs(500), Duration::from_secs(800))
    );
    let inverted = Server6 {
        t1: 30,
        t2: 20,
        ..Server6::new()
    };
    let mut client = Client6::new(config6(), 1, Instant(0));
    let solicit = client.poll(Instant(0)).unwrap();
    assert!(matches!(
        client.handle(Instant(1), &inverted.advertise(&solicit.payload), SERVER_LL),
        Err(Ignored6::NoAddrsAvail(_))
    ));
}

#[test]
fn zero_valid_lifetime_in_a_renew_reply_withdraws_the_address() {
    let server = Server6::new();
    let mut client = bound(&server);
    let renew = client.poll(Instant(10_000)).unwrap();
    let withdrawn = Server6 {
        valid: 0,
        preferred: 0,
        ..server
    };
    client
        .handle(Instant(10_001), &withdrawn.reply(&renew.payload), SERVER_LL)
        .unwrap();
    assert!(matches!(client.next_event(), Some(Event6::Expired(l)) if l.address == ADDRESS));
    assert_eq!(client.state(), State6::Soliciting);
}

#[test]
fn decline_then_solicit_after_the_reply() {
    let server = Server6::new();
    let mut client = bound(&server);
    let decline = client.decline(Instant(100)).expect("a DECLINE while bound");
    let msg = decode6(&decline.payload);
    assert_eq!(msg.msg_type(), MessageType::Decline);
    assert_eq!(ia_address(&msg), Some(ADDRESS));
    assert_eq!(
        msg.opts().get(OptionCode::ServerId),
        Some(&DhcpOption::ServerId(SERVER_DUID.to_vec()))
    );
    assert_eq!(client.next_event(), Some(Event6::Declined(ADDRESS)));
    assert_eq!((client.state(), client.lease()), (State6::Declining, None));
    assert_eq!(client.deadline(), Some(Instant(600)));
    client
        .handle(Instant(150), &server.reply(&decline.payload), SERVER_LL)
        .unwrap();
    assert_eq!(client.state(), State6::Soliciting);
    assert_eq!(
        kind6(&client.poll(Instant(150)).unwrap().payload),
        MessageType::Solicit
    );
}

#[test]
fn release_is_retransmitted_until_answered_then_idle() {
    let server = Server6::new();
    let mut client = bound(&server);
    let release = client.release(Instant(100)).expect("a RELEASE while bound");
    assert_eq!(kind6(&release.payload), MessageType::Release);
    let again = run6(&mut client, Instant(1_000_000));
    let times: Vec<u64> = again.iter().map(|(at, _)| *at).collect();
    assert_eq!(times, [600, 1600, 3600], "4 RELEASEs in all");
    assert_eq!((client.state(), client.deadline()), (State6::Init, None));

    let mut answered = bound(&server);
    let release = answered.release(Instant(100)).unwrap();
    answered
        .handle(Instant(101), &server.reply(&release.payload), SERVER_LL)
        .unwrap();
    assert_eq!(
        (answered.state(), answered.deadline()),
        (State6::Init, None)
    );
}

#[test]
fn resume_picks_the_phase_of_a_persisted_lease() {
    let lease = bound(&Server6::new()).lease().unwrap().clone();
    let early = Client6::resume(config6(), 1, lease.clone(), Instant(5_000));
    assert_eq!(
        (early.state(), early.deadline()),
        (State6::Bound, Some(Instant(10_000)))
    );
    let renewing = Client6::resume(config6(), 1, lease.clone(), Instant(15_000));
    assert_eq!(renewing.state(), State6::Renewing);
    let rebinding = Client6::resume(config6(), 1, lease.clone(), Instant(25_000));
    assert_eq!(rebinding.state(), State6::Rebinding);
    let mut expired = Client6::resume(config6(), 1, lease.clone(), Instant(100_000));
    assert_eq!(expired.next_event(), Some(Event6::Expired(lease)));
    assert_eq!(expired.state(), State6::Soliciting);
}

#[test]
fn truncated_messages_are_malformed_never_a_panic() {
    let mut client = Client6::new(config6(), 1, Instant(0));
    let solicit = client.poll(Instant(0)).unwrap();
    let advertise = Server6::new().advertise(&solicit.payload);
    // Cutting the message at an option boundary leaves a well-formed message; only one that
    // still holds the IA_NA (options 1, 2, 3 come first) may be accepted.
    let mut boundaries = vec![4];
    while let Some(&at) = boundaries.last().filter(|at| **at < advertise.len()) {
        boundaries
            .push(at + 4 + usize::from(u16::from_be_bytes([advertise[at + 2], advertise[at + 3]])));
    }
    for len in 0..advertise.len() {
        let mut fresh = client.clone();
        let result = fresh.handle(Instant(1), &advertise[..len], SERVER_LL);
        if result.is_ok() {
            assert!(
                boundaries[3..].contains(&len),
                "truncation at {len} accepted"
            );
        } else if !boundaries.contains(&len) {
            assert!(
                matches!(result, Err(Ignored6::Malformed(_))),
                "at {len}: {result:?}"
            );
        }
    }
}

#[test]
fn no_binding_while_renewing_drops_the_lease_other_ia_failures_do_not() {
    let server = Server6::new();
    let mut client = bound(&server);
    let renew = client.poll(Instant(10_000)).unwrap();
    let busy = Server6 {
        ia_status: Some(Status6::NO_ADDRS_AVAIL),
        ..server.clone()
    };
    let result = client.handle(Instant(10_001), &busy.reply(&renew.payload), SERVER_LL);
    assert!(matches!(result, Err(Ignored6::Status(s)) if s.code == Status6::NO_ADDRS_AVAIL));
    assert_eq!(client.state(), State6::Renewing);
    let lost = Server6 {
        ia_status: Some(Status6::NO_BINDING),
        ..server
    };
    client
        .handle(Instant(10_002), &lost.reply(&renew.payload), SERVER_LL)
        .unwrap();
    assert!(
        matches!(client.next_event(), Some(Event6::Rejected(s)) if s.code == Status6::NO_BINDING)
    );
    assert_eq!((client.state(), client.lease()), (State6::Soliciting, None));
}
