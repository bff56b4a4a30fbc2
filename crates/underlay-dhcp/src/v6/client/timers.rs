//! Timers and retransmissions (RFC 8415 section 15): what becomes due as time passes, and what
//! is sent.

use std::net::Ipv6Addr;
use std::time::Duration;

use dhcproto::v6::MessageType;

use super::{Client6, Exchange, Phase};
use crate::time::Instant;
use crate::v6::build::{self, Outgoing};
use crate::v6::lease::Lease6;
use crate::v6::{Event6, Transmit6, ALL_SERVERS};

impl Client6 {
    pub(super) fn advance(&mut self, now: Instant) {
        for _ in 0..4 {
            if !self.advance_once(now) {
                return;
            }
        }
    }

    fn advance_once(&mut self, now: Instant) -> bool {
        let retry = self.config.retry;
        let timed_out = now >= self.acquisition + retry.timeout;
        match &self.phase {
            Phase::Init { at: Some(at) } if now >= *at => self.start_soliciting(now),
            Phase::Soliciting(_) | Phase::Requesting { .. } if timed_out => {
                self.events.push_back(Event6::GaveUp);
                self.phase = Phase::Init { at: None };
            }
            Phase::Requesting { exchange, .. }
                if exchange.sent >= retry.request_attempts && now >= exchange.next =>
            {
                self.new_xid();
                self.phase = Phase::Soliciting(Exchange::starting(now));
            }
            Phase::Declining { exchange, .. }
                if exchange.sent >= retry.decline_attempts && now >= exchange.next =>
            {
                self.start_soliciting(now)
            }
            Phase::Releasing { exchange, .. }
                if exchange.sent >= retry.decline_attempts && now >= exchange.next =>
            {
                self.phase = Phase::Init { at: None }
            }
            Phase::Bound(lease)
            | Phase::Renewing { lease, .. }
            | Phase::Rebinding { lease, .. }
                if now >= lease.expires_at() =>
            {
                self.events.push_back(Event6::Expired(lease.clone()));
                self.start_soliciting(now);
            }
            Phase::Bound(lease) if now >= lease.renew_at() => {
                let lease = lease.clone();
                self.new_xid();
                self.phase = Phase::Renewing {
                    exchange: Exchange::starting(now),
                    lease,
                };
            }
            Phase::Renewing { lease, .. } if now >= lease.rebind_at() => {
                let lease = lease.clone();
                self.new_xid();
                self.phase = Phase::Rebinding {
                    exchange: Exchange::starting(now),
                    lease,
                };
            }
            _ => return false,
        }
        true
    }

    pub(super) fn transmit_due(&mut self, now: Instant) -> Option<Transmit6> {
        let (out, dst) = self.outgoing(now)?;
        let payload = build::encode(&self.config, &out);
        self.schedule_next(now);
        Some(Transmit6 { payload, dst })
    }

    fn outgoing(&self, now: Instant) -> Option<(Outgoing<'_>, Ipv6Addr)> {
        let exchange = self.exchange().filter(|ex| now >= ex.next)?;
        let message = |kind, server, address| Outgoing {
            kind,
            xid: self.xid,
            elapsed: now.saturating_duration_since(exchange.started),
            server,
            address,
        };
        let unicast = |lease: &Lease6| lease.server_unicast.unwrap_or(ALL_SERVERS);
        Some(match &self.phase {
            Phase::Soliciting(_) => (message(MessageType::Solicit, None, None), ALL_SERVERS),
            Phase::Requesting {
                server, address, ..
            } => (
                message(
                    MessageType::Request,
                    Some(server.duid.as_slice()),
                    Some(*address),
                ),
                server.unicast.unwrap_or(ALL_SERVERS),
            ),
            Phase::Renewing { lease, .. } => (
                message(MessageType::Renew, duid(lease), Some(lease.address)),
                unicast(lease),
            ),
            Phase::Rebinding { lease, .. } => (
                message(MessageType::Rebind, None, Some(lease.address)),
                ALL_SERVERS,
            ),
            Phase::Declining { lease, .. } => (
                message(MessageType::Decline, duid(lease), Some(lease.address)),
                unicast(lease),
            ),
            Phase::Releasing { lease, .. } => (
                message(MessageType::Release, duid(lease), Some(lease.address)),
                unicast(lease),
            ),
            _ => return None,
        })
    }

    /// RFC 8415 section 15: RT = IRT + RAND*IRT, then 2*RTprev + RAND*RTprev, capped at
    /// MRT + RAND*MRT; RAND is in [-0.1, 0.1], and in (0, 0.1] for the first SOLICIT.
    fn schedule_next(&mut self, now: Instant) {
        let retry = self.config.retry;
        let (irt, mrt) = match self.phase {
            Phase::Renewing { .. } | Phase::Rebinding { .. } => {
                (retry.renew_initial, retry.renew_max)
            }
            _ => (retry.initial, retry.max),
        };
        let first_solicit = matches!(self.phase, Phase::Soliciting(ex) if ex.sent == 0);
        let Some(prev) = self.exchange().map(|ex| ex.rt) else {
            return;
        };
        let mut rt = if prev.is_zero() {
            self.randomized(irt, irt / 10, first_solicit)
        } else {
            self.randomized(prev * 2, prev / 10, false)
        };
        if rt > mrt {
            rt = self.randomized(mrt, mrt / 10, false);
        }
        if let Some(exchange) = self.exchange_mut() {
            exchange.sent += 1;
            exchange.rt = rt;
            exchange.next = now + rt;
        }
    }

    /// `base` moved by up to `spread` either way, or only upwards (by at least 1 ms).
    fn randomized(&mut self, base: Duration, spread: Duration, upwards_only: bool) -> Duration {
        if !self.config.retry.randomize {
            return base;
        }
        if upwards_only {
            let one = Duration::from_millis(1);
            base + one + self.rng.up_to(spread.saturating_sub(one))
        } else {
            self.rng.jitter(base, spread)
        }
    }

    pub(super) fn exchange(&self) -> Option<&Exchange> {
        match &self.phase {
            Phase::Soliciting(ex)
            | Phase::Requesting { exchange: ex, .. }
            | Phase::Renewing { exchange: ex, .. }
            | Phase::Rebinding { exchange: ex, .. }
            | Phase::Declining { exchange: ex, .. }
            | Phase::Releasing { exchange: ex, .. } => Some(ex),
            _ => None,
        }
    }

    pub(super) fn exchange_mut(&mut self) -> Option<&mut Exchange> {
        match &mut self.phase {
            Phase::Soliciting(ex)
            | Phase::Requesting { exchange: ex, .. }
            | Phase::Renewing { exchange: ex, .. }
            | Phase::Rebinding { exchange: ex, .. }
            | Phase::Declining { exchange: ex, .. }
            | Phase::Releasing { exchange: ex, .. } => Some(ex),
            _ => None,
        }
    }
}

fn duid(lease: &Lease6) -> Option<&[u8]> {
    Some(lease.server_duid.as_slice())
}
