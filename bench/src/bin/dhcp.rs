//! `underlay-dhcp-bench`: lease acquisition per connect, underlay (`underlay connect` on a DHCP
//! network, lease keeper `underlay dhcp-daemon`) against the reference CNI dhcp IPAM (the
//! reference `macvlan` plugin with `"ipam": {"type": "dhcp"}`, daemon `dhcp daemon`), in the
//! same topology against the same dnsmasq. Prints one table on stdout.
//!
//! Usage: `underlay-dhcp-bench --underlay PATH [--reference DIR] [--reference-label TEXT]
//! [--cycles 20] [--endpoints 20] [--raw FILE.csv] [--keep-logs DIR]` (root; see `bench/dhcp`).
//!
//! What one measured call is, timed from spawn to reaping, stdout and stderr captured:
//! - ours: `underlay --state-dir D --dhcp-socket S connect NET CONTAINER` (link creation, the
//!   DHCP exchange run by the keeper, conflict probe if on, addresses and routes configured);
//! - reference: exec `/usr/lib/cni/macvlan` with CNI_COMMAND=ADD, CNI_CONTAINERID, CNI_NETNS,
//!   CNI_IFNAME=eth0 and CNI_PATH in an otherwise empty environment, the config on stdin, as a
//!   runtime calls it (the plugin execs the `dhcp` IPAM, which asks the daemon over its socket).
//!   Every ADD is followed by an untimed DEL with the ADD result as `prevResult`.
//!
//! Layout while it runs (everything is named `uldhcp-bench-*` and removed again, even on error;
//! no packet leaves these namespaces):
//! - netns `uldhcp-bench-srv`: the LAN switch, bridge `br0` with 198.51.100.1/24 and
//!   2001:db8:d::1/64, and dnsmasq on it (DHCPv4 only: the reference speaks no DHCPv6);
//! - netns `uldhcp-bench-host`: the docker host, its `eth0` a veth into `br0` and the macvlan
//!   parent. The bench `setns`es into it once, so the keeper, the reference daemon and every
//!   measured command start there without `ip netns exec`;
//! - netns `uldhcp-bench-c<i>`: the containers, reused by every phase (each phase ends with
//!   every endpoint torn down, and a check removes any link left);
//! - `/tmp/uldhcp-bench-<pid>`: state dir, sockets, dnsmasq lease files and logs.
//!
//! Every phase (one server mode × one case × one implementation) gets a freshly started dnsmasq
//! with a fresh lease file: its ping cache (dnsmasq skips the ping of an address it pinged in
//! the last 30 s, and stops pinging after 6 pings in 30 s) starts empty, and what is left in the
//! lease file after the teardown belongs to that phase alone.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
use nix::unistd::Pid;
use serde_json::{json, Value};
use underlay_bench::common::{exit_code, timed, Cleanup, Sample, NETNS_DIR};

const PREFIX: &str = "uldhcp-bench-";
const SRV_NS: &str = "uldhcp-bench-srv";
const HOST_NS: &str = "uldhcp-bench-host";
const TMP_PREFIX: &str = "/tmp/uldhcp-bench-";
/// What a run leaves behind and removes: its namespaces and its temp dir.
const CLEANUP: Cleanup = Cleanup {
    netns_prefix: PREFIX,
    dir_prefix: TMP_PREFIX,
};
const ROUTER: &str = "198.51.100.1";
const ROUTER6: &str = "2001:db8:d::1";
/// 151 addresses, a 10 minute lease: no renewal falls inside a phase.
const RANGE: &str = "--dhcp-range=198.51.100.100,198.51.100.250,255.255.255.0,10m";
/// The floors' pools: two subnets, since underlay refuses overlapping subnets on one parent
/// (nobody answers for these addresses, so a probe always waits its full probe_ms).
const POOL_OFF: [&str; 2] = ["192.0.2.0/24", "192.0.2.16/28"];
const POOL_ON: [&str; 2] = ["203.0.113.0/24", "203.0.113.16/28"];
const REFERENCE_DIR: &str = "/usr/lib/cni";
const REF_NETWORK: &str = "uldhcp-bench-ref";
/// The probe time of a DHCP network with conflict detection on (underlay's default).
const PROBE_MS: f64 = 100.0;
const TARGET_MEDIAN_MS: f64 = 100.0;
/// Largest cycle / endpoint count: the endpoints must fit in the range.
const MAX_CYCLES: usize = 1000;
const MAX_ENDPOINTS: usize = 100;
/// Runs of `/bin/true` for the spawn floor.
const SPAWN_RUNS: usize = 100;
/// AF_PACKET sockets opened and closed for the packet socket floor.
const PACKET_RUNS: usize = 20;
/// A call still running after this is killed and counted as failed.
const CALL_LIMIT: Duration = Duration::from_secs(90);
/// How long dnsmasq, the keeper and the reference daemon get to come up.
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long the lease file gets to lose the released leases after a teardown.
const RELEASE_LIMIT: Duration = Duration::from_secs(3);
/// Failure messages kept per phase.
const KEEP_FAILURES: usize = 3;
/// Hidden mode that only removes leftovers (used by `bench/dhcp` on exit and interrupt).
const CLEANUP_ONLY: &str = "--cleanup-only";
const USAGE: &str = "usage: underlay-dhcp-bench --underlay PATH [--reference DIR] \
    [--reference-label TEXT] [--cycles 20] [--endpoints 20] [--keeper-log-level info] \
    [--raw FILE.csv] [--keep-logs DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(CLEANUP_ONLY) => remove_leftovers(),
        _ => parse_args(&args).and_then(|opts| run(&opts)),
    };
    exit_code("underlay-dhcp-bench", result)
}

struct Opts {
    underlay: PathBuf,
    reference: PathBuf,
    reference_label: String,
    cycles: usize,
    endpoints: usize,
    keeper_log_level: String,
    /// Where to write every single latency as CSV, if anywhere.
    raw: Option<PathBuf>,
    /// Where to copy the dnsmasq, keeper and reference daemon logs at the end, if anywhere.
    keep_logs: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut underlay = None;
    let mut reference = PathBuf::from(REFERENCE_DIR);
    let mut reference_label = String::from("reference");
    let mut cycles = 20;
    let mut endpoints = 20;
    let mut keeper_log_level = String::from("info");
    let mut raw = None;
    let mut keep_logs = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value ({USAGE})"))
        };
        match arg.as_str() {
            "--underlay" => underlay = Some(PathBuf::from(value()?)),
            "--reference" => reference = PathBuf::from(value()?),
            "--reference-label" => reference_label = value()?.clone(),
            "--cycles" => cycles = parse_count(value()?, MAX_CYCLES)?,
            "--endpoints" => endpoints = parse_count(value()?, MAX_ENDPOINTS)?,
            "--keeper-log-level" => keeper_log_level = value()?.clone(),
            "--raw" => raw = Some(PathBuf::from(value()?)),
            "--keep-logs" => keep_logs = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    let underlay = underlay.context("--underlay PATH is required")?;
    ensure!(underlay.is_file(), "{} is not a file", underlay.display());
    for t in ["macvlan", "dhcp"] {
        ensure!(
            reference.join(t).is_file(),
            "{} is missing (install containernetworking-plugins)",
            reference.join(t).display()
        );
    }
    ensure!(
        Command::new("dnsmasq").arg("--version").output().is_ok(),
        "dnsmasq is missing (install dnsmasq-base)"
    );
    Ok(Opts {
        underlay: std::fs::canonicalize(&underlay)?,
        reference: std::fs::canonicalize(&reference)?,
        reference_label,
        cycles,
        endpoints,
        keeper_log_level,
        raw,
        keep_logs,
    })
}

fn parse_count(v: &str, max: usize) -> Result<usize> {
    let n: usize = v.parse().with_context(|| format!("bad count {v:?}"))?;
    ensure!((1..=max).contains(&n), "count {n} out of range 1..={max}");
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Cleanup

/// Kills every process living in one of the bench's namespaces (dnsmasq, the keeper, the
/// reference daemon, a stuck plugin: nothing else can be in there, the bench made them), then
/// removes the namespaces and the temp dir.
fn remove_leftovers() -> Result<()> {
    kill_processes_in_our_namespaces()?;
    CLEANUP.remove_leftovers()
}

/// Removes everything when dropped, so an early error return leaves nothing behind.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = remove_leftovers() {
            eprintln!("underlay-dhcp-bench cleanup: {e:#}");
        }
    }
}

/// (device, inode) of every `uldhcp-bench-*` namespace.
fn our_namespaces() -> HashSet<(u64, u64)> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

/// The PIDs (not this process) whose network namespace is one of ours.
fn pids_in(namespaces: &HashSet<(u64, u64)>) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| namespaces.contains(&(m.dev(), m.ino())))
        })
        .collect()
}

fn kill_processes_in_our_namespaces() -> Result<()> {
    let namespaces = our_namespaces();
    if namespaces.is_empty() {
        return Ok(());
    }
    let pids = pids_in(&namespaces);
    for &pid in &pids {
        // Gone already is fine.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let start = Instant::now();
    while !pids_in(&namespaces).is_empty() {
        ensure!(
            start.elapsed() < START_LIMIT,
            "processes {:?} in the bench namespaces survive SIGKILL",
            pids_in(&namespaces)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running commands

struct Outcome {
    elapsed: Duration,
    ok: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Outcome {
    fn failure(&self) -> String {
        let out = String::from_utf8_lossy(&self.stdout);
        let err = String::from_utf8_lossy(&self.stderr);
        let text = format!("{} {}", out.trim(), err.trim());
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Spawn → reaping, with `input` on stdin; a call still running after [`CALL_LIMIT`] is killed
/// (and so fails).
fn run_piped(mut cmd: Command, input: &[u8]) -> Result<Outcome> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let (done, watchdog) = watchdog(child.id());
    // Far below the pipe buffer: writing before reading cannot deadlock.
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).context("writing stdin")?;
    }
    let out = child.wait_with_output()?;
    let elapsed = start.elapsed();
    let _ = done.send(());
    let _ = watchdog.join();
    Ok(Outcome {
        elapsed,
        ok: out.status.success(),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// A thread that SIGKILLs `pid` unless told within [`CALL_LIMIT`] that it was reaped.
fn watchdog(pid: u32) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        if rx.recv_timeout(CALL_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    });
    (tx, handle)
}

fn must(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    must(Command::new("ip").args(args))
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !done() {
        ensure!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn kill_child(child: &mut Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// The LAN

fn container(i: usize) -> String {
    format!("{PREFIX}c{i}")
}

fn netns_path(i: usize) -> PathBuf {
    Path::new(NETNS_DIR).join(container(i))
}

/// The switch with its addresses, the docker host plugged into it, `n` empty containers.
fn build_lan(n: usize) -> Result<()> {
    eprintln!("underlay-dhcp-bench: creating {} namespaces ...", n + 2);
    for ns in [SRV_NS, HOST_NS] {
        ip(&["netns", "add", ns])?;
    }
    for i in 0..n {
        ip(&["netns", "add", &container(i)])?;
    }
    let router = format!("{ROUTER}/24");
    let router6 = format!("{ROUTER6}/64");
    for args in [
        &["-n", SRV_NS, "link", "add", "br0", "type", "bridge"][..],
        &["-n", SRV_NS, "addr", "add", &router, "dev", "br0"],
        &["-n", SRV_NS, "addr", "add", &router6, "dev", "br0", "nodad"],
        &["-n", SRV_NS, "link", "set", "br0", "up"],
        &[
            "-n", HOST_NS, "link", "add", "eth0", "type", "veth", "peer", "name", "p1",
        ],
        &["-n", HOST_NS, "link", "set", "p1", "netns", SRV_NS],
        &["-n", SRV_NS, "link", "set", "p1", "master", "br0", "up"],
        &["-n", HOST_NS, "link", "set", "eth0", "up"],
    ] {
        ip(args).context("building the LAN")?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Server {
    NoPing,
    Ping,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Server::NoPing => "--no-ping",
            Server::Ping => "ping check",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Server::NoPing => "noping",
            Server::Ping => "ping",
        }
    }
}

/// The run's processes and files. Dropping it stops the daemons.
struct Lab {
    dir: PathBuf,
    underlay: PathBuf,
    reference: PathBuf,
    dnsmasq: Option<Child>,
    /// The current dnsmasq's lease file and log.
    leases: PathBuf,
    log: PathBuf,
    keeper: Option<Child>,
    refd: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in [&mut self.dnsmasq, &mut self.keeper, &mut self.refd]
            .into_iter()
            .flatten()
        {
            kill_child(child);
        }
    }
}

impl Lab {
    fn new(opts: &Opts) -> Result<Lab> {
        let dir = PathBuf::from(format!("{TMP_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(dir.join("state"))?;
        Ok(Lab {
            leases: dir.join("none.leases"),
            log: dir.join("none.log"),
            dir,
            underlay: opts.underlay.clone(),
            reference: opts.reference.clone(),
            dnsmasq: None,
            keeper: None,
            refd: None,
        })
    }

    fn keeper_socket(&self) -> PathBuf {
        self.dir.join("keeper.sock")
    }

    fn ref_socket(&self) -> PathBuf {
        self.dir.join("ref-dhcp.sock")
    }

    fn keeper_log(&self) -> PathBuf {
        self.dir.join("keeper.log")
    }

    fn ref_log(&self) -> PathBuf {
        self.dir.join("ref-daemon.log")
    }

    /// Stops the running dnsmasq, if any, and starts one with a fresh lease file and log named
    /// after `label`.
    fn restart_dnsmasq(&mut self, server: Server, label: &str) -> Result<()> {
        if let Some(mut old) = self.dnsmasq.take() {
            kill_child(&mut old);
        }
        self.leases = self.dir.join(format!("{label}.leases"));
        self.log = self.dir.join(format!("{label}.dnsmasq.log"));
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            SRV_NS,
            "dnsmasq",
            "-k",
            "--conf-file=/dev/null",
        ])
        .args(["--no-resolv", "--no-hosts", "--port=0", "--bind-interfaces"])
        .args(["--interface=br0", "--user=root", "--log-dhcp", RANGE])
        .arg(format!("--dhcp-option=option:router,{ROUTER}"))
        .arg(format!("--dhcp-leasefile={}", self.leases.display()))
        .arg(format!("--log-facility={}", self.log.display()))
        .arg(format!(
            "--pid-file={}",
            self.dir.join("dnsmasq.pid").display()
        ));
        if server == Server::NoPing {
            cmd.arg("--no-ping");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting dnsmasq")?;
        self.dnsmasq = Some(child);
        let log = self.log.clone();
        wait_until(START_LIMIT, "dnsmasq did not bind br0", || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("sockets bound exclusively"))
        })
    }

    /// The keeper and the reference daemon, both in the docker host (this process's netns).
    fn start_daemons(&mut self, keeper_log_level: &str) -> Result<()> {
        let keeper = Command::new(&self.underlay)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--dhcp-socket")
            .arg(self.keeper_socket())
            .args(["--log-level", keeper_log_level, "dhcp-daemon"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(self.keeper_log())?)
            .spawn()
            .context("starting the lease keeper")?;
        self.keeper = Some(keeper);
        let refd = Command::new(self.reference.join("dhcp"))
            .arg("daemon")
            .arg("-socketpath")
            .arg(self.ref_socket())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(self.ref_log())?)
            .spawn()
            .context("starting the reference dhcp daemon")?;
        self.refd = Some(refd);
        for socket in [self.keeper_socket(), self.ref_socket()] {
            wait_until(
                START_LIMIT,
                &format!("nothing listens on {}", socket.display()),
                || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
            )?;
        }
        Ok(())
    }

    fn underlay(&self) -> Command {
        let mut cmd = Command::new(&self.underlay);
        cmd.arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--dhcp-socket")
            .arg(self.keeper_socket())
            .env_remove("RUST_LOG")
            .env_remove("UNDERLAY_CRASH_AT");
        cmd
    }

    /// The leases (address per line) in the current dnsmasq's lease file.
    fn leases(&self) -> Vec<Ipv4Addr> {
        let text = std::fs::read_to_string(&self.leases).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
            .collect()
    }

    /// Leases left once the releases had [`RELEASE_LIMIT`] to arrive.
    fn leftover_leases(&self) -> usize {
        let _ = wait_until(RELEASE_LIMIT, "", || self.leases().is_empty());
        self.leases().len()
    }
}

// ---------------------------------------------------------------------------------------------
// The implementations

#[derive(Clone, Copy, PartialEq)]
enum Impl {
    /// `underlay connect`, DHCP network, conflict detection off.
    OursOff,
    /// `underlay connect`, DHCP network, conflict detection on (probe_ms 100).
    OursOn,
    /// Floors: `underlay connect` on a pool network.
    PoolOff,
    PoolOn,
    Reference,
}

impl Impl {
    fn network(self) -> &'static str {
        match self {
            Impl::OursOff => "dhcp-off",
            Impl::OursOn => "dhcp-on",
            Impl::PoolOff => "pool-off",
            Impl::PoolOn => "pool-on",
            Impl::Reference => REF_NETWORK,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Impl::Reference => "ref",
            other => other.network(),
        }
    }

    fn create_networks(lab: &Lab) -> Result<()> {
        let dhcp = ["--ipam-driver", "dhcp"];
        let pool_off = ["--subnet", POOL_OFF[0], "--ip-range", POOL_OFF[1]];
        let pool_on = ["--subnet", POOL_ON[0], "--ip-range", POOL_ON[1]];
        let off = ["--ipam-opt", "conflict_detection=false"];
        for (imp, ipam, detection) in [
            (Impl::OursOff, &dhcp[..], &off[..]),
            (Impl::OursOn, &dhcp, &[]),
            (Impl::PoolOff, &pool_off, &off),
            (Impl::PoolOn, &pool_on, &[]),
        ] {
            must(
                lab.underlay()
                    .args(["network", "create", "-d", "macvlan", "-o", "parent=eth0"])
                    .args(ipam)
                    .args(detection)
                    .arg(imp.network()),
            )
            .with_context(|| format!("creating network {}", imp.network()))?;
        }
        Ok(())
    }

    fn ref_conf(lab: &Lab) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": REF_NETWORK, "type": "macvlan", "master": "eth0",
            "mode": "bridge",
            "ipam": {"type": "dhcp", "daemonSocketPath": lab.ref_socket()}
        })
    }

    fn cni(lab: &Lab, command: &str, i: usize) -> Command {
        let mut cmd = Command::new(lab.reference.join("macvlan"));
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container(i))
            .env("CNI_NETNS", netns_path(i))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &lab.reference);
        cmd
    }

    /// The measured call: connect / ADD of container `i`.
    fn attach(self, lab: &Lab, i: usize) -> Result<Outcome> {
        match self {
            Impl::Reference => run_piped(
                Impl::cni(lab, "ADD", i),
                Impl::ref_conf(lab).to_string().as_bytes(),
            ),
            _ => {
                let mut cmd = lab.underlay();
                cmd.args(["connect", self.network(), &container(i)]);
                run_piped(cmd, b"")
            }
        }
    }

    /// Disconnect / DEL (with the ADD result as prevResult, as libcni passes it).
    fn detach(self, lab: &Lab, i: usize, added: &Outcome) -> Result<Outcome> {
        match self {
            Impl::Reference => {
                let mut conf = Impl::ref_conf(lab);
                if let Ok(prev) = serde_json::from_slice::<Value>(&added.stdout) {
                    conf["prevResult"] = prev;
                }
                run_piped(Impl::cni(lab, "DEL", i), conf.to_string().as_bytes())
            }
            _ => {
                let mut cmd = lab.underlay();
                cmd.args(["disconnect", self.network(), &container(i)]);
                run_piped(cmd, b"")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Phases

#[derive(Clone, Copy, PartialEq)]
enum Case {
    /// K connect/disconnect cycles of container 0.
    Cycles,
    /// Containers 0..N connected one after another, then all torn down.
    Endpoints,
}

impl Case {
    fn slug(self) -> &'static str {
        match self {
            Case::Cycles => "cycles",
            Case::Endpoints => "endpoints",
        }
    }
}

struct Phase {
    /// Latencies of the successful measured calls.
    sample: Sample,
    calls: usize,
    failures: usize,
    first_failures: Vec<String>,
    /// Leases in the server's file after the teardown.
    leftover_leases: usize,
    /// Links other than `lo` found in the containers after the teardown (and removed).
    leftover_links: usize,
    /// Endpoints case: leases the server held once every endpoint was connected.
    held: Option<usize>,
    successes: usize,
}

impl Phase {
    fn new() -> Phase {
        Phase {
            sample: Sample { ms: Vec::new() },
            calls: 0,
            failures: 0,
            first_failures: Vec::new(),
            leftover_leases: 0,
            leftover_links: 0,
            held: None,
            successes: 0,
        }
    }

    fn record(&mut self, what: &str, o: &Outcome) {
        self.calls += 1;
        if !o.ok {
            self.failures += 1;
            if self.first_failures.len() < KEEP_FAILURES {
                self.first_failures.push(format!(
                    "{what} after {:.0} ms: {}",
                    o.elapsed.as_secs_f64() * 1e3,
                    o.failure()
                ));
            }
        }
    }

    fn measured(&mut self, what: &str, o: &Outcome) {
        self.record(what, o);
        if o.ok {
            self.successes += 1;
            self.sample.ms.push(o.elapsed.as_secs_f64() * 1e3);
        }
    }
}

/// A failed ADD is followed by a DEL, as runtimes do, so that nothing stays behind.
fn undo_failed(imp: Impl, lab: &Lab, i: usize, phase: &mut Phase, added: &Outcome) -> Result<()> {
    if imp == Impl::Reference {
        let o = imp.detach(lab, i, added)?;
        phase.record(&format!("DEL after failed ADD {}", container(i)), &o);
    }
    Ok(())
}

fn cycles(imp: Impl, lab: &Lab, k: usize) -> Result<Phase> {
    let mut phase = Phase::new();
    for run in 0..k {
        let o = imp.attach(lab, 0)?;
        phase.measured(&format!("connect #{run}"), &o);
        if o.ok {
            let d = imp.detach(lab, 0, &o)?;
            phase.record(&format!("disconnect #{run}"), &d);
        } else {
            undo_failed(imp, lab, 0, &mut phase, &o)?;
        }
    }
    Ok(phase)
}

fn endpoints(imp: Impl, lab: &Lab, n: usize) -> Result<Phase> {
    let mut phase = Phase::new();
    let mut added = Vec::with_capacity(n);
    for i in 0..n {
        let o = imp.attach(lab, i)?;
        phase.measured(&format!("connect {}", container(i)), &o);
        added.push(o);
    }
    phase.held = Some(lab.leases().len());
    for (i, o) in added.iter().enumerate() {
        if o.ok {
            let d = imp.detach(lab, i, o)?;
            phase.record(&format!("disconnect {}", container(i)), &d);
        } else {
            undo_failed(imp, lab, i, &mut phase, o)?;
        }
    }
    Ok(phase)
}

/// One phase against a fresh dnsmasq, with its leftovers counted.
fn phase(
    lab: &mut Lab,
    server: Server,
    case: Case,
    imp: Impl,
    opts: &Opts,
    n: usize,
) -> Result<Phase> {
    let label = format!("{}-{}-{}", server.slug(), case.slug(), imp.slug());
    eprintln!("underlay-dhcp-bench: {label} ...");
    lab.restart_dnsmasq(server, &label)?;
    let mut p = match case {
        Case::Cycles => cycles(imp, lab, opts.cycles)?,
        Case::Endpoints => endpoints(imp, lab, opts.endpoints)?,
    };
    p.leftover_leases = lab.leftover_leases();
    p.leftover_links = scrub_links(n)?;
    Ok(p)
}

/// Removes (and counts) links other than `lo` in the first `n` containers.
fn scrub_links(n: usize) -> Result<usize> {
    let mut count = 0;
    for i in 0..n {
        let out = Command::new("ip")
            .args(["-n", &container(i), "-o", "link", "show"])
            .output()?;
        ensure!(out.status.success(), "ip link show in {}", container(i));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split(':').nth(1).map(str::trim) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if name != "lo" {
                count += 1;
                ip(&["-n", &container(i), "link", "del", name])?;
            }
        }
    }
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// The run

/// Results of one server mode × one case.
struct Group {
    server: Server,
    case: Case,
    n: usize,
    off: Phase,
    on: Phase,
    reference: Phase,
}

struct Floors {
    spawn: Sample,
    packet: Sample,
    pool_off: Phase,
    pool_on: Phase,
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn run(opts: &Opts) -> Result<()> {
    remove_leftovers().context("removing leftovers of an earlier run")?;
    let _guard = Guard;
    let load_before = load();
    build_lan(opts.endpoints)?;

    // From here on this process, its threads and all children live in the docker host.
    let host = File::open(format!("{NETNS_DIR}/{HOST_NS}")).context("opening the host netns")?;
    setns(&host, CloneFlags::CLONE_NEWNET).context("setns into uldhcp-bench-host")?;
    drop(host);

    let mut lab = Lab::new(opts)?;
    lab.start_daemons(&opts.keeper_log_level)?;
    Impl::create_networks(&lab)?;
    warm_up(&mut lab)?;

    let floors = measure_floors(&lab, opts)?;
    let mut groups = Vec::new();
    for server in [Server::NoPing, Server::Ping] {
        for (case, n) in [(Case::Cycles, 1), (Case::Endpoints, opts.endpoints)] {
            let count = if case == Case::Cycles {
                opts.cycles
            } else {
                opts.endpoints
            };
            groups.push(Group {
                server,
                case,
                n: count,
                off: phase(&mut lab, server, case, Impl::OursOff, opts, n)?,
                on: phase(&mut lab, server, case, Impl::OursOn, opts, n)?,
                reference: phase(&mut lab, server, case, Impl::Reference, opts, n)?,
            });
        }
    }
    let load_after = load();
    if let Some(path) = &opts.raw {
        write_raw(path, &groups, &floors).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &opts.keep_logs {
        keep_logs(&lab, dir).with_context(|| format!("copying the logs to {}", dir.display()))?;
    }
    let reference_daemon = reference_daemon_summary(&lab.ref_log());
    print_table(
        opts,
        &groups,
        &floors,
        (&load_before, &load_after),
        &reference_daemon,
    );
    Ok(())
}

/// One untimed connect/disconnect of each kind (page cache, the daemons' first exchange).
fn warm_up(lab: &mut Lab) -> Result<()> {
    lab.restart_dnsmasq(Server::NoPing, "warm-up")?;
    for imp in [Impl::OursOff, Impl::OursOn, Impl::PoolOff, Impl::Reference] {
        let o = imp.attach(lab, 0)?;
        ensure!(o.ok, "warm-up {} failed: {}", imp.slug(), o.failure());
        let d = imp.detach(lab, 0, &o)?;
        ensure!(
            d.ok,
            "warm-up {} teardown failed: {}",
            imp.slug(),
            d.failure()
        );
    }
    Ok(())
}

fn measure_floors(lab: &Lab, opts: &Opts) -> Result<Floors> {
    eprintln!("underlay-dhcp-bench: floors ...");
    let spawn = (0..SPAWN_RUNS)
        .map(|_| timed(&mut Command::new("/bin/true")))
        .collect::<Result<Vec<_>>>()?;
    let pool_off = cycles(Impl::PoolOff, lab, opts.cycles)?;
    let pool_on = cycles(Impl::PoolOn, lab, opts.cycles)?;
    Ok(Floors {
        spawn: Sample::new(&spawn),
        packet: packet_socket_floor()?,
        pool_off,
        pool_on,
    })
}

/// `socket(AF_PACKET, SOCK_RAW, ETH_P_ALL)` then `close`, in this process: the kernel's
/// `packet_release` waits for an RCU grace period (`synchronize_net`), so this is what every
/// packet socket (DHCPv4 before an address, ARP probes, announcements) costs at least.
fn packet_socket_floor() -> Result<Sample> {
    let mut took = Vec::with_capacity(PACKET_RUNS);
    for _ in 0..PACKET_RUNS {
        let start = Instant::now();
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .context("opening an AF_PACKET socket")?;
        drop(fd);
        took.push(start.elapsed());
    }
    Ok(Sample::new(&took))
}

fn keep_logs(lab: &Lab, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(&lab.dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") || name.ends_with(".leases") {
            std::fs::copy(entry.path(), dir.join(&name))?;
        }
    }
    Ok(())
}

fn write_raw(path: &Path, groups: &[Group], floors: &Floors) -> Result<()> {
    let mut csv = String::from("server,case,impl,index,ms\n");
    let mut rows = |server: &str, case: &str, imp: &str, s: &Sample| -> Result<()> {
        for (i, ms) in s.ms.iter().enumerate() {
            writeln!(csv, "{server},{case},{imp},{i},{ms:.3}")?;
        }
        Ok(())
    };
    for g in groups {
        let (s, c) = (g.server.slug(), g.case.slug());
        rows(s, c, Impl::OursOff.slug(), &g.off.sample)?;
        rows(s, c, Impl::OursOn.slug(), &g.on.sample)?;
        rows(s, c, Impl::Reference.slug(), &g.reference.sample)?;
    }
    rows(
        "none",
        "cycles",
        Impl::PoolOff.slug(),
        &floors.pool_off.sample,
    )?;
    rows(
        "none",
        "cycles",
        Impl::PoolOn.slug(),
        &floors.pool_on.sample,
    )?;
    rows("none", "spawn", "/bin/true", &floors.spawn)?;
    rows("none", "packet", "socket+close", &floors.packet)?;
    std::fs::write(path, csv)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The table

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "MISSED"
    }
}

fn max_of(s: &Sample) -> f64 {
    s.ms.iter().copied().fold(f64::NAN, f64::max)
}

fn case_label(g: &Group, on: bool) -> String {
    let what = match g.case {
        Case::Cycles => "1 endpoint",
        Case::Endpoints => "sequential endpoints",
    };
    let detection = if on { "on " } else { "off" };
    format!("{:<10} {what:<20} det {detection}", g.server.label())
}

fn print_header() {
    println!(
        "{:<39} {:>3} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "case (ms; det = our conflict detection)",
        "N",
        "ours med",
        "ours p95",
        "ours max",
        "ref med",
        "ref p95",
        "ref max",
        "ours/ref",
        "fail",
        "left"
    );
}

fn print_row(label: &str, n: usize, ours: &Phase, reference: Option<&Phase>) {
    let s = &ours.sample;
    let mut line = format!(
        "{label:<39} {n:>3} {:>8.1} {:>8.1} {:>8.1}",
        s.median(),
        s.p95(),
        max_of(s)
    );
    match reference {
        Some(r) => {
            let rs = &r.sample;
            let _ = write!(
                line,
                " {:>8.1} {:>8.1} {:>8.1} {:>7.3}x {:>7} {:>7}",
                rs.median(),
                rs.p95(),
                max_of(rs),
                s.median() / rs.median(),
                format!("{}/{}", ours.failures, r.failures),
                format!("{}/{}", ours.leftover_leases, r.leftover_leases)
            );
        }
        None => {
            let _ = write!(
                line,
                " {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
                "", "", "", "", ours.failures, "-"
            );
        }
    }
    println!("{line}");
}

fn print_table(
    opts: &Opts,
    groups: &[Group],
    floors: &Floors,
    load: (&str, &str),
    reference_daemon: &str,
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "underlay DHCP (connect; keeper `underlay dhcp-daemon`) vs {} (macvlan + dhcp IPAM + \
         `dhcp daemon`), dnsmasq {}; release build, {cores} cores, load {} -> {}",
        opts.reference_label,
        dnsmasq_version(),
        load.0,
        load.1
    );
    print_header();
    for g in groups {
        print_row(&case_label(g, false), g.n, &g.off, Some(&g.reference));
        print_row(&case_label(g, true), g.n, &g.on, Some(&g.reference));
    }
    let floor = |label: &str, n: usize, s: &Sample| {
        println!(
            "{label:<39} {n:>3} {:>8.1} {:>8.1} {:>8.1}",
            s.median(),
            s.p95(),
            max_of(s)
        );
    };
    println!("floors:");
    print_row(
        "underlay connect, pool network, det off",
        opts.cycles,
        &floors.pool_off,
        None,
    );
    print_row(
        "underlay connect, pool network, det on",
        opts.cycles,
        &floors.pool_on,
        None,
    );
    floor("spawn /bin/true", SPAWN_RUNS, &floors.spawn);
    floor(
        "AF_PACKET socket + close (in-process)",
        PACKET_RUNS,
        &floors.packet,
    );
    for line in [
        "ref columns: the same reference phase on both det rows (the reference does not probe)",
        "fail: failed calls ours/ref, connects and teardowns; left: leases in dnsmasq's file after \
         the teardown, ours/ref (each phase has its own fresh dnsmasq and lease file)",
        "ping check: dnsmasq pings a new address for 3 s before offering it, except one it pinged \
         in the last 30 s, and not at all after 6 pings in 30 s",
    ] {
        println!("  {line}");
    }
    print_targets(groups, floors);
    print_notes(groups, floors, reference_daemon);
}

fn dnsmasq_version() -> String {
    Command::new("dnsmasq")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace().nth(2).map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

fn print_targets(groups: &[Group], floors: &Floors) {
    let no_ping = || groups.iter().filter(|g| g.server == Server::NoPing);
    println!();
    println!("targets (ours):");
    let target = |name: &str, met: bool, got: String| {
        println!("  {name:<52} {:<7} {got}", verdict(met));
    };
    let medians: Vec<(usize, f64)> = no_ping().map(|g| (g.n, g.off.sample.median())).collect();
    let worst = medians.iter().map(|m| m.1).fold(f64::NAN, f64::max);
    target(
        &format!("median <= {TARGET_MEDIAN_MS:.0} ms (--no-ping, detection off)"),
        worst <= TARGET_MEDIAN_MS,
        join_ms(&medians, ""),
    );
    let added: Vec<(usize, f64)> = no_ping()
        .map(|g| (g.n, g.on.sample.median() - g.off.sample.median()))
        .collect();
    let worst_added = added.iter().map(|m| m.1).fold(f64::NAN, f64::max);
    target(
        &format!("detection adds <= probe_ms {PROBE_MS:.0} ms (--no-ping, median)"),
        worst_added <= PROBE_MS,
        join_ms(&added, "+"),
    );
    let pool_added = floors.pool_on.sample.median() - floors.pool_off.sample.median();
    target(
        &format!("detection adds <= probe_ms {PROBE_MS:.0} ms (pool network floor)"),
        pool_added <= PROBE_MS,
        format!("N={}: +{pool_added:.1} ms", floors.pool_on.sample.ms.len()),
    );
    let ours =
        |f: fn(&Phase) -> usize| -> usize { groups.iter().map(|g| f(&g.off) + f(&g.on)).sum() };
    let leftovers = ours(|p| p.leftover_leases);
    target(
        "0 leases left in dnsmasq after our teardowns",
        leftovers == 0,
        format!("{leftovers}"),
    );
    let ref_sum =
        |f: fn(&Phase) -> usize| -> usize { groups.iter().map(|g| f(&g.reference)).sum() };
    println!(
        "  failed calls: ours {} of {}, reference {} of {}; reference leases left: {}",
        ours(|p| p.failures),
        ours(|p| p.calls),
        ref_sum(|p| p.failures),
        ref_sum(|p| p.calls),
        ref_sum(|p| p.leftover_leases)
    );
}

/// What the reference daemon's log says about its acquisitions: how many found the link down
/// (the plugin hands it a link that is not up yet) and how long it then slept.
fn reference_daemon_summary(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let acquisitions = text
        .lines()
        .filter(|l| l.contains("acquiring lease"))
        .count();
    let sleeps: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("retrying in ").nth(1)?.split_whitespace().next())
        .filter_map(|v| v.parse().ok())
        .collect();
    let (least, most) = (
        sleeps.iter().copied().fold(f64::NAN, f64::min),
        sleeps.iter().copied().fold(f64::NAN, f64::max),
    );
    let count = sleeps.len();
    let sample = Sample { ms: sleeps };
    format!(
        "reference daemon: {} of {acquisitions} acquisitions (warm-up included) logged \
         \"network is down\" and slept before retrying: {:.2}..{:.2} s, median {:.2} s",
        count,
        least,
        most,
        sample.median()
    )
}

fn join_ms(values: &[(usize, f64)], sign: &str) -> String {
    values
        .iter()
        .map(|(n, v)| format!("N={n}: {sign}{v:.1} ms"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Anything a reader must know to trust the rows: failures, links left, lease counts.
fn print_notes(groups: &[Group], floors: &Floors, reference_daemon: &str) {
    let mut notes = vec![reference_daemon.to_string()];
    for g in groups {
        for (who, p) in [
            ("ours det off", &g.off),
            ("ours det on", &g.on),
            ("ref", &g.reference),
        ] {
            let name = format!("{} {} {who}", g.server.label(), g.case.slug());
            for f in &p.first_failures {
                notes.push(format!("{name}: {f}"));
            }
            if p.leftover_links > 0 {
                notes.push(format!(
                    "{name}: {} links left in containers",
                    p.leftover_links
                ));
            }
            if let Some(held) = p.held.filter(|&h| h != p.successes) {
                notes.push(format!(
                    "{name}: the server held {held} leases for {} connected endpoints",
                    p.successes
                ));
            }
        }
    }
    for (who, p) in [
        ("pool det off", &floors.pool_off),
        ("pool det on", &floors.pool_on),
    ] {
        for f in &p.first_failures {
            notes.push(format!("{who}: {f}"));
        }
    }
    if !notes.is_empty() {
        println!();
        println!("notes:");
        for n in notes {
            println!("  {n}");
        }
    }
}
