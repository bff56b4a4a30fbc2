//! Conflict detection on the wire: ARP probes (RFC 5227) and duplicate address detection
//! (RFC 4862) from inside the container's netns, before an address is committed, and the
//! announcements once it is.
//!
//! The probe is bounded: [`probe`] returns after `wait` at the latest (the network's
//! `probe_ms`), or as soon as every address has been answered for. A host that takes longer
//! than that to answer ARP goes undetected; raising `probe_ms` trades connect latency for it.

use std::net::IpAddr;
use std::time::{Duration, Instant as Clock};

use underlay_dhcp::acd::{announcements, Conflict, ProbeConfig, Prober};
use underlay_dhcp::Instant;
use underlay_linux::FrameSocket;

use crate::{Error, MacAddr};

/// Three probes spread over the first half of the wait, then silence until the verdict.
fn probe_config(wait: Duration) -> ProbeConfig {
    ProbeConfig {
        probes: 3,
        interval: wait / 6,
        wait,
    }
}

/// Probes `addresses` on `frames` (a socket on the endpoint's link, which must be up) as
/// `mac`; returns who answered for which address.
pub(crate) fn probe<F: FrameSocket>(
    frames: &mut F,
    mac: MacAddr,
    addresses: &[IpAddr],
    wait: Duration,
) -> Result<Vec<Conflict>, Error> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let clock = MonotonicMs::start();
    let mut prober = Prober::new(mac.0, addresses, probe_config(wait), seed(), clock.now());
    loop {
        for frame in prober.poll(clock.now()) {
            frames.send_frame(&frame).map_err(probe_error)?;
        }
        if prober.done(clock.now()) {
            return Ok(prober.conflicts().to_vec());
        }
        let until = prober.deadline().unwrap_or(clock.now());
        let left = clock.until(until).max(Duration::from_millis(1));
        if let Some(frame) = frames.recv_frame(left).map_err(probe_error)? {
            prober.handle(&frame);
        }
    }
}

/// Tells the LAN the addresses are ours now (gratuitous ARP, unsolicited NA): the kernel's own
/// `arp_notify` fired when the link came up, before the addresses were there.
pub(crate) fn announce<F: FrameSocket>(
    frames: &mut F,
    mac: MacAddr,
    addresses: &[IpAddr],
) -> Result<(), Error> {
    for frame in announcements(mac.0, addresses) {
        frames.send_frame(&frame).map_err(probe_error)?;
    }
    Ok(())
}

fn probe_error(e: underlay_linux::Error) -> Error {
    Error::kernel("probing for address conflicts")(e)
}

/// DAD nonces only need to differ between hosts and runs.
fn seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ u64::from(std::process::id()).rotate_left(32)
}

/// Milliseconds since the probe started, from the monotonic clock.
struct MonotonicMs(Clock);

impl MonotonicMs {
    fn start() -> Self {
        MonotonicMs(Clock::now())
    }

    fn now(&self) -> Instant {
        Instant(self.0.elapsed().as_millis() as u64)
    }

    fn until(&self, at: Instant) -> Duration {
        Duration::from_millis(at.0.saturating_sub(self.now().0))
    }
}
