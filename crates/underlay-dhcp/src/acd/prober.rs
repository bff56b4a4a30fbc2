//! The probe schedule and the conflict rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::arp::{self, Arp};
use super::ndp::{self, Nd};
use super::{Conflict, ProbeConfig};
use crate::rng::Rng;
use crate::time::Instant;

/// Probes a set of addresses at once. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Prober {
    mac: [u8; 6],
    targets: Vec<Target>,
    config: ProbeConfig,
    rng: Rng,
    start: Instant,
    rounds_sent: u32,
    finished: bool,
    conflicts: Vec<Conflict>,
}

#[derive(Debug, Clone)]
struct Target {
    address: IpAddr,
    /// Every DAD nonce sent for this address: a looped-back NS carrying one is ours.
    nonces: Vec<[u8; 6]>,
}

impl Prober {
    /// Probing starts at `now`: the first [`poll`](Self::poll) sends the first round.
    pub fn new(
        mac: [u8; 6],
        targets: &[IpAddr],
        config: ProbeConfig,
        nonce_seed: u64,
        now: Instant,
    ) -> Prober {
        let mut unique: Vec<IpAddr> = Vec::new();
        for target in targets {
            if !unique.contains(target) {
                unique.push(*target);
            }
        }
        Prober {
            mac,
            targets: unique
                .into_iter()
                .map(|address| Target {
                    address,
                    nonces: Vec::new(),
                })
                .collect(),
            config,
            rng: Rng::new(nonce_seed),
            start: now,
            rounds_sent: 0,
            finished: false,
            conflicts: Vec::new(),
        }
    }

    /// The frames due now: one ARP probe or DAD NS per address not yet in conflict.
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        if self.done(now) {
            self.finished = true;
            return Vec::new();
        }
        if self.rounds_sent >= self.config.probes || now < self.round_at(self.rounds_sent) {
            return Vec::new();
        }
        self.rounds_sent += 1;
        let open: Vec<usize> = (0..self.targets.len())
            .filter(|i| !self.conflicted(self.targets[*i].address))
            .collect();
        open.into_iter().map(|i| self.probe(i)).collect()
    }

    fn probe(&mut self, index: usize) -> Vec<u8> {
        match self.targets[index].address {
            IpAddr::V4(v4) => arp::probe(self.mac, v4),
            IpAddr::V6(v6) => {
                let bytes = self.rng.next_u64().to_be_bytes();
                let mut nonce = [0u8; 6];
                nonce.copy_from_slice(&bytes[..6]);
                self.targets[index].nonces.push(nonce);
                ndp::dad_ns(self.mac, v6, nonce)
            }
        }
    }

    fn round_at(&self, round: u32) -> Instant {
        self.start + self.config.interval.saturating_mul(round)
    }

    fn verdict_at(&self) -> Instant {
        self.start + self.config.wait
    }

    /// When [`poll`](Self::poll) must be called next: the next round, or the verdict. `None` once
    /// the verdict has been polled or every address is in conflict.
    pub fn deadline(&self) -> Option<Instant> {
        if self.finished || self.all_conflicted() {
            return None;
        }
        let verdict = self.verdict_at();
        if self.rounds_sent < self.config.probes {
            Some(self.round_at(self.rounds_sent).min(verdict))
        } else {
            Some(verdict)
        }
    }

    /// True once the wait has elapsed or every address is known to be in conflict.
    pub fn done(&self, now: Instant) -> bool {
        now >= self.verdict_at() || self.all_conflicted()
    }

    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// Takes any received Ethernet frame; frames that are not ARP or ND are skipped.
    pub fn handle(&mut self, frame: &[u8]) {
        if let Some(arp) = arp::parse(frame) {
            self.on_arp(arp);
        } else if let Some(nd) = ndp::parse(frame) {
            self.on_nd(nd);
        }
    }

    /// RFC 5227 section 2.1.1: any ARP whose sender IP is a target is a conflict (we never send
    /// a target as sender while probing, so this is never our own frame); an ARP probe for a
    /// target from another MAC is a simultaneous probe.
    fn on_arp(&mut self, arp: Arp) {
        let sender = IpAddr::V4(arp.sender_ip);
        if self.is_target(sender) {
            self.record(sender, arp.sender_mac);
        } else if arp.op == 1
            && arp.sender_ip == Ipv4Addr::UNSPECIFIED
            && arp.sender_mac != self.mac
        {
            self.record(IpAddr::V4(arp.target_ip), arp.sender_mac);
        }
    }

    /// RFC 4862 section 5.4.3/5.4.4: an NA for a target, or a DAD NS (from ::) for a target
    /// that does not carry one of our nonces (RFC 7527 section 4.2).
    fn on_nd(&mut self, nd: Nd) {
        let target = IpAddr::V6(nd.target);
        match nd.kind {
            ndp::TYPE_NA => self.record(target, nd.target_mac.unwrap_or(nd.eth_src)),
            ndp::TYPE_NS
                if nd.ip_src == Ipv6Addr::UNSPECIFIED && !self.is_our_nonce(target, &nd.nonce) =>
            {
                self.record(target, nd.eth_src)
            }
            _ => {}
        }
    }

    fn is_our_nonce(&self, target: IpAddr, nonce: &Option<Vec<u8>>) -> bool {
        let Some(nonce) = nonce else { return false };
        self.targets
            .iter()
            .filter(|t| t.address == target)
            .any(|t| {
                t.nonces
                    .iter()
                    .any(|ours| ours.as_slice() == nonce.as_slice())
            })
    }

    fn is_target(&self, address: IpAddr) -> bool {
        self.targets.iter().any(|t| t.address == address)
    }

    fn conflicted(&self, address: IpAddr) -> bool {
        self.conflicts.iter().any(|c| c.address == address)
    }

    fn all_conflicted(&self) -> bool {
        !self.targets.is_empty() && self.targets.iter().all(|t| self.conflicted(t.address))
    }

    fn record(&mut self, address: IpAddr, mac: [u8; 6]) {
        if self.is_target(address) && !self.conflicted(address) {
            self.conflicts.push(Conflict { address, mac });
        }
    }
}
