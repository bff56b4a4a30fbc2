//! DHCP exchanges over real sockets: the sans-IO clients of underlay-dhcp driven by the wall
//! clock (leases are persisted, and their times must mean the same after a restart).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use underlay_dhcp::v4::{Client4, Config4, Event4, Lease4, Retry4, State4};
use underlay_dhcp::v6::{Client6, Config6, Event6, Lease6, Retry6, State6};
use underlay_dhcp::Instant;

use super::link::LeaseLink;
use super::transport::{Transport4, Transport6};
use super::KeeperResult;
use crate::leases::{KeeperError, KeeperErrorKind, LeaseRequest};
use crate::probe::probe;
use crate::MacAddr;

/// How many offers found live on the LAN are DECLINEd before the acquisition gives up.
const MAX_DECLINES: usize = 3;
/// Renewal retransmissions are at least this far apart (RFC 2131 says 60 s; leases of a few
/// minutes, as dnsmasq's shortest, would otherwise get one retry before they end).
const MIN_RENEW_INTERVAL: Duration = Duration::from_secs(2);

/// The wall clock as the clients' time: Unix milliseconds.
pub(crate) fn now() -> Instant {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant(ms)
}

/// Transaction ids only need to differ between clients and runs.
pub(crate) fn seed(key: &str) -> u64 {
    let mut seed = now().0 ^ (u64::from(std::process::id()) << 40);
    for b in key.bytes() {
        seed = seed.rotate_left(5) ^ u64::from(b);
    }
    seed
}

pub(crate) fn until(at: Instant) -> Duration {
    Duration::from_millis(at.0.saturating_sub(now().0))
}

pub(crate) fn config4(req: &LeaseRequest, mac: [u8; 6]) -> Config4 {
    let mut config = Config4::new(mac, req.client_id.clone());
    config.hostname = req.hostname.clone();
    config.broadcast = req.broadcast;
    config.servers = req.servers.clone();
    config.vendor_class = req.vendor_class.clone();
    config.extra_params = req.params.clone();
    config.extra_options = req
        .options
        .iter()
        .map(|o| (o.code, o.value.clone()))
        .collect();
    let defaults = Retry4::default();
    config.retry = Retry4 {
        timeout: Duration::from_millis(req.timeout_ms),
        min_renew_interval: MIN_RENEW_INTERVAL,
        max: req
            .resend_max_ms
            .map_or(defaults.max, Duration::from_millis)
            .max(defaults.initial),
        ..defaults
    };
    config
}

pub(crate) fn config6(req: &LeaseRequest) -> Config6 {
    let mut config = Config6::new(req.duid.clone(), req.iaid);
    config.hostname = req.hostname.clone();
    config.rapid_commit = true;
    config.retry = Retry6 {
        timeout: Duration::from_millis(req.timeout_ms),
        ..Retry6::default()
    };
    config
}

fn timeout(family: &str, link: &LeaseLink, req: &LeaseRequest) -> KeeperError {
    KeeperError::new(
        KeeperErrorKind::Timeout,
        format!(
            "no {family} server answered on {} in netns {} within {} ms",
            link.ifname, req.netns, req.timeout_ms
        ),
    )
}

fn conflict(family: &str, declined: &[String]) -> KeeperError {
    KeeperError::new(
        KeeperErrorKind::Conflict,
        format!(
            "every address the {family} server offered is already in use on the LAN: {} (each was declined)",
            declined.join(", ")
        ),
    )
}

/// Whether the client is waiting for a server's answer (else it only waits for a timer).
pub(crate) fn awaits_reply4(state: State4) -> bool {
    matches!(
        state,
        State4::Selecting
            | State4::Requesting
            | State4::Rebooting
            | State4::Renewing
            | State4::Rebinding
    )
}

/// Whether the link carries the leased address (then replies come to the UDP socket).
pub(crate) fn addressed4(state: State4) -> bool {
    matches!(state, State4::Bound | State4::Renewing | State4::Rebinding)
}

pub(crate) fn awaits_reply6(state: State6) -> bool {
    !matches!(state, State6::Init | State6::Bound)
}

/// Sends what is due now and collects the events.
pub(crate) fn pump4(
    client: &mut Client4,
    transport: &mut Transport4,
    link: &LeaseLink,
) -> KeeperResult<Vec<Event4>> {
    while let Some(tx) = client.poll(now()) {
        transport.send(link, &tx)?;
    }
    Ok(std::iter::from_fn(|| client.next_event()).collect())
}

/// Waits up to `wait` for one reply and hands it to the client.
pub(crate) fn receive4(
    client: &mut Client4,
    transport: &mut Transport4,
    link: &LeaseLink,
    wait: Duration,
) -> KeeperResult<()> {
    let addressed = addressed4(client.state());
    if let Some(payload) = transport.recv(link, addressed, wait)? {
        if let Err(why) = client.handle(now(), &payload) {
            tracing::debug!(ifname = %link.ifname, %why, "ignored a DHCPv4 message");
        }
    }
    Ok(())
}

pub(crate) fn pump6(client: &mut Client6, transport: &mut Transport6) -> KeeperResult<Vec<Event6>> {
    while let Some(tx) = client.poll(now()) {
        transport.send(&tx)?;
    }
    Ok(std::iter::from_fn(|| client.next_event()).collect())
}

pub(crate) fn receive6(
    client: &mut Client6,
    transport: &mut Transport6,
    wait: Duration,
) -> KeeperResult<()> {
    if let Some((payload, from)) = transport.recv(wait)? {
        if let Err(why) = client.handle(now(), &payload, from) {
            tracing::debug!(%why, "ignored a DHCPv6 message");
        }
    }
    Ok(())
}

/// A DHCPv4 lease for the link, probed (and declined while live) when the request says so.
pub(crate) fn acquire4(
    link: &mut LeaseLink,
    req: &LeaseRequest,
) -> KeeperResult<(Client4, Transport4, Lease4)> {
    let mut client = Client4::new(config4(req, link.mac), seed(&req.key), now());
    let mut transport = Transport4::default();
    let mut declined = Vec::new();
    loop {
        let lease = bound4(&mut client, &mut transport, link, req)?;
        let Some(by) = probe_one(&mut transport, link, lease.address.into(), req)? else {
            transport.close_raw();
            return Ok((client, transport, lease));
        };
        declined.push(format!("{} (answered by {by})", lease.address));
        tracing::warn!(ifname = %link.ifname, address = %lease.address, %by, "offered address is live on the LAN: declined");
        if let Some(tx) = client.decline(now()) {
            transport.send(link, &tx)?;
        }
        if declined.len() >= MAX_DECLINES {
            return Err(conflict("DHCPv4", &declined));
        }
    }
}

/// Runs the client until it is bound.
fn bound4(
    client: &mut Client4,
    transport: &mut Transport4,
    link: &LeaseLink,
    req: &LeaseRequest,
) -> KeeperResult<Lease4> {
    loop {
        for event in pump4(client, transport, link)? {
            match event {
                Event4::Bound(lease) => return Ok(lease),
                Event4::GaveUp => return Err(timeout("DHCPv4", link, req)),
                other => {
                    tracing::debug!(ifname = %link.ifname, event = ?other, "DHCPv4 event while acquiring")
                }
            }
        }
        let wait = client.deadline().map_or(Duration::from_millis(100), until);
        receive4(client, transport, link, wait)?;
    }
}

/// A DHCPv6 lease for the link, probed (and declined while live) when the request says so.
pub(crate) fn acquire6(
    link: &mut LeaseLink,
    req: &LeaseRequest,
) -> KeeperResult<(Client6, Transport6, Lease6)> {
    let mut transport = Transport6::open(link)?;
    let mut client = Client6::new(config6(req), seed(&req.key), now());
    let mut raw = Transport4::default();
    let mut declined = Vec::new();
    loop {
        let lease = bound6(&mut client, &mut transport, link, req)?;
        let Some(by) = probe_one(&mut raw, link, lease.address.into(), req)? else {
            return Ok((client, transport, lease));
        };
        declined.push(format!("{} (answered by {by})", lease.address));
        tracing::warn!(ifname = %link.ifname, address = %lease.address, %by, "offered address is live on the LAN: declined");
        if let Some(tx) = client.decline(now()) {
            transport.send(&tx)?;
        }
        if declined.len() >= MAX_DECLINES {
            return Err(conflict("DHCPv6", &declined));
        }
    }
}

fn bound6(
    client: &mut Client6,
    transport: &mut Transport6,
    link: &LeaseLink,
    req: &LeaseRequest,
) -> KeeperResult<Lease6> {
    loop {
        for event in pump6(client, transport)? {
            match event {
                Event6::Bound(lease) => return Ok(lease),
                Event6::GaveUp => return Err(timeout("DHCPv6", link, req)),
                other => {
                    tracing::debug!(ifname = %link.ifname, event = ?other, "DHCPv6 event while acquiring")
                }
            }
        }
        let wait = client.deadline().map_or(Duration::from_millis(100), until);
        receive6(client, transport, wait)?;
    }
}

/// Who answered a probe for `address`, if anybody (no probe when the request has none).
fn probe_one(
    transport: &mut Transport4,
    link: &LeaseLink,
    address: IpAddr,
    req: &LeaseRequest,
) -> KeeperResult<Option<MacAddr>> {
    let Some(ms) = req.probe_ms else {
        return Ok(None);
    };
    let raw = transport.raw(link)?;
    let conflicts = probe(
        raw,
        MacAddr(link.mac),
        &[address],
        Duration::from_millis(ms),
    )
    .map_err(|e| KeeperError::new(KeeperErrorKind::Failed, e.to_string()))?;
    Ok(conflicts.first().map(|c| MacAddr(c.mac)))
}
