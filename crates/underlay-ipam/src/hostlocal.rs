//! The CNI reference `host-local` IPAM plugin's on-disk store, read and written exactly.
//!
//! A host can move from the reference plugins (containernetworking/plugins,
//! `plugins/ipam/host-local`, `backend/disk`) to underlay and back without losing an
//! allocation, and both may even run side by side on one directory. The format, in
//! `<dataDir>/<network name>/` (`dataDir` defaults to [`DEFAULT_DATA_DIR`]):
//!
//! - one file per reserved address, named by the address's text (Go's `net.IP.String()`:
//!   canonical compressed IPv6), holding `<containerID>\r\n<ifname>` -- or only `<containerID>`
//!   when written by versions before CNI 0.7, which are read as well;
//! - `last_reserved_ip.<i>`: the last address reserved in range set `i` (the index of the range
//!   set in the configuration's `ranges`), where round-robin allocation resumes;
//! - `lock`, flocked exclusively for the whole of every operation.
//!
//! Reserving creates the address's file with `O_CREAT|O_EXCL`, so two allocators can never take
//! one address; releasing deletes it.
//!
//! Unlike the reference, an ADD does not read every reservation file: a sidecar index
//! (`.underlay-hostlocal.index`, validated against the directory's mtime and rebuilt by one scan
//! when the reference or anything else changed the directory) keeps the cost of an ADD flat as
//! the network fills. See `disk.rs` for why that is safe with the reference writing the same
//! directory, and [`OpStats`] for the counts.
//!
//! Differences from the reference, all on purpose:
//!
//! - ADD for an attachment (container ID + ifname) that already holds an address of the range
//!   set returns that address (the reference fails with "duplicate allocation"). A request for
//!   a specific address the attachment already holds returns it as well; a request for another
//!   address fails naming the one held. Legacy ID-only reservations are never returned by ADD
//!   (they cannot say which interface they belong to), but DEL and GC honour them like the
//!   reference does.
//! - Only files named by an address (in canonical form) count as reservations; the reference's
//!   DEL and GC also look at any other file in the directory.
//! - Range validation is stricter: `rangeStart`/`rangeEnd` may not be the network or IPv4
//!   broadcast address, and `rangeStart` may not come after `rangeEnd`.

mod disk;
mod index;
mod range;
mod store;

use std::collections::HashSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub use range::{go_ip_string, Range};
pub use store::HostLocalStore;

use disk::{io_error, Session};
use index::Owner;
use range::RangeSet;

use crate::Pool;

/// Where the reference plugin keeps its networks by default.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// Why a host-local operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostLocalError {
    #[error("invalid network name {name:?}: {reason}")]
    InvalidNetworkName { name: String, reason: &'static str },
    #[error("invalid range {range}: {reason}")]
    InvalidRange { range: String, reason: String },
    #[error("invalid range set {index}: {reason}")]
    InvalidRangeSet { index: usize, reason: String },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidAttachment {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("requested address {ip} is not in range set {index} ({ranges})")]
    OutsideRanges {
        ip: IpAddr,
        index: usize,
        ranges: String,
    },
    #[error("requested address {ip} is the gateway of {subnet}")]
    Gateway { ip: IpAddr, subnet: String },
    #[error("address {ip} is already in use by {holder}")]
    InUse { ip: IpAddr, holder: String },
    #[error(
        "container {container_id} interface {ifname} already holds {held} in range set {index}; \
         release it before requesting {requested}"
    )]
    AlreadyAllocated {
        container_id: String,
        ifname: String,
        held: IpAddr,
        requested: IpAddr,
        index: usize,
    },
    #[error("no free address left in range set {index} ({ranges})")]
    Exhausted { index: usize, ranges: String },
    #[error("{action} {path}: {source}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A reservation as the directory records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostLocalReservation {
    pub ip: IpAddr,
    pub container_id: String,
    /// `None` for a legacy reservation, written before the reference recorded the interface.
    pub ifname: Option<String>,
}

/// What the last operation of a [`HostLocal`] cost in file-system calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Files opened (the lock, the index, `last_reserved_ip.*`, reservation files,
    /// `O_EXCL` attempts that failed included).
    pub files_opened: u32,
    /// Files whose content was read.
    pub files_read: u32,
    /// Files written.
    pub files_written: u32,
    /// `O_CREAT|O_EXCL` attempts on reservation files.
    pub excl_creates: u32,
    /// Reservation files deleted.
    pub files_removed: u32,
    /// Directory scans (only when the index had to be rebuilt).
    pub dir_scans: u32,
    /// Whether the index was rebuilt from the directory.
    pub index_rebuilt: bool,
    /// Whether the index written back (appended to or rewritten) was proven current (see
    /// `disk.rs`); `false` makes the next operation rebuild it.
    pub index_settled: bool,
    /// Bytes read and written. Reading the index grows with the network; writing it is a
    /// constant-size append except when it is compacted (once per reservations' worth of
    /// changes); everything else is constant.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Times the index was touched while waiting for the file-system clock to tick past the
    /// directory's mtime (see `disk.rs`), and the time spent writing the index and waiting.
    pub settle_probes: u32,
    pub settle_wait: Duration,
}

/// A network directory in the reference host-local format.
///
/// Every operation takes the directory's flock for its whole duration (opening the lock file
/// anew, so one `HostLocal` may be shared between threads as well as processes).
#[derive(Debug)]
pub struct HostLocal {
    dir: PathBuf,
    last_stats: Mutex<OpStats>,
}

impl HostLocal {
    /// Opens (creating if needed) `<data_dir>/<network_name>`. A name that would leave
    /// `data_dir` (empty, containing `/`, starting with `.`) is refused. The lock file is
    /// created, as the reference does; it is first taken by the first operation (see
    /// [`HostLocal::status`] to check it can be).
    pub fn open(data_dir: impl AsRef<Path>, network_name: &str) -> Result<Self, HostLocalError> {
        check_network_name(network_name)?;
        let dir = data_dir.as_ref().join(network_name);
        fs::create_dir_all(&dir).map_err(io_error("create directory", &dir))?;
        disk::create_lock_file(&dir)?;
        Ok(HostLocal {
            dir,
            last_stats: Mutex::new(OpStats::default()),
        })
    }

    /// Whether operations can run: the lock can be taken and the reservations read (the index
    /// is rebuilt if it has to be).
    pub fn status(&self) -> Result<(), HostLocalError> {
        self.run(|_| Ok(()))
    }

    /// The network directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// File-system calls made by the last operation.
    pub fn last_op_stats(&self) -> OpStats {
        *self.last_stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allocates an address of range set `range_set` (its index in the configuration's
    /// `ranges`; `ranges` are that set's ranges) for the attachment, as the reference's ADD:
    ///
    /// - with `requested`, that address, which must lie in one of the ranges and not be a
    ///   gateway; it fails naming the holder when somebody else holds it;
    /// - otherwise round-robin: the first free address after `last_reserved_ip.<range_set>`,
    ///   moving on to the next range and wrapping around, skipping gateways;
    /// - when the attachment already holds an address of the set, that address (see the
    ///   module documentation).
    ///
    /// `last_reserved_ip.<range_set>` is updated with every reservation made.
    pub fn allocate(
        &self,
        range_set: usize,
        ranges: &[Range],
        container_id: &str,
        ifname: &str,
        requested: Option<IpAddr>,
    ) -> Result<IpAddr, HostLocalError> {
        let set = RangeSet::new(range_set, ranges)?;
        let owner = attachment(container_id, ifname)?;
        if let Some(ip) = requested {
            let range = set
                .range_for(ip)
                .ok_or_else(|| HostLocalError::OutsideRanges {
                    ip,
                    index: range_set,
                    ranges: set.describe(),
                })?;
            if ip == range.gateway() {
                return Err(HostLocalError::Gateway {
                    ip,
                    subnet: range.subnet.to_string(),
                });
            }
        }
        self.run(|s| {
            let held = s
                .index
                .entries
                .iter()
                .find(|(ip, o)| o.is(&owner.id, ifname) && set.contains(**ip))
                .map(|(ip, _)| *ip);
            if let Some(requested) = requested {
                match held {
                    Some(held) if held == requested => return Ok(held),
                    Some(held) => {
                        return Err(HostLocalError::AlreadyAllocated {
                            container_id: owner.id.clone(),
                            ifname: ifname.to_string(),
                            held,
                            requested,
                            index: range_set,
                        })
                    }
                    None => {}
                }
                if let Some(holder) = s.index.entries.get(&requested) {
                    return Err(in_use(requested, holder));
                }
                if !s.reserve(requested, &owner)? {
                    let holder = s.index.entries.get(&requested).cloned();
                    return Err(match holder {
                        Some(holder) => in_use(requested, &holder),
                        None => HostLocalError::InUse {
                            ip: requested,
                            holder: "another endpoint".into(),
                        },
                    });
                }
                s.set_last_reserved(range_set, requested)?;
                return Ok(requested);
            }
            if let Some(held) = held {
                return Ok(held);
            }
            let last = s.last_reserved(range_set);
            for candidate in set.candidates(last) {
                if s.index.entries.contains_key(&candidate) {
                    continue;
                }
                if s.reserve(candidate, &owner)? {
                    s.set_last_reserved(range_set, candidate)?;
                    return Ok(candidate);
                }
            }
            Err(HostLocalError::Exhausted {
                index: range_set,
                ranges: set.describe(),
            })
        })
    }

    /// Releases every address the attachment holds, in every range set, like the reference's
    /// DEL: the reservations recorded for exactly (container ID, ifname), or, when there is
    /// none, the legacy ID-only reservations of the container. Nothing held is not an error.
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, HostLocalError> {
        let owner = attachment(container_id, ifname)?;
        self.run(|s| {
            let mut ips: Vec<IpAddr> = s
                .index
                .entries
                .iter()
                .filter(|(_, o)| o.is(&owner.id, ifname))
                .map(|(ip, _)| *ip)
                .collect();
            if ips.is_empty() {
                ips = s
                    .index
                    .entries
                    .iter()
                    .filter(|(_, o)| o.is_legacy_of(&owner.id))
                    .map(|(ip, _)| *ip)
                    .collect();
            }
            for ip in &ips {
                s.remove(*ip)?;
            }
            Ok(ips)
        })
    }

    /// Releases every reservation whose attachment is not in `valid` (the runtime's complete
    /// list of live attachments, CNI GC). A legacy ID-only reservation is kept when its
    /// container has any valid attachment. Returns the released addresses.
    pub fn gc<A: AsRef<str>, B: AsRef<str>>(
        &self,
        valid: &[(A, B)],
    ) -> Result<Vec<IpAddr>, HostLocalError> {
        let keys: HashSet<(&str, &str)> = valid
            .iter()
            .map(|(id, ifname)| (id.as_ref().trim(), ifname.as_ref()))
            .collect();
        let ids: HashSet<&str> = keys.iter().map(|(id, _)| *id).collect();
        self.run(|s| {
            let stale: Vec<IpAddr> = s
                .index
                .entries
                .iter()
                .filter(|(_, o)| match &o.ifname {
                    Some(ifname) => !keys.contains(&(o.id.as_str(), ifname.as_str())),
                    None => !ids.contains(o.id.as_str()),
                })
                .map(|(ip, _)| *ip)
                .collect();
            for ip in &stale {
                s.remove(*ip)?;
            }
            Ok(stale)
        })
    }

    /// Whether the attachment holds an address, as the reference's CHECK asks: a reservation
    /// of (container ID, ifname), or a legacy ID-only one of the container. The addresses the
    /// caller expects it to hold (`expected`, e.g. a CHECK's `prevResult`) are looked at first,
    /// one reservation file each under the lock; only when none of them is the attachment's is
    /// the index consulted.
    pub fn holds(
        &self,
        container_id: &str,
        ifname: &str,
        expected: &[IpAddr],
    ) -> Result<bool, HostLocalError> {
        let owner = attachment(container_id, ifname)?;
        let mine = |o: &Owner| o.id == owner.id && o.ifname.as_deref().is_none_or(|i| i == ifname);
        if !expected.is_empty() {
            let (found, stats) = disk::any_owner_of(&self.dir, expected, &mine)?;
            *self.last_stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
            if found {
                return Ok(true);
            }
        }
        self.run(|s| Ok(s.index.entries.values().any(mine)))
    }

    /// Every reservation of the network, in address order.
    pub fn reservations(&self) -> Result<Vec<HostLocalReservation>, HostLocalError> {
        self.run(|s| {
            Ok(s.index
                .entries
                .iter()
                .map(|(ip, o)| HostLocalReservation {
                    ip: *ip,
                    container_id: o.id.clone(),
                    ifname: o.ifname.clone(),
                })
                .collect())
        })
    }

    /// Runs `f` with a [`HostLocalStore`] over this directory, under one lock, so the crate's
    /// [`allocate`](crate::allocate) and [`reserve_static`](crate::reserve_static) work on it.
    /// `pools` are the pools `f` will use (the store needs their subnets).
    pub fn with_store<R>(
        &self,
        pools: &[Pool],
        f: impl FnOnce(&mut HostLocalStore<'_>) -> R,
    ) -> Result<R, HostLocalError> {
        self.run(|s| Ok(f(&mut HostLocalStore::new(s, pools))))
    }

    /// One operation: lock, load the index, run `f`, write the index back, unlock. The index
    /// is written back even when `f` fails (the files it created or removed are real).
    fn run<R>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<R, HostLocalError>,
    ) -> Result<R, HostLocalError> {
        let mut session = Session::begin(&self.dir)?;
        let result = f(&mut session);
        let stats = session.finish();
        *self.last_stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        result
    }
}

fn in_use(ip: IpAddr, holder: &Owner) -> HostLocalError {
    let holder = match &holder.ifname {
        Some(ifname) => format!("container {} interface {ifname}", holder.id),
        None => format!("container {}", holder.id),
    };
    HostLocalError::InUse { ip, holder }
}

fn check_network_name(name: &str) -> Result<(), HostLocalError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.starts_with('.') {
        "it starts with '.' (it could leave the data directory or hide the network)"
    } else if name.contains('/') {
        "it contains '/' (it would leave the data directory)"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(HostLocalError::InvalidNetworkName {
        name: name.to_string(),
        reason,
    })
}

/// The owner for (container ID, ifname), refusing what the file format cannot hold.
fn attachment(container_id: &str, ifname: &str) -> Result<Owner, HostLocalError> {
    let id = container_id.trim();
    let bad = |what, value: &str, reason| HostLocalError::InvalidAttachment {
        what,
        value: value.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("container ID", container_id, "it is empty"));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "container ID",
            container_id,
            "it contains white space or control characters",
        ));
    }
    if ifname.is_empty() {
        return Err(bad("interface name", ifname, "it is empty"));
    }
    if ifname.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "interface name",
            ifname,
            "it contains white space or control characters",
        ));
    }
    Ok(Owner {
        id: id.to_string(),
        ifname: Some(ifname.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_text_of_addresses() {
        // What Go's net.IP.String() prints for these.
        for (ip, go) in [
            ("10.0.0.1", "10.0.0.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("FD00::A", "fd00::a"),
            ("::", "::"),
            ("::1", "::1"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
        ] {
            assert_eq!(go_ip_string(ip.parse().unwrap()), go, "{ip}");
        }
    }

    #[test]
    fn names_that_leave_the_data_dir_are_refused() {
        for name in ["", ".", "..", "../x", "a/b", ".hidden"] {
            assert!(check_network_name(name).is_err(), "{name:?}");
        }
        assert!(check_network_name("cbr0").is_ok());
    }
}
