//! Many thousands of random and mutated inputs: nothing may panic, and the clients keep
//! working (their deadlines stay callable and polling never panics either).

use std::net::{IpAddr, Ipv6Addr};

use dhcproto::v4::MessageType;
use underlay_dhcp::acd::{announcements, ProbeConfig, Prober};
use underlay_dhcp::frame::{parse_udp4, udp4_frame};
use underlay_dhcp::v4::Client4;
use underlay_dhcp::v6::Client6;
use underlay_dhcp::Instant;

use crate::captures::{hex, KERNEL_ARP_REPLY, KERNEL_DAD_NS, KERNEL_NA};
use crate::fake4::{self, Server};
use crate::fake6::{self, Server6, SERVER_LL};

const ROUNDS: usize = 20_000;

/// xorshift64* (Vigna 2016).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn random(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len);
        self.bytes(len)
    }

    fn mutate_one(&mut self, inputs: &[Vec<u8>]) -> Vec<u8> {
        let pick = self.below(inputs.len());
        self.mutate(&inputs[pick])
    }

    /// Flips, overwrites, truncates or inserts at a few random places.
    fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(6) {
            if out.is_empty() {
                out.push(self.next() as u8);
            }
            let at = self.below(out.len());
            match self.below(5) {
                0 => out[at] ^= 1 << self.below(8),
                1 => out[at] = self.next() as u8,
                2 => out.truncate(at),
                3 => out.insert(at, self.next() as u8),
                _ => out[at] = [0, 1, 0x7f, 0x80, 0xff][self.below(5)],
            }
        }
        out
    }

    /// A DHCPv4 option stream: codes biased to the ones with decoding traps and to the ones the
    /// client reads, lengths biased to 0..4.
    fn v4_options(&mut self) -> Vec<u8> {
        const CODES: [u8; 20] = [
            1, 3, 6, 15, 26, 51, 52, 53, 54, 58, 59, 61, 80, 81, 94, 119, 121, 151, 155, 0,
        ];
        let mut out = Vec::new();
        for _ in 0..self.below(12) {
            let code = if self.below(4) == 0 {
                self.next() as u8
            } else {
                CODES[self.below(CODES.len())]
            };
            let len = if self.below(2) == 0 {
                self.below(5)
            } else {
                self.below(40)
            };
            out.push(code);
            out.push(len as u8);
            out.extend(self.bytes(len));
        }
        if self.below(2) == 0 {
            out.push(255);
        }
        out
    }

    /// A DHCPv6 option stream, with IA_NA options that nest random sub-options.
    fn v6_options(&mut self, depth: u32) -> Vec<u8> {
        const CODES: [u16; 12] = [1, 2, 3, 5, 7, 9, 11, 12, 13, 14, 23, 24];
        let mut out = Vec::new();
        for _ in 0..self.below(6) {
            let code = CODES[self.below(CODES.len())];
            let mut data = match code {
                3 if depth < 3 => {
                    let mut ia = fake6::IAID.to_be_bytes().to_vec();
                    ia.extend(self.bytes(8));
                    ia.extend(self.v6_options(depth + 1));
                    ia
                }
                5 if depth < 3 => {
                    let mut addr = self.bytes(24);
                    addr.extend(self.v6_options(depth + 1));
                    addr
                }
                _ => {
                    let len = if self.below(2) == 0 {
                        self.below(4)
                    } else {
                        self.below(40)
                    };
                    self.bytes(len)
                }
            };
            if self.below(10) == 0 {
                data.truncate(self.below(data.len() + 1));
            }
            out.extend_from_slice(&code.to_be_bytes());
            let len = if self.below(20) == 0 {
                self.below(70_000) as u16
            } else {
                data.len() as u16
            };
            out.extend_from_slice(&len.to_be_bytes());
            out.extend(data);
        }
        out
    }
}

/// Clients in each interesting state, with the valid replies that reached it.
fn v4_clients() -> (Vec<Client4>, Vec<Vec<u8>>) {
    let server = Server::new();
    let mut selecting = Client4::new(fake4::config(), 3, Instant(0));
    let discover = selecting.poll(Instant(0)).unwrap();
    let offer = server.offer(&discover.payload);
    let mut requesting = selecting.clone();
    requesting.handle(Instant(0), &offer).unwrap();
    let request = requesting.poll(Instant(0)).unwrap();
    let ack = server.ack(&request.payload);
    let mut bound = requesting.clone();
    bound.handle(Instant(0), &ack).unwrap();
    let mut renewing = bound.clone();
    let renew = renewing.poll(Instant(1_800_000)).unwrap();
    let nak = server.nak(&renew.payload);
    let renew_ack = server.reply(&renew.payload, MessageType::Ack);
    (
        vec![selecting, requesting, bound, renewing],
        vec![offer, ack, nak, renew_ack],
    )
}

fn exercise4(client: &mut Client4, input: &[u8]) {
    let _ = client.handle(Instant(10), input);
    while client.next_event().is_some() {}
    if let Some(at) = client.deadline() {
        let _ = client.poll(at);
    }
}

#[test]
fn client4_survives_random_and_mutated_replies() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (clients, valid) = v4_clients();
    for round in 0..ROUNDS {
        let mut client = clients[round % clients.len()].clone();
        let input = match round % 3 {
            0 => rng.random(600),
            1 => rng.mutate_one(&valid),
            _ => {
                let base = &valid[rng.below(valid.len())];
                let mut msg = base[..240].to_vec();
                msg.extend(rng.v4_options());
                msg
            }
        };
        exercise4(&mut client, &input);
    }
}

fn v6_clients() -> (Vec<Client6>, Vec<Vec<u8>>) {
    let server = Server6::new();
    let mut config = fake6::config6();
    config.rapid_commit = true;
    let mut soliciting = Client6::new(config, 3, Instant(0));
    let solicit = soliciting.poll(Instant(0)).unwrap();
    let advertise = server.advertise(&solicit.payload);
    let rapid = server.rapid_reply(&solicit.payload);
    let mut requesting = soliciting.clone();
    requesting
        .handle(Instant(0), &advertise, SERVER_LL)
        .unwrap();
    let request = requesting.poll(Instant(0)).unwrap();
    let reply = server.reply(&request.payload);
    let mut bound = requesting.clone();
    bound.handle(Instant(0), &reply, SERVER_LL).unwrap();
    let mut renewing = bound.clone();
    let renew = renewing.poll(Instant(10_000)).unwrap();
    let renew_reply = server.reply(&renew.payload);
    (
        vec![soliciting, requesting, bound, renewing],
        vec![advertise, rapid, reply, renew_reply],
    )
}

#[test]
fn client6_survives_random_and_mutated_replies() {
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    let (clients, valid) = v6_clients();
    for round in 0..ROUNDS {
        let which = round % clients.len();
        let mut client = clients[which].clone();
        let input = match round % 3 {
            0 => rng.random(400),
            1 => rng.mutate_one(&valid),
            _ => {
                // Our header (xid) with a random option tree.
                let mut msg = valid[which][..4].to_vec();
                msg.extend(rng.v6_options(0));
                msg
            }
        };
        let _ = client.handle(Instant(10), &input, SERVER_LL);
        while client.next_event().is_some() {}
        if let Some(at) = client.deadline() {
            let _ = client.poll(at);
        }
    }
}

#[test]
fn parse_udp4_survives_random_and_mutated_frames() {
    let mut rng = XorShift(42);
    let valid = udp4_frame(
        [2, 0, 0, 0, 0, 1],
        [0xff; 6],
        [0, 0, 0, 0].into(),
        [255; 4].into(),
        67,
        68,
        &[9u8; 300],
    );
    let mut accepted = 0;
    for round in 0..ROUNDS {
        let input = if round % 2 == 0 {
            rng.random(400)
        } else {
            rng.mutate(&valid)
        };
        if let Ok(udp) = parse_udp4(&input) {
            accepted += 1;
            assert!(udp.payload.len() <= input.len());
        }
    }
    // Padding changes and mutations past the IP packet keep a frame valid; most do not.
    assert!(accepted < ROUNDS / 4, "{accepted} of {ROUNDS} accepted");
}

#[test]
fn prober_survives_random_and_mutated_frames() {
    let mut rng = XorShift(7);
    let v4: IpAddr = "10.213.0.1".parse().unwrap();
    let v6: IpAddr = IpAddr::V6("fd00:213::1".parse::<Ipv6Addr>().unwrap());
    let mut valid = vec![hex(KERNEL_ARP_REPLY), hex(KERNEL_DAD_NS), hex(KERNEL_NA)];
    valid.extend(announcements([2, 0xaa, 0, 0, 0, 1], &[v4, v6]));
    let mut prober = Prober::new(
        [2, 0xcc, 0, 0, 0, 3],
        &[v4, v6],
        ProbeConfig::default(),
        1,
        Instant(0),
    );
    prober.poll(Instant(0));
    for round in 0..ROUNDS {
        let input = if round % 2 == 0 {
            rng.random(200)
        } else {
            rng.mutate_one(&valid)
        };
        let mut fresh = prober.clone();
        fresh.handle(&input);
        assert!(fresh.conflicts().len() <= 2);
    }
}
