//! Reservations in SQLite, inside the caller's transaction.
//!
//! The store borrows a connection (usually a `rusqlite::Transaction`), so that reserving
//! addresses and recording the endpoint that holds them commit together or not at all.

use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension};

use crate::pool::MAX_DYNAMIC_OFFSET;
use crate::{Reservation, Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ipam_reservations (
    pool  TEXT NOT NULL,
    ip    TEXT NOT NULL,
    -- offset in the subnet when below 2^62 (the allocator's window), else NULL
    off   INTEGER,
    owner TEXT NOT NULL,
    PRIMARY KEY (pool, ip)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ipam_reservations_off ON ipam_reservations (pool, off);
CREATE INDEX IF NOT EXISTS ipam_reservations_owner ON ipam_reservations (pool, owner);
-- Lowest offset that may be free: every offset of the window below it is reserved. It keeps
-- first-free allocation O(1) as a pool fills instead of scanning the reserved prefix.
CREATE TABLE IF NOT EXISTS ipam_next_free (
    pool TEXT PRIMARY KEY,
    off  INTEGER NOT NULL
) WITHOUT ROWID;
";

/// A [`Store`] over a SQLite connection or transaction.
pub struct SqliteStore<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteStore<'c> {
    /// Creates the tables if needed.
    pub fn create_schema(conn: &Connection) -> Result<(), StoreError> {
        conn.execute_batch(SCHEMA)?;
        Ok(())
    }

    pub fn new(conn: &'c Connection) -> Self {
        SqliteStore { conn }
    }

    fn next_free_hint(&self, pool: &str) -> Result<Option<u128>, StoreError> {
        let off: Option<i64> = self
            .conn
            .prepare_cached("SELECT off FROM ipam_next_free WHERE pool = ?1")?
            .query_row([pool], |row| row.get(0))
            .optional()?;
        Ok(off.map(|o| o as u128))
    }

    fn set_next_free_hint(&self, pool: &str, off: u128) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO ipam_next_free (pool, off) VALUES (?1, ?2)")?
            .execute(params![pool, off as i64])?;
        Ok(())
    }

    fn is_offset_reserved(&self, pool: &str, off: u128) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM ipam_reservations WHERE pool = ?1 AND off = ?2")?
            .exists(params![pool, off as i64])?)
    }

    /// The first offset at or after `from` (and up to `hi + 1`) whose address is free, given
    /// that `from` itself is taken.
    fn first_gap_after(
        &self,
        pool: &str,
        from: u128,
        hi: u128,
    ) -> Result<Option<u128>, StoreError> {
        let gap: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT a.off + 1 FROM ipam_reservations a
                 WHERE a.pool = ?1 AND a.off >= ?2 AND a.off <= ?3
                   AND NOT EXISTS (SELECT 1 FROM ipam_reservations b
                                   WHERE b.pool = ?1 AND b.off = a.off + 1)
                 ORDER BY a.off LIMIT 1",
            )?
            .query_row(params![pool, from as i64, hi as i64], |row| row.get(0))
            .optional()?;
        Ok(gap.map(|g| g as u128).filter(|g| *g <= hi))
    }
}

impl Store for SqliteStore<'_> {
    fn reserve(
        &mut self,
        pool: &str,
        ip: IpAddr,
        offset: u128,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let off = (offset < MAX_DYNAMIC_OFFSET).then_some(offset as i64);
        let inserted = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO ipam_reservations (pool, ip, off, owner) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![pool, ip.to_string(), off, owner])?;
        Ok(inserted == 1)
    }

    fn owner_of(&mut self, pool: &str, ip: IpAddr) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT owner FROM ipam_reservations WHERE pool = ?1 AND ip = ?2")?
            .query_row(params![pool, ip.to_string()], |row| row.get(0))
            .optional()?)
    }

    fn first_free(&mut self, pool: &str, lo: u128, hi: u128) -> Result<Option<u128>, StoreError> {
        let hint = self.next_free_hint(pool)?.unwrap_or(lo);
        let start = hint.max(lo);
        if start > hi {
            return Ok(None);
        }
        let free = if self.is_offset_reserved(pool, start)? {
            self.first_gap_after(pool, start, hi)?
        } else {
            Some(start)
        };
        // Everything from `start` up to the gap is reserved, so the gap is the new hint.
        if let Some(free) = free {
            if lo <= hint {
                self.set_next_free_hint(pool, free)?;
            }
        }
        Ok(free)
    }

    fn release_owner(&mut self, pool: &str, owner: &str) -> Result<Vec<IpAddr>, StoreError> {
        let released: Vec<(String, Option<i64>)> = self
            .conn
            .prepare_cached(
                "DELETE FROM ipam_reservations WHERE pool = ?1 AND owner = ?2 RETURNING ip, off",
            )?
            .query_map(params![pool, owner], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if let Some(lowest) = released.iter().filter_map(|(_, off)| *off).min() {
            if self
                .next_free_hint(pool)?
                .is_some_and(|hint| (lowest as u128) < hint)
            {
                self.set_next_free_hint(pool, lowest as u128)?;
            }
        }
        released
            .into_iter()
            .map(|(ip, _)| {
                ip.parse()
                    .map_err(|_| StoreError(format!("corrupt address {ip:?} in pool {pool}")))
            })
            .collect()
    }

    fn release_pool(&mut self, pool: &str) -> Result<usize, StoreError> {
        self.conn
            .prepare_cached("DELETE FROM ipam_next_free WHERE pool = ?1")?
            .execute([pool])?;
        Ok(self
            .conn
            .prepare_cached("DELETE FROM ipam_reservations WHERE pool = ?1")?
            .execute([pool])?)
    }

    fn reservations(&mut self, pool: &str) -> Result<Vec<Reservation>, StoreError> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached("SELECT ip, owner FROM ipam_reservations WHERE pool = ?1")?
            .query_map([pool], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = rows
            .into_iter()
            .map(|(ip, owner)| {
                let ip = ip
                    .parse()
                    .map_err(|_| StoreError(format!("corrupt address {ip:?} in pool {pool}")))?;
                Ok(Reservation { ip, owner })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|r| r.ip);
        Ok(out)
    }
}
