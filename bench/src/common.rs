use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// How many runs the head and tail medians look at.
pub const TAIL: usize = 100;

/// Latencies in milliseconds with the summary statistics the tables need.
pub struct Sample {
    pub ms: Vec<f64>,
}

impl Sample {
    pub fn new(d: &[Duration]) -> Sample {
        Sample {
            ms: d.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
        }
    }

    fn sorted(v: &[f64]) -> Vec<f64> {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s
    }

    fn median_of(v: &[f64]) -> f64 {
        let s = Self::sorted(v);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }

    pub fn median(&self) -> f64 {
        Self::median_of(&self.ms)
    }

    /// Nearest-rank p95.
    pub fn p95(&self) -> f64 {
        let s = Self::sorted(&self.ms);
        if s.is_empty() {
            return f64::NAN;
        }
        let rank = ((0.95 * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s[rank - 1]
    }

    /// Median of the first [`TAIL`] runs (all of them when there are fewer).
    pub fn head_median(&self) -> f64 {
        Self::median_of(&self.ms[..self.ms.len().min(TAIL)])
    }

    /// Median of the last [`TAIL`] runs (all of them when there are fewer).
    pub fn tail_median(&self) -> f64 {
        Self::median_of(&self.ms[self.ms.len().saturating_sub(TAIL)..])
    }
}

/// A bench's exit: its error, if any, as one line on stderr prefixed with the bench's name.
pub fn exit_code(bench: &str, result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{bench}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A comma-separated list of counts given to `flag` (`--sizes 100,500`).
pub fn parse_counts(flag: &str, value: &str) -> Result<Vec<usize>> {
    value
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .with_context(|| format!("bad count {s:?} in {flag}"))
        })
        .collect()
}

/// `ip ARGS`, timed (see [`timed`]).
pub fn ip(args: &[&str]) -> Result<Duration> {
    timed(Command::new("ip").args(args))
}

/// Runs a command to completion (stdout discarded) and returns how long spawn → wait took.
pub fn timed(cmd: &mut Command) -> Result<Duration> {
    cmd.stdout(Stdio::null());
    let start = Instant::now();
    let status = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    let elapsed = start.elapsed();
    ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(elapsed)
}

/// `ip [-n NS] -force -batch -`: one process for many commands; -force keeps going past errors.
pub fn ip_batch(netns: Option<&str>, commands: &str) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("spawning ip -batch")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(commands.as_bytes())?;
    let status = child.wait()?;
    ensure!(status.success(), "ip -batch failed: {status}");
    Ok(())
}

/// What a bench run leaves behind: every netns named `netns_prefix*` and every directory whose
/// path starts with `dir_prefix`.
#[derive(Clone, Copy)]
pub struct Cleanup {
    pub netns_prefix: &'static str,
    pub dir_prefix: &'static str,
}

/// Removes a run's leftovers when dropped, so an early error return leaves nothing behind.
/// (The release profile aborts on panic, so the benches return errors instead of panicking;
/// their scripts also run `--cleanup-only` on interrupt.)
pub struct CleanupGuard(pub Cleanup);

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_leftovers() {
            eprintln!("bench cleanup: {e:#}");
        }
    }
}

impl Cleanup {
    pub fn remove_leftovers(&self) -> Result<()> {
        let mut batch = String::new();
        if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(self.netns_prefix) {
                    writeln!(batch, "netns del {name}")?;
                }
            }
        }
        if !batch.is_empty() {
            ip_batch(None, &batch)
                .with_context(|| format!("deleting {}* namespaces", self.netns_prefix))?;
        }
        let (dir, prefix) = self
            .dir_prefix
            .rsplit_once('/')
            .context("directory prefix")?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        Ok(())
    }
}
