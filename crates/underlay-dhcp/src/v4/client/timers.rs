//! Timers and retransmissions: what becomes due as time passes, and what is sent.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::MessageType;

use super::{Client4, Exchange, Phase, BROADCAST, UNSPECIFIED};
use crate::time::Instant;
use crate::v4::build::{self, Outgoing};
use crate::v4::{Event4, Transmit4};

impl Client4 {
    pub(super) fn start_selecting(&mut self, now: Instant) {
        self.xid = self.rng.next_u32();
        self.acquisition = now;
        self.phase = Phase::Selecting(Exchange::starting(now));
    }

    /// Applies every timer due at `now`: acquisition timeout, request fallbacks, T1, T2, expiry.
    pub(super) fn advance(&mut self, now: Instant) {
        // Each step moves strictly forward (Bound -> Renewing -> Rebinding -> Selecting at most).
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
            Phase::Init { at: Some(at) } if now >= *at => self.start_selecting(now),
            Phase::InitReboot { previous, at } if now >= *at => {
                let previous = *previous;
                self.xid = self.rng.next_u32();
                self.phase = Phase::Rebooting {
                    exchange: Exchange::starting(now),
                    previous,
                };
            }
            Phase::Selecting(_) | Phase::Requesting { .. } if timed_out => {
                self.events.push_back(Event4::GaveUp);
                self.phase = Phase::Init { at: None };
            }
            Phase::Requesting { exchange, .. }
                if exchange.sent >= retry.request_attempts && now >= exchange.next =>
            {
                self.xid = self.rng.next_u32();
                self.phase = Phase::Selecting(Exchange::starting(now));
            }
            Phase::Rebooting { exchange, .. }
                if exchange.sent >= retry.reboot_attempts && now >= exchange.next =>
            {
                self.start_selecting(now)
            }
            Phase::Bound(lease)
            | Phase::Renewing { lease, .. }
            | Phase::Rebinding { lease, .. }
                if now >= lease.expires_at() =>
            {
                self.events.push_back(Event4::Expired(lease.clone()));
                self.start_selecting(now);
            }
            Phase::Bound(lease) if now >= lease.renew_at() => {
                let lease = lease.clone();
                self.xid = self.rng.next_u32();
                self.phase = Phase::Renewing {
                    exchange: Exchange::starting(now),
                    lease,
                };
            }
            Phase::Renewing { lease, .. } if now >= lease.rebind_at() => {
                let lease = lease.clone();
                self.xid = self.rng.next_u32();
                self.phase = Phase::Rebinding {
                    exchange: Exchange::starting(now),
                    lease,
                };
            }
            _ => return false,
        }
        true
    }

    pub(super) fn transmit_due(&mut self, now: Instant) -> Option<Transmit4> {
        let (out, src, dst) = self.outgoing(now)?;
        let delay = self.next_delay(now);
        if let Some(exchange) = self.exchange_mut() {
            exchange.sent += 1;
            exchange.next = now + delay;
        }
        Some(Transmit4 {
            payload: build::encode(&self.config, &out),
            src,
            dst,
        })
    }

    /// The message due now in the current phase, with its source and destination.
    fn outgoing(&self, now: Instant) -> Option<(Outgoing, Ipv4Addr, Ipv4Addr)> {
        let request = |secs, ciaddr, requested, server| Outgoing {
            kind: MessageType::Request,
            xid: self.xid,
            secs,
            ciaddr,
            requested,
            server,
        };
        let acquiring = secs_since(now, self.acquisition);
        match &self.phase {
            Phase::Selecting(ex) if now >= ex.next => {
                let discover = Outgoing {
                    kind: MessageType::Discover,
                    ..request(acquiring, UNSPECIFIED, None, None)
                };
                Some((discover, UNSPECIFIED, BROADCAST))
            }
            Phase::Requesting {
                exchange,
                offered,
                server,
            } if now >= exchange.next => Some((
                request(acquiring, UNSPECIFIED, Some(*offered), Some(*server)),
                UNSPECIFIED,
                BROADCAST,
            )),
            Phase::Rebooting { exchange, previous } if now >= exchange.next => {
                let secs = secs_since(now, exchange.started);
                Some((
                    request(secs, UNSPECIFIED, Some(*previous), None),
                    UNSPECIFIED,
                    BROADCAST,
                ))
            }
            Phase::Renewing { exchange, lease } if now >= exchange.next => {
                let secs = secs_since(now, exchange.started);
                Some((
                    request(secs, lease.address, None, None),
                    lease.address,
                    lease.server,
                ))
            }
            Phase::Rebinding { exchange, lease } if now >= exchange.next => {
                let secs = secs_since(now, exchange.started);
                Some((
                    request(secs, lease.address, None, None),
                    lease.address,
                    BROADCAST,
                ))
            }
            _ => None,
        }
    }

    /// RFC 2131 section 4.1 backoff while acquiring; half the time left (with a floor) while
    /// renewing or rebinding (section 4.4.5).
    fn next_delay(&mut self, now: Instant) -> Duration {
        let retry = self.config.retry;
        let half_left = |until: Instant| {
            (until.saturating_duration_since(now) / 2).max(retry.min_renew_interval)
        };
        match &self.phase {
            Phase::Renewing { lease, .. } => half_left(lease.rebind_at()),
            Phase::Rebinding { lease, .. } => half_left(lease.expires_at()),
            _ => {
                let sent = self.exchange().map_or(0, |ex| ex.sent);
                let base = retry
                    .initial
                    .saturating_mul(1u32 << sent.min(16))
                    .min(retry.max);
                self.rng.jitter(base, retry.jitter)
            }
        }
    }

    pub(super) fn exchange(&self) -> Option<&Exchange> {
        match &self.phase {
            Phase::Selecting(ex)
            | Phase::Requesting { exchange: ex, .. }
            | Phase::Rebooting { exchange: ex, .. }
            | Phase::Renewing { exchange: ex, .. }
            | Phase::Rebinding { exchange: ex, .. } => Some(ex),
            _ => None,
        }
    }

    pub(super) fn exchange_mut(&mut self) -> Option<&mut Exchange> {
        match &mut self.phase {
            Phase::Selecting(ex)
            | Phase::Requesting { exchange: ex, .. }
            | Phase::Rebooting { exchange: ex, .. }
            | Phase::Renewing { exchange: ex, .. }
            | Phase::Rebinding { exchange: ex, .. } => Some(ex),
            _ => None,
        }
    }
}

/// The BOOTP `secs` field: seconds since the exchange began, saturated.
fn secs_since(now: Instant, since: Instant) -> u16 {
    u16::try_from(now.saturating_duration_since(since).as_secs()).unwrap_or(u16::MAX)
}
