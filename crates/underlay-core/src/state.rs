//! The embedded state: networks, endpoints and IPAM reservations in one SQLite database.
//!
//! Every change is one `BEGIN IMMEDIATE` transaction. Mutating operations also hold an
//! exclusive `flock` on `<state dir>/lock` for their whole duration (kernel work included), so
//! that an endpoint row in a transitional phase can only belong to a process that died: the
//! lock is released by the kernel when its holder exits, however it exits. See docs/state.md.

use std::fs::{self, File, OpenOptions};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use underlay_ipam::{allocate, reserve_in_subnet, reserve_static, IpamError, SqliteStore, Store};

use crate::leases::{LeaseReply, LeaseRequest};
use crate::{Endpoint, Error, Family, HostAccess, MacAddr, Network, NetworkSpec, Phase};

/// Where the state lives unless `--state-dir` / `UNDERLAY_STATE_DIR` say otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/underlay";

const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    spec    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    id         TEXT PRIMARY KEY,
    network_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    phase      TEXT NOT NULL,
    netns      TEXT NOT NULL,
    netns_dev  INTEGER NOT NULL,
    netns_ino  INTEGER NOT NULL,
    ifname     TEXT NOT NULL,
    tmp_ifname TEXT NOT NULL,
    mac        TEXT NOT NULL,
    ipv4       TEXT,
    ipv6       TEXT,
    handoff    INTEGER NOT NULL DEFAULT 0,
    runtime_id TEXT,
    since      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (network_id, name)
);
CREATE INDEX IF NOT EXISTS endpoints_phase ON endpoints (phase);
CREATE INDEX IF NOT EXISTS endpoints_netns ON endpoints (network_id, netns_dev, netns_ino);
-- Parent links underlay created (VLAN sub-interfaces, dummies): deleted with the last network
-- that uses them, and only these. Written before the link is created (see docs/state.md).
CREATE TABLE IF NOT EXISTS owned_parents (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL
);
-- What a front-end keeps about its own protocol (Docker's IPAM pools), by scope and key.
CREATE TABLE IF NOT EXISTS annotations (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
-- DHCP leases the lease keeper holds, with what it needs to renew them after a restart.
CREATE TABLE IF NOT EXISTS dhcp_leases (
    key       TEXT PRIMARY KEY,
    request   TEXT NOT NULL,
    netns_dev INTEGER NOT NULL,
    netns_ino INTEGER NOT NULL,
    lease     TEXT NOT NULL,
    updated   TEXT NOT NULL
);
";

/// Owner of an address found live on the LAN by conflict detection:
/// `conflict@<MAC that answered>@<Unix seconds>`.
const CONFLICT_PREFIX: &str = "conflict@";

/// The state database of one state directory.
pub struct State {
    conn: Connection,
    dir: PathBuf,
}

/// Held for the duration of a mutating operation; dropping it releases the lock.
pub struct OpLock {
    _file: File,
}

impl State {
    /// Opens (creating if needed) the state in `dir`.
    pub fn open(dir: &Path) -> Result<State, Error> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::Io(format!("creating state directory {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("state.db"))?;
        // WAL + NORMAL: a commit survives a killed process (it is in the OS page cache), and
        // readers never block the writer. Power loss can drop the last commits, not corrupt.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Every CLI run is a short-lived connection: the last one to close checkpoints and
        // deletes the WAL, so the next process does not have to rebuild the WAL index by
        // reading every frame (measured: that rebuild cost more than the checkpoint's fsyncs).
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            conn.execute_batch(SCHEMA)?;
            add_missing_columns(&conn)?;
            conn.execute_batch(
                "CREATE INDEX IF NOT EXISTS endpoints_runtime ON endpoints (network_id, runtime_id);",
            )?;
            SqliteStore::create_schema(&conn)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(State {
            conn,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the operation lock, waiting for other writers.
    pub fn lock(&self) -> Result<OpLock, Error> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Io(format!("opening {}: {e}", path.display())))?;
        file.lock()
            .map_err(|e| Error::Io(format!("locking {}: {e}", path.display())))?;
        Ok(OpLock { _file: file })
    }

    pub fn networks(&self) -> Result<Vec<Network>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, created, spec FROM networks ORDER BY name")?;
        let rows = stmt.query_map([], network_from_row)?;
        rows.map(|r| r?).collect()
    }

    /// The network called `name_or_id` (a name, a full ID or a unique ID prefix).
    pub fn network(&self, name_or_id: &str) -> Result<Option<Network>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, created, spec FROM networks WHERE name = ?1
             UNION ALL SELECT id, created, spec FROM networks WHERE length(?1) >= 6 AND id LIKE ?1 || '%' LIMIT 2",
        )?;
        let found: Vec<Network> = stmt
            .query_map([name_or_id], network_from_row)?
            .map(|r| r?)
            .collect::<Result<_, _>>()?;
        Ok(found.into_iter().next())
    }

    /// Inserts a network and reserves its gateways and aux addresses, in one transaction.
    pub fn insert_network(&mut self, net: &Network) -> Result<(), Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let spec = serde_json::to_string(&net.spec).map_err(|e| Error::State(e.to_string()))?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO networks (id, name, created, spec) VALUES (?1, ?2, ?3, ?4)",
            params![net.id, net.name(), net.created, spec],
        )?;
        if inserted == 0 {
            return Err(Error::Conflict(format!(
                "network {} already exists",
                net.name()
            )));
        }
        let mut store = SqliteStore::new(&tx);
        for (family, config) in net.spec.ip_configs() {
            let pool = net
                .pool(family)
                .ok_or_else(|| Error::State("pool without config".into()))?;
            if let Some(gateway) = config.gateway {
                reserve_in_subnet(&mut store, &pool, gateway, "the gateway")?;
            }
            for (name, ip) in &config.aux_addresses {
                reserve_in_subnet(&mut store, &pool, *ip, &format!("aux address {name}"))
                    .map_err(|e| Error::invalid(e.to_string()))?;
            }
        }
        reserve_host_access(&mut store, net)?;
        tx.commit()?;
        Ok(())
    }

    /// Turns host access on (`Some`, reserving its addresses) or off (releasing them), in one
    /// transaction with the network's definition.
    pub fn set_host_access(
        &mut self,
        net: &Network,
        access: Option<HostAccess>,
    ) -> Result<Network, Error> {
        let mut net = net.clone();
        net.spec.host_access = access;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let spec = serde_json::to_string(&net.spec).map_err(|e| Error::State(e.to_string()))?;
        tx.execute(
            "UPDATE networks SET spec = ?2 WHERE id = ?1",
            params![net.id, spec],
        )?;
        let mut store = SqliteStore::new(&tx);
        for family in [Family::V4, Family::V6] {
            if let Some(pool) = net.pool(family) {
                store.release_owner(&pool.id, HOST_ACCESS_OWNER)?;
            }
        }
        reserve_host_access(&mut store, &net)?;
        tx.commit()?;
        Ok(net)
    }

    /// The host-access link's addresses: the given ones, or the ones its pools reserved for it.
    pub fn host_access_addresses(&self, net: &Network) -> Result<Vec<IpAddr>, Error> {
        let Some(access) = &net.spec.host_access else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            if let Some(ip) = access.address(family) {
                out.push(ip);
            } else if let Some(held) = self
                .reservations(net, family)?
                .into_iter()
                .find(|r| r.owner == HOST_ACCESS_OWNER)
            {
                out.push(held.ip);
            }
        }
        Ok(out)
    }

    /// Deletes a network (which must have no endpoints) and every reservation of its pools.
    pub fn delete_network(&mut self, net: &Network) -> Result<(), Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let endpoints: i64 = tx.query_row(
            "SELECT count(*) FROM endpoints WHERE network_id = ?1",
            [&net.id],
            |r| r.get(0),
        )?;
        if endpoints > 0 {
            return Err(Error::Conflict(format!(
                "network {} still has {endpoints} endpoints",
                net.name()
            )));
        }
        let mut store = SqliteStore::new(&tx);
        for family in [Family::V4, Family::V6] {
            if let Some(pool) = net.pool(family) {
                store.release_pool(&pool.id)?;
            }
        }
        tx.execute("DELETE FROM networks WHERE id = ?1", [&net.id])?;
        tx.commit()?;
        Ok(())
    }

    pub fn endpoints(&self, network_id: &str) -> Result<Vec<Endpoint>, Error> {
        self.query_endpoints(
            "SELECT * FROM endpoints WHERE network_id = ?1 ORDER BY name",
            [network_id],
        )
    }

    /// Endpoints left in a transitional phase (by a process that died, when the lock is held).
    pub fn unsettled_endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        // `IN` (not `!=`) so that the phase index answers it without a scan.
        self.query_endpoints(
            "SELECT * FROM endpoints WHERE phase IN (?1, ?2)",
            [Phase::Attaching.as_str(), Phase::Detaching.as_str()],
        )
    }

    /// The endpoint of a network in the netns with identity `netns_id`, if any.
    pub fn endpoint_in_netns(
        &self,
        network_id: &str,
        netns_id: (u64, u64),
    ) -> Result<Option<Endpoint>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM endpoints WHERE network_id = ?1 AND netns_dev = ?2 AND netns_ino = ?3 LIMIT 1",
        )?;
        let row = stmt
            .query_row(
                params![network_id, netns_id.0 as i64, netns_id.1 as i64],
                endpoint_from_row,
            )
            .optional()?;
        row.transpose()
    }

    /// The endpoint a `disconnect` TARGET names: by endpoint name first, else by netns identity
    /// or recorded path.
    pub fn find_endpoint(
        &self,
        network_id: &str,
        name: &str,
        netns_id: Option<(u64, u64)>,
        netns_path: &str,
    ) -> Result<Option<Endpoint>, Error> {
        let (dev, ino) = netns_id.map_or((-1, -1), |(d, i)| (d as i64, i as i64));
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM endpoints WHERE network_id = ?1
               AND (name = ?2 OR (netns_dev = ?3 AND netns_ino = ?4) OR netns = ?5)
             ORDER BY name = ?2 DESC LIMIT 1",
        )?;
        let row = stmt
            .query_row(
                params![network_id, name, dev, ino, netns_path],
                endpoint_from_row,
            )
            .optional()?;
        row.transpose()
    }

    /// How many endpoints a network has.
    pub fn endpoint_count(&self, network_id: &str) -> Result<usize, Error> {
        let count: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM endpoints WHERE network_id = ?1")?
            .query_row([network_id], |r| r.get(0))?;
        Ok(count as usize)
    }

    /// Every endpoint of every network.
    pub fn all_endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        self.query_endpoints("SELECT * FROM endpoints ORDER BY network_id, name", [])
    }

    fn query_endpoints(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Endpoint>, Error> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, endpoint_from_row)?;
        rows.map(|r| r?).collect()
    }

    /// Records the intent to attach: reserves the endpoint's addresses (the requested ones or
    /// the first free) and inserts it in phase `Attaching`, in one transaction.
    pub fn begin_attach(
        &mut self,
        net: &Network,
        mut ep: Endpoint,
        requested: [Option<IpAddr>; 2],
    ) -> Result<Endpoint, Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let taken: bool = tx
            .prepare_cached("SELECT 1 FROM endpoints WHERE network_id = ?1 AND name = ?2")?
            .exists(params![net.id, ep.name])?;
        if taken {
            return Err(Error::Conflict(format!(
                "endpoint {} already exists on network {}",
                ep.name,
                net.name()
            )));
        }
        let mut store = SqliteStore::new(&tx);
        for (family, want) in [Family::V4, Family::V6].into_iter().zip(requested) {
            let Some(pool) = net.pool(family) else {
                continue;
            };
            let ip = match want {
                Some(ip) => reserve_static(&mut store, &pool, ip, &ep.id).map(|()| ip),
                None => allocate(&mut store, &pool, &ep.id),
            };
            let ip = ip.map_err(|e| name_the_owner(&tx, e))?;
            match family {
                Family::V4 => ep.ipv4 = Some(ip),
                Family::V6 => ep.ipv6 = Some(ip),
            }
        }
        ep.phase = Phase::Attaching;
        insert_endpoint(&tx, &ep)?;
        tx.commit()?;
        Ok(ep)
    }

    /// Gives the endpoint a new address of `family` in place of its current one, which
    /// answered on the LAN from `mac`: that one stays reserved under a conflict mark, so that
    /// no endpoint is handed it until `gc` forgets old marks. One transaction.
    pub fn skip_live_address(
        &mut self,
        net: &Network,
        ep: &Endpoint,
        family: Family,
        mac: MacAddr,
    ) -> Result<Endpoint, Error> {
        let pool = net.pool(family).ok_or_else(|| {
            Error::State(format!(
                "network {} has no {} pool",
                net.name(),
                family.name()
            ))
        })?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut store = SqliteStore::new(&tx);
        let mark = format!("{CONFLICT_PREFIX}{mac}@{}", unix_now());
        for live in store.release_owner(&pool.id, &ep.id)? {
            reserve_in_subnet(&mut store, &pool, live, &mark)?;
        }
        let fresh = allocate(&mut store, &pool, &ep.id)?;
        let mut ep = ep.clone();
        ep.set_address(family, Some(fresh));
        update_endpoint_addresses(&tx, &ep)?;
        tx.commit()?;
        Ok(ep)
    }

    /// Records the addresses an endpoint got from outside the pools (DHCP).
    pub fn set_endpoint_addresses(&mut self, ep: &Endpoint) -> Result<(), Error> {
        update_endpoint_addresses(&self.conn, ep)
    }

    /// Forgets conflict marks older than `max_age`: the address may be handed out (and probed)
    /// again. Returns the addresses freed.
    pub fn forget_old_conflicts(
        &mut self,
        max_age: std::time::Duration,
    ) -> Result<Vec<IpAddr>, Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let networks: Vec<Network> = {
            let mut stmt = tx.prepare_cached("SELECT id, created, spec FROM networks")?;
            let rows = stmt.query_map([], network_from_row)?;
            rows.map(|r| r?).collect::<Result<_, _>>()?
        };
        let mut store = SqliteStore::new(&tx);
        let mut freed = Vec::new();
        for pool in networks
            .iter()
            .flat_map(|n| [n.pool(Family::V4), n.pool(Family::V6)])
            .flatten()
        {
            for reservation in store.reservations(&pool.id)? {
                let Some(mark) = ConflictMark::parse(&reservation.owner) else {
                    continue;
                };
                if unix_now().saturating_sub(mark.since) >= max_age.as_secs() {
                    store.release_owner(&pool.id, &reservation.owner)?;
                    freed.push(reservation.ip);
                }
            }
        }
        tx.commit()?;
        Ok(freed)
    }

    /// The handoff endpoint the runtime knows as `runtime_id`.
    pub fn endpoint_by_runtime_id(
        &self,
        network_id: &str,
        runtime_id: &str,
    ) -> Result<Option<Endpoint>, Error> {
        Ok(self
            .query_endpoints(
                "SELECT * FROM endpoints WHERE network_id = ?1 AND runtime_id = ?2",
                params![network_id, runtime_id],
            )?
            .pop())
    }

    /// A pending handoff endpoint of the network holding one of these addresses.
    pub fn pending_holding(
        &self,
        network_id: &str,
        addresses: &[IpAddr],
    ) -> Result<Option<Endpoint>, Error> {
        let pending = self.query_endpoints(
            "SELECT * FROM endpoints WHERE network_id = ?1 AND phase = ?2 ORDER BY since",
            params![network_id, Phase::Pending.as_str()],
        )?;
        Ok(pending.into_iter().find(|e| {
            addresses
                .iter()
                .any(|a| Some(*a) == e.ipv4 || Some(*a) == e.ipv6)
        }))
    }

    /// The endpoint of the network that holds `ip`, if any.
    pub fn endpoint_holding(
        &self,
        network_id: &str,
        ip: IpAddr,
    ) -> Result<Option<Endpoint>, Error> {
        let text = ip.to_string();
        Ok(self
            .query_endpoints(
                "SELECT * FROM endpoints WHERE network_id = ?1 AND (ipv4 = ?2 OR ipv6 = ?2)",
                params![network_id, text],
            )?
            .pop())
    }

    /// Pending handoff endpoints written before `before` (Unix seconds): the runtime never
    /// came back for them.
    pub fn pending_before(&self, before: u64) -> Result<Vec<Endpoint>, Error> {
        self.query_endpoints(
            "SELECT * FROM endpoints WHERE phase = ?1 AND since < ?2",
            params![Phase::Pending.as_str(), before as i64],
        )
    }

    /// Writes what changes over an endpoint's life: phase, netns, runtime ID, addresses, and
    /// the MAC (an ipvlan endpoint's follows its parent's).
    pub fn update_endpoint(&mut self, ep: &Endpoint) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "UPDATE endpoints SET phase = ?2, netns = ?3, netns_dev = ?4, netns_ino = ?5,
                 runtime_id = ?6, ipv4 = ?7, ipv6 = ?8, mac = ?9 WHERE id = ?1",
            )?
            .execute(params![
                ep.id,
                ep.phase.as_str(),
                ep.netns,
                ep.netns_id.0 as i64,
                ep.netns_id.1 as i64,
                ep.runtime_id,
                ep.ipv4.map(|ip| ip.to_string()),
                ep.ipv6.map(|ip| ip.to_string()),
                ep.mac.to_string(),
            ])?;
        Ok(())
    }

    /// Gives the endpoint `ip` (which must be free) instead of its address of that family.
    pub fn swap_to_static(
        &mut self,
        net: &Network,
        ep: &Endpoint,
        ip: IpAddr,
    ) -> Result<Endpoint, Error> {
        let family = Family::of(ip);
        let pool = net.pool(family).ok_or_else(|| {
            Error::invalid(format!(
                "network {} has no {} subnet for {ip}",
                net.name(),
                family.name()
            ))
        })?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut store = SqliteStore::new(&tx);
        store.release_owner(&pool.id, &ep.id)?;
        reserve_static(&mut store, &pool, ip, &ep.id).map_err(|e| name_the_owner(&tx, e))?;
        let mut ep = ep.clone();
        ep.set_address(family, Some(ip));
        update_endpoint_addresses(&tx, &ep)?;
        tx.commit()?;
        Ok(ep)
    }

    /// Moves an endpoint to another phase.
    pub fn set_phase(&mut self, endpoint_id: &str, phase: Phase) -> Result<(), Error> {
        self.conn
            .prepare_cached("UPDATE endpoints SET phase = ?2 WHERE id = ?1")?
            .execute(params![endpoint_id, phase.as_str()])?;
        Ok(())
    }

    /// Deletes an endpoint and releases its addresses, in one transaction.
    pub fn delete_endpoint(&mut self, net: &Network, endpoint_id: &str) -> Result<(), Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut store = SqliteStore::new(&tx);
        for family in [Family::V4, Family::V6] {
            if let Some(pool) = net.pool(family) {
                store.release_owner(&pool.id, endpoint_id)?;
            }
        }
        tx.execute("DELETE FROM endpoints WHERE id = ?1", [endpoint_id])?;
        tx.commit()?;
        Ok(())
    }

    /// The network with ID `id`.
    pub fn network_by_id(&self, id: &str) -> Result<Option<Network>, Error> {
        self.conn
            .prepare_cached("SELECT id, created, spec FROM networks WHERE id = ?1")?
            .query_row([id], network_from_row)
            .optional()?
            .transpose()
    }

    /// Whether underlay created the parent link `name`.
    pub fn is_owned_parent(&self, name: &str) -> Result<bool, Error> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM owned_parents WHERE name = ?1")?
            .exists([name])?)
    }

    /// Records that underlay is about to create the parent link `name` (`vlan` or `dummy`).
    pub fn insert_owned_parent(&mut self, name: &str, kind: &str) -> Result<(), Error> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO owned_parents (name, kind) VALUES (?1, ?2)")?
            .execute([name, kind])?;
        Ok(())
    }

    pub fn delete_owned_parent(&mut self, name: &str) -> Result<(), Error> {
        self.conn
            .prepare_cached("DELETE FROM owned_parents WHERE name = ?1")?
            .execute([name])?;
        Ok(())
    }

    /// Every parent link underlay created: (name, kind).
    pub fn owned_parents(&self) -> Result<Vec<(String, String)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, kind FROM owned_parents ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every reservation of a network's pool (for `inspect` and the invariant checks).
    pub fn reservations(
        &self,
        net: &Network,
        family: Family,
    ) -> Result<Vec<underlay_ipam::Reservation>, Error> {
        let Some(pool) = net.pool(family) else {
            return Ok(Vec::new());
        };
        Ok(SqliteStore::new(&self.conn).reservations(&pool.id)?)
    }
}

impl State {
    /// Records `value` under (`scope`, `key`), replacing what was there.
    pub fn put_annotation(&mut self, scope: &str, key: &str, value: &str) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO annotations (scope, key, value) VALUES (?1, ?2, ?3)",
            )?
            .execute([scope, key, value])?;
        Ok(())
    }

    pub fn annotation(&self, scope: &str, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM annotations WHERE scope = ?1 AND key = ?2")?
            .query_row([scope, key], |r| r.get(0))
            .optional()?)
    }

    /// Every (key, value) of `scope`, by key.
    pub fn annotations(&self, scope: &str) -> Result<Vec<(String, String)>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM annotations WHERE scope = ?1 ORDER BY key")?;
        let rows = stmt.query_map([scope], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_annotation(&mut self, scope: &str, key: &str) -> Result<bool, Error> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM annotations WHERE scope = ?1 AND key = ?2")?
            .execute([scope, key])?;
        Ok(n > 0)
    }
}

/// A lease as the keeper keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    pub request: LeaseRequest,
    /// The identity of the netns the lease was taken in.
    pub netns_id: (u64, u64),
    pub lease: LeaseReply,
}

impl State {
    /// Records (or replaces) the lease of `stored.request.key`.
    pub fn save_lease(&mut self, stored: &StoredLease) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO dhcp_leases (key, request, netns_dev, netns_ino, lease, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                stored.request.key,
                to_json(&stored.request)?,
                stored.netns_id.0 as i64,
                stored.netns_id.1 as i64,
                to_json(&stored.lease)?,
                now_rfc3339(),
            ])?;
        Ok(())
    }

    /// Forgets the lease of `key`; whether there was one.
    pub fn delete_lease(&mut self, key: &str) -> Result<bool, Error> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM dhcp_leases WHERE key = ?1")?
            .execute([key])?;
        Ok(n > 0)
    }

    /// Every kept lease. A row that does not parse is reported, not skipped silently.
    pub fn leases(&self) -> Result<Vec<StoredLease>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT request, netns_dev, netns_ino, lease FROM dhcp_leases ORDER BY key",
        )?;
        let rows = stmt.query_map([], |row| {
            let request: String = row.get(0)?;
            let dev: i64 = row.get(1)?;
            let ino: i64 = row.get(2)?;
            let lease: String = row.get(3)?;
            Ok((request, (dev as u64, ino as u64), lease))
        })?;
        rows.map(|row| {
            let (request, netns_id, lease) = row?;
            let corrupt = |e: serde_json::Error| Error::State(format!("corrupt DHCP lease: {e}"));
            Ok(StoredLease {
                request: serde_json::from_str(&request).map_err(corrupt)?,
                netns_id,
                lease: serde_json::from_str(&lease).map_err(corrupt)?,
            })
        })
        .collect()
    }

    /// The kept lease of `key`, if any.
    pub fn lease(&self, key: &str) -> Result<Option<StoredLease>, Error> {
        Ok(self.leases()?.into_iter().find(|l| l.request.key == key))
    }

    /// Whether endpoint `id` still exists (the keeper drops leases of endpoints that do not).
    pub fn endpoint_exists(&self, id: &str) -> Result<bool, Error> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM endpoints WHERE id = ?1")?
            .exists([id])?)
    }

    /// Sets one address of endpoint `id` (the keeper, when a lease changed).
    pub fn set_endpoint_address(
        &mut self,
        id: &str,
        family: Family,
        ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        let column = match family {
            Family::V4 => "UPDATE endpoints SET ipv4 = ?2 WHERE id = ?1",
            Family::V6 => "UPDATE endpoints SET ipv6 = ?2 WHERE id = ?1",
        };
        self.conn
            .prepare_cached(column)?
            .execute(params![id, ip.map(|ip| ip.to_string())])?;
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::State(e.to_string()))
}

/// Owner of the addresses of a network's host-access link.
pub(crate) const HOST_ACCESS_OWNER: &str = "host access";

fn reserve_host_access(store: &mut SqliteStore<'_>, net: &Network) -> Result<(), Error> {
    let Some(access) = &net.spec.host_access else {
        return Ok(());
    };
    for family in [Family::V4, Family::V6] {
        let Some(pool) = net.pool(family) else {
            continue;
        };
        match access.address(family) {
            Some(ip) => reserve_in_subnet(store, &pool, ip, HOST_ACCESS_OWNER)
                .map_err(|e| Error::Conflict(format!("host access address: {e}")))?,
            None => {
                allocate(store, &pool, HOST_ACCESS_OWNER)?;
            }
        }
    }
    Ok(())
}

fn update_endpoint_addresses(conn: &Connection, ep: &Endpoint) -> Result<(), Error> {
    conn.prepare_cached("UPDATE endpoints SET ipv4 = ?2, ipv6 = ?3 WHERE id = ?1")?
        .execute(params![
            ep.id,
            ep.ipv4.map(|ip| ip.to_string()),
            ep.ipv6.map(|ip| ip.to_string()),
        ])?;
    Ok(())
}

/// An address conflict detection found live on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictMark {
    /// The MAC that answered for it.
    pub mac: String,
    /// When, in Unix seconds.
    pub since: u64,
}

impl ConflictMark {
    /// The mark behind a reservation owner, if it is one.
    pub fn parse(owner: &str) -> Option<ConflictMark> {
        let (mac, since) = owner.strip_prefix(CONFLICT_PREFIX)?.rsplit_once('@')?;
        Some(ConflictMark {
            mac: mac.to_string(),
            since: since.parse().ok()?,
        })
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Columns added after the first schema, for databases made by an older underlay: (name, SQL
/// type and default).
const LATER_COLUMNS: &[(&str, &str)] = &[
    ("handoff", "INTEGER NOT NULL DEFAULT 0"),
    ("runtime_id", "TEXT"),
    ("since", "INTEGER NOT NULL DEFAULT 0"),
];

fn add_missing_columns(conn: &Connection) -> Result<(), Error> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('endpoints')")?;
    let have: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, kind) in LATER_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE endpoints ADD COLUMN {name} {kind};"))?;
        }
    }
    Ok(())
}

fn insert_endpoint(conn: &Connection, ep: &Endpoint) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO endpoints (id, network_id, name, phase, netns, netns_dev, netns_ino, ifname, tmp_ifname, mac, ipv4, ipv6, handoff, runtime_id, since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        ep.id,
        ep.network_id,
        ep.name,
        ep.phase.as_str(),
        ep.netns,
        ep.netns_id.0 as i64,
        ep.netns_id.1 as i64,
        ep.ifname.as_str(),
        ep.tmp_ifname.as_str(),
        ep.mac.to_string(),
        ep.ipv4.map(|ip| ip.to_string()),
        ep.ipv6.map(|ip| ip.to_string()),
        ep.handoff,
        ep.runtime_id,
        ep.since as i64,
    ])?;
    Ok(())
}

/// Rewrites "in use by <endpoint id>" into the endpoint's name and network.
fn name_the_owner(conn: &Connection, err: IpamError) -> Error {
    let IpamError::InUse { ip, owner } = &err else {
        return err.into();
    };
    let named: Option<(String, String)> = conn
        .query_row(
            "SELECT e.name, n.name FROM endpoints e JOIN networks n ON n.id = e.network_id WHERE e.id = ?1",
            [owner],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .ok()
        .flatten();
    if let Some(mark) = ConflictMark::parse(owner) {
        return Error::Conflict(format!(
            "address {ip} was found in use on the LAN (answered by {}); `underlay gc` forgets such marks after an hour",
            mark.mac
        ));
    }
    match named {
        Some((endpoint, network)) => Error::Conflict(format!(
            "address {ip} is already in use by endpoint {endpoint} on network {network}"
        )),
        None => Error::Conflict(format!("address {ip} is already in use by {owner}")),
    }
}

fn network_from_row(row: &Row) -> rusqlite::Result<Result<Network, Error>> {
    let spec: String = row.get(2)?;
    let spec: Result<NetworkSpec, _> = serde_json::from_str(&spec);
    Ok(match spec {
        Ok(spec) => Ok(Network {
            id: row.get(0)?,
            created: row.get(1)?,
            spec,
        }),
        Err(e) => Err(Error::State(format!("corrupt network definition: {e}"))),
    })
}

fn endpoint_from_row(row: &Row) -> rusqlite::Result<Result<Endpoint, Error>> {
    let text = |name: &str| -> rusqlite::Result<String> { row.get(name) };
    let ip = |name: &str| -> rusqlite::Result<Option<IpAddr>> {
        Ok(row
            .get::<_, Option<String>>(name)?
            .and_then(|s| s.parse().ok()))
    };
    let phase = text("phase")?;
    let parsed = (|| -> Result<Endpoint, Error> {
        Ok(Endpoint {
            id: text("id")?,
            network_id: text("network_id")?,
            name: text("name")?,
            phase: Phase::parse(&phase)
                .ok_or_else(|| Error::State(format!("unknown endpoint phase {phase:?}")))?,
            netns: text("netns")?,
            netns_id: (
                row.get::<_, i64>("netns_dev")? as u64,
                row.get::<_, i64>("netns_ino")? as u64,
            ),
            ifname: text("ifname")?.parse()?,
            tmp_ifname: text("tmp_ifname")?.parse()?,
            mac: text("mac")?.parse()?,
            ipv4: ip("ipv4")?,
            ipv6: ip("ipv6")?,
            handoff: row.get("handoff")?,
            runtime_id: row.get("runtime_id")?,
            since: row.get::<_, i64>("since")? as u64,
        })
    })();
    Ok(parsed)
}

/// The current time as RFC 3339 UTC (`2026-11-22T07:30:00Z`), without a date crate.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
