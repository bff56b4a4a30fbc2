//! A tiny DHCPv6 server for the tests.

use std::net::Ipv6Addr;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, Status, StatusCode, IANA,
};
use dhcproto::{Decodable, Decoder, Encodable, Name};
use underlay_dhcp::v6::{Client6, Config6, Retry6};
use underlay_dhcp::Instant;

pub const DUID: [u8; 18] = [0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
pub const IAID: u32 = 0x0102_0304;
pub const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
pub const SERVER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
pub const ADDRESS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50);
pub const DNS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);

/// Defaults without RAND, so schedules are exact.
pub fn config6() -> Config6 {
    let mut config = Config6::new(DUID.to_vec(), IAID);
    config.retry = Retry6 {
        randomize: false,
        ..Retry6::default()
    };
    config
}

pub fn decode6(payload: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(payload)).expect("client sent a decodable message")
}

pub fn kind6(payload: &[u8]) -> MessageType {
    decode6(payload).msg_type()
}

pub fn ia_of(msg: &Message) -> IANA {
    match msg.opts().get(OptionCode::IANA) {
        Some(DhcpOption::IANA(ia)) => ia.clone(),
        other => panic!("no IA_NA: {other:?}"),
    }
}

pub fn ia_address(msg: &Message) -> Option<Ipv6Addr> {
    match ia_of(msg).opts.get(OptionCode::IAAddr) {
        Some(DhcpOption::IAAddr(a)) => Some(a.addr),
        _ => None,
    }
}

#[derive(Clone)]
pub struct Server6 {
    pub duid: Vec<u8>,
    pub address: Ipv6Addr,
    pub t1: u32,
    pub t2: u32,
    pub preferred: u32,
    pub valid: u32,
    /// Top-level status.
    pub status: Option<u16>,
    /// Status inside the IA_NA (then no address is given).
    pub ia_status: Option<u16>,
    pub unicast: Option<Ipv6Addr>,
    pub echo_client_id: bool,
}

impl Server6 {
    pub fn new() -> Server6 {
        Server6 {
            duid: SERVER_DUID.to_vec(),
            address: ADDRESS,
            t1: 10,
            t2: 20,
            preferred: 50,
            valid: 100,
            status: None,
            ia_status: None,
            unicast: None,
            echo_client_id: true,
        }
    }

    pub fn advertise(&self, request: &[u8]) -> Vec<u8> {
        self.answer(request, MessageType::Advertise, false)
    }

    pub fn reply(&self, request: &[u8]) -> Vec<u8> {
        self.answer(request, MessageType::Reply, false)
    }

    pub fn rapid_reply(&self, request: &[u8]) -> Vec<u8> {
        self.answer(request, MessageType::Reply, true)
    }

    fn answer(&self, request: &[u8], kind: MessageType, rapid: bool) -> Vec<u8> {
        let req = decode6(request);
        let mut msg = Message::new_with_id(kind, req.xid());
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::ServerId(self.duid.clone()));
        if let (true, Some(id)) = (self.echo_client_id, req.opts().get(OptionCode::ClientId)) {
            opts.insert(id.clone());
        }
        if let Some(code) = self.status {
            opts.insert(status(code));
        }
        if let Some(unicast) = self.unicast {
            opts.insert(DhcpOption::ServerUnicast(unicast));
        }
        if rapid {
            opts.insert(DhcpOption::RapidCommit);
        }
        opts.insert(DhcpOption::DomainNameServers(vec![DNS]));
        opts.insert(DhcpOption::DomainSearchList(vec![Name::from_ascii(
            "corp.example.",
        )
        .unwrap()]));
        opts.insert(DhcpOption::IANA(self.ia(ia_of(&req).id)));
        msg.to_vec().unwrap()
    }

    fn ia(&self, iaid: u32) -> IANA {
        let mut opts = DhcpOptions::new();
        match self.ia_status {
            Some(code) => opts.insert(status(code)),
            None => opts.insert(DhcpOption::IAAddr(IAAddr {
                addr: self.address,
                preferred_life: self.preferred,
                valid_life: self.valid,
                opts: DhcpOptions::new(),
            })),
        }
        IANA {
            id: iaid,
            t1: self.t1,
            t2: self.t2,
            opts,
        }
    }
}

fn status(code: u16) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status: Status::from(code),
        msg: "from the test server".into(),
    })
}

/// Calls `poll` at every deadline up to `until`.
pub fn run6(client: &mut Client6, until: Instant) -> Vec<(u64, underlay_dhcp::v6::Transmit6)> {
    let mut sent = Vec::new();
    for _ in 0..10_000 {
        let Some(at) = client.deadline().filter(|at| *at <= until) else {
            return sent;
        };
        if let Some(tx) = client.poll(at) {
            sent.push((at.0, tx));
        }
    }
    panic!("deadline did not move forward")
}

/// SOLICIT, ADVERTISE, REQUEST, REPLY, all at `t`.
pub fn bound6(config: Config6, server: &Server6, t: u64) -> Client6 {
    let now = Instant(t);
    let mut client = Client6::new(config, 9, now);
    let solicit = client.poll(now).expect("solicit");
    client
        .handle(now, &server.advertise(&solicit.payload), SERVER_LL)
        .expect("advertise");
    let request = client.poll(now).expect("request");
    client
        .handle(now, &server.reply(&request.payload), SERVER_LL)
        .expect("reply");
    client
}
