//! The lease keeper: the one DHCP speaker for every endpoint of this host.
//!
//! An acquire runs the exchange inside the container's netns on the caller's thread, probes
//! the lease (DECLINE while live), persists it, and hands it to a thread of its own ([`task`])
//! that renews it for as long as it is kept. Leases live in the state database, so a keeper
//! that restarts (or was killed) resumes each one where its times say it is; leases of
//! engine endpoints that no longer exist, or whose netns is gone, are dropped by [`Keeper::sweep`].

mod convert;
mod exchange;
mod link;
mod task;
mod transport;

use std::collections::HashMap;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use underlay_dhcp::v4::Client4;
use underlay_dhcp::v6::Client6;

use self::convert::{info4, info6, lease4, lease6};
use self::exchange::{acquire4, acquire6, config4, config6, now, seed};
use self::link::LeaseLink;
use self::task::{Command, Task};
use self::transport::{Transport4, Transport6};
use super::proto::{
    KeeperError, KeeperErrorKind, KeeperRequest, KeeperResponse, LeaseReply, LeaseRequest,
    LeaseSummary,
};
use super::Leases;
use crate::events::{Event, EventBus};
use crate::plumbing::UNKNOWN_NETNS;
use crate::state::StoredLease;
use crate::{Error, State};

pub(crate) type KeeperResult<T> = Result<T, KeeperError>;

pub(crate) fn failed(e: impl std::fmt::Display) -> KeeperError {
    KeeperError::new(KeeperErrorKind::Failed, e.to_string())
}

/// How often leases of vanished endpoints are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a relocated lease waits for its link to arrive in the new netns.
const RELOCATE_WAIT: Duration = Duration::from_secs(60);

/// What the keeper does for requests that leave it open: the reference CNI daemon's flags
/// (`dhcp daemon -timeout -broadcast -resendmax`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperDefaults {
    /// The exchange timeout of requests with `timeout_ms: 0`.
    pub timeout: Duration,
    /// Ask for broadcast answers in every exchange.
    pub broadcast: bool,
    /// Ceiling of the DHCPv4 retransmission delay of requests that name none.
    pub resend_max: Option<Duration>,
    /// Where the host's root is mounted when the keeper runs in a container of its own
    /// (`-hostprefix`): netns paths of requests are looked up under it.
    pub netns_prefix: Option<std::path::PathBuf>,
}

impl Default for KeeperDefaults {
    fn default() -> KeeperDefaults {
        KeeperDefaults {
            timeout: Duration::from_secs(10),
            broadcast: false,
            resend_max: None,
            netns_prefix: None,
        }
    }
}

impl KeeperDefaults {
    /// `req` with what it leaves open filled in; the result is what is stored and renewed.
    fn fill(&self, req: &LeaseRequest) -> LeaseRequest {
        let mut req = req.clone();
        if req.timeout_ms == 0 {
            req.timeout_ms = self.timeout.as_millis().try_into().unwrap_or(u64::MAX);
        }
        req.broadcast |= self.broadcast;
        if req.resend_max_ms.is_none() {
            req.resend_max_ms = self.resend_max.map(|d| d.as_millis() as u64);
        }
        if let Some(prefix) = &self.netns_prefix {
            let netns = Path::new(&req.netns);
            if !netns.starts_with(prefix) {
                let relative = netns.strip_prefix("/").unwrap_or(netns);
                req.netns = prefix.join(relative).display().to_string();
            }
        }
        req
    }
}

struct Running {
    commands: Sender<Command>,
    thread: JoinHandle<()>,
}

/// The lease keeper of one state directory. Cheap to clone; every clone is the same keeper.
#[derive(Clone)]
pub struct Keeper {
    state: Arc<Mutex<State>>,
    events: EventBus,
    /// Held while the keeper lives: one keeper per state directory (two would renew the same
    /// leases against each other).
    _exclusive: Arc<std::fs::File>,
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// One acquire or release per key at a time; different keys go in parallel.
    busy: Arc<KeyLocks>,
    defaults: KeeperDefaults,
}

impl Keeper {
    /// Opens the state and resumes every kept lease; its events go to `events`. Fails when
    /// another keeper runs on the same state directory.
    pub fn open(state_dir: &Path, events: EventBus) -> Result<Keeper, Error> {
        let state = State::open(state_dir)?;
        let keeper = Keeper {
            _exclusive: Arc::new(exclusive(state_dir)?),
            state: Arc::new(Mutex::new(state)),
            events,
            running: Arc::default(),
            busy: Arc::default(),
            defaults: KeeperDefaults::default(),
        };
        let stored = keeper.lock_state().leases()?;
        for lease in stored {
            keeper.resume(lease);
        }
        keeper.sweep();
        Ok(keeper)
    }

    /// This keeper, filling in what requests leave open from `defaults`.
    pub fn with_defaults(mut self, defaults: KeeperDefaults) -> Keeper {
        self.defaults = defaults;
        self
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one request of the socket protocol.
    pub fn handle(&self, request: KeeperRequest) -> KeeperResponse {
        let answer = match request {
            KeeperRequest::Acquire(req) => self
                .acquire_lease(&req)
                .map(|lease| KeeperResponse::Lease(Box::new(lease))),
            KeeperRequest::Release { key } => self
                .release_lease(&key)
                .map(|found| KeeperResponse::Released { found }),
            KeeperRequest::Relocate { key, netns, alias } => self
                .relocate_lease(&key, &netns, &alias)
                .map(|()| KeeperResponse::Relocated),
            KeeperRequest::List => self.list().map(|leases| KeeperResponse::Leases { leases }),
            KeeperRequest::Ping => Ok(KeeperResponse::Pong {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
            // The socket server streams these itself.
            KeeperRequest::Events => Err(KeeperError::new(
                KeeperErrorKind::Invalid,
                "events are a stream: ask on the keeper's socket",
            )),
        };
        answer.unwrap_or_else(KeeperResponse::Error)
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Serves the socket protocol on `listener` (blocks), sweeping for vanished endpoints in
    /// the background.
    pub fn serve(&self, listener: &UnixListener) -> std::io::Result<()> {
        let sweeper = self.clone();
        std::thread::Builder::new()
            .name("keeper-sweep".into())
            .spawn(move || loop {
                std::thread::sleep(SWEEP_EVERY);
                sweeper.sweep();
            })?;
        let keeper = self.clone();
        let events = self.events.clone();
        super::server::serve(
            listener,
            Arc::new(move |request| keeper.handle(request)),
            events,
        )
    }

    /// Runs the exchange(s) of `req`, persists the lease and keeps it.
    pub fn acquire_lease(&self, req: &LeaseRequest) -> KeeperResult<LeaseReply> {
        let req = &self.defaults.fill(req);
        check(req)?;
        let _busy = self.busy.lock(&req.key);
        // A repeated acquire (a caller that crashed and retried) replaces the old one; the
        // identity is the same, so the server hands out the same address again.
        self.stop(&req.key, Command::Stop);
        let mut link = LeaseLink::of(req, None)?;
        link.bring_up()?;
        // Both families at once: each exchange (and probe) waits on its own server.
        let (v4, v6) = std::thread::scope(|scope| {
            let v6 = req.v6.then(|| {
                scope.spawn(|| {
                    let mut link6 = LeaseLink::of(req, None)?;
                    acquire6(&mut link6, req)
                })
            });
            let v4 = req.v4.then(|| acquire4(&mut link, req)).transpose();
            let v6 = v6
                .map(|thread| {
                    thread
                        .join()
                        .unwrap_or_else(|_| Err(failed("the DHCPv6 exchange panicked")))
                })
                .transpose();
            (v4, v6)
        });
        let (v4, v6) = match (v4, v6) {
            (Ok(v4), Ok(v6)) => (v4, v6),
            (v4, v6) => {
                // One family failed: the other's lease goes straight back.
                let mut error = None;
                match v4 {
                    Ok(Some((mut client, mut transport, _))) => {
                        give_back(&mut client, &mut transport, &link)
                    }
                    Ok(None) => {}
                    Err(e) => error = Some(e),
                }
                match v6 {
                    Ok(Some((mut client, mut transport, _))) => {
                        give_back6(&mut client, &mut transport)
                    }
                    Ok(None) => {}
                    Err(e) => error = error.or(Some(e)),
                }
                return Err(error.expect("one family failed"));
            }
        };
        let reply = LeaseReply {
            v4: v4.as_ref().map(|(_, _, l)| info4(l)),
            v6: v6.as_ref().map(|(_, _, l)| info6(l)),
        };
        let stored = StoredLease {
            request: req.clone(),
            netns_id: link.netns_id,
            lease: reply.clone(),
        };
        self.lock_state().save_lease(&stored).map_err(failed)?;
        self.events
            .emit(lease_event("lease_acquired", &req.key, &reply));
        self.start(Task {
            stored,
            link,
            v4: v4.map(|(c, t, _)| (c, t)),
            v6: v6.map(|(c, t, _)| (c, t)),
            state: self.state.clone(),
            events: self.events.clone(),
            commands: mpsc::channel().1,
            last_check: std::time::Instant::now(),
        });
        Ok(reply)
    }

    /// Gives the lease of `key` back and forgets it.
    pub fn release_lease(&self, key: &str) -> KeeperResult<bool> {
        let _busy = self.busy.lock(key);
        if self.stop(key, Command::Release) {
            return Ok(true);
        }
        // Kept but not running (waiting for its link after a relocation, or its task ended on
        // an error): tell the servers from wherever the link is now, then forget it.
        let stored = self.lock_state().lease(key).map_err(failed)?;
        if let Some(stored) = &stored {
            release_stored(stored);
        }
        self.lock_state().delete_lease(key).map_err(failed)
    }

    /// The lease's link is about to move into `netns` (a runtime moves it into its container):
    /// from now on it is looked for there, by `alias`. The lease is picked up again as soon as
    /// the link shows up (the runtime moves it right after it was handed over).
    pub fn relocate_lease(&self, key: &str, netns: &str, alias: &str) -> KeeperResult<()> {
        let _busy = self.busy.lock(key);
        let mut stored = self
            .lock_state()
            .lease(key)
            .map_err(failed)?
            .ok_or_else(|| {
                KeeperError::new(
                    KeeperErrorKind::NotFound,
                    format!("no lease is kept for {key}"),
                )
            })?;
        self.stop(key, Command::Stop);
        stored.request.netns = netns.to_string();
        stored.request.alias = Some(alias.to_string());
        // The netns may not exist yet (a sandbox is named before it is made): its identity is
        // taken when the link shows up in it.
        stored.netns_id = UNKNOWN_NETNS;
        self.lock_state().save_lease(&stored).map_err(failed)?;
        let keeper = self.clone();
        std::thread::Builder::new()
            .name(format!("relocate-{}", short(key)))
            .spawn(move || keeper.resume_once_there(stored))
            .map_err(failed)?;
        Ok(())
    }

    /// Waits (up to [`RELOCATE_WAIT`]) for a relocated lease's link, then resumes the lease,
    /// unless it was released or relocated again meanwhile.
    fn resume_once_there(&self, stored: StoredLease) {
        let key = stored.request.key.clone();
        let deadline = std::time::Instant::now() + RELOCATE_WAIT;
        let link = loop {
            if let Ok(link) = LeaseLink::of(&stored.request, None) {
                break link;
            }
            if std::time::Instant::now() > deadline {
                return tracing::warn!(%key, netns = %stored.request.netns, "the lease's link never arrived; the lease is kept, not renewed");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _busy = self.busy.lock(&key);
        let current = self.lock_state().lease(&key).ok().flatten();
        if current.as_ref() != Some(&stored) || self.running_now(&key) {
            return; // released or relocated again meanwhile
        }
        let mut arrived = stored;
        arrived.netns_id = link.netns_id;
        drop(link);
        if let Err(e) = self.lock_state().save_lease(&arrived) {
            return tracing::warn!(%key, error = %e, "cannot record where the lease's link arrived");
        }
        self.resume(arrived);
    }

    fn running_now(&self, key: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|r| !r.thread.is_finished())
    }

    /// Every kept lease, and whether a thread is renewing it.
    pub fn list(&self) -> KeeperResult<Vec<LeaseSummary>> {
        let stored = self.lock_state().leases().map_err(failed)?;
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        Ok(stored
            .into_iter()
            .map(|l| LeaseSummary {
                renewing: running
                    .get(&l.request.key)
                    .is_some_and(|r| !r.thread.is_finished()),
                key: l.request.key,
                netns: l.request.netns,
                ifname: l.request.ifname,
                lease: l.lease,
            })
            .collect())
    }

    /// Drops the leases of engine endpoints that no longer exist (their attach was rolled back
    /// while the keeper could not be reached) and of tasks that ended.
    pub fn sweep(&self) {
        let stored = match self.lock_state().leases() {
            Ok(stored) => stored,
            Err(e) => return tracing::warn!(error = %e, "sweep: cannot read the leases"),
        };
        for lease in stored {
            let key = &lease.request.key;
            let orphan = match key.strip_prefix("endpoint/") {
                Some(id) => !self.lock_state().endpoint_exists(id).unwrap_or(true),
                None => false,
            };
            if orphan {
                tracing::info!(%key, "sweep: the endpoint is gone: releasing its lease");
                if let Err(e) = self.release_lease(key) {
                    tracing::warn!(%key, error = %e.message, "sweep: release failed");
                }
            }
        }
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, r| !r.thread.is_finished());
    }

    /// Picks a persisted lease up again.
    fn resume(&self, stored: StoredLease) {
        let key = stored.request.key.clone();
        let link = match LeaseLink::of(&stored.request, Some(stored.netns_id)) {
            Ok(link) => link,
            Err(e) => {
                tracing::info!(%key, reason = %e.message, "lease dropped: its link is gone");
                let _ = self.lock_state().delete_lease(&key);
                return;
            }
        };
        let v4 = stored.lease.v4.as_ref().map(|info| {
            let config = config4(&stored.request, link.mac);
            (
                Client4::resume(config, seed(&key), lease4(info), now()),
                Transport4::default(),
            )
        });
        let v6 = match stored.lease.v6.as_ref() {
            Some(info) => {
                let mut link6 = match LeaseLink::of(&stored.request, None) {
                    Ok(l) => l,
                    Err(e) => {
                        return tracing::warn!(%key, error = %e.message, "cannot resume DHCPv6")
                    }
                };
                match Transport6::open(&mut link6) {
                    Ok(t) => Some((
                        Client6::resume(config6(&stored.request), seed(&key), lease6(info), now()),
                        t,
                    )),
                    Err(e) => {
                        return tracing::warn!(%key, error = %e.message, "cannot resume DHCPv6")
                    }
                }
            }
            None => None,
        };
        tracing::info!(%key, "lease resumed");
        self.start(Task {
            stored,
            link,
            v4,
            v6,
            state: self.state.clone(),
            events: self.events.clone(),
            commands: mpsc::channel().1,
            last_check: std::time::Instant::now(),
        });
    }

    fn start(&self, mut task: Task) {
        let (commands, receiver) = mpsc::channel();
        task.commands = receiver;
        let key = task.stored.request.key.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("lease-{}", short(&key)))
            .spawn(move || task.run());
        match spawned {
            Ok(thread) => {
                let running = Running { commands, thread };
                self.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, running);
            }
            Err(e) => tracing::error!(%key, error = %e, "cannot start the lease's thread"),
        }
    }

    /// Sends `command` to the task of `key` and waits for it to end; whether there was one.
    fn stop(&self, key: &str, command: Command) -> bool {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let Some(running) = running else {
            return false;
        };
        let _ = running.commands.send(command);
        let _ = running.thread.join();
        true
    }
}

/// The keeper in the same process: no socket in between (the Docker plugin, the daemon).
impl Leases for Keeper {
    fn acquire(&mut self, request: &LeaseRequest) -> Result<LeaseReply, Error> {
        self.acquire_lease(request).map_err(Error::from)
    }

    fn release(&mut self, key: &str) -> Result<bool, Error> {
        self.release_lease(key).map_err(Error::from)
    }

    fn relocate(&mut self, key: &str, netns: &str, alias: &str) -> Result<(), Error> {
        self.relocate_lease(key, netns, alias).map_err(Error::from)
    }
}

/// `<state dir>/keeper.lock`, taken for the keeper's whole life.
fn exclusive(state_dir: &Path) -> Result<std::fs::File, Error> {
    let path = state_dir.join("keeper.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Io(format!("opening {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Conflict(format!(
            "another lease keeper already runs on state directory {}",
            state_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::Io(format!("locking {}: {e}", path.display())))
        }
    }
}

/// An event about a lease: its key names the endpoint (`endpoint/<id>`), its addresses the rest.
pub(crate) fn lease_event(kind: &str, key: &str, lease: &LeaseReply) -> Event {
    let addresses: Vec<String> = [
        lease.v4.as_ref().map(|l| l.address.to_string()),
        lease.v6.as_ref().map(|l| l.address.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    Event::new(kind).endpoint(key).detail(addresses.join(" "))
}

/// Keys with an acquire or release under way.
#[derive(Default)]
struct KeyLocks {
    busy: Mutex<std::collections::HashSet<String>>,
    freed: std::sync::Condvar,
}

struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
}

impl KeyLocks {
    fn lock(&self, key: &str) -> KeyGuard<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(key) {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(key.to_string());
        KeyGuard {
            locks: self,
            key: key.to_string(),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut busy = self.locks.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.key);
        self.locks.freed.notify_all();
    }
}

fn check(req: &LeaseRequest) -> KeeperResult<()> {
    let invalid = |m: String| Err(KeeperError::new(KeeperErrorKind::Invalid, m));
    if !req.v4 && !req.v6 {
        return invalid(format!(
            "lease request {} asks for neither DHCPv4 nor DHCPv6",
            req.key
        ));
    }
    if req.key.is_empty() || req.key.len() > 512 {
        return invalid("a lease key must have 1 to 512 bytes".into());
    }
    if req.timeout_ms == 0 || req.timeout_ms > 300_000 {
        return invalid(format!(
            "timeout {} ms is outside 1..300000",
            req.timeout_ms
        ));
    }
    if req.resend_max_ms.is_some_and(|ms| ms < 100) {
        return invalid("the retransmission ceiling must be at least 100 ms".into());
    }
    if req
        .options
        .iter()
        .any(|o| matches!(o.code, 0 | 53 | 54 | 55 | 255))
    {
        return invalid(
            "options 0, 53, 54, 55 and 255 belong to the protocol and cannot be provided".into(),
        );
    }
    if let Some(long) = req.options.iter().find(|o| o.value.len() > 255) {
        return invalid(format!(
            "option {} has {} bytes, more than the 255 an option can carry",
            long.code,
            long.value.len()
        ));
    }
    if req.probe_ms.is_some_and(|ms| ms == 0 || ms > 10_000) {
        return invalid("probe_ms must be within 1..10000".into());
    }
    if req.v4 && req.client_id.is_empty() {
        return invalid("a DHCPv4 lease needs a client identifier".into());
    }
    if req.v6 && req.duid.len() < 2 {
        return invalid("a DHCPv6 lease needs a DUID".into());
    }
    Ok(())
}

/// RELEASE for a lease no task is holding: from its link, wherever it is now; best effort.
fn release_stored(stored: &StoredLease) {
    let key = &stored.request.key;
    let Ok(mut link) = LeaseLink::of(&stored.request, None) else {
        return tracing::info!(%key, "lease forgotten without RELEASE: its link is gone");
    };
    up_for_release(&mut link, key);
    if let Some(info) = &stored.lease.v4 {
        let config = config4(&stored.request, link.mac);
        let mut client = Client4::resume(config, seed(key), lease4(info), now());
        send_release4(&mut link, &mut client, &mut Transport4::default(), key);
    }
    if let Some(info) = &stored.lease.v6 {
        let mut client = Client6::resume(config6(&stored.request), seed(key), lease6(info), now());
        match Transport6::open(&mut link) {
            Ok(mut transport) => give_back6(&mut client, &mut transport),
            Err(e) => tracing::warn!(%key, error = %e.message, "could not send a DHCPv6 RELEASE"),
        }
    }
}

/// A link a runtime moved back out of its container (Docker does at Leave) comes back down:
/// it goes up again so that the RELEASE can leave.
pub(super) fn up_for_release(link: &mut LeaseLink, key: &str) {
    if let Err(e) = link.bring_up() {
        tracing::warn!(%key, error = %e.message, "cannot bring the lease's link up for its RELEASE");
    }
}

/// The DHCPv4 RELEASE, best effort (a lost one only means the server keeps the address until
/// the lease ends): through the IP stack when the link has the address, raw when it does not
/// (an attach that died before configuring it: the kernel would send from 0.0.0.0).
pub(super) fn send_release4(
    link: &mut LeaseLink,
    client: &mut Client4,
    transport: &mut Transport4,
    key: &str,
) {
    let Some(tx) = client.release(now()) else {
        return;
    };
    let sent = match link.has_address(tx.src.into()) {
        true => transport.send(link, &tx),
        false => transport.send_raw(link, &tx),
    };
    if let Err(e) = sent {
        tracing::warn!(%key, error = %e.message, "could not send a DHCPv4 RELEASE");
    }
}

/// A lease acquired for a request that then failed goes back at once.
fn give_back(client: &mut Client4, transport: &mut Transport4, link: &LeaseLink) {
    if let Some(tx) = client.release(now()) {
        if let Err(e) = transport.send_raw(link, &tx) {
            tracing::warn!(error = %e.message, "could not release a DHCPv4 lease");
        }
    }
}

fn give_back6(client: &mut Client6, transport: &mut Transport6) {
    if let Some(tx) = client.release(now()) {
        if let Err(e) = transport.send(&tx) {
            tracing::warn!(error = %e.message, "could not release a DHCPv6 lease");
        }
    }
}

fn short(key: &str) -> String {
    key.rsplit('/')
        .next()
        .unwrap_or(key)
        .chars()
        .take(10)
        .collect()
}
