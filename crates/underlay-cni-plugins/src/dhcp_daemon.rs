//! `dhcp daemon`: underlay's lease keeper, started with the reference daemon's flags so that
//! existing service units (`cni-dhcp.service`, `cni-dhcp.socket`) keep working:
//!
//! `-socketpath` (default `/run/cni/dhcp.sock`), `-pidfile`, `-hostprefix` (the host's root
//! as the daemon sees it: prefixed to the socket and to container netns paths), `-broadcast`,
//! `-timeout` (10s), `-resendmax`, `-resendtimeout` (accepted; the keeper paces its own
//! retransmissions). Flags are Go-style: `-name value`, `-name=value`, `--name`; durations like
//! `10s`, `1m2s`, `500ms`. The leases live in underlay's state directory
//! (`UNDERLAY_STATE_DIR`, default `/var/lib/underlay`) and survive restarts of the daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use underlay_cni::conf::dhcp::DEFAULT_SOCKET_PATH;
use underlay_core::events::EventBus;
use underlay_core::leases::{Keeper, KeeperDefaults};
use underlay_linux::{bind_private_socket, systemd_listener};

const DEFAULT_STATE_DIR: &str = "/var/lib/underlay";

/// The daemon's settings, from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonFlags {
    pub socket_path: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub host_prefix: Option<PathBuf>,
    pub defaults: KeeperDefaults,
}

/// Runs the daemon; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let flags = match parse_flags(args) {
        Ok(flags) => flags,
        Err(msg) => {
            eprintln!("dhcp daemon: {msg}");
            return 2;
        }
    };
    init_logging();
    match run(&flags) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("dhcp daemon: {msg}");
            1
        }
    }
}

fn run(flags: &DaemonFlags) -> Result<(), String> {
    let socket = flags.socket();
    let listener = match systemd_listener() {
        Some(listener) => listener,
        None => bind_private_socket(&socket)
            .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?,
    };
    let state_dir = std::env::var_os("UNDERLAY_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let keeper = Keeper::open(&state_dir, EventBus::default())
        .map_err(|e| format!("cannot open the leases in {}: {e}", state_dir.display()))?
        .with_defaults(flags.defaults.clone());
    if let Some(pid_file) = &flags.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write the pid file {}: {e}", pid_file.display()))?;
    }
    tracing::info!(socket = %socket.display(), state = %state_dir.display(), "DHCP lease keeper ready");
    keeper
        .serve(&listener)
        .map_err(|e| format!("serving {}: {e}", socket.display()))
}

impl DaemonFlags {
    fn socket(&self) -> PathBuf {
        match &self.host_prefix {
            Some(prefix) => under(prefix, &self.socket_path),
            None => self.socket_path.clone(),
        }
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
        defaults: KeeperDefaults::default(),
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
            flags.defaults.broadcast = match inline.as_deref() {
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
            "hostprefix" => {
                flags.host_prefix = Some(PathBuf::from(&value));
                flags.defaults.netns_prefix = Some(PathBuf::from(value));
            }
            "timeout" => {
                let timeout = duration(name, &value)?;
                if timeout.is_zero() || timeout > Duration::from_secs(300) {
                    return Err(format!("-timeout {value} is outside 1ms..5m"));
                }
                flags.defaults.timeout = timeout;
            }
            "resendmax" => {
                let max = duration(name, &value)?;
                if max < Duration::from_millis(100) {
                    return Err(format!("-resendmax {value} is below 100ms"));
                }
                flags.defaults.resend_max = Some(max);
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

fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .init();
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
        assert!(flags.defaults.broadcast);
        assert_eq!(flags.defaults.timeout, Duration::from_secs(62));
        assert_eq!(flags.defaults.resend_max, Some(Duration::from_millis(500)));
    }

    #[test]
    fn defaults_and_the_host_prefix() {
        let flags = parse(&[]).unwrap();
        assert_eq!(flags.socket(), PathBuf::from(DEFAULT_SOCKET_PATH));
        assert_eq!(flags.defaults, KeeperDefaults::default());
        let flags = parse(&["-hostprefix", "/host"]).unwrap();
        assert_eq!(flags.socket(), PathBuf::from("/host/run/cni/dhcp.sock"));
        assert_eq!(flags.defaults.netns_prefix, Some(PathBuf::from("/host")));
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
