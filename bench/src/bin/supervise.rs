//! `underlay-supervise-bench`: how fast `underlay daemon` notices and repairs what happens to a
//! parent link, measured from the moment the change is made to the event that reports the
//! outcome. Prints one table on stdout.
//!
//! Usage: `underlay-supervise-bench --underlay PATH [--endpoints 1,20] [--rounds 10]` (root;
//! see `bench/supervise`).
//!
//! Layout while it runs (everything is named `ul-sup-*` and removed again, even on error):
//! - netns `ul-sup-host`: `eth0`, one end of a veth pair, is the parent of a macvlan network
//!   with host access; the bench `setns`es into it, so `underlay` and `ip` start there.
//! - netns `ul-sup-lan`: the pair's other end `wire0` (198.51.100.1), the LAN that pings the
//!   endpoints after a repair.
//! - netns `ul-sup-c<i>`: the endpoints, each with a fixed address 198.51.100.(10 + i).
//! - state dir `/tmp/ul-sup-state-<pid>-n<N>`, one per endpoint count, with its own daemon.
//!
//! Per round: parent down (-> `parent_down`), up (-> `parent_up`), deleted (-> `parent_gone`)
//! and made again (-> `endpoint_recreated` for every endpoint, then every endpoint answers the
//! LAN's ping). Once per endpoint count, at the end: every endpoint netns deleted (->
//! `endpoint_released` for each). The daemon runs with its defaults, so its periodic look at
//! every endpoint comes every 30 s: a release well within that came from the kernel's
//! announcement of the namespace's death.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sched::{setns, CloneFlags};
use serde_json::Value;
use underlay_bench::common::{
    exit_code, ip, ip_batch, parse_counts, timed, Cleanup, CleanupGuard, Sample, NETNS_DIR,
};

const PREFIX: &str = "ul-sup-";
const HOST_NS: &str = "ul-sup-host";
const LAN_NS: &str = "ul-sup-lan";
const STATE_PREFIX: &str = "/tmp/ul-sup-state-";
const CLEANUP: Cleanup = Cleanup {
    netns_prefix: PREFIX,
    dir_prefix: STATE_PREFIX,
};
const NETWORK: &str = "lan";
/// How long one expected event may take before the run fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ENDPOINTS: usize = 200;
const USAGE: &str =
    "usage: underlay-supervise-bench --underlay PATH [--endpoints 1,20] [--rounds 10]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--cleanup-only") => CLEANUP.remove_leftovers(),
        _ => parse_args(&args).and_then(|opts| run(&opts)),
    };
    exit_code("underlay-supervise-bench", result)
}

struct Opts {
    underlay: PathBuf,
    endpoints: Vec<usize>,
    rounds: usize,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut underlay = None;
    let mut endpoints = vec![1, 20];
    let mut rounds = 10;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value ({USAGE})"))
        };
        match arg.as_str() {
            "--underlay" => underlay = Some(PathBuf::from(value()?)),
            "--endpoints" => endpoints = parse_counts("--endpoints", value()?)?,
            "--rounds" => {
                let v = value()?;
                rounds = v
                    .parse()
                    .with_context(|| format!("bad round count {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    let underlay = underlay.with_context(|| format!("--underlay PATH is required ({USAGE})"))?;
    ensure!(underlay.is_file(), "{} is not a file", underlay.display());
    ensure!(!endpoints.is_empty(), "--endpoints is empty");
    for &n in &endpoints {
        ensure!(
            (1..=MAX_ENDPOINTS).contains(&n),
            "endpoint count {n} out of range 1..={MAX_ENDPOINTS}"
        );
    }
    ensure!(
        (1..=1000).contains(&rounds),
        "round count {rounds} out of range 1..=1000"
    );
    Ok(Opts {
        underlay: std::fs::canonicalize(&underlay)?,
        endpoints,
        rounds,
    })
}

fn container(i: usize) -> String {
    format!("{PREFIX}c{i}")
}

fn address(i: usize) -> String {
    format!("198.51.100.{}", 10 + i)
}

/// Host and LAN namespaces joined by the parent's veth.
fn setup() -> Result<()> {
    ip_batch(None, &format!("netns add {HOST_NS}\nnetns add {LAN_NS}\n"))?;
    for ns in [HOST_NS, LAN_NS] {
        ip_batch(Some(ns), "link set lo up\n")?;
    }
    make_parent()
}

/// The parent and its wire to the LAN, as a NIC that came (back) up.
fn make_parent() -> Result<()> {
    ip_batch(
        Some(HOST_NS),
        &format!("link add eth0 type veth peer name wire0 netns {LAN_NS}\nlink set eth0 up\n"),
    )?;
    ip_batch(
        Some(LAN_NS),
        "addr add 198.51.100.1/24 dev wire0\nlink set wire0 up\n",
    )
}

/// `underlay daemon` on one state dir and a subscription to its events, each stamped with the
/// moment it was read. Killed on drop.
struct Daemon {
    child: Child,
    events: Receiver<(Instant, Value)>,
}

impl Daemon {
    fn start(bin: &Path, state_dir: &Path) -> Result<Daemon> {
        let socket = state_dir.join("daemon.sock");
        let log = File::create(state_dir.join("daemon.log"))?;
        let child = Command::new(bin)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--dhcp-socket")
            .arg(&socket)
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting underlay daemon")?;
        let mut daemon = Daemon {
            child,
            events: mpsc::channel().1,
        };
        let started = Instant::now();
        let mut stream = loop {
            match UnixStream::connect(&socket) {
                Ok(stream) => break stream,
                Err(_) if started.elapsed() < EVENT_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e).context("the daemon did not start listening"),
            }
        };
        stream.write_all(b"{\"op\":\"events\"}\n")?;
        let mut lines = BufReader::new(stream).lines();
        let ack = lines.next().context("the daemon closed the stream")??;
        ensure!(ack.contains("subscribed"), "unexpected answer {ack:?}");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if tx.send((Instant::now(), event)).is_err() {
                    break;
                }
            }
        });
        daemon.events = rx;
        Ok(daemon)
    }

    /// Forgets events that arrived before the next action.
    fn drain(&self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Waits for `count` events of `kind`; returns when the last one was read.
    fn wait_for(&self, kind: &str, count: usize) -> Result<Instant> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut seen = 0;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .with_context(|| {
                    format!("{seen} of {count} {kind} events within {EVENT_TIMEOUT:?}")
                })?;
            let Ok((at, event)) = self.events.recv_timeout(left) else {
                bail!("{seen} of {count} {kind} events within {EVENT_TIMEOUT:?}");
            };
            if event["event"] == kind {
                seen += 1;
                if seen == count {
                    return Ok(at);
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every latency of one endpoint count, in the table's order.
#[derive(Default)]
struct Measured {
    down: Vec<Duration>,
    up: Vec<Duration>,
    gone: Vec<Duration>,
    recreated: Vec<Duration>,
    reachable: Vec<Duration>,
    released: Vec<Duration>,
    unreachable: usize,
    /// Endpoints still in the state after every netns was deleted.
    left: usize,
    ip_floor: Vec<Duration>,
}

fn run(opts: &Opts) -> Result<()> {
    CLEANUP
        .remove_leftovers()
        .context("removing leftovers of an earlier run")?;
    let _cleanup = CleanupGuard(CLEANUP);
    setup()?;
    let host = File::open(format!("{NETNS_DIR}/{HOST_NS}")).context("opening the host netns")?;
    setns(&host, CloneFlags::CLONE_NEWNET).context("setns into the host netns")?;
    drop(host);

    let mut results = Vec::new();
    for &n in &opts.endpoints {
        eprintln!(
            "underlay-supervise-bench: {n} endpoints, {} rounds ...",
            opts.rounds
        );
        results.push((n, measure(opts, n)?));
    }
    print_table(opts, &results);
    Ok(())
}

fn measure(opts: &Opts, n: usize) -> Result<Measured> {
    let state_dir = PathBuf::from(format!("{STATE_PREFIX}{}-n{n}", std::process::id()));
    std::fs::create_dir_all(&state_dir)?;
    let underlay = |args: &[&str]| {
        timed(
            Command::new(&opts.underlay)
                .arg("--state-dir")
                .arg(&state_dir)
                .args(args),
        )
        .with_context(|| format!("underlay {}", args.join(" ")))
    };
    underlay(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0",
        "-o",
        "host_access=true",
        NETWORK,
    ])?;
    for i in 0..n {
        ip(&["netns", "add", &container(i)])?;
        underlay(&["connect", NETWORK, &container(i), "--ip", &address(i)])?;
    }
    let daemon = Daemon::start(&opts.underlay, &state_dir)?;
    let mut m = Measured::default();
    for _ in 0..opts.rounds {
        one_round(&daemon, n, &mut m)?;
    }
    // The namespaces go last: their endpoints are released, not rebuilt.
    daemon.drain();
    let start = Instant::now();
    let batch: String = (0..n)
        .map(|i| format!("netns del {}\n", container(i)))
        .collect();
    ip_batch(None, &batch)?;
    m.released
        .push(daemon.wait_for("endpoint_released", n)? - start);
    drop(daemon);
    m.left = endpoints_left(&opts.underlay, &state_dir)?;
    underlay(&["network", "rm", "--force", NETWORK])?;
    std::fs::remove_dir_all(&state_dir)?;
    Ok(m)
}

/// How many endpoints the state still holds.
fn endpoints_left(bin: &Path, state_dir: &Path) -> Result<usize> {
    let out = Command::new(bin)
        .arg("--state-dir")
        .arg(state_dir)
        .args(["network", "inspect", NETWORK])
        .output()
        .context("underlay network inspect")?;
    ensure!(out.status.success(), "underlay network inspect failed");
    let inspect: Value = serde_json::from_slice(&out.stdout).context("inspect's JSON")?;
    inspect[0]["Endpoints"]
        .as_object()
        .map(|e| e.len())
        .context("no Endpoints in inspect's JSON")
}

fn one_round(daemon: &Daemon, n: usize, m: &mut Measured) -> Result<()> {
    let timed_event = |action: &mut dyn FnMut() -> Result<()>, kind: &str, count: usize| {
        daemon.drain();
        let start = Instant::now();
        action()?;
        Ok::<_, anyhow::Error>((start, daemon.wait_for(kind, count)? - start))
    };
    let set = |state: &'static str| move || ip(&["link", "set", "eth0", state]).map(|_| ());
    let (_, down) = timed_event(&mut set("down"), "parent_down", 1)?;
    m.down.push(down);
    let (_, up) = timed_event(&mut set("up"), "parent_up", 1)?;
    m.up.push(up);
    let (_, gone) = timed_event(
        &mut || ip(&["link", "del", "eth0"]).map(|_| ()),
        "parent_gone",
        1,
    )?;
    m.gone.push(gone);
    let (start, recreated) = timed_event(&mut make_parent, "endpoint_recreated", n)?;
    m.recreated.push(recreated);
    let failed = ping_all(n)?;
    m.reachable.push(start.elapsed());
    m.unreachable += failed;
    // The kernel's own time for one of the actions above, for scale.
    m.ip_floor
        .push(ip(&["link", "set", "eth0", "mtu", "1500"])?);
    Ok(())
}

/// Pings every endpoint from the LAN at once; returns how many did not answer.
fn ping_all(n: usize) -> Result<usize> {
    let children = (0..n)
        .map(|i| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    LAN_NS,
                    "ping",
                    "-c1",
                    "-W2",
                    "-q",
                    &address(i),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning ping")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut failed = 0;
    for mut child in children {
        if !child.wait()?.success() {
            failed += 1;
        }
    }
    Ok(failed)
}

fn print_table(opts: &Opts, results: &[(usize, Measured)]) {
    println!(
        "underlay daemon: change made -> event read (ms), {} rounds, macvlan network with host access",
        opts.rounds
    );
    println!(
        "{:<54} {:>3} {:>8} {:>8}",
        "change -> outcome", "N", "median", "p95"
    );
    for (n, m) in results {
        let rows: [(&str, &[Duration]); 7] = [
            ("parent set down -> parent_down", &m.down),
            ("parent set up -> parent_up", &m.up),
            ("parent deleted -> parent_gone", &m.gone),
            (
                "parent made again -> every endpoint_recreated",
                &m.recreated,
            ),
            (
                "parent made again -> every endpoint answers ping",
                &m.reachable,
            ),
            (
                "all N netns deleted (once) -> every endpoint_released",
                &m.released,
            ),
            ("(floor: one `ip link set` command)", &m.ip_floor),
        ];
        for (what, sample) in rows {
            let s = Sample::new(sample);
            println!("{what:<54} {n:>3} {:>8.1} {:>8.1}", s.median(), s.p95());
        }
    }
    for (n, m) in results {
        println!(
            "N={n}: endpoints not answering ping after a rebuild: {} of {}; endpoints left after their netns died: {} of {n}",
            m.unreachable,
            n * opts.rounds,
            m.left
        );
    }
    println!(
        "netns deletion is measured once per N (they are gone after it); the daemon runs with its defaults: its periodic look is 30 s away"
    );
}
