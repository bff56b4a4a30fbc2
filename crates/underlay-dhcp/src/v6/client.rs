//! The DHCPv6 client state machine.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::Duration;

use super::lease::{self, Lease6};
use super::wire::{self, Reply6};
use super::{Config6, Event6, Ignored6, State6, Status6, Transmit6};
use crate::identity::format_hex;
use crate::rng::Rng;
use crate::time::Instant;

mod timers;

const ADVERTISE: u8 = 2;
const REPLY: u8 = 7;

/// A DHCPv6 client for one IA_NA address. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Client6 {
    config: Config6,
    rng: Rng,
    phase: Phase,
    xid: u32,
    /// First SOLICIT of the current acquisition: the `GaveUp` clock.
    acquisition: Instant,
    events: VecDeque<Event6>,
}

#[derive(Debug, Clone)]
enum Phase {
    Init {
        at: Option<Instant>,
    },
    Soliciting(Exchange),
    Requesting {
        exchange: Exchange,
        server: Server,
        address: Ipv6Addr,
    },
    Bound(Lease6),
    Renewing {
        exchange: Exchange,
        lease: Lease6,
    },
    Rebinding {
        exchange: Exchange,
        lease: Lease6,
    },
    Declining {
        exchange: Exchange,
        lease: Lease6,
    },
    Releasing {
        exchange: Exchange,
        lease: Lease6,
    },
}

/// The server picked from an ADVERTISE.
#[derive(Debug, Clone)]
struct Server {
    duid: Vec<u8>,
    unicast: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, Copy)]
struct Exchange {
    started: Instant,
    next: Instant,
    sent: u32,
    /// The last retransmission time (RT in RFC 8415 section 15).
    rt: Duration,
}

impl Exchange {
    fn starting(now: Instant) -> Exchange {
        Exchange {
            started: now,
            next: now,
            sent: 0,
            rt: Duration::ZERO,
        }
    }
}

impl Client6 {
    /// A client in INIT: the first [`poll`](Self::poll) sends a SOLICIT.
    pub fn new(config: Config6, xid_seed: u64, now: Instant) -> Client6 {
        Client6::with_phase(config, xid_seed, now, Phase::Init { at: Some(now) })
    }

    /// A client holding a persisted lease: BOUND, RENEWING or REBINDING by the time, or INIT
    /// with [`Event6::Expired`] queued.
    pub fn resume(config: Config6, xid_seed: u64, lease: Lease6, now: Instant) -> Client6 {
        let mut client = Client6::with_phase(config, xid_seed, now, Phase::Bound(lease));
        client.advance(now);
        client
    }

    fn with_phase(config: Config6, xid_seed: u64, now: Instant, phase: Phase) -> Client6 {
        let mut rng = Rng::new(xid_seed);
        let xid = rng.next_u32() & 0x00ff_ffff;
        Client6 {
            config,
            rng,
            phase,
            xid,
            acquisition: now,
            events: VecDeque::new(),
        }
    }

    /// Starts a new acquisition, dropping any lease without an event.
    pub fn restart(&mut self, now: Instant) {
        self.phase = Phase::Init { at: Some(now) };
    }

    pub fn state(&self) -> State6 {
        match self.phase {
            Phase::Init { .. } => State6::Init,
            Phase::Soliciting(_) => State6::Soliciting,
            Phase::Requesting { .. } => State6::Requesting,
            Phase::Bound(_) => State6::Bound,
            Phase::Renewing { .. } => State6::Renewing,
            Phase::Rebinding { .. } => State6::Rebinding,
            Phase::Declining { .. } => State6::Declining,
            Phase::Releasing { .. } => State6::Releasing,
        }
    }

    /// The lease held in BOUND, RENEWING and REBINDING.
    pub fn lease(&self) -> Option<&Lease6> {
        match &self.phase {
            Phase::Bound(lease)
            | Phase::Renewing { lease, .. }
            | Phase::Rebinding { lease, .. } => Some(lease),
            _ => None,
        }
    }

    pub fn config(&self) -> &Config6 {
        &self.config
    }

    pub fn next_event(&mut self) -> Option<Event6> {
        self.events.pop_front()
    }

    /// When [`poll`](Self::poll) must be called next; `None` when idle or never.
    pub fn deadline(&self) -> Option<Instant> {
        let timeout = self.acquisition + self.config.retry.timeout;
        let at = match &self.phase {
            Phase::Init { at } => *at,
            Phase::Soliciting(ex) | Phase::Requesting { exchange: ex, .. } => {
                Some(ex.next.min(timeout))
            }
            Phase::Bound(lease) => Some(lease.renew_at().min(lease.expires_at())),
            Phase::Renewing { exchange, lease } => {
                Some(exchange.next.min(lease.rebind_at()).min(lease.expires_at()))
            }
            Phase::Rebinding { exchange, lease } => Some(exchange.next.min(lease.expires_at())),
            Phase::Declining { exchange, .. } | Phase::Releasing { exchange, .. } => {
                Some(exchange.next)
            }
        };
        at.filter(|at| !at.is_never())
    }

    /// Runs the timers due at `now` and returns the message to send now, if any.
    pub fn poll(&mut self, now: Instant) -> Option<Transmit6> {
        self.advance(now);
        self.transmit_due(now)
    }

    /// Our DAD found the leased address in use: DECLINE it (retransmitted until the server
    /// replies, [`Retry6::decline_attempts`](super::Retry6::decline_attempts) at most), then
    /// solicit again. Queues [`Event6::Declined`]. `None` when no lease is held.
    pub fn decline(&mut self, now: Instant) -> Option<Transmit6> {
        let lease = self.lease()?.clone();
        self.events.push_back(Event6::Declined(lease.address));
        self.new_xid();
        self.phase = Phase::Declining {
            exchange: Exchange::starting(now),
            lease,
        };
        self.transmit_due(now)
    }

    /// Gives the lease back: RELEASE (retransmitted until a REPLY, like DECLINE), then idle.
    /// `None` when no lease is held.
    pub fn release(&mut self, now: Instant) -> Option<Transmit6> {
        let lease = self.lease()?.clone();
        self.new_xid();
        self.phase = Phase::Releasing {
            exchange: Exchange::starting(now),
            lease,
        };
        self.transmit_due(now)
    }

    /// Takes a datagram received on port 546 from `from`. `Err` says why it changed nothing.
    pub fn handle(&mut self, now: Instant, payload: &[u8], from: Ipv6Addr) -> Result<(), Ignored6> {
        let reply = wire::parse(payload, self.config.iaid)?;
        let server = self.check_addressed_to_us(&reply)?;
        match (reply.kind, &self.phase) {
            (ADVERTISE, Phase::Soliciting(_)) => self.on_advertise(now, &reply, server),
            (REPLY, Phase::Soliciting(_)) if reply.rapid_commit && self.config.rapid_commit => {
                self.on_reply(now, &reply, from)
            }
            (
                REPLY,
                Phase::Requesting { .. } | Phase::Renewing { .. } | Phase::Rebinding { .. },
            ) => {
                self.check_server(&server)?;
                self.on_reply(now, &reply, from)
            }
            (REPLY, Phase::Declining { .. }) => {
                self.start_soliciting(now);
                Ok(())
            }
            (REPLY, Phase::Releasing { .. }) => {
                self.phase = Phase::Init { at: None };
                Ok(())
            }
            (kind, _) => Err(Ignored6::UnexpectedInState {
                message: message_name(kind),
                state: self.state(),
            }),
        }
    }

    /// Returns the server DUID after the checks every accepted message passes.
    fn check_addressed_to_us(&self, reply: &Reply6) -> Result<Vec<u8>, Ignored6> {
        if reply.kind != ADVERTISE && reply.kind != REPLY {
            return Err(Ignored6::NotForClient(reply.kind));
        }
        if reply.xid != self.xid {
            return Err(Ignored6::WrongXid {
                expected: self.xid,
                got: reply.xid,
            });
        }
        match &reply.client_id {
            None => return Err(Ignored6::MissingClientId),
            Some(id) if *id != self.config.duid => {
                return Err(Ignored6::WrongClientId(format_hex(id)))
            }
            Some(_) => {}
        }
        let server = reply.server_id.clone().ok_or(Ignored6::MissingServerId)?;
        if !self.config.allows(&server) {
            return Err(Ignored6::ServerNotAllowed(format_hex(&server)));
        }
        Ok(server)
    }

    /// REPLYs while requesting or renewing come from the server we chose.
    fn check_server(&self, got: &[u8]) -> Result<(), Ignored6> {
        let expected = match &self.phase {
            Phase::Requesting { server, .. } => &server.duid,
            Phase::Renewing { lease, .. } => &lease.server_duid,
            _ => return Ok(()),
        };
        if expected == got {
            Ok(())
        } else {
            Err(Ignored6::WrongServer {
                expected: format_hex(expected),
                got: format_hex(got),
            })
        }
    }

    /// RFC 8415 section 18.2.9: an ADVERTISE without addresses is no use for IA_NA.
    fn on_advertise(
        &mut self,
        now: Instant,
        reply: &Reply6,
        duid: Vec<u8>,
    ) -> Result<(), Ignored6> {
        let no_addrs =
            |message: &str| Ignored6::NoAddrsAvail(Status6::new(Status6::NO_ADDRS_AVAIL, message));
        if let Some(status) = reply.status.as_ref().filter(|s| s.code != Status6::SUCCESS) {
            return Err(Ignored6::NoAddrsAvail(status.clone()));
        }
        let ia = usable_ia(reply).ok_or_else(|| no_addrs("no ia_na for our iaid"))?;
        if let Some(status) = ia.status.as_ref().filter(|s| s.code != Status6::SUCCESS) {
            return Err(Ignored6::NoAddrsAvail(status.clone()));
        }
        let address = lease::pick(ia, None)
            .ok_or_else(|| no_addrs("no usable address"))?
            .addr;
        let server = Server {
            duid,
            unicast: reply.unicast,
        };
        self.new_xid();
        self.phase = Phase::Requesting {
            exchange: Exchange::starting(now),
            server,
            address,
        };
        Ok(())
    }

    /// RFC 8415 section 18.2.10.1.
    fn on_reply(&mut self, now: Instant, reply: &Reply6, from: Ipv6Addr) -> Result<(), Ignored6> {
        if let Some(status) = reply.status.as_ref().filter(|s| s.code != Status6::SUCCESS) {
            return self.on_reply_status(now, status.clone());
        }
        let Some(ia) = usable_ia(reply) else {
            return self.reject(
                now,
                Status6::new(Status6::NO_ADDRS_AVAIL, "no ia_na for our iaid"),
            );
        };
        if let Some(status) = ia.status.as_ref().filter(|s| s.code != Status6::SUCCESS) {
            return self.on_ia_status(now, status.clone());
        }
        let (started, held) = self.exchange_and_lease();
        let prefer = held.as_ref().map(|l| l.address).or(self.requested());
        let Some(addr) = lease::pick(ia, prefer) else {
            return self.withdrawn(now, held);
        };
        let lease = lease::build(reply, ia, addr, from, started);
        let event = match held {
            Some(old) if old.address == lease.address => Event6::Renewed(lease.clone()),
            _ => Event6::Bound(lease.clone()),
        };
        self.events.push_back(event);
        self.phase = Phase::Bound(lease);
        Ok(())
    }

    fn on_reply_status(&mut self, now: Instant, status: Status6) -> Result<(), Ignored6> {
        match status.code {
            Status6::USE_MULTICAST => {
                self.forget_unicast();
                if let Some(exchange) = self.exchange_mut() {
                    exchange.next = now;
                }
                Err(Ignored6::Status(status))
            }
            Status6::NOT_ON_LINK | Status6::NO_BINDING => self.reject(now, status),
            // UnspecFail and the rest: keep retransmitting (RFC 8415 section 18.2.10).
            _ => Err(Ignored6::Status(status)),
        }
    }

    /// While renewing, only NoBinding ends the lease (RFC 8415 section 18.2.10.1); any other IA
    /// failure leaves the address in use until T2 or expiry, and the RENEW is retransmitted.
    fn on_ia_status(&mut self, now: Instant, status: Status6) -> Result<(), Ignored6> {
        let renewing = matches!(self.phase, Phase::Renewing { .. } | Phase::Rebinding { .. });
        if renewing && status.code != Status6::NO_BINDING {
            return Err(Ignored6::Status(status));
        }
        self.reject(now, status)
    }

    /// The server refused: drop any lease and solicit again.
    fn reject(&mut self, now: Instant, status: Status6) -> Result<(), Ignored6> {
        self.events.push_back(Event6::Rejected(status));
        self.start_soliciting(now);
        Ok(())
    }

    /// The REPLY no longer lists our address with a valid lifetime: it is gone.
    fn withdrawn(&mut self, now: Instant, held: Option<Lease6>) -> Result<(), Ignored6> {
        match held {
            Some(lease) => {
                self.events.push_back(Event6::Expired(lease));
                self.start_soliciting(now);
                Ok(())
            }
            None => self.reject(
                now,
                Status6::new(Status6::NO_ADDRS_AVAIL, "no usable address"),
            ),
        }
    }

    fn exchange_and_lease(&self) -> (Instant, Option<Lease6>) {
        match &self.phase {
            Phase::Renewing { exchange, lease } | Phase::Rebinding { exchange, lease } => {
                (exchange.started, Some(lease.clone()))
            }
            Phase::Soliciting(ex) | Phase::Requesting { exchange: ex, .. } => (ex.started, None),
            _ => (self.acquisition, None),
        }
    }

    fn requested(&self) -> Option<Ipv6Addr> {
        match &self.phase {
            Phase::Requesting { address, .. } => Some(*address),
            _ => None,
        }
    }

    fn forget_unicast(&mut self) {
        match &mut self.phase {
            Phase::Requesting { server, .. } => server.unicast = None,
            Phase::Renewing { lease, .. }
            | Phase::Declining { lease, .. }
            | Phase::Releasing { lease, .. } => lease.server_unicast = None,
            _ => {}
        }
    }

    fn new_xid(&mut self) {
        self.xid = self.rng.next_u32() & 0x00ff_ffff;
    }

    fn start_soliciting(&mut self, now: Instant) {
        self.new_xid();
        self.acquisition = now;
        self.phase = Phase::Soliciting(Exchange::starting(now));
    }
}

/// Our IA_NA, unless T1 > T2 (both set), which RFC 8415 section 21.4 says to discard.
fn usable_ia(reply: &Reply6) -> Option<&wire::IaNa> {
    reply
        .ia
        .as_ref()
        .filter(|ia| ia.t1 == 0 || ia.t2 == 0 || ia.t1 <= ia.t2)
}

fn message_name(kind: u8) -> &'static str {
    match kind {
        ADVERTISE => "ADVERTISE",
        REPLY => "REPLY",
        _ => "message",
    }
}
