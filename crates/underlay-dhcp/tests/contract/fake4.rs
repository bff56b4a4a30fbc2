//! A tiny DHCPv4 server for the tests: it answers whatever the client sent.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use underlay_dhcp::v4::{Client4, Config4, Retry4, Transmit4};
use underlay_dhcp::{Duration, Instant};

pub const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

pub fn client_id() -> Vec<u8> {
    vec![0xff, 0, 0, 0, 1, 0, 4, 9, 9, 9, 9]
}

/// Defaults with no jitter, so schedules are exact.
pub fn config() -> Config4 {
    let mut config = Config4::new(MAC, client_id());
    config.retry = Retry4 {
        jitter: Duration::ZERO,
        ..Retry4::default()
    };
    config
}

pub fn decode(payload: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(payload)).expect("client sent a decodable message")
}

pub fn kind(payload: &[u8]) -> MessageType {
    decode(payload).opts().msg_type().expect("message type")
}

pub fn opt(msg: &Message, code: OptionCode) -> Option<DhcpOption> {
    msg.opts().get(code).cloned()
}

#[derive(Clone)]
pub struct Server {
    pub id: Ipv4Addr,
    pub address: Ipv4Addr,
    pub mask: Option<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    pub extra: Vec<DhcpOption>,
    /// RFC 6842: echo the client identifier.
    pub echo_client_id: bool,
}

impl Server {
    pub fn new() -> Server {
        Server {
            id: SERVER,
            address: OFFERED,
            mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            lease_secs: Some(3600),
            extra: vec![
                DhcpOption::Router(vec![Ipv4Addr::new(192, 0, 2, 254)]),
                DhcpOption::DomainNameServer(vec![Ipv4Addr::new(192, 0, 2, 53)]),
            ],
            echo_client_id: true,
        }
    }

    pub fn with(mut self, opt: DhcpOption) -> Server {
        self.extra
            .retain(|o| OptionCode::from(o) != OptionCode::from(&opt));
        self.extra.push(opt);
        self
    }

    pub fn offer(&self, request: &[u8]) -> Vec<u8> {
        self.reply(request, MessageType::Offer)
    }

    pub fn ack(&self, request: &[u8]) -> Vec<u8> {
        self.reply(request, MessageType::Ack)
    }

    pub fn nak(&self, request: &[u8]) -> Vec<u8> {
        let req = decode(request);
        let mut msg = self.header(&req, Ipv4Addr::UNSPECIFIED);
        msg.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Nak));
        msg.opts_mut().insert(DhcpOption::ServerIdentifier(self.id));
        msg.to_vec().unwrap()
    }

    pub fn reply(&self, request: &[u8], kind: MessageType) -> Vec<u8> {
        let req = decode(request);
        let mut msg = self.header(&req, self.address);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(self.id));
        if let Some(mask) = self.mask {
            opts.insert(DhcpOption::SubnetMask(mask));
        }
        if let Some(secs) = self.lease_secs {
            opts.insert(DhcpOption::AddressLeaseTime(secs));
        }
        for extra in &self.extra {
            opts.insert(extra.clone());
        }
        msg.to_vec().unwrap()
    }

    fn header(&self, req: &Message, yiaddr: Ipv4Addr) -> Message {
        let mut msg = Message::new_with_id(
            req.xid(),
            req.ciaddr(),
            yiaddr,
            self.id,
            Ipv4Addr::UNSPECIFIED,
            req.chaddr(),
        );
        msg.set_opcode(Opcode::BootReply)
            .set_flags(Flags::new(u16::from(req.flags())));
        if let (true, Some(id)) = (
            self.echo_client_id,
            req.opts().get(OptionCode::ClientIdentifier),
        ) {
            msg.opts_mut().insert(id.clone());
        }
        msg
    }
}

/// Calls `poll` at every deadline up to `until`, returning each transmit with its time.
pub fn run_until(client: &mut Client4, until: Instant) -> Vec<(Instant, Transmit4)> {
    let mut sent = Vec::new();
    for _ in 0..10_000 {
        let Some(at) = client.deadline().filter(|at| *at <= until) else {
            return sent;
        };
        if let Some(tx) = client.poll(at) {
            sent.push((at, tx));
        }
    }
    panic!("deadline did not move forward")
}

/// A client that completed DORA at `t` ms (DISCOVER, OFFER, REQUEST and ACK all at `t`).
pub fn bound_client(config: Config4, server: &Server, t: u64) -> Client4 {
    let now = Instant(t);
    let mut client = Client4::new(config, 7, now);
    let discover = client.poll(now).expect("discover");
    client
        .handle(now, &server.offer(&discover.payload))
        .expect("offer accepted");
    let request = client.poll(now).expect("request");
    client
        .handle(now, &server.ack(&request.payload))
        .expect("ack accepted");
    client
}

pub fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
