//! `dhcp daemon`: underlay's lease keeper, started with the reference daemon's flags so that
//! existing service units (`cni-dhcp.service`, `cni-dhcp.socket`) keep working:
//!
//! `-socketpath` (default `/run/cni/dhcp.sock`), `-pidfile`, `-hostprefix` (the host's root
//! as the daemon sees it: prefixed to the socket and to container netns paths), `-broadcast`,
//! `-timeout` (10s), `-resendmax`, `-resendtimeout` (accepted; the keeper paces its own
//! retransmissions). Flags are Go-style: `-name value`, `-name=value`, `--name`; durations like
//! `10s`, `1m2s`, `500ms`.
//!
//! The keeper itself is `underlay dhcp-daemon`: this process becomes it (exec), with the flags
//! translated, so that the plugins' binary stays small (no SQLite, no logger: it runs on every
//! container start). The leases live in underlay's state directory (`UNDERLAY_STATE_DIR`,
//! default `/var/lib/underlay`) and survive restarts of the daemon. A systemd socket passes
//! through the exec unchanged.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use underlay_cni::conf::dhcp::DEFAULT_SOCKET_PATH;

/// Where the `underlay` binary is when `UNDERLAY_BIN` does not say: beside this one, then PATH.
const UNDERLAY: &str = "underlay";
/// The reference daemon's exchange timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's settings, from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonFlags {
    pub socket_path: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub host_prefix: Option<PathBuf>,
    pub timeout: Duration,
    pub broadcast: bool,
    pub resend_max: Option<Duration>,
}

/// Becomes the keeper; returns only on failure, with the exit code.
pub fn main(args: &[String]) -> i32 {
    let flags = match parse_flags(args) {
        Ok(flags) => flags,
        Err(msg) => {
            eprintln!("dhcp daemon: {msg}");
            return 2;
        }
    };
    let underlay = match find_underlay() {
        Some(path) => path,
        None => {
            eprintln!(
                "dhcp daemon: the lease keeper is `underlay dhcp-daemon`, and no `underlay` binary \
                 was found (UNDERLAY_BIN, beside this binary, or in PATH): install it"
            );
            return 1;
        }
    };
    let error = Command::new(&underlay).args(flags.keeper_args()).exec();
    eprintln!("dhcp daemon: cannot run {}: {error}", underlay.display());
    1
}

/// `UNDERLAY_BIN`, else `underlay` beside this binary (where `scripts/build-release` puts
/// both), else the first in PATH.
fn find_underlay() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("UNDERLAY_BIN") {
        return Some(PathBuf::from(path));
    }
    let beside = std::fs::canonicalize("/proc/self/exe")
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(UNDERLAY)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(UNDERLAY))
            .find(|p| p.is_file())
    })
}

impl DaemonFlags {
    fn socket(&self) -> PathBuf {
        match &self.host_prefix {
            Some(prefix) => under(prefix, &self.socket_path),
            None => self.socket_path.clone(),
        }
    }

    /// The same settings as `underlay dhcp-daemon` takes them.
    fn keeper_args(&self) -> Vec<String> {
        let mut args = vec![
            "--dhcp-socket".to_string(),
            self.socket().display().to_string(),
            "--log-level".into(),
            "info".into(),
            "dhcp-daemon".into(),
            "--default-timeout-ms".into(),
            self.timeout.as_millis().to_string(),
        ];
        if self.broadcast {
            args.push("--broadcast".into());
        }
        if let Some(max) = self.resend_max {
            args.extend(["--resend-max-ms".into(), max.as_millis().to_string()]);
        }
        if let Some(prefix) = &self.host_prefix {
            args.extend(["--netns-prefix".into(), prefix.display().to_string()]);
        }
        if let Some(pid_file) = &self.pid_file {
            args.extend(["--pid-file".into(), pid_file.display().to_string()]);
        }
        args
    }
}

/// `path` inside `prefix` (`/host` + `/run/x` = `/host/run/x`).
fn under(prefix: &Path, path: &Path) -> PathBuf {
    prefix.join(path.strip_prefix("/").unwrap_or(path))
}

pub fn parse_flags(args: &[String]) -> Result<DaemonFlags, String> {
    let mut flags = DaemonFlags {
        socket_path: PathBuf::from(DEFAULT_SOCKET_PATH),
        pid_file: None,
        host_prefix: None,
        timeout: DEFAULT_TIMEOUT,
        broadcast: false,
        resend_max: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!(
                "unexpected argument {arg:?}: every setting is a -flag"
            ));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        if name == "broadcast" {
            flags.broadcast = match inline.as_deref() {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(other) => {
                    return Err(format!("-broadcast takes true or false, not {other:?}"))
                }
            };
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .cloned()
                .ok_or_else(|| format!("flag -{name} needs a value"))?,
        };
        match name {
            "socketpath" => flags.socket_path = PathBuf::from(value),
            "pidfile" => flags.pid_file = Some(PathBuf::from(value)),
            "hostprefix" => flags.host_prefix = Some(PathBuf::from(value)),
            "timeout" => {
                let timeout = duration(name, &value)?;
                if timeout.is_zero() || timeout > Duration::from_secs(300) {
                    return Err(format!("-timeout {value} is outside 1ms..5m"));
                }
                flags.timeout = timeout;
            }
            "resendmax" => {
                let max = duration(name, &value)?;
                if max < Duration::from_millis(100) {
                    return Err(format!("-resendmax {value} is below 100ms"));
                }
                flags.resend_max = Some(max);
            }
            "resendtimeout" => {
                duration(name, &value)?;
            }
            other => return Err(format!("unknown flag -{other}")),
        }
    }
    Ok(flags)
}

/// A Go duration: a sequence of decimal numbers with units h, m, s, ms, us, ns (`1m2s`).
fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("-{flag} takes a duration like 10s or 1m30s, not {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds).map_err(|_| bad())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<DaemonFlags, String> {
        parse_flags(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_reference_flags_are_understood() {
        let flags = parse(&[
            "-socketpath",
            "/tmp/d.sock",
            "-pidfile=/tmp/d.pid",
            "--broadcast",
            "-timeout",
            "1m2s",
            "-resendmax=500ms",
            "-resendtimeout",
            "28s",
        ])
        .unwrap();
        assert_eq!(flags.socket(), PathBuf::from("/tmp/d.sock"));
        assert_eq!(flags.pid_file, Some(PathBuf::from("/tmp/d.pid")));
        assert!(flags.broadcast);
        assert_eq!(flags.timeout, Duration::from_secs(62));
        assert_eq!(flags.resend_max, Some(Duration::from_millis(500)));
        assert_eq!(
            flags.keeper_args().join(" "),
            "--dhcp-socket /tmp/d.sock --log-level info dhcp-daemon --default-timeout-ms 62000 \
             --broadcast --resend-max-ms 500 --pid-file /tmp/d.pid"
        );
    }

    #[test]
    fn defaults_and_the_host_prefix() {
        let flags = parse(&[]).unwrap();
        assert_eq!(flags.socket(), PathBuf::from(DEFAULT_SOCKET_PATH));
        assert_eq!(flags.timeout, DEFAULT_TIMEOUT);
        assert!(!flags.broadcast && flags.resend_max.is_none());
        let flags = parse(&["-hostprefix", "/host"]).unwrap();
        assert_eq!(flags.socket(), PathBuf::from("/host/run/cni/dhcp.sock"));
        let args = flags.keeper_args().join(" ");
        assert!(args.ends_with("--netns-prefix /host"), "{args}");
    }

    #[test]
    fn bad_flags_name_what_is_wrong() {
        for (args, needle) in [
            (&["-bogus", "1"][..], "unknown flag -bogus"),
            (&["-timeout"][..], "-timeout needs a value"),
            (&["-timeout", "ten"][..], "\"ten\""),
            (&["-timeout", "10x"][..], "\"10x\""),
            (&["-timeout", "0"][..], "outside"),
            (&["-resendmax", "1ms"][..], "below 100ms"),
            (&["-broadcast=maybe"][..], "\"maybe\""),
            (&["daemon"][..], "unexpected argument"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
