//! Unix sockets the daemons listen on: private to root, never stolen from a live daemon, or
//! handed over by systemd (socket activation).

use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::Error;

/// `SD_LISTEN_FDS_START`: the first descriptor systemd passes.
const LISTEN_FDS_START: i32 = 3;

/// Binds `path` for root only (mode 0600), creating its directory. A socket file left by a
/// daemon that died is replaced; one a live daemon answers on is not.
pub fn bind_private_socket(path: &Path) -> Result<UnixListener, Error> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_error)?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io_error(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another daemon is listening on it",
                )));
            }
            fs::remove_file(path).map_err(io_error)?;
        }
        Ok(_) => {
            return Err(io_error(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "it exists and is not a socket",
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_error)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_error)?;
    Ok(listener)
}

/// The listening socket systemd passed to this process, if any (`LISTEN_PID` is us and
/// `LISTEN_FDS` is at least 1). The variables are removed so that children do not take it.
pub fn systemd_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: the environment is only changed here, at daemon start-up before any thread that
    // reads it is spawned.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let fd = LISTEN_FDS_START;
    // SAFETY: systemd hands over descriptor 3 as an open listening socket owned by this
    // process, and nothing else in the process owns or closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .ok()?;
    Some(UnixListener::from(owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_socket_is_0600_and_a_live_one_is_not_stolen() {
        let dir = tempfile_dir();
        let path = dir.join("sub/keeper.sock");
        let listener = bind_private_socket(&path).expect("bind");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = bind_private_socket(&path).expect_err("a live socket is kept");
        assert!(err.to_string().contains("another daemon"), "{err}");
        drop(listener);
        // Now nobody answers: the stale file is replaced.
        bind_private_socket(&path).expect("stale socket replaced");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_regular_file_is_never_removed() {
        let dir = tempfile_dir();
        let path = dir.join("not-a-socket");
        fs::write(&path, b"keep me").unwrap();
        let err = bind_private_socket(&path).expect_err("refused");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"keep me");
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ul-sock-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
