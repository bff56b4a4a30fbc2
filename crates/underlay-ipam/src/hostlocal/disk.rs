//! One locked operation on a network directory: the flock, the index (validated or rebuilt),
//! the reference-format file writes, and the counters behind [`OpStats`].
//!
//! # Why the index is safe next to the reference plugin
//!
//! The reference changes the set of reservations only by creating and deleting files in the
//! network directory, which updates the directory's mtime, and always under the same flock.
//! The index records the directory's device, inode and mtime as they were once this operation
//! had made its last change (the index's own rename included), so an index whose recorded
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

use super::index::{DirStamp, Index, Owner};
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
    pub stats: OpStats,
}

impl Session {
    /// Takes the network's lock and loads (or rebuilds) the index.
    pub fn begin(dir: &Path) -> Result<Session, HostLocalError> {
        let mut stats = OpStats::default();
        let lock_path = dir.join(LOCK_FILE);
        stats.files_opened += 1;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&lock_path)
            .map_err(io_error("open the lock file", &lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error("lock", &lock_path)(errno.into()))?;
        let mut session = Session {
            dir: dir.to_path_buf(),
            _lock: lock,
            index: Index::default(),
            dirty: false,
            stats,
        };
        let stamp = session.dir_stamp()?;
        match session.load_index(stamp) {
            Some(index) => session.index = index,
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
    fn load_index(&mut self, dir: DirStamp) -> Option<Index> {
        let path = self.dir.join(INDEX_FILE);
        self.stats.files_opened += 1;
        let mut file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let mut text = String::with_capacity(meta.len() as usize + 1);
        file.read_to_string(&mut text).ok()?;
        self.stats.files_read += 1;
        self.stats.bytes_read += text.len() as u64;
        let (index, recorded) = Index::decode(&text)?;
        let settled = (meta.mtime(), meta.mtime_nsec()) > recorded.mtime;
        (recorded == dir && settled).then_some(index)
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
                    self.index.entries.insert(ip, Owner::parse(&content));
                    self.dirty = true;
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
        self.index.entries.insert(ip, owner.clone());
        Ok(true)
    }

    /// Deletes `ip`'s file (already gone is fine).
    pub fn remove(&mut self, ip: IpAddr) -> Result<(), HostLocalError> {
        let path = self.dir.join(go_ip_string(ip));
        self.dirty = true;
        self.index.entries.remove(&ip);
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
            .truncate(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io_error("open", &path))?;
        file.write_all(text.as_bytes())
            .map_err(io_error("write", &path))?;
        self.stats.files_written += 1;
        self.stats.bytes_written += text.len() as u64;
        // Creating the file the first time changes the directory: the index must be rewritten.
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

    /// Writes the body to a temporary file, renames it into place, reads the directory's
    /// stamp (every change of this operation is done), appends the stamp line and holds on
    /// until the file-system clock has ticked past the stamp. Returns whether it did.
    fn write_index(&mut self) -> io::Result<bool> {
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
        let line = self.index.stamp_line(&body, stamp);
        file.write_all(line.as_bytes())?;
        self.stats.files_written += 1;
        self.stats.bytes_written += (body.len() + line.len()) as u64;
        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            let meta = file.metadata()?;
            if (meta.mtime(), meta.mtime_nsec()) > stamp.mtime {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_micros(250));
            self.stats.settle_probes += 1;
            futimens(&file, &TimeSpec::UTIME_OMIT, &TimeSpec::UTIME_NOW)?;
        }
    }
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
