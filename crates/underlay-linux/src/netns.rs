//! Handles on network namespaces, and running code inside one.
//!
//! The network namespace is a property of a *thread*, not of the process: `setns` changes
//! the calling thread only. A thread that joined a foreign namespace and went back to a
//! thread pool would make every later job on it act in the wrong namespace (create links in a
//! container, read the container's sysctls). So nothing here ever changes the namespace of a
//! caller's thread: [`Netns::run`] spawns a fresh thread, joins the namespace on it, runs the
//! job and lets the thread end. What such a job creates that is bound to a namespace (a
//! netlink socket, an open `/proc/sys/net` file) keeps that namespace after the thread is gone.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::Error;

/// The calling thread's own network namespace (`/proc/self` would name the main thread's).
const CURRENT_THREAD_NETNS: &str = "/proc/thread-self/ns/net";

// NS_GET_NSTYPE = _IO(0xb7, 0x3): the CLONE_NEW* type of an nsfs file (Linux 4.11).
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// An open network namespace: as long as the handle lives, the namespace does too, even if its
/// bind mount is removed or its last process exits.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: PathBuf,
}

impl Netns {
    /// Opens the network namespace at `path` (`/run/netns/NAME`, `/proc/PID/ns/net`...).
    ///
    /// `Ok(None)` when there is nothing at `path`; [`Error::NotNetns`] when there is something
    /// else than a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Option<Netns>, Error> {
        let path = path.as_ref();
        // O_NONBLOCK: a FIFO at `path` must not block the open (it is then reported NotNetns).
        let file = match File::options()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let fd = OwnedFd::from(file);
        ensure_netns(&fd, path)?;
        Ok(Some(Netns {
            fd,
            path: path.to_path_buf(),
        }))
    }

    /// The calling thread's current network namespace.
    pub fn current() -> Result<Netns, Error> {
        Netns::open(CURRENT_THREAD_NETNS)?.ok_or_else(|| Error::Io {
            path: PathBuf::from(CURRENT_THREAD_NETNS),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    }

    /// The calling thread's namespace, opened at a path other processes can open too, and that
    /// stays valid after this process exits: `/proc/1/ns/net` when it is init's, else a bind
    /// mount under `/run/netns` that holds it, else `/proc/<pid>/ns/net` (valid while this
    /// process lives). Recorded paths of links made here use it.
    pub fn host() -> Result<Netns, Error> {
        let current = Netns::current()?;
        let id = current.id()?;
        let mut candidates = vec![std::path::PathBuf::from("/proc/1/ns/net")];
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            let mut named: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            named.sort();
            candidates.extend(named);
        }
        for path in candidates {
            if let Ok(Some(ns)) = Netns::open(&path) {
                if ns.id().ok() == Some(id) {
                    return Ok(ns);
                }
            }
        }
        let own = format!("/proc/{}/ns/net", std::process::id());
        Netns::open(&own)?.ok_or_else(|| Error::Io {
            path: own.into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    }

    /// The path the namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity of the namespace: `st_dev` and `st_ino` of its nsfs inode. Two handles
    /// name the same namespace exactly when their ids are equal.
    pub fn id(&self) -> Result<(u64, u64), Error> {
        let stat = nix::sys::stat::fstat(&self.fd).map_err(|errno| self.io_error(errno.into()))?;
        Ok((stat.st_dev, stat.st_ino))
    }

    /// The namespace's file descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Runs `f` inside the namespace and returns its result.
    ///
    /// `f` runs on a new thread that joins the namespace first and ends right after `f`, so
    /// no thread is ever left in a foreign namespace (see the module documentation). A panic in
    /// `f` is passed on to the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("underlay-netns".to_string())
                .spawn_scoped(scope, || {
                    nix::sched::setns(&self.fd, CloneFlags::CLONE_NEWNET)
                        .map_err(|errno| self.io_error(errno.into()))?;
                    Ok(f())
                })
                .map_err(|error| self.io_error(error))?;
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Runs `f` with the calling thread itself in the namespace, then puts the thread back.
    ///
    /// Only for a process with one thread, which nothing else can observe while it is away
    /// (a CNI plugin): a thread spawn per step ([`Netns::run`]) costs it more than the work.
    /// Should the way back fail, the process aborts rather than carry on in the wrong
    /// namespace.
    pub fn run_here<T>(&self, f: impl FnOnce() -> T) -> Result<T, Error> {
        let home = Netns::current()?;
        nix::sched::setns(&self.fd, CloneFlags::CLONE_NEWNET)
            .map_err(|errno| self.io_error(errno.into()))?;
        let out = f();
        if let Err(errno) = nix::sched::setns(&home.fd, CloneFlags::CLONE_NEWNET) {
            eprintln!(
                "cannot return to the netns {} after working in {}: {errno}",
                home.path.display(),
                self.path.display()
            );
            std::process::abort();
        }
        Ok(out)
    }

    fn io_error(&self, source: io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Fails with [`Error::NotNetns`] unless `fd` is a network namespace: an nsfs file (checked
/// first, as asking an arbitrary device file an ioctl could mean something to its driver)
/// whose namespace type is `CLONE_NEWNET` (`/proc/PID/ns/mnt` is nsfs too).
fn ensure_netns(fd: &OwnedFd, path: &Path) -> Result<(), Error> {
    let not_netns = || Error::NotNetns {
        path: path.to_path_buf(),
    };
    let statfs = fstatfs(fd).map_err(|errno| Error::Io {
        path: path.to_path_buf(),
        source: errno.into(),
    })?;
    if statfs.filesystem_type() != NSFS_MAGIC {
        return Err(not_netns());
    }
    use std::os::fd::AsRawFd;
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns an int; `fd` is an open nsfs
    // file owned by the caller for the duration of the call.
    let nstype = unsafe { ns_get_nstype(fd.as_raw_fd()) }.map_err(|_| not_netns())?;
    if nstype != CloneFlags::CLONE_NEWNET.bits() {
        return Err(not_netns());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_none() {
        let opened = Netns::open("/nonexistent/underlay/netns").expect("no error");
        assert!(opened.is_none());
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let error = Netns::open("/proc/self/status").expect_err("not a netns");
        assert!(matches!(error, Error::NotNetns { .. }), "{error:?}");
    }

    #[test]
    fn fifo_is_not_a_netns_and_does_not_block() {
        let path = std::env::temp_dir().join(format!("ul-netns-fifo-{}", std::process::id()));
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRUSR).expect("mkfifo");
        let result = Netns::open(&path);
        std::fs::remove_file(&path).expect("remove fifo");
        assert!(matches!(result, Err(Error::NotNetns { .. })), "{result:?}");
    }

    #[test]
    fn another_namespace_type_is_not_a_netns() {
        // Opening one's own namespace files needs no privilege.
        let error = Netns::open("/proc/thread-self/ns/uts").expect_err("not a netns");
        assert!(matches!(error, Error::NotNetns { .. }), "{error:?}");
    }

    #[test]
    fn current_namespace_opens_and_has_a_stable_id() {
        let first = Netns::current().expect("current netns");
        let second = Netns::current().expect("current netns");
        assert_eq!(first.id().expect("id"), second.id().expect("id"));
    }
}
