//! One locked operation on a network directory: the flock, the index (validated or rebuilt),
//! the reference-format file writes, and the counters behind [`OpStats`].
//!
//! # Why the index is safe next to the reference plugin
//!
//! The reference changes the set of reservations only by creating and deleting files in the
//! network directory, which updates the directory's mtime, and always under the same flock.
//! The index records the directory's device, inode and mtime as they were once this operation
//! had made its last change (the rename of a rewritten index included; an appended index
//! changes no directory entry), so an index whose recorded
//! stamp still equals the directory's describes the directory exactly -- provided that no later
//! change could have received the same mtime. File systems stamp changes with a clock that
//! ticks coarsely (a few milliseconds, or even a second), so a change made right after ours, in
//! the same tick, would leave the mtime untouched. To rule that out the writer keeps the lock
//! until the file system's clock has moved past the recorded mtime, and proves it by touching
//! the index (`futimens(UTIME_NOW)`, the same clock and granularity as directory changes)
//! until the index's own mtime is later than the recorded one. Every change made after the
//! lock is released therefore gets a later mtime. A reader uses the index only when the stamp
//! matches AND the index's mtime is later than the stamp; otherwise (no index, torn or foreign
//! content, a crash before the proof, a file system whose clock did not tick within
//! [`SETTLE_LIMIT`], the reference's GC having deleted the file) it rebuilds the index with one
//! directory scan, like the reference reads the directory on every operation. On kernels
//! with multigrain timestamps (Linux 6.13+: ext4, xfs, btrfs, tmpfs) the first probe already
//! succeeds, since querying a timestamp makes the next change fine-grained; elsewhere the wait
//! is at most one clock tick, with the lock held.
//!
//! Not covered: a file rewritten in place without being deleted and re-created (the reference
//! never does that; an administrator editing a reservation file would), and a wall clock set
//! back to exactly the recorded mtime. Only local file systems with working flock are meant.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::futimens;
use nix::sys::time::TimeSpec;

use super::index::{chunk_hash, compaction_due, Change, DirStamp, Index, Owner, HASH_SEED};
use super::range::go_ip_string;
use super::{HostLocalError, OpStats};

/// The lock file the reference creates in the network directory and flocks.
pub(crate) const LOCK_FILE: &str = "lock";
/// Prefix of the reference's round-robin cursor files, `last_reserved_ip.<range set index>`.
pub(crate) const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Our sidecar index. Not an address, so the reference never takes it for a reservation.
pub(crate) const INDEX_FILE: &str = ".underlay-hostlocal.index";
const INDEX_TMP: &str = ".underlay-hostlocal.index.tmp";
/// How long a writer waits, holding the lock, for the file-system clock to tick past the
/// directory's mtime. Ticks are at most 10 ms on Linux (HZ=100); a file system with a coarser
/// clock (one-second timestamps) falls back to rebuilding the index on every operation.
pub(crate) const SETTLE_LIMIT: Duration = Duration::from_millis(40);

/// Mode of the files we create (the reference's current mode).
const FILE_MODE: u32 = 0o600;

pub(crate) struct Session {
    dir: PathBuf,
    _lock: Flock<File>,
    pub index: Index,
    /// The index on disk does not describe the directory (rebuilt, or changed since).
    dirty: bool,
    /// The index file as loaded, when it was valid: what an append continues from.
    loaded: Option<Loaded>,
    /// Reservations made and released by this operation, in order.
    changes: Vec<Change>,
    pub stats: OpStats,
}

/// What an append to the loaded index file needs.
struct Loaded {
    /// The checksum of its last stamp.
    hash: u64,
    /// Changes already appended after its snapshot.
    appended: usize,
}

impl Session {
    /// Takes the network's lock and loads (or rebuilds) the index.
    pub fn begin(dir: &Path) -> Result<Session, HostLocalError> {
        let mut stats = OpStats::default();
        let lock_path = dir.join(LOCK_FILE);
        stats.files_opened += 1;
        let file = create_lock_file(dir)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error("lock", &lock_path)(errno.into()))?;
        let mut session = Session {
            dir: dir.to_path_buf(),
            _lock: lock,
            index: Index::default(),
            dirty: false,
            loaded: None,
            changes: Vec::new(),
            stats,
        };
        let stamp = session.dir_stamp()?;
        match session.load_index(stamp) {
            Some((index, loaded)) => {
                session.index = index;
                session.loaded = Some(loaded);
            }
            None => session.rebuild()?,
        }
        Ok(session)
    }

    fn dir_stamp(&self) -> Result<DirStamp, HostLocalError> {
        let meta = fs::metadata(&self.dir).map_err(io_error("stat", &self.dir))?;
        Ok(DirStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }

    /// The index file, if it exists, is intact, was made for this very directory state and
    /// carries the proof that the clock had ticked past that state before the lock was freed.
    fn load_index(&mut self, dir: DirStamp) -> Option<(Index, Loaded)> {
        let path = self.dir.join(INDEX_FILE);
        self.stats.files_opened += 1;
        let mut file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let mut text = String::with_capacity(meta.len() as usize + 1);
        file.read_to_string(&mut text).ok()?;
        self.stats.files_read += 1;
        self.stats.bytes_read += text.len() as u64;
        let decoded = Index::decode(&text)?;
        let settled = (meta.mtime(), meta.mtime_nsec()) > decoded.stamp.mtime;
        let loaded = Loaded {
            hash: decoded.hash,
            appended: decoded.appended,
        };
        (decoded.stamp == dir && settled).then_some((decoded.index, loaded))
    }

    /// One scan of the directory: every file named by an address in its canonical text form
    /// is a reservation (which is exactly what the reference's `O_EXCL` creates collide with).
    fn rebuild(&mut self) -> Result<(), HostLocalError> {
        self.stats.dir_scans += 1;
        self.stats.index_rebuilt = true;
        let mut index = Index::default();
        let entries = fs::read_dir(&self.dir).map_err(io_error("read directory", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_error("read directory", &self.dir))?;
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(reservation_name) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            self.stats.files_opened += 1;
            let content = match fs::read(&path) {
                Ok(content) => content,
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(io_error("read", &path)(err)),
            };
            self.stats.files_read += 1;
            self.stats.bytes_read += content.len() as u64;
            index.entries.insert(ip, Owner::parse(&content));
        }
        self.index = index;
        self.dirty = true;
        Ok(())
    }

    /// Creates `ip`'s file with `O_CREAT|O_EXCL` and writes the owner in the reference's
    /// format. `Ok(false)` when the file already exists (it is then added to the index).
    pub fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool, HostLocalError> {
        let path = self.dir.join(go_ip_string(ip));
        self.stats.files_opened += 1;
        self.stats.excl_creates += 1;
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                // Only possible when something wrote the directory without the lock: learn who.
                self.stats.files_opened += 1;
                if let Ok(content) = fs::read(&path) {
                    self.stats.files_read += 1;
                    self.record(Change::Reserved(ip, Owner::parse(&content)));
                }
                return Ok(false);
            }
            Err(err) => return Err(io_error("create", &path)(err)),
        };
        self.dirty = true;
        let content = owner.content();
        if let Err(err) = file.write_all(content.as_bytes()) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_error("write", &path)(err));
        }
        self.stats.files_written += 1;
        self.stats.bytes_written += content.len() as u64;
        self.record(Change::Reserved(ip, owner.clone()));
        Ok(true)
    }

    /// Applies a change to the index and remembers it for the append.
    fn record(&mut self, change: Change) {
        match &change {
            Change::Reserved(ip, owner) => self.index.entries.insert(*ip, owner.clone()),
            Change::Released(ip) => self.index.entries.remove(ip),
        };
        self.changes.push(change);
        self.dirty = true;
    }

    /// Deletes `ip`'s file (already gone is fine).
    pub fn remove(&mut self, ip: IpAddr) -> Result<(), HostLocalError> {
        let path = self.dir.join(go_ip_string(ip));
        self.record(Change::Released(ip));
        self.stats.files_removed += 1;
        match fs::remove_file(&path) {
            Err(err) if err.kind() != ErrorKind::NotFound => Err(io_error("remove", &path)(err)),
            _ => Ok(()),
        }
    }

    /// The content of `last_reserved_ip.<range_set>`, when it holds an address.
    pub fn last_reserved(&mut self, range_set: usize) -> Option<IpAddr> {
        self.stats.files_opened += 1;
        let text = fs::read_to_string(self.dir.join(last_reserved_name(range_set))).ok()?;
        self.stats.files_read += 1;
        self.stats.bytes_read += text.len() as u64;
        text.trim().parse().ok()
    }

    /// Writes `last_reserved_ip.<range_set>` like the reference (the bare address text).
    ///
    /// Written over in place and then cut to length rather than opened with `O_TRUNC`: ext4
    /// flushes a file truncated to zero when it is closed (`auto_da_alloc`, meant for editors
    /// that rewrite a file without fsync), which would cost a disk write on every ADD.
    pub fn set_last_reserved(
        &mut self,
        range_set: usize,
        ip: IpAddr,
    ) -> Result<(), HostLocalError> {
        let path = self.dir.join(last_reserved_name(range_set));
        let text = go_ip_string(ip);
        self.stats.files_opened += 1;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io_error("open", &path))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.set_len(text.len() as u64))
            .map_err(io_error("write", &path))?;
        self.stats.files_written += 1;
        self.stats.bytes_written += text.len() as u64;
        // Creating the file the first time changes the directory: the index must be stamped.
        self.dirty = true;
        Ok(())
    }

    /// Writes the index back if it changed, then frees the lock. The index is a cache: a
    /// failure here costs the next operation a rebuild, never a wrong answer, so it is not an
    /// error of the operation.
    pub fn finish(mut self) -> OpStats {
        if self.dirty {
            let started = Instant::now();
            self.stats.index_settled = self.write_index().unwrap_or(false);
            self.stats.settle_wait = started.elapsed();
        }
        self.stats
    }

    /// Appends this operation's changes and stamp to the loaded index, or rewrites it as a
    /// snapshot when there is nothing valid to append to or the appended lines have grown past
    /// the snapshot. Returns whether the stamp was proven (see the module documentation).
    fn write_index(&mut self) -> io::Result<bool> {
        match self.loaded.take() {
            Some(loaded)
                if !compaction_due(
                    loaded.appended + self.changes.len(),
                    self.index.entries.len(),
                ) =>
            {
                self.append_index(&loaded)
            }
            _ => self.rewrite_index(),
        }
    }

    /// One `write` at the end of the index: no new inode, no rename, O(1) bytes. The
    /// directory is unchanged by it, so its stamp is read first.
    fn append_index(&mut self, loaded: &Loaded) -> io::Result<bool> {
        let path = self.dir.join(INDEX_FILE);
        self.stats.files_opened += 1;
        let mut file = match OpenOptions::new().append(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return self.rewrite_index(),
            Err(err) => return Err(err),
        };
        let lines = Index::encode_changes(&self.changes);
        let stamp = self.dir_stamp().map_err(io::Error::other)?;
        let hash = chunk_hash(loaded.hash, lines.as_bytes());
        let record = format!("{lines}{}", self.index.stamp_line(hash, stamp));
        file.write_all(record.as_bytes())?;
        self.stats.files_written += 1;
        self.stats.bytes_written += record.len() as u64;
        self.settle(&file, stamp)
    }

    /// Writes the snapshot to a temporary file, renames it into place, reads the directory's
    /// stamp (every change of this operation is done), appends the stamp line and holds on
    /// until the file-system clock has ticked past the stamp.
    fn rewrite_index(&mut self) -> io::Result<bool> {
        let tmp = self.dir.join(INDEX_TMP);
        let body = self.index.encode_body();
        self.stats.files_opened += 1;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        file.write_all(body.as_bytes())?;
        fs::rename(&tmp, self.dir.join(INDEX_FILE))?;
        let stamp = self.dir_stamp().map_err(io::Error::other)?;
        let line = self
            .index
            .stamp_line(chunk_hash(HASH_SEED, body.as_bytes()), stamp);
        // Querying the index's timestamps before writing to it makes a multigrain kernel give
        // that write a fine-grained mtime, later than the directory's: the proof in `settle`
        // then holds at the first look instead of after a sleep.
        file.metadata()?;
        file.write_all(line.as_bytes())?;
        self.stats.files_written += 1;
        self.stats.bytes_written += (body.len() + line.len()) as u64;
        self.settle(&file, stamp)
    }

    /// Holds on (with the lock) until the index's mtime is later than the directory's
    /// `stamp`, touching it to move it on; `false` when that took longer than
    /// [`SETTLE_LIMIT`].
    ///
    /// The first touch comes without a sleep: a multigrain kernel stamps a change with the
    /// coarse clock, which may equal the directory's mtime, unless the file's timestamps were
    /// queried since its last change and the coarse clock has not moved past them -- which the
    /// look just before makes true, so the touch gets a fine-grained, later mtime.
    fn settle(&mut self, file: &File, stamp: DirStamp) -> io::Result<bool> {
        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            let meta = file.metadata()?;
            if (meta.mtime(), meta.mtime_nsec()) > stamp.mtime {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            if self.stats.settle_probes > 0 {
                std::thread::sleep(Duration::from_micros(250));
            }
            self.stats.settle_probes += 1;
            futimens(file, &TimeSpec::UTIME_OMIT, &TimeSpec::UTIME_NOW)?;
        }
    }
}

/// Under the lock, whether one of the reservation files of `ips` names an owner for which
/// `wanted` holds (the index is not needed for that: the files are the truth).
pub(crate) fn any_owner_of(
    dir: &Path,
    ips: &[IpAddr],
    wanted: &dyn Fn(&Owner) -> bool,
) -> Result<(bool, OpStats), HostLocalError> {
    let lock_path = dir.join(LOCK_FILE);
    let _lock = Flock::lock(create_lock_file(dir)?, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io_error("lock", &lock_path)(errno.into()))?;
    let mut stats = OpStats {
        files_opened: 1,
        ..OpStats::default()
    };
    for ip in ips {
        let path = dir.join(go_ip_string(*ip));
        stats.files_opened += 1;
        let content = match fs::read(&path) {
            Ok(content) => content,
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error("read", &path)(err)),
        };
        stats.files_read += 1;
        stats.bytes_read += content.len() as u64;
        if wanted(&Owner::parse(&content)) {
            return Ok((true, stats));
        }
    }
    Ok((false, stats))
}

/// Opens the network's lock file, creating it if needed.
pub(crate) fn create_lock_file(dir: &Path) -> Result<File, HostLocalError> {
    let path = dir.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(io_error("open the lock file", &path))
}

/// The address a directory entry reserves: its name must be an address in the exact text the
/// reference would give it.
pub(crate) fn reservation_name(name: &str) -> Option<IpAddr> {
    let ip: IpAddr = name.parse().ok()?;
    (go_ip_string(ip) == name).then_some(ip)
}

pub(crate) fn last_reserved_name(range_set: usize) -> String {
    format!("{LAST_RESERVED_PREFIX}{range_set}")
}

pub(crate) fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> HostLocalError + 'a {
    move |source| HostLocalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HostLocal, Range};
    use super::*;

    fn range() -> [Range; 1] {
        [Range::new("10.0.0.0/22".parse().unwrap())]
    }

    #[test]
    fn operations_append_to_the_index_until_it_is_compacted() {
        let data = tempfile::TempDir::new().unwrap();
        let net = HostLocal::open(data.path(), "net1").unwrap();
        let index = net.dir().join(INDEX_FILE);
        for i in 0..100 {
            net.allocate(0, &range(), &format!("c{i}"), "eth0", None)
                .unwrap();
        }
        let before = fs::metadata(&index).unwrap();
        net.allocate(0, &range(), "appended", "eth0", None).unwrap();
        let stats = net.last_op_stats();
        assert!(!stats.index_rebuilt && stats.index_settled, "{stats:?}");
        // The new reservation's file, the cursor, one appended line and a stamp: a few dozen
        // bytes although 101 addresses are held.
        assert!(stats.bytes_written < 150, "{stats:?}");
        let after = fs::metadata(&index).unwrap();
        assert_eq!(before.ino(), after.ino(), "appended, not replaced");
        assert!(after.len() > before.len());
        // Releases append too; the index read back is the directory's content.
        assert_eq!(net.release("c7", "eth0").unwrap().len(), 1);
        assert_eq!(fs::metadata(&index).unwrap().ino(), after.ino());
        let held = net.reservations().unwrap();
        assert!(!net.last_op_stats().index_rebuilt);
        assert_eq!(held.len(), 100);
        assert!(!held.iter().any(|r| r.container_id == "c7"));
        // Once the appended lines outnumber twice the reservations, the index is a snapshot
        // again.
        for i in 0..150 {
            net.release(&format!("c{i}"), "eth0").unwrap();
            net.allocate(0, &range(), &format!("d{i}"), "eth0", None)
                .unwrap();
        }
        let compacted = fs::read_to_string(&index).unwrap();
        let decoded = Index::decode(&compacted).unwrap();
        assert!(decoded.appended <= 2 * 101, "{}", decoded.appended);
        assert_ne!(fs::metadata(&index).unwrap().ino(), after.ino());
        assert_eq!(decoded.index.entries.len(), 1 + 150, "appended + d0..d149");
    }

    #[test]
    fn a_reference_change_between_appends_is_seen() {
        let data = tempfile::TempDir::new().unwrap();
        let net = HostLocal::open(data.path(), "net1").unwrap();
        net.allocate(0, &range(), "a", "eth0", None).unwrap();
        net.allocate(0, &range(), "b", "eth0", None).unwrap();
        // The reference reserves 10.0.0.4 and deletes b's file, under the lock.
        {
            let _lock = Flock::lock(
                create_lock_file(net.dir()).unwrap(),
                FlockArg::LockExclusive,
            )
            .unwrap();
            fs::write(net.dir().join("10.0.0.4"), "ref\r\neth0").unwrap();
            fs::remove_file(net.dir().join("10.0.0.3")).unwrap();
        }
        let got = net.allocate(0, &range(), "c", "eth0", None).unwrap();
        assert!(net.last_op_stats().index_rebuilt);
        assert_eq!(
            got.to_string(),
            "10.0.0.5",
            "after the reference's 10.0.0.4"
        );
        let held: Vec<String> = net
            .reservations()
            .unwrap()
            .into_iter()
            .map(|r| r.container_id)
            .collect();
        assert_eq!(held, ["a", "ref", "c"]);
    }

    #[test]
    fn check_reads_the_expected_file_and_falls_back_to_the_index() {
        let data = tempfile::TempDir::new().unwrap();
        let net = HostLocal::open(data.path(), "net1").unwrap();
        let a = net.allocate(0, &range(), "a", "eth0", None).unwrap();
        let b = net.allocate(0, &range(), "b", "eth0", None).unwrap();
        fs::write(net.dir().join("10.0.0.9"), "old").unwrap();
        assert!(net.holds("a", "eth0", &[a]).unwrap());
        let quick = net.last_op_stats();
        assert_eq!((quick.files_opened, quick.files_read), (2, 1), "{quick:?}");
        // prevResult names another's address: the index answers (a still holds one).
        assert!(net.holds("a", "eth0", &[b]).unwrap());
        assert!(net.last_op_stats().files_opened > 2);
        assert!(!net.holds("a", "eth1", &[a]).unwrap());
        assert!(!net.holds("c", "eth0", &[a, b]).unwrap());
        // A legacy ID-only reservation counts for any interface of its container.
        let old = "10.0.0.9".parse().unwrap();
        assert!(net.holds("old", "eth3", &[old]).unwrap());
        assert!(net.holds("old", "eth3", &[]).unwrap());
    }

    #[test]
    fn an_index_of_the_earlier_format_is_rebuilt_not_trusted() {
        let data = tempfile::TempDir::new().unwrap();
        let net = HostLocal::open(data.path(), "net1").unwrap();
        net.allocate(0, &range(), "a", "eth0", None).unwrap();
        // What the first release wrote: a whole snapshot, a byte-wise checksum, version 1.
        let v1 = "underlay-hostlocal-index 1\n10.0.0.2 a eth0\nstamp 1 2 3 4 1 0123456789abcdef\n";
        fs::write(net.dir().join(INDEX_FILE), v1).unwrap();
        fs::write(net.dir().join("10.0.0.3"), "ref\r\neth0").unwrap();
        assert_eq!(
            net.allocate(0, &range(), "b", "eth0", None)
                .unwrap()
                .to_string(),
            "10.0.0.4"
        );
        assert!(net.last_op_stats().index_rebuilt);
        let text = fs::read_to_string(net.dir().join(INDEX_FILE)).unwrap();
        assert!(text.starts_with("underlay-hostlocal-index 2\n"), "{text}");
        assert_eq!(net.reservations().unwrap().len(), 3);
        assert!(!net.last_op_stats().index_rebuilt);
    }
}
