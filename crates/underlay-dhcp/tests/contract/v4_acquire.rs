//! DHCPv4 acquisition: DORA, retransmissions, filtering of replies, INIT-REBOOT.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use underlay_dhcp::v4::{Client4, Event4, Ignored, Retry4, State4, DEFAULT_PARAMS};
use underlay_dhcp::Instant;

use crate::fake4::*;

#[test]
fn dora_stepped_in_time() {
    let mut config = config();
    config.hostname = Some("web-1".to_string());
    config.broadcast = true;
    let server = Server::new();
    let mut client = Client4::new(config, 1, Instant(1000));
    assert_eq!(client.state(), State4::Init);
    assert_eq!(client.deadline(), Some(Instant(1000)));

    let discover = client.poll(Instant(1000)).expect("a DISCOVER at once");
    assert_eq!(
        (discover.src, discover.dst),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    );
    let msg = decode(&discover.payload);
    assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
    assert_eq!(msg.chaddr(), MAC);
    assert!(msg.flags().broadcast());
    assert!(discover.payload.len() >= 300);
    assert_eq!(
        opt(&msg, OptionCode::ClientIdentifier),
        Some(DhcpOption::ClientIdentifier(client_id()))
    );
    assert_eq!(
        opt(&msg, OptionCode::Hostname),
        Some(DhcpOption::Hostname("web-1".into()))
    );
    let Some(DhcpOption::ParameterRequestList(params)) =
        opt(&msg, OptionCode::ParameterRequestList)
    else {
        panic!("no parameter request list");
    };
    let params: Vec<u8> = params.into_iter().map(u8::from).collect();
    assert_eq!(params, DEFAULT_PARAMS);
    assert_eq!(client.state(), State4::Selecting);
    assert_eq!(client.deadline(), Some(Instant(1500)));

    client
        .handle(Instant(1010), &server.offer(&discover.payload))
        .unwrap();
    assert_eq!(client.state(), State4::Requesting);
    assert_eq!(client.deadline(), Some(Instant(1010)));
    let request = client.poll(Instant(1010)).expect("a REQUEST at once");
    let msg = decode(&request.payload);
    assert_eq!(msg.opts().msg_type(), Some(MessageType::Request));
    assert_eq!(
        msg.xid(),
        decode(&discover.payload).xid(),
        "REQUEST keeps the OFFER's xid"
    );
    assert_eq!(
        opt(&msg, OptionCode::RequestedIpAddress),
        Some(DhcpOption::RequestedIpAddress(OFFERED))
    );
    assert_eq!(
        opt(&msg, OptionCode::ServerIdentifier),
        Some(DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(msg.ciaddr(), Ipv4Addr::UNSPECIFIED);

    client
        .handle(Instant(1020), &server.ack(&request.payload))
        .unwrap();
    let Some(Event4::Bound(lease)) = client.next_event() else {
        panic!("no Bound event")
    };
    assert_eq!(
        (lease.address, lease.prefix, lease.server),
        (OFFERED, 24, SERVER)
    );
    assert_eq!(
        lease.acquired,
        Instant(1010),
        "lease runs from the first REQUEST"
    );
    assert_eq!(lease.dns, vec![Ipv4Addr::new(192, 0, 2, 53)]);
    assert_eq!(
        (
            lease.t1.as_secs(),
            lease.t2.as_secs(),
            lease.lease_time.as_secs()
        ),
        (1800, 3150, 3600)
    );
    assert_eq!(client.state(), State4::Bound);
    assert_eq!(client.lease(), Some(&lease));
    assert_eq!(client.deadline(), Some(Instant(1010 + 1_800_000)));
    assert_eq!(client.next_event(), None);
    assert_eq!(
        client.poll(Instant(5000)),
        None,
        "nothing to send while bound"
    );
}

#[test]
fn discover_retransmissions_double_then_give_up_at_the_timeout() {
    let mut client = Client4::new(config(), 1, Instant(0));
    let sent = run_until(&mut client, Instant(60_000));
    let times: Vec<u64> = sent.iter().map(|(at, _)| at.0).collect();
    // 500 ms doubling, capped at 4 s: 0, 0.5, 1.5, 3.5, 7.5 s; the 11.5 s one is past the timeout.
    assert_eq!(times, [0, 500, 1500, 3500, 7500]);
    let xids: Vec<u32> = sent
        .iter()
        .map(|(_, tx)| decode(&tx.payload).xid())
        .collect();
    assert!(
        xids.windows(2).all(|w| w[0] == w[1]),
        "retransmissions keep the xid"
    );
    assert!(sent
        .iter()
        .all(|(_, tx)| kind(&tx.payload) == MessageType::Discover));
    assert_eq!(client.next_event(), Some(Event4::GaveUp));
    assert_eq!(client.state(), State4::Init);
    assert_eq!(client.deadline(), None, "idle after giving up");

    client.restart(Instant(70_000));
    let again = client
        .poll(Instant(70_000))
        .expect("restart sends a DISCOVER");
    assert_ne!(
        decode(&again.payload).xid(),
        xids[0],
        "a new acquisition has a new xid"
    );
}

#[test]
fn gave_up_fires_exactly_at_the_timeout_with_the_max_delay_cap() {
    let mut config = config();
    config.retry = Retry4 {
        initial: ms(100),
        max: ms(400),
        timeout: ms(2000),
        ..config.retry
    };
    let mut client = Client4::new(config, 1, Instant(0));
    let times: Vec<u64> = run_until(&mut client, Instant(5000))
        .iter()
        .map(|(at, _)| at.0)
        .collect();
    assert_eq!(times, [0, 100, 300, 700, 1100, 1500, 1900]);
    assert_eq!(client.next_event(), Some(Event4::GaveUp));
}

#[test]
fn jitter_is_deterministic_per_seed_and_bounded() {
    let schedule = |seed| {
        let mut config = config();
        config.retry.jitter = ms(100);
        let mut client = Client4::new(config, seed, Instant(0));
        run_until(&mut client, Instant(10_000))
            .iter()
            .map(|(at, _)| at.0)
            .collect::<Vec<u64>>()
    };
    let (a, b, c) = (schedule(5), schedule(5), schedule(6));
    assert_eq!(a, b);
    assert_ne!(a, c);
    for times in [&a, &c] {
        let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        for (gap, base) in gaps.iter().zip([500u64, 1000, 2000, 4000]) {
            assert!(gap.abs_diff(base) <= 100, "gap {gap} strays from {base}");
        }
    }
}

#[test]
fn offer_from_a_server_outside_the_allow_list_is_ignored() {
    let mut config = config();
    config.servers = vec![Ipv4Addr::new(192, 0, 2, 2)];
    let mut client = Client4::new(config, 1, Instant(0));
    let discover = client.poll(Instant(0)).unwrap();
    let rogue = Server::new();
    assert_eq!(
        client.handle(Instant(1), &rogue.offer(&discover.payload)),
        Err(Ignored::ServerNotAllowed(SERVER))
    );
    assert_eq!(client.state(), State4::Selecting);
    let good = Server {
        id: Ipv4Addr::new(192, 0, 2, 2),
        ..Server::new()
    };
    client
        .handle(Instant(2), &good.offer(&discover.payload))
        .unwrap();
    let request = client.poll(Instant(2)).unwrap();
    assert_eq!(
        client.handle(Instant(3), &rogue.nak(&request.payload)),
        Err(Ignored::ServerNotAllowed(SERVER))
    );
    assert_eq!(
        client.handle(Instant(3), &rogue.ack(&request.payload)),
        Err(Ignored::ServerNotAllowed(SERVER))
    );
    assert_eq!(client.state(), State4::Requesting);
    assert_eq!(client.next_event(), None);
}

#[test]
fn replies_for_another_transaction_or_client_are_ignored() {
    let mut client = Client4::new(config(), 1, Instant(0));
    let discover = client.poll(Instant(0)).unwrap();
    let offer = Server::new().offer(&discover.payload);

    let mut wrong_xid = offer.clone();
    wrong_xid[4] ^= 0xff;
    assert!(matches!(
        client.handle(Instant(1), &wrong_xid),
        Err(Ignored::WrongXid { .. })
    ));

    let mut wrong_mac = offer.clone();
    wrong_mac[33] ^= 0x01;
    assert!(matches!(
        client.handle(Instant(1), &wrong_mac),
        Err(Ignored::WrongClient(_))
    ));

    // Same chaddr, another endpoint's client id (two ipvlan endpoints on one parent).
    let mut other = decode(&discover.payload);
    other.opts_mut().insert(DhcpOption::ClientIdentifier(vec![
        0xff, 9, 9, 9, 9, 0, 4, 1,
    ]));
    let other_offer = Server::new().offer(&dhcproto::Encodable::to_vec(&other).unwrap());
    assert!(matches!(
        client.handle(Instant(1), &other_offer),
        Err(Ignored::WrongClientId(_))
    ));

    let mut request_echo = offer.clone();
    request_echo[0] = 1;
    assert_eq!(
        client.handle(Instant(1), &request_echo),
        Err(Ignored::NotAReply)
    );
    assert_eq!(client.state(), State4::Selecting);

    // A server that does not echo option 61 is fine.
    let quiet = Server {
        echo_client_id: false,
        ..Server::new()
    };
    client
        .handle(Instant(2), &quiet.offer(&discover.payload))
        .unwrap();
    assert_eq!(client.state(), State4::Requesting);
}

#[test]
fn truncated_replies_are_malformed_never_a_panic() {
    let mut client = Client4::new(config(), 1, Instant(0));
    let discover = client.poll(Instant(0)).unwrap();
    let offer = Server::new().offer(&discover.payload);
    for len in 0..offer.len() {
        let result = client.handle(Instant(1), &offer[..len]);
        assert!(
            result.is_err() || len >= 240,
            "truncation at {len} accepted"
        );
        if len < 240 {
            assert!(
                matches!(result, Err(Ignored::Malformed(_))),
                "at {len}: {result:?}"
            );
        }
        if client.state() != State4::Selecting {
            client = Client4::new(config(), 1, Instant(0));
            client.poll(Instant(0));
        }
    }
}

#[test]
fn offers_of_unusable_addresses_are_ignored() {
    let mut client = Client4::new(config(), 1, Instant(0));
    let discover = client.poll(Instant(0)).unwrap();
    for bad in [
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.5",
        "127.0.0.2",
        "240.0.0.1",
    ] {
        let address: Ipv4Addr = bad.parse().unwrap();
        let server = Server {
            address,
            ..Server::new()
        };
        assert_eq!(
            client.handle(Instant(1), &server.offer(&discover.payload)),
            Err(Ignored::BadAddress(address))
        );
    }
    let offer = Server::new().reply(&discover.payload, MessageType::Ack);
    assert!(matches!(
        client.handle(Instant(1), &offer),
        Err(Ignored::UnexpectedInState { .. })
    ));
    assert_eq!(client.state(), State4::Selecting);
}

#[test]
fn ack_without_a_usable_mask_or_lease_time_is_ignored() {
    let mut client = Client4::new(config(), 1, Instant(0));
    let discover = client.poll(Instant(0)).unwrap();
    client
        .handle(
            Instant(0),
            &Server {
                mask: None,
                ..Server::new()
            }
            .offer(&discover.payload),
        )
        .unwrap();
    let request = client.poll(Instant(0)).unwrap();
    let no_mask = Server {
        mask: None,
        ..Server::new()
    }
    .ack(&request.payload);
    assert_eq!(
        client.handle(Instant(1), &no_mask),
        Err(Ignored::MissingOption {
            message: "DHCPACK",
            code: 1
        })
    );
    let holes = Ipv4Addr::new(255, 0, 255, 0);
    let bad_mask = Server {
        mask: Some(holes),
        ..Server::new()
    }
    .ack(&request.payload);
    assert_eq!(
        client.handle(Instant(1), &bad_mask),
        Err(Ignored::BadSubnetMask(holes))
    );
    let no_time = Server {
        lease_secs: None,
        ..Server::new()
    }
    .ack(&request.payload);
    assert_eq!(
        client.handle(Instant(1), &no_time),
        Err(Ignored::MissingOption {
            message: "DHCPACK",
            code: 51
        })
    );
    let network = Server {
        address: Ipv4Addr::new(192, 0, 2, 0),
        ..Server::new()
    }
    .ack(&request.payload);
    assert!(matches!(
        client.handle(Instant(1), &network),
        Err(Ignored::BadAddress(_))
    ));
    assert_eq!(client.state(), State4::Requesting);
    client
        .handle(Instant(1), &Server::new().ack(&request.payload))
        .unwrap();
    assert_eq!(client.state(), State4::Bound);
}

#[test]
fn nak_while_requesting_restarts_with_a_fresh_discover() {
    let mut client = Client4::new(config(), 1, Instant(0));
    let discover = client.poll(Instant(0)).unwrap();
    client
        .handle(Instant(0), &Server::new().offer(&discover.payload))
        .unwrap();
    let request = client.poll(Instant(0)).unwrap();
    let other = Server {
        id: Ipv4Addr::new(192, 0, 2, 9),
        ..Server::new()
    };
    let wrong = client.handle(Instant(5), &other.nak(&request.payload));
    assert_eq!(
        wrong,
        Err(Ignored::WrongServer {
            expected: SERVER,
            got: other.id
        })
    );
    client
        .handle(Instant(5), &Server::new().nak(&request.payload))
        .unwrap();
    assert_eq!(client.next_event(), Some(Event4::Nak));
    assert_eq!(client.state(), State4::Selecting);
    let again = client
        .poll(Instant(5))
        .expect("a DISCOVER right after the NAK");
    assert_eq!(kind(&again.payload), MessageType::Discover);
    assert_ne!(
        decode(&again.payload).xid(),
        decode(&discover.payload).xid()
    );
}

#[test]
fn unanswered_requests_fall_back_to_discover() {
    let mut client = Client4::new(config(), 1, Instant(0));
    let discover = client.poll(Instant(0)).unwrap();
    client
        .handle(Instant(0), &Server::new().offer(&discover.payload))
        .unwrap();
    let sent = run_until(&mut client, Instant(7500));
    let kinds: Vec<(u64, MessageType)> = sent
        .iter()
        .map(|(at, tx)| (at.0, kind(&tx.payload)))
        .collect();
    use MessageType::{Discover, Request};
    assert_eq!(
        kinds,
        [
            (0, Request),
            (500, Request),
            (1500, Request),
            (3500, Request),
            (7500, Discover)
        ]
    );
    run_until(&mut client, Instant(20_000));
    assert_eq!(
        client.next_event(),
        Some(Event4::GaveUp),
        "the acquisition clock kept running"
    );
}

#[test]
fn init_reboot_asks_for_the_previous_address() {
    let previous = Ipv4Addr::new(192, 0, 2, 77);
    let mut client = Client4::with_previous(config(), 1, previous, Instant(0));
    assert_eq!(client.state(), State4::InitReboot);
    let request = client.poll(Instant(0)).unwrap();
    assert_eq!(client.state(), State4::Rebooting);
    let msg = decode(&request.payload);
    assert_eq!(msg.opts().msg_type(), Some(MessageType::Request));
    assert_eq!(
        opt(&msg, OptionCode::RequestedIpAddress),
        Some(DhcpOption::RequestedIpAddress(previous))
    );
    assert_eq!(
        opt(&msg, OptionCode::ServerIdentifier),
        None,
        "INIT-REBOOT names no server"
    );
    assert_eq!(msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    client
        .handle(
            Instant(3),
            &Server {
                address: previous,
                ..Server::new()
            }
            .ack(&request.payload),
        )
        .unwrap();
    assert!(matches!(client.next_event(), Some(Event4::Bound(l)) if l.address == previous));
}

#[test]
fn init_reboot_falls_back_to_discover_on_nak_or_silence() {
    let previous = Ipv4Addr::new(192, 0, 2, 77);
    let mut client = Client4::with_previous(config(), 1, previous, Instant(0));
    let request = client.poll(Instant(0)).unwrap();
    client
        .handle(Instant(3), &Server::new().nak(&request.payload))
        .unwrap();
    assert_eq!(client.next_event(), Some(Event4::Nak));
    assert_eq!(
        kind(&client.poll(Instant(3)).unwrap().payload),
        MessageType::Discover
    );

    let mut silent = Client4::with_previous(config(), 1, previous, Instant(0));
    let sent = run_until(&mut silent, Instant(1500));
    let kinds: Vec<(u64, MessageType)> = sent
        .iter()
        .map(|(at, tx)| (at.0, kind(&tx.payload)))
        .collect();
    use MessageType::{Discover, Request};
    assert_eq!(kinds, [(0, Request), (500, Request), (1500, Discover)]);
    assert_eq!(silent.state(), State4::Selecting);
}

/// The options a user provides (CNI `provide`, `request`) go out in DISCOVER and REQUEST.
#[test]
fn provided_options_and_extra_params_go_out() {
    let mut config = config();
    config.vendor_class = Some("acme-pods".into());
    config.extra_options = vec![(77, b"gold".to_vec()), (224, vec![1, 2, 3])];
    config.extra_params = vec![42, 3, 0];
    let server = Server::new();
    let mut client = Client4::new(config, 1, Instant(1000));
    let discover = client.poll(Instant(1000)).unwrap();
    client
        .handle(Instant(1010), &server.offer(&discover.payload))
        .unwrap();
    let request = client.poll(Instant(1010)).unwrap();
    for packet in [&discover, &request] {
        let options = &packet.payload[240..];
        for wanted in [
            &b"\x4d\x04gold"[..],
            &[224, 3, 1, 2, 3],
            &b"\x3c\x09acme-pods"[..],
        ] {
            assert!(
                options.windows(wanted.len()).any(|w| w == wanted),
                "{wanted:?} missing from {options:?}"
            );
        }
        let msg = decode(&packet.payload);
        let Some(DhcpOption::ParameterRequestList(params)) =
            opt(&msg, OptionCode::ParameterRequestList)
        else {
            panic!("no parameter request list");
        };
        let params: Vec<u8> = params.into_iter().map(u8::from).collect();
        // The extra code once at the end; a repeat of a default and the pad code are dropped.
        let mut expected = DEFAULT_PARAMS.to_vec();
        expected.push(42);
        assert_eq!(params, expected);
    }
}
