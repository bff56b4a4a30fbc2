//! The plugin socket file: where dockerd finds the plugin
//! (`/run/docker/plugins/<name>.sock`) and who may connect to it.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds the plugin socket at `path` (e.g. `/run/docker/plugins/underlay.sock`),
/// readable and writable by root only (mode 0600).
///
/// Creates the parent directory. A socket file left by a dead process is
/// removed; one a live process answers on is not (`AddrInUse`), nor is a
/// path that is not a socket (`AlreadyExists`).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let context = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| context("create the directory of", e))?;
    }
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|e| context("bind", e))?;
    // Connecting needs write permission on the socket file; under the usual
    // umask (022) nobody else has it even before this chmod.
    fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(|e| context("chmod", e))?;
    Ok(listener)
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let shown = path.display();
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("stat {shown}: {e}"))),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{shown} exists and is not a socket"),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("socket {shown} is in use by a running server"),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!("removing stale plugin socket {shown}");
            fs::remove_file(path)
                .map_err(|e| io::Error::new(e.kind(), format!("remove stale socket {shown}: {e}")))
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot tell whether socket {shown} is in use: {e}"),
        )),
    }
}
