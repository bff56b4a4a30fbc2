//! Sysctl writes.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// Writes `value` to `/proc/sys/<key>` (`key` like `net/ipv4/conf/eth0/arp_notify`).
///
/// Which namespace a `/proc/sys/net` file belongs to is decided by the network namespace of
/// the *thread that opens it*, not by the mount of `/proc`: to write a sysctl of another
/// namespace, call this inside [`crate::Netns::run`].
pub fn write_sysctl(key: &str, value: &str) -> Result<(), Error> {
    let path = sysctl_path(key)?;
    let io_error = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io_error)?;
    // procfs takes the whole value in one write(2).
    file.write_all(value.as_bytes()).map_err(io_error)
}

/// `/proc/sys/<key>`, refusing keys that would leave `/proc/sys`.
fn sysctl_path(key: &str) -> Result<PathBuf, Error> {
    let relative = Path::new(key);
    let stays_inside = relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)));
    let path = Path::new("/proc/sys").join(relative);
    if key.is_empty() || !stays_inside {
        return Err(Error::Io {
            path,
            source: io::Error::new(io::ErrorKind::InvalidInput, "invalid sysctl key"),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_maps_below_proc_sys() {
        let path = sysctl_path("net/ipv4/conf/eth0/arp_notify").expect("valid key");
        assert_eq!(
            path,
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0/arp_notify")
        );
    }

    #[test]
    fn keys_leaving_proc_sys_are_refused() {
        for key in ["", "/etc/passwd", "net/../../etc/passwd", "./net"] {
            let error = sysctl_path(key).expect_err(key);
            assert_eq!(error.errno(), None, "{key}");
            assert!(error.to_string().contains("invalid sysctl key"), "{error}");
        }
    }

    #[test]
    fn missing_sysctl_names_the_path() {
        let error =
            write_sysctl("net/ipv4/conf/no-such-link-x/arp_notify", "1").expect_err("missing");
        assert!(error
            .to_string()
            .contains("/proc/sys/net/ipv4/conf/no-such-link-x/arp_notify"));
        assert_eq!(error.errno(), Some(nix::libc::ENOENT));
    }
}
