//! One kept lease: a thread that renews it at T1, rebinds at T2, starts over when it is lost,
//! re-applies a changed lease to the link, and gives it back on release.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use underlay_dhcp::v4::{Client4, Event4};
use underlay_dhcp::v6::{Client6, Event6};

use super::convert::{info4, info6};
use super::exchange::{awaits_reply4, awaits_reply6, now, pump4, pump6, receive4, receive6, until};
use super::link::LeaseLink;
use super::transport::{Transport4, Transport6};
use super::KeeperResult;
use crate::events::{Event, EventBus};
use crate::leases::LeaseRequest;
use crate::state::StoredLease;
use crate::{Family, State};

/// What the keeper tells a lease's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Send RELEASE, forget the lease, end.
    Release,
    /// End, keeping the lease (the daemon is stopping, or another acquire replaces it).
    Stop,
}

/// Longest sleep between two looks at the world (is the netns still there?).
const CHECK_EVERY: Duration = Duration::from_secs(30);
/// While waiting for a server, commands are looked at this often.
const REPLY_SLICE: Duration = Duration::from_millis(250);
/// A client that gave up starts over after this.
const RETRY_AFTER_GIVING_UP: Duration = Duration::from_secs(10);

pub(crate) struct Task {
    pub stored: StoredLease,
    pub link: LeaseLink,
    pub v4: Option<(Client4, Transport4)>,
    pub v6: Option<(Client6, Transport6)>,
    pub state: Arc<Mutex<State>>,
    pub events: EventBus,
    pub commands: Receiver<Command>,
    pub last_check: std::time::Instant,
}

impl Task {
    /// Runs until released, stopped, or the container is gone.
    pub fn run(mut self) {
        let key = self.stored.request.key.clone();
        match self.serve() {
            Ok(()) => tracing::debug!(%key, "lease task ended"),
            Err(e) => tracing::warn!(%key, error = %e.message, "lease task ended"),
        }
    }

    fn serve(&mut self) -> KeeperResult<()> {
        loop {
            self.step()?;
            let wait = self.wait();
            let command = if self.awaits_reply() {
                self.receive(wait.min(REPLY_SLICE))?;
                self.commands.try_recv().ok()
            } else {
                match self.commands.recv_timeout(wait) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    // The keeper dropped us: it is going away; keep the lease.
                    Err(RecvTimeoutError::Disconnected) => Some(Command::Stop),
                }
            };
            match command {
                Some(Command::Release) => return self.release(),
                Some(Command::Stop) => return Ok(()),
                None if self.last_check.elapsed() >= CHECK_EVERY => {
                    self.last_check = std::time::Instant::now();
                    if !self.follow_link() {
                        return self.forget_gone();
                    }
                }
                None => {}
            }
        }
    }

    fn wait(&self) -> Duration {
        let deadlines = [
            self.v4.as_ref().and_then(|(c, _)| c.deadline()),
            self.v6.as_ref().and_then(|(c, _)| c.deadline()),
        ];
        deadlines
            .into_iter()
            .flatten()
            .map(until)
            .fold(CHECK_EVERY, Duration::min)
    }

    fn awaits_reply(&self) -> bool {
        self.v4
            .as_ref()
            .is_some_and(|(c, _)| awaits_reply4(c.state()))
            || self
                .v6
                .as_ref()
                .is_some_and(|(c, _)| awaits_reply6(c.state()))
    }

    fn receive(&mut self, wait: Duration) -> KeeperResult<()> {
        let both = self.v4.is_some() && self.v6.is_some();
        let slice = if both { wait / 2 } else { wait };
        if let Some((client, transport)) =
            self.v4.as_mut().filter(|(c, _)| awaits_reply4(c.state()))
        {
            receive4(client, transport, &self.link, slice)?;
        }
        if let Some((client, transport)) =
            self.v6.as_mut().filter(|(c, _)| awaits_reply6(c.state()))
        {
            receive6(client, transport, slice)?;
        }
        Ok(())
    }

    /// Sends what is due and acts on what happened.
    fn step(&mut self) -> KeeperResult<()> {
        let events4 = match self.v4.as_mut() {
            Some((client, transport)) => pump4(client, transport, &self.link)?,
            None => Vec::new(),
        };
        for event in events4 {
            self.on_event4(event)?;
        }
        let events6 = match self.v6.as_mut() {
            Some((client, transport)) => pump6(client, transport)?,
            None => Vec::new(),
        };
        for event in events6 {
            self.on_event6(event)?;
        }
        Ok(())
    }

    fn on_event4(&mut self, event: Event4) -> KeeperResult<()> {
        let key = &self.stored.request.key;
        let new = match &event {
            Event4::Bound(lease) | Event4::Renewed(lease) => Some(info4(lease)),
            Event4::Nak | Event4::Expired(_) => None,
            Event4::GaveUp => {
                tracing::warn!(%key, "no DHCPv4 server answers: trying again");
                if let Some((client, _)) = self.v4.as_mut() {
                    client.restart(now() + RETRY_AFTER_GIVING_UP);
                }
                return Ok(());
            }
            Event4::Declined(_) => return Ok(()),
        };
        let kind = match &event {
            Event4::Bound(_) => "lease_changed",
            Event4::Renewed(_) => "lease_renewed",
            _ => "lease_lost",
        };
        self.events
            .emit(Event::new(kind).endpoint(key).detail(format!(
                "DHCPv4 {}: {}",
                event_name4(&event),
                new.as_ref().map_or("-".into(), |l| l.address.to_string())
            )));
        let old = self.stored.lease.v4.take();
        self.link
            .apply4(old.as_ref(), new.as_ref(), self.stored.request.apply)?;
        if let Some((_, transport)) = self.v4.as_mut() {
            if new.is_some() {
                transport.close_raw();
            }
        }
        self.stored.lease.v4 = new;
        self.save(Family::V4)
    }

    fn on_event6(&mut self, event: Event6) -> KeeperResult<()> {
        let key = &self.stored.request.key;
        let new = match &event {
            Event6::Bound(lease) | Event6::Renewed(lease) => Some(info6(lease)),
            Event6::Rejected(_) | Event6::Expired(_) => None,
            Event6::GaveUp => {
                tracing::warn!(%key, "no DHCPv6 server answers: trying again");
                if let Some((client, _)) = self.v6.as_mut() {
                    client.restart(now() + RETRY_AFTER_GIVING_UP);
                }
                return Ok(());
            }
            Event6::Declined(_) => return Ok(()),
        };
        let kind = match &event {
            Event6::Bound(_) => "lease_changed",
            Event6::Renewed(_) => "lease_renewed",
            _ => "lease_lost",
        };
        self.events
            .emit(Event::new(kind).endpoint(key).detail(format!(
                "DHCPv6: {}",
                new.as_ref().map_or("-".into(), |l| l.address.to_string())
            )));
        let old = self.stored.lease.v6.take();
        self.link.apply6(old.as_ref(), new.as_ref())?;
        self.stored.lease.v6 = new;
        self.save(Family::V6)
    }

    /// Persists the lease and, for an engine endpoint, the address it now has.
    fn save(&mut self, family: Family) -> KeeperResult<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.save_lease(&self.stored).map_err(super::failed)?;
        if let Some(id) = self.stored.request.key.strip_prefix("endpoint/") {
            let address = match family {
                Family::V4 => self.stored.lease.v4.as_ref().map(|l| l.address.into()),
                Family::V6 => self.stored.lease.v6.as_ref().map(|l| l.address.into()),
            };
            state
                .set_endpoint_address(id, family, address)
                .map_err(super::failed)?;
        }
        Ok(())
    }

    /// RELEASE to the servers (best effort: a lost RELEASE only means the server keeps the
    /// address until the lease ends), then forget the lease.
    fn release(&mut self) -> KeeperResult<()> {
        let key = &self.stored.request.key;
        super::up_for_release(&mut self.link, key);
        if let Some((client, transport)) = self.v4.as_mut() {
            super::send_release4(&mut self.link, client, transport, key);
        }
        if let Some((client, transport)) = self.v6.as_mut() {
            if let Some(tx) = client.release(now()) {
                if let Err(e) = transport.send(&tx) {
                    tracing::warn!(error = %e.message, "could not send a DHCPv6 RELEASE");
                }
            }
        }
        self.events
            .emit(Event::new("lease_released").endpoint(&self.stored.request.key));
        self.forget()
    }

    fn forget(&mut self) -> KeeperResult<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .delete_lease(&self.stored.request.key)
            .map_err(super::failed)?;
        Ok(())
    }

    /// The container went away without a release: its link (and address) went with it.
    fn forget_gone(&mut self) -> KeeperResult<()> {
        let request = &self.stored.request;
        self.events.emit(
            Event::new("lease_dropped")
                .endpoint(&request.key)
                .detail(format!("its netns {} is gone", request.netns)),
        );
        self.forget()
    }

    /// Whether the lease still has a container: false once its netns is gone (or replaced).
    /// A link that is missing while the netns lives (its parent is being reset) is waited
    /// for; one recreated under the same alias (the supervisor does) is taken over, with new
    /// sockets on it.
    fn follow_link(&mut self) -> bool {
        let request: &LeaseRequest = &self.stored.request;
        match LeaseLink::of(request, Some(self.stored.netns_id)) {
            Ok(link) if link.index == self.link.index => true,
            Ok(link) => {
                tracing::info!(key = %request.key, ifname = %link.ifname, "the lease's link was recreated: following it");
                self.link = link;
                if let Some((_, transport)) = self.v4.as_mut() {
                    *transport = Transport4::default();
                }
                if let Some((_, transport)) = self.v6.as_mut() {
                    match Transport6::open(&mut self.link) {
                        Ok(fresh) => *transport = fresh,
                        Err(e) => {
                            tracing::warn!(error = %e.message, "DHCPv6 cannot follow the recreated link yet")
                        }
                    }
                }
                true
            }
            Err(_) => netns_alive(&request.netns, self.stored.netns_id),
        }
    }
}

/// Whether the netns a lease was taken in is still at its path.
fn netns_alive(path: &str, id: (u64, u64)) -> bool {
    match underlay_linux::Netns::open(path) {
        Ok(Some(ns)) => ns.id().is_ok_and(|now| now == id),
        _ => false,
    }
}

fn event_name4(event: &Event4) -> &'static str {
    match event {
        Event4::Bound(_) => "bound",
        Event4::Renewed(_) => "renewed",
        Event4::Nak => "refused (NAK)",
        Event4::Expired(_) => "expired",
        Event4::GaveUp => "gave up",
        Event4::Declined(_) => "declined",
    }
}
