//! Running `ip`, `ping` and `underlay` as subprocesses, with errors that say exactly what ran,
//! how it exited and what it printed on stderr.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

/// The outcome of one finished command.
pub struct Ran {
    pub cmdline: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// `Ok(self)` if it exited with `expected`, otherwise an error naming the command, its exit
    /// code and its stderr.
    pub fn expect_exit(self, expected: i32) -> anyhow::Result<Self> {
        if self.code == Some(expected) {
            return Ok(self);
        }
        anyhow::bail!("{} (expected exit {expected})", self.describe())
    }

    /// "`cmd` exited 1, stderr: ..." (or "was killed by a signal").
    pub fn describe(&self) -> String {
        let status = match self.code {
            Some(code) => format!("exited {code}"),
            None => "was killed by a signal".to_string(),
        };
        let stderr = self.stderr.trim();
        if stderr.is_empty() {
            format!("`{}` {status}, no stderr", self.cmdline)
        } else {
            format!("`{}` {status}, stderr: {stderr}", self.cmdline)
        }
    }
}

/// Runs `program args...` to completion (stdin closed) and captures its output. Only a failure
/// to start is an error; a non-zero exit is for the caller to judge.
pub fn run<S: AsRef<str>>(program: &str, args: &[S]) -> anyhow::Result<Ran> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let cmdline = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{cmdline}`"))?;
    Ok(Ran {
        cmdline,
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `ip args...` and returns its stdout; any non-zero exit is an error.
pub fn ip<S: AsRef<str>>(args: &[S]) -> anyhow::Result<String> {
    Ok(run("ip", args)?.expect_exit(0)?.stdout)
}

/// Whether the effective user is root, read from `/proc/self/status` (std has no geteuid).
pub fn running_as_root() -> anyhow::Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no effective uid in /proc/self/status")?;
    Ok(euid == "0")
}

/// Whether an executable named `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(Path::new(&dir).join(program))
            .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}
