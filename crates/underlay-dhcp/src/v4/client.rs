//! The DHCPv4 client state machine.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};

use super::build::{self, Outgoing};
use super::ignored::message_name;
use super::lease::{self, Lease4};
use super::wire::{self, Reply};
use super::{Config4, Event4, Ignored, State4, Transmit4};
use crate::rng::Rng;
use crate::time::Instant;

mod timers;

const BROADCAST: Ipv4Addr = Ipv4Addr::BROADCAST;
const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
const OFFER: u8 = 2;
const ACK: u8 = 5;
const NAK: u8 = 6;

/// A DHCPv4 client for one lease. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Client4 {
    config: Config4,
    rng: Rng,
    phase: Phase,
    /// Transaction id of the current (or last) exchange.
    xid: u32,
    /// First DISCOVER of the current acquisition: the `GaveUp` clock.
    acquisition: Instant,
    events: VecDeque<Event4>,
}

#[derive(Debug, Clone)]
enum Phase {
    /// `None` = idle until [`Client4::restart`].
    Init {
        at: Option<Instant>,
    },
    Selecting(Exchange),
    Requesting {
        exchange: Exchange,
        offered: Ipv4Addr,
        server: Ipv4Addr,
    },
    InitReboot {
        previous: Ipv4Addr,
        at: Instant,
    },
    Rebooting {
        exchange: Exchange,
        previous: Ipv4Addr,
    },
    Bound(Lease4),
    Renewing {
        exchange: Exchange,
        lease: Lease4,
    },
    Rebinding {
        exchange: Exchange,
        lease: Lease4,
    },
}

/// One request and its retransmissions.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    started: Instant,
    next: Instant,
    sent: u32,
}

impl Exchange {
    fn starting(now: Instant) -> Exchange {
        Exchange {
            started: now,
            next: now,
            sent: 0,
        }
    }
}

impl Client4 {
    /// A client in INIT: the first [`poll`](Self::poll) sends a DISCOVER.
    pub fn new(config: Config4, xid_seed: u64, now: Instant) -> Client4 {
        Client4::with_phase(config, xid_seed, now, Phase::Init { at: Some(now) })
    }

    /// A client in INIT-REBOOT: it asks for `previous` again (REQUEST with option 50 and no
    /// server identifier), and falls back to DISCOVER on a NAK or after
    /// [`Retry4::reboot_attempts`](super::Retry4::reboot_attempts) unanswered REQUESTs.
    pub fn with_previous(
        config: Config4,
        xid_seed: u64,
        previous: Ipv4Addr,
        now: Instant,
    ) -> Client4 {
        Client4::with_phase(
            config,
            xid_seed,
            now,
            Phase::InitReboot { previous, at: now },
        )
    }

    /// A client holding a persisted lease: BOUND before T1, RENEWING before T2, REBINDING before
    /// the lease ends, else INIT with an [`Event4::Expired`] queued.
    pub fn resume(config: Config4, xid_seed: u64, lease: Lease4, now: Instant) -> Client4 {
        let mut client = Client4::with_phase(config, xid_seed, now, Phase::Bound(lease));
        client.advance(now);
        client
    }

    fn with_phase(config: Config4, xid_seed: u64, now: Instant, phase: Phase) -> Client4 {
        let mut rng = Rng::new(xid_seed);
        let xid = rng.next_u32();
        Client4 {
            config,
            rng,
            phase,
            xid,
            acquisition: now,
            events: VecDeque::new(),
        }
    }

    /// Starts a new acquisition from INIT, dropping any lease without an event (after
    /// [`Event4::GaveUp`], or to force a fresh DISCOVER).
    pub fn restart(&mut self, now: Instant) {
        self.phase = Phase::Init { at: Some(now) };
    }

    pub fn state(&self) -> State4 {
        match self.phase {
            Phase::Init { .. } => State4::Init,
            Phase::Selecting(_) => State4::Selecting,
            Phase::Requesting { .. } => State4::Requesting,
            Phase::InitReboot { .. } => State4::InitReboot,
            Phase::Rebooting { .. } => State4::Rebooting,
            Phase::Bound(_) => State4::Bound,
            Phase::Renewing { .. } => State4::Renewing,
            Phase::Rebinding { .. } => State4::Rebinding,
        }
    }

    /// The lease held in BOUND, RENEWING and REBINDING.
    pub fn lease(&self) -> Option<&Lease4> {
        match &self.phase {
            Phase::Bound(lease)
            | Phase::Renewing { lease, .. }
            | Phase::Rebinding { lease, .. } => Some(lease),
            _ => None,
        }
    }

    pub fn config(&self) -> &Config4 {
        &self.config
    }

    pub fn next_event(&mut self) -> Option<Event4> {
        self.events.pop_front()
    }

    /// When [`poll`](Self::poll) must be called next; `None` when idle or holding an infinite
    /// lease.
    pub fn deadline(&self) -> Option<Instant> {
        let timeout = self.acquisition + self.config.retry.timeout;
        let at = match &self.phase {
            Phase::Init { at } => *at,
            Phase::InitReboot { at, .. } => Some(*at),
            Phase::Selecting(ex) | Phase::Requesting { exchange: ex, .. } => {
                Some(ex.next.min(timeout))
            }
            Phase::Rebooting { exchange, .. } => Some(exchange.next),
            Phase::Bound(lease) => Some(lease.renew_at().min(lease.expires_at())),
            Phase::Renewing { exchange, lease } => {
                Some(exchange.next.min(lease.rebind_at()).min(lease.expires_at()))
            }
            Phase::Rebinding { exchange, lease } => Some(exchange.next.min(lease.expires_at())),
        };
        at.filter(|at| !at.is_never())
    }

    /// Runs the timers due at `now` and returns the message to send now, if any.
    pub fn poll(&mut self, now: Instant) -> Option<Transmit4> {
        self.advance(now);
        self.transmit_due(now)
    }

    /// Our conflict probe found the leased address in use: DECLINE it (broadcast, with option 50
    /// and the server identifier), queue [`Event4::Declined`] and DISCOVER again after
    /// [`Retry4::decline_wait`](super::Retry4::decline_wait). `None` when no lease is held.
    pub fn decline(&mut self, now: Instant) -> Option<Transmit4> {
        let lease = self.lease()?.clone();
        self.xid = self.rng.next_u32();
        let out = Outgoing {
            kind: MessageType::Decline,
            xid: self.xid,
            secs: 0,
            ciaddr: UNSPECIFIED,
            requested: Some(lease.address),
            server: Some(lease.server),
        };
        self.events.push_back(Event4::Declined(lease.address));
        self.phase = Phase::Init {
            at: Some(now + self.config.retry.decline_wait),
        };
        Some(Transmit4 {
            payload: build::encode(&self.config, &out),
            src: UNSPECIFIED,
            dst: BROADCAST,
        })
    }

    /// Gives the lease back: a RELEASE unicast to the server from the leased address; the client
    /// goes idle. `None` when no lease is held.
    pub fn release(&mut self, _now: Instant) -> Option<Transmit4> {
        let lease = self.lease()?.clone();
        self.xid = self.rng.next_u32();
        let out = Outgoing {
            kind: MessageType::Release,
            xid: self.xid,
            secs: 0,
            ciaddr: lease.address,
            requested: None,
            server: Some(lease.server),
        };
        self.phase = Phase::Init { at: None };
        Some(Transmit4 {
            payload: build::encode(&self.config, &out),
            src: lease.address,
            dst: lease.server,
        })
    }

    /// Takes a UDP payload received on port 68. `Err` says why it changed nothing.
    pub fn handle(&mut self, now: Instant, payload: &[u8]) -> Result<(), Ignored> {
        let reply = wire::parse(payload)?;
        self.check_addressed_to_us(&reply)?;
        let kind = reply.message_type.ok_or(Ignored::MissingOption {
            message: "reply",
            code: 53,
        })?;
        let server = match reply.opts.get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(server)) => *server,
            _ => {
                return Err(Ignored::MissingOption {
                    message: message_name(kind),
                    code: 54,
                })
            }
        };
        if !self.config.allows(server) {
            return Err(Ignored::ServerNotAllowed(server));
        }
        match kind {
            OFFER if matches!(self.phase, Phase::Selecting(_)) => {
                self.on_offer(now, &reply, server)
            }
            ACK | NAK if self.awaits_answer() => {
                self.check_server(server)?;
                if kind == ACK {
                    self.on_ack(&reply, server)
                } else {
                    self.on_nak(now)
                }
            }
            _ => Err(Ignored::UnexpectedInState {
                message: message_name(kind),
                state: self.state(),
            }),
        }
    }

    fn check_addressed_to_us(&self, reply: &Reply) -> Result<(), Ignored> {
        if reply.op != 2 {
            return Err(Ignored::NotAReply);
        }
        if reply.xid != self.xid {
            return Err(Ignored::WrongXid {
                expected: self.xid,
                got: reply.xid,
            });
        }
        if reply.hlen != 6 || reply.chaddr[..6] != self.config.chaddr {
            return Err(Ignored::WrongClient(crate::identity::format_hex(
                &reply.chaddr[..6],
            )));
        }
        // Two ipvlan endpoints share a chaddr: the echoed client id (RFC 6842) tells them apart.
        if let Some(DhcpOption::ClientIdentifier(id)) = reply.opts.get(OptionCode::ClientIdentifier)
        {
            if *id != self.config.client_id {
                return Err(Ignored::WrongClientId(crate::identity::format_hex(id)));
            }
        }
        Ok(())
    }

    fn awaits_answer(&self) -> bool {
        matches!(
            self.phase,
            Phase::Requesting { .. }
                | Phase::Rebooting { .. }
                | Phase::Renewing { .. }
                | Phase::Rebinding { .. }
        )
    }

    /// In REQUESTING only the selected server answers, in RENEWING only the lease's server.
    fn check_server(&self, got: Ipv4Addr) -> Result<(), Ignored> {
        let expected = match &self.phase {
            Phase::Requesting { server, .. } => *server,
            Phase::Renewing { lease, .. } => lease.server,
            _ => return Ok(()),
        };
        if got == expected {
            Ok(())
        } else {
            Err(Ignored::WrongServer { expected, got })
        }
    }

    fn on_offer(&mut self, now: Instant, reply: &Reply, server: Ipv4Addr) -> Result<(), Ignored> {
        let offered = lease::usable_address(reply.yiaddr)?;
        // The REQUEST keeps the OFFER's xid (RFC 2131 section 4.4.1).
        self.phase = Phase::Requesting {
            exchange: Exchange::starting(now),
            offered,
            server,
        };
        Ok(())
    }

    fn on_ack(&mut self, reply: &Reply, server: Ipv4Addr) -> Result<(), Ignored> {
        let (started, previous) = match &self.phase {
            Phase::Requesting { exchange, .. } | Phase::Rebooting { exchange, .. } => {
                (exchange.started, None)
            }
            Phase::Renewing { exchange, lease } | Phase::Rebinding { exchange, lease } => {
                (exchange.started, Some(lease.address))
            }
            _ => {
                return Err(Ignored::UnexpectedInState {
                    message: "DHCPACK",
                    state: self.state(),
                })
            }
        };
        let lease = lease::from_ack(reply, server, started)?;
        let event = if previous == Some(lease.address) {
            Event4::Renewed(lease.clone())
        } else {
            Event4::Bound(lease.clone())
        };
        self.events.push_back(event);
        self.phase = Phase::Bound(lease);
        Ok(())
    }

    fn on_nak(&mut self, now: Instant) -> Result<(), Ignored> {
        self.events.push_back(Event4::Nak);
        self.start_selecting(now);
        Ok(())
    }
}
