//! `underlay-cni-bench`: underlay's CNI plugins (`underlay-cni` answering as `macvlan` and
//! `host-local`) against the reference plugins (containernetworking-plugins), called exactly as
//! a runtime calls them, in the same topology with the same config. Prints one table on stdout.
//!
//! Usage: `underlay-cni-bench --plugin PATH/underlay-cni [--reference DIR] [--sizes 100,500]
//! [--throughput-ops 200] [--raw FILE.csv]` (root; see `bench/cni`).
//!
//! What one "call" is: exec `$CNI_PATH/macvlan` with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
//! CNI_IFNAME=eth0 and CNI_PATH in an otherwise empty environment, the network config on stdin,
//! stdout and stderr captured; timed from spawn to reaping. CHECK and DEL get the ADD result as
//! `prevResult`, as libcni passes the cached result on both.
//!
//! Layout while it runs (everything is named `ulcni-bench-*` and removed again, even on error):
//! - netns `ulcni-bench-host` holding a veth pair; its end `eth0` (up, peer up) is the macvlan
//!   master. The bench process `setns`es into it once, so every plugin starts there the way a
//!   runtime starts it from the host netns (no `ip netns exec` in the measurement).
//! - netns `ulcni-bench-c<i>`, one per endpoint, created once for the largest phase and reused:
//!   every phase ends with DEL, and a leak check verifies that only `lo` is left (and removes
//!   anything that is, so the next phase starts clean). Deleting and re-creating namespaces
//!   mid-run would leave the kernel's asynchronous netns cleanup competing with the timings.
//! - `/tmp/ulcni-bench-<pid>-bin`: CNI_PATH for ours (links `macvlan`, `host-local` → PATH);
//!   `/tmp/ulcni-bench-<pid>-<impl>-<phase>`: a fresh host-local dataDir per phase.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sched::{setns, CloneFlags};
use serde_json::{json, Value};
use underlay_bench::common::{
    exit_code, ip_batch, parse_counts, timed, Cleanup, CleanupGuard, Sample, NETNS_DIR, TAIL,
};

const PREFIX: &str = "ulcni-bench-";
const HOST_NS: &str = "ulcni-bench-host";
/// What a run leaves behind and removes: its namespaces and temp dirs.
const CLEANUP: Cleanup = Cleanup {
    netns_prefix: PREFIX,
    dir_prefix: TMP_PREFIX,
};
const TMP_PREFIX: &str = "/tmp/ulcni-bench-";
const NETWORK: &str = "benchnet";
const SUBNET: &str = "10.88.0.0/16";
const REFERENCE_DIR: &str = "/usr/lib/cni";
const GNU_TIME: &str = "/usr/bin/time";
/// Largest N (and throughput op count) accepted, so every loop is bounded and every endpoint
/// gets its own address in the /16.
const MAX_N: usize = 4000;
/// Runs of `/bin/true` for the spawn floor.
const SPAWN_RUNS: usize = 100;
/// Parallel invocations for the ADD throughput phases.
const PARALLELISM: [usize; 3] = [2, 8, 32];
/// Single ADDs measured under `/usr/bin/time -v` per implementation (the median is reported).
const RSS_RUNS: usize = 5;
/// Failure messages kept per phase.
const KEEP_FAILURES: usize = 3;
/// Targets from the brief.
const TARGET_ADD_RATIO: f64 = 0.25;
const TARGET_CHECK_MS: f64 = 2.0;
const TARGET_DEL_OVER_FLOOR: f64 = 1.1;
const TARGET_P32_OPS: f64 = 400.0;
const TARGET_RSS_RATIO: f64 = 0.6;
/// Hidden mode that only removes leftovers (used by `bench/cni` on exit and interrupt).
const CLEANUP_ONLY: &str = "--cleanup-only";
const USAGE: &str = "usage: underlay-cni-bench --plugin PATH/underlay-cni [--reference DIR] \
    [--reference-label TEXT] [--sizes 100,500] [--throughput-ops 200] [--raw FILE.csv]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(CLEANUP_ONLY) => CLEANUP.remove_leftovers(),
        _ => parse_args(&args).and_then(|opts| run(&opts)),
    };
    exit_code("underlay-cni-bench", result)
}

struct Opts {
    plugin: PathBuf,
    reference: PathBuf,
    reference_label: String,
    sizes: Vec<usize>,
    throughput_ops: usize,
    /// Where to write every single latency as CSV (impl,operation,n,index,ms), if anywhere.
    raw: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut plugin = None;
    let mut reference = PathBuf::from(REFERENCE_DIR);
    let mut reference_label = String::from("reference");
    let mut sizes = vec![100, 500];
    let mut throughput_ops = 200;
    let mut raw = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value ({USAGE})"))
        };
        match arg.as_str() {
            "--plugin" => plugin = Some(PathBuf::from(value()?)),
            "--reference" => reference = PathBuf::from(value()?),
            "--reference-label" => reference_label = value()?.clone(),
            "--sizes" => {
                sizes = parse_counts("--sizes", value()?)?;
            }
            "--throughput-ops" => {
                let v = value()?;
                throughput_ops = v.parse().with_context(|| format!("bad count {v:?}"))?;
            }
            "--raw" => raw = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    let plugin = plugin.context("--plugin PATH is required")?;
    ensure!(plugin.is_file(), "{} is not a file", plugin.display());
    for t in ["macvlan", "host-local"] {
        ensure!(
            reference.join(t).is_file(),
            "{} is missing (install containernetworking-plugins)",
            reference.join(t).display()
        );
    }
    ensure!(
        Path::new(GNU_TIME).is_file(),
        "{GNU_TIME} is missing (install the package `time`)"
    );
    ensure!(!sizes.is_empty(), "--sizes is empty");
    for &n in sizes.iter().chain([&throughput_ops]) {
        ensure!(
            (1..=MAX_N).contains(&n),
            "count {n} out of range 1..={MAX_N}"
        );
    }
    Ok(Opts {
        plugin: std::fs::canonicalize(&plugin)?,
        reference: std::fs::canonicalize(&reference)?,
        reference_label,
        sizes,
        throughput_ops,
        raw,
    })
}

// ---------------------------------------------------------------------------------------------
// Setup and cleanup

fn container(i: usize) -> String {
    format!("{PREFIX}c{i}")
}

fn netns_path(i: usize) -> PathBuf {
    Path::new(NETNS_DIR).join(container(i))
}

fn temp_dir(label: &str) -> Result<PathBuf> {
    let dir = PathBuf::from(format!("{TMP_PREFIX}{}-{label}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The host netns with its veth pair (both ends inside it), and `n` empty container namespaces.
fn setup(n: usize) -> Result<()> {
    eprintln!("underlay-cni-bench: creating {} namespaces ...", n + 1);
    let mut batch = format!("netns add {HOST_NS}\n");
    for i in 0..n {
        writeln!(batch, "netns add {}", container(i))?;
    }
    ip_batch(None, &batch)?;
    ip_batch(
        Some(HOST_NS),
        "link add eth0 type veth peer name peer0\nlink set peer0 up\nlink set eth0 up\n",
    )
    .context("setting up the master veth")
}

// ---------------------------------------------------------------------------------------------
// Calling a plugin

/// One implementation: a CNI_PATH holding its `macvlan` and `host-local`.
struct Plugins {
    label: &'static str,
    cni_path: PathBuf,
}

impl Plugins {
    fn conf(&self, data_dir: &Path) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": NETWORK, "type": "macvlan", "master": "eth0",
            "mode": "bridge",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}
        })
    }

    /// The plugin command as a runtime builds it (without stdin/stdout wiring).
    fn command(&self, program: Option<&Path>, cni: &str, id: &str, netns: &Path) -> Command {
        let plugin = self.cni_path.join("macvlan");
        let mut cmd = match program {
            Some(wrapper) => {
                let mut c = Command::new(wrapper);
                c.arg("-v").arg(&plugin);
                c
            }
            None => Command::new(&plugin),
        };
        cmd.env_clear()
            .env("CNI_COMMAND", cni)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.cni_path);
        cmd
    }

    /// One call, timed from spawn to reaping.
    fn call(&self, cni: &str, conf: &[u8], id: &str, netns: &Path) -> Result<Outcome> {
        run_piped(self.command(None, cni, id, netns), conf)
    }
}

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
        format!("{} {}", out.trim(), err.trim()).trim().to_string()
    }
}

fn run_piped(mut cmd: Command, input: &[u8]) -> Result<Outcome> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    // Far below the pipe buffer: writing before reading cannot deadlock.
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input)
        .context("writing the config")?;
    let out = child.wait_with_output()?;
    Ok(Outcome {
        elapsed: start.elapsed(),
        ok: out.status.success(),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

fn with_prev(conf: &Value, prev: Option<&Value>) -> Vec<u8> {
    let mut conf = conf.clone();
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    conf.to_string().into_bytes()
}

/// The IP addresses (without prefix length) of an ADD result.
fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip["address"].as_str())
                .map(|a| a.split('/').next().unwrap_or(a).to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Health: failures, duplicates, leaks

#[derive(Default)]
struct Health {
    calls: usize,
    failures: usize,
    first_failures: Vec<String>,
    duplicates: usize,
    leaked_reservations: usize,
    leaked_links: usize,
}

impl Health {
    fn record(&mut self, what: &str, outcome: &Outcome) {
        self.calls += 1;
        if !outcome.ok {
            self.failures += 1;
            if self.first_failures.len() < KEEP_FAILURES {
                self.first_failures
                    .push(format!("{what}: {}", outcome.failure()));
            }
        }
    }

    fn leaks(&self) -> usize {
        self.leaked_reservations + self.leaked_links
    }

    /// Duplicates = addresses handed out more than once among live endpoints (each extra
    /// holder counts once).
    fn count_duplicates<'a>(&mut self, results: impl Iterator<Item = &'a Value>) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in results {
            for ip in result_ips(r) {
                *seen.entry(ip).or_default() += 1;
            }
        }
        self.duplicates = seen.values().map(|c| c - 1).sum();
    }

    /// After all DELs: reservation files left in the dataDir and non-`lo` links left in the
    /// first `n` container namespaces. Leftover links are removed so the next phase starts
    /// clean.
    fn count_leaks(&mut self, data_dir: &Path, n: usize) -> Result<()> {
        self.leaked_reservations = reservations(data_dir)?.len();
        let left = links_left(n)?;
        self.leaked_links = left.iter().map(|(_, names)| names.len()).sum();
        for (i, names) in &left {
            let mut batch = String::new();
            for name in names {
                writeln!(batch, "link del {name}")?;
            }
            ip_batch(Some(&container(*i)), &batch)?;
        }
        Ok(())
    }
}

/// Reservation files (named by the address) in `<dataDir>/<network>`.
fn reservations(data_dir: &Path) -> Result<Vec<String>> {
    let dir = data_dir.join(NETWORK);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect())
}

/// Non-`lo` links in the first `n` container namespaces, read from
/// `/proc/thread-self/net/dev` by a helper thread that `setns`es into each in turn (no process
/// per namespace; the helper thread's namespace dies with it).
fn links_left(n: usize) -> Result<Vec<(usize, Vec<String>)>> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<Vec<(usize, Vec<String>)>> {
            let mut left = Vec::new();
            for i in 0..n {
                let ns = File::open(netns_path(i))
                    .with_context(|| format!("opening {}", netns_path(i).display()))?;
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns into {}", container(i)))?;
                let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
                let names: Vec<String> = dev
                    .lines()
                    .skip(2)
                    .filter_map(|l| l.split(':').next())
                    .map(|name| name.trim().to_string())
                    .filter(|name| name != "lo")
                    .collect();
                if !names.is_empty() {
                    left.push((i, names));
                }
            }
            Ok(left)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the leak-check thread panicked"))?
    })
}

// ---------------------------------------------------------------------------------------------
// Phases

/// ADD × n, then CHECK × n, then DEL × n, sequentially, in a fresh dataDir.
struct SeqPhase {
    n: usize,
    add: Sample,
    check: Sample,
    del: Sample,
    health: Health,
}

fn sequential(p: &Plugins, n: usize) -> Result<SeqPhase> {
    eprintln!("underlay-cni-bench: {}: ADD/CHECK/DEL x {n} ...", p.label);
    let data = temp_dir(&format!("{}-n{n}", p.label))?;
    let conf = p.conf(&data);
    let id = |i: usize| format!("{}-n{n}-{i}", p.label);
    let mut health = Health::default();
    let mut results: Vec<Option<Value>> = Vec::with_capacity(n);
    let (mut add, mut check, mut del) = (Vec::new(), Vec::new(), Vec::new());
    let plain = with_prev(&conf, None);
    for i in 0..n {
        let o = p.call("ADD", &plain, &id(i), &netns_path(i))?;
        health.record(&format!("ADD #{i}"), &o);
        results.push(if o.ok {
            add.push(o.elapsed);
            serde_json::from_slice(&o.stdout).ok()
        } else {
            None
        });
    }
    for (i, prev) in results.iter().enumerate() {
        let Some(prev) = prev else { continue };
        let o = p.call(
            "CHECK",
            &with_prev(&conf, Some(prev)),
            &id(i),
            &netns_path(i),
        )?;
        health.record(&format!("CHECK #{i}"), &o);
        if o.ok {
            check.push(o.elapsed);
        }
    }
    for (i, prev) in results.iter().enumerate() {
        let o = p.call(
            "DEL",
            &with_prev(&conf, prev.as_ref()),
            &id(i),
            &netns_path(i),
        )?;
        health.record(&format!("DEL #{i}"), &o);
        if o.ok {
            del.push(o.elapsed);
        }
    }
    health.count_duplicates(results.iter().flatten());
    health.count_leaks(&data, n)?;
    std::fs::remove_dir_all(&data)?;
    Ok(SeqPhase {
        n,
        add: Sample::new(&add),
        check: Sample::new(&check),
        del: Sample::new(&del),
        health,
    })
}

/// ADD throughput: `ops` ADDs (one per fresh namespace) by `parallel` concurrent invokers,
/// ops/s over the wall time; then DEL of all (untimed) and the health checks.
struct ThroughputPhase {
    parallel: usize,
    ops: usize,
    wall: Duration,
    health: Health,
}

impl ThroughputPhase {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
}

fn throughput(p: &Plugins, parallel: usize, ops: usize) -> Result<ThroughputPhase> {
    eprintln!(
        "underlay-cni-bench: {}: {ops} ADDs, {parallel} in parallel ...",
        p.label
    );
    let data = temp_dir(&format!("{}-p{parallel}", p.label))?;
    let conf = p.conf(&data);
    let plain = with_prev(&conf, None);
    let id = |i: usize| format!("{}-p{parallel}-{i}", p.label);
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..ops).map(|_| None).collect());
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..parallel)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    // Bounded: every iteration takes a fresh index below `ops`.
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= ops {
                            return Ok(());
                        }
                        let o = p.call("ADD", &plain, &id(i), &netns_path(i))?;
                        outcomes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[i] = Some(o);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    let wall = start.elapsed();
    let outcomes = outcomes
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut health = Health::default();
    let mut results = Vec::with_capacity(ops);
    for (i, o) in outcomes.iter().enumerate() {
        let o = o.as_ref().context("an ADD did not run")?;
        health.record(&format!("ADD #{i}"), o);
        results.push(if o.ok {
            serde_json::from_slice::<Value>(&o.stdout).ok()
        } else {
            None
        });
    }
    for (i, prev) in results.iter().enumerate() {
        let o = p.call(
            "DEL",
            &with_prev(&conf, prev.as_ref()),
            &id(i),
            &netns_path(i),
        )?;
        health.record(&format!("DEL #{i}"), &o);
    }
    health.count_duplicates(results.iter().flatten());
    health.count_leaks(&data, ops)?;
    std::fs::remove_dir_all(&data)?;
    Ok(ThroughputPhase {
        parallel,
        ops,
        wall,
        health,
    })
}

/// The kernel's link removal as a script does it: `ip -n NS link del eth0` per endpoint, on
/// macvlans set up like the plugins' (address, up, default route), created untimed.
fn link_del_floor(n: usize) -> Result<Sample> {
    eprintln!("underlay-cni-bench: ip link del floor x {n} ...");
    let mut batch = String::new();
    for i in 0..n {
        writeln!(
            batch,
            "link add ulf{i} link eth0 netns {} type macvlan mode bridge",
            container(i)
        )?;
    }
    ip_batch(None, &batch).context("creating the floor's macvlans")?;
    for i in 0..n {
        let a = i + 2;
        ip_batch(
            Some(&container(i)),
            &format!(
                "link set ulf{i} name eth0\naddr add 10.88.{}.{}/16 dev eth0\nlink set eth0 up\n\
                 route add default via 10.88.0.1\n",
                a / 256,
                a % 256
            ),
        )
        .with_context(|| format!("configuring the floor's macvlan #{i}"))?;
    }
    let dels = (0..n)
        .map(|i| timed(Command::new("ip").args(["-n", &container(i), "link", "del", "eth0"])))
        .collect::<Result<Vec<_>>>()?;
    let left = links_left(n)?;
    ensure!(left.is_empty(), "ip link del left links: {:?}", &left[..1]);
    Ok(Sample::new(&dels))
}

/// Peak RSS (KiB) of one ADD under `/usr/bin/time -v` ("Maximum resident set size"; GNU time
/// takes it from wait4, i.e. the max over the plugin and the IPAM plugin it runs), median of
/// [`RSS_RUNS`] ADDs, each followed by an untimed DEL.
fn peak_rss(p: &Plugins) -> Result<i64> {
    let data = temp_dir(&format!("{}-rss", p.label))?;
    let conf = p.conf(&data);
    let plain = with_prev(&conf, None);
    let mut kib = Vec::new();
    for run in 0..RSS_RUNS {
        let id = format!("{}-rss-{run}", p.label);
        let o = run_piped(
            p.command(Some(Path::new(GNU_TIME)), "ADD", &id, &netns_path(0)),
            &plain,
        )?;
        ensure!(
            o.ok,
            "{} ADD under time -v failed: {}",
            p.label,
            o.failure()
        );
        kib.push(max_rss_kib(&o.stderr)?);
        let prev: Option<Value> = serde_json::from_slice(&o.stdout).ok();
        let d = p.call("DEL", &with_prev(&conf, prev.as_ref()), &id, &netns_path(0))?;
        ensure!(
            d.ok,
            "{} DEL after the RSS run failed: {}",
            p.label,
            d.failure()
        );
    }
    std::fs::remove_dir_all(&data)?;
    kib.sort_unstable();
    Ok(kib[kib.len() / 2])
}

/// `/usr/bin/time -v /bin/true`: the figure below which a child's peak is time's own.
fn time_floor_kib() -> Result<i64> {
    let out = Command::new(GNU_TIME)
        .args(["-v", "/bin/true"])
        .stdout(Stdio::null())
        .output()?;
    ensure!(out.status.success(), "time -v /bin/true failed");
    max_rss_kib(&out.stderr)
}

fn max_rss_kib(time_stderr: &[u8]) -> Result<i64> {
    let text = String::from_utf8_lossy(time_stderr);
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes):")
                .and_then(|v| v.trim().parse().ok())
        })
        .with_context(|| format!("no \"Maximum resident set size\" in: {text}"))
}

// ---------------------------------------------------------------------------------------------
// The run

struct ImplResults {
    seq: Vec<SeqPhase>,
    throughput: Vec<ThroughputPhase>,
    rss_kib: i64,
}

struct Floors {
    link_del: Vec<(usize, Sample)>,
    spawn: Sample,
    time_kib: i64,
}

fn run(opts: &Opts) -> Result<()> {
    let max_n = opts
        .sizes
        .iter()
        .copied()
        .chain([opts.throughput_ops])
        .max()
        .context("no sizes")?;

    CLEANUP
        .remove_leftovers()
        .context("removing leftovers of an earlier run")?;
    let _cleanup = CleanupGuard(CLEANUP);
    setup(max_n)?;

    let bin = temp_dir("bin")?;
    for t in ["macvlan", "host-local"] {
        std::os::unix::fs::symlink(&opts.plugin, bin.join(t))?;
    }
    let impls = [
        Plugins {
            label: "ours",
            cni_path: bin,
        },
        Plugins {
            label: "reference",
            cni_path: opts.reference.clone(),
        },
    ];

    // From here on this process, its threads and all children live in the host netns.
    let host = File::open(format!("{NETNS_DIR}/{HOST_NS}")).context("opening host netns")?;
    setns(&host, CloneFlags::CLONE_NEWNET).context("setns into ulcni-bench-host")?;
    drop(host);

    // Warm-up: one untimed ADD/CHECK/DEL each (page cache, dynamic loader).
    for p in &impls {
        let w = sequential(p, 1)?;
        ensure!(
            w.health.failures == 0 && w.health.leaks() == 0,
            "{} warm-up failed: {:?} (leaks {})",
            p.label,
            w.health.first_failures,
            w.health.leaks()
        );
    }

    let mut results: Vec<ImplResults> = impls
        .iter()
        .map(|_| ImplResults {
            seq: Vec::new(),
            throughput: Vec::new(),
            rss_kib: 0,
        })
        .collect();
    let mut floors = Floors {
        link_del: Vec::new(),
        spawn: Sample { ms: Vec::new() },
        time_kib: 0,
    };
    let mut sizes = opts.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    for &n in &sizes {
        for (p, r) in impls.iter().zip(&mut results) {
            r.seq.push(sequential(p, n)?);
        }
        floors.link_del.push((n, link_del_floor(n)?));
    }
    for parallel in PARALLELISM {
        for (p, r) in impls.iter().zip(&mut results) {
            r.throughput
                .push(throughput(p, parallel, opts.throughput_ops)?);
        }
    }
    let spawn = (0..SPAWN_RUNS)
        .map(|_| timed(&mut Command::new("/bin/true")))
        .collect::<Result<Vec<_>>>()?;
    floors.spawn = Sample::new(&spawn);
    eprintln!("underlay-cni-bench: peak RSS ...");
    for (p, r) in impls.iter().zip(&mut results) {
        r.rss_kib = peak_rss(p)?;
    }
    floors.time_kib = time_floor_kib()?;

    if let Some(path) = &opts.raw {
        write_raw(path, &impls, &results, &floors)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print_table(opts, &results[0], &results[1], &floors);
    Ok(())
}

fn write_raw(
    path: &Path,
    impls: &[Plugins],
    results: &[ImplResults],
    floors: &Floors,
) -> Result<()> {
    let mut csv = String::from("impl,operation,n,index,ms\n");
    let mut rows = |label: &str, op: &str, n: usize, s: &Sample| -> Result<()> {
        for (i, ms) in s.ms.iter().enumerate() {
            writeln!(csv, "{label},{op},{n},{i},{ms:.4}")?;
        }
        Ok(())
    };
    for (p, r) in impls.iter().zip(results) {
        for ph in &r.seq {
            rows(p.label, "ADD", ph.n, &ph.add)?;
            rows(p.label, "CHECK", ph.n, &ph.check)?;
            rows(p.label, "DEL", ph.n, &ph.del)?;
        }
    }
    for (n, s) in &floors.link_del {
        rows("kernel", "ip link del", *n, s)?;
    }
    rows("kernel", "/bin/true", SPAWN_RUNS, &floors.spawn)?;
    std::fs::write(path, csv)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The table

/// Every phase's health, labelled, in table order.
fn phases(r: &ImplResults) -> Vec<(String, &Health)> {
    r.seq
        .iter()
        .map(|p| (format!("sequential N={}", p.n), &p.health))
        .chain(
            r.throughput
                .iter()
                .map(|p| (format!("parallel P={} x{}", p.parallel, p.ops), &p.health)),
        )
        .collect()
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "MISSED"
    }
}

fn print_table(opts: &Opts, ours: &ImplResults, reference: &ImplResults, floors: &Floors) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "underlay CNI plugins vs {} (macvlan + host-local, cniVersion 1.0.0; release build, {cores} cores)",
        opts.reference_label
    );
    println!(
        "{:<26} {:>5} {:>11} {:>8} {:>11} {:>8} {:>9}",
        "operation (ms)", "N", "ours median", "ours p95", "ref median", "ref p95", "ours/ref"
    );
    let line = |op: &str, n: usize, a: &Sample, b: &Sample| {
        println!(
            "{:<26} {:>5} {:>11.2} {:>8.2} {:>11.2} {:>8.2} {:>8.2}x",
            op,
            n,
            a.median(),
            a.p95(),
            b.median(),
            b.p95(),
            a.median() / b.median()
        );
    };
    for (o, r) in ours.seq.iter().zip(&reference.seq) {
        line("ADD", o.n, &o.add, &r.add);
    }
    for (o, r) in ours.seq.iter().zip(&reference.seq) {
        let (a, b) = (o.add.tail_median(), r.add.tail_median());
        println!(
            "{:<26} {:>5} {:>11.2} {:>8} {:>11.2} {:>8} {:>8.2}x",
            format!("ADD, median of last {}", TAIL.min(o.n)),
            o.n,
            a,
            "",
            b,
            "",
            a / b
        );
    }
    for (o, r) in ours.seq.iter().zip(&reference.seq) {
        line("CHECK (prevResult = ADD)", o.n, &o.check, &r.check);
    }
    for (o, r) in ours.seq.iter().zip(&reference.seq) {
        line("DEL", o.n, &o.del, &r.del);
    }
    for (n, s) in &floors.link_del {
        println!(
            "{:<26} {:>5} {:>11.2} {:>8.2}   (floor for DEL: kernel link removal via ip)",
            "ip -n NS link del eth0",
            n,
            s.median(),
            s.p95()
        );
    }
    println!(
        "{:<26} {:>5} {:>11.2} {:>8.2}   (spawn floor: subtract from every row)",
        "/bin/true",
        SPAWN_RUNS,
        floors.spawn.median(),
        floors.spawn.p95()
    );

    println!();
    println!(
        "{:<26} {:>5} {:>11} {:>8} {:>11} {:>8} {:>9}",
        "ADD throughput (ops/s)", "P", "ours", "", "ref", "", "ours/ref"
    );
    for (o, r) in ours.throughput.iter().zip(&reference.throughput) {
        println!(
            "{:<26} {:>5} {:>11.0} {:>8} {:>11.0} {:>8} {:>8.2}x",
            format!("{} ADDs", o.ops),
            o.parallel,
            o.ops_per_s(),
            "",
            r.ops_per_s(),
            "",
            o.ops_per_s() / r.ops_per_s()
        );
    }

    println!();
    println!(
        "{:<26} {:>5} {:>11} {:>8} {:>11} {:>8}",
        "health after each phase", "", "ours", "", "ref", ""
    );
    println!(
        "{:<26} {:>5} {:>11} {:>8} {:>11} {:>8}",
        "  (dup / leaks res+links)", "", "dup", "leaks", "dup", "leaks"
    );
    let (po, pr) = (phases(ours), phases(reference));
    for ((name, o), (_, r)) in po.iter().zip(&pr) {
        println!(
            "{:<26} {:>5} {:>11} {:>8} {:>11} {:>8}{}",
            name,
            "",
            o.duplicates,
            format!("{}+{}", o.leaked_reservations, o.leaked_links),
            r.duplicates,
            format!("{}+{}", r.leaked_reservations, r.leaked_links),
            if o.failures + r.failures > 0 {
                format!(
                    "   failed calls: ours {}/{}, ref {}/{}",
                    o.failures, o.calls, r.failures, r.calls
                )
            } else {
                String::new()
            }
        );
    }
    for (name, h) in po
        .iter()
        .map(|(n, h)| (format!("ours {n}"), h))
        .chain(pr.iter().map(|(n, h)| (format!("ref {n}"), h)))
    {
        for f in &h.first_failures {
            println!("  {name}: {f}");
        }
    }

    println!();
    let rss_ratio = ours.rss_kib as f64 / reference.rss_kib as f64;
    println!(
        "peak RSS of one ADD (time -v, median of {RSS_RUNS}): ours {:.1} MiB, ref {:.1} MiB, ours/ref {rss_ratio:.2}x \
         (time -v /bin/true: {:.1} MiB{})",
        mib(ours.rss_kib),
        mib(reference.rss_kib),
        mib(floors.time_kib),
        if ours.rss_kib <= floors.time_kib {
            "; ours is an upper bound"
        } else {
            ""
        }
    );

    // Targets.
    let worst = |f: &dyn Fn(&SeqPhase, &SeqPhase) -> f64| {
        ours.seq
            .iter()
            .zip(&reference.seq)
            .map(|(o, r)| (f(o, r), o.n))
            .fold((f64::NAN, 0), |acc, x| {
                if x.0 > acc.0 || acc.0.is_nan() {
                    x
                } else {
                    acc
                }
            })
    };
    let (add_ratio, add_n) = worst(&|o, r| o.add.median() / r.add.median());
    let (check_ms, check_n) = worst(&|o, _| o.check.median());
    let (del_ratio, del_n) = {
        let mut w = (f64::NAN, 0);
        for o in &ours.seq {
            if let Some((_, floor)) = floors.link_del.iter().find(|(n, _)| *n == o.n) {
                let x = o.del.median() / floor.median();
                if w.0.is_nan() || x > w.0 {
                    w = (x, o.n);
                }
            }
        }
        w
    };
    let p32 = ours
        .throughput
        .iter()
        .find(|t| t.parallel == 32)
        .map_or(f64::NAN, ThroughputPhase::ops_per_s);
    let dups: usize = po.iter().map(|(_, h)| h.duplicates).sum();
    let leaks: usize = po.iter().map(|(_, h)| h.leaks()).sum();
    let failures: usize = po.iter().map(|(_, h)| h.failures).sum();
    let calls: usize = po.iter().map(|(_, h)| h.calls).sum();
    println!();
    println!("targets (ours):");
    let target = |name: &str, met: bool, got: String| {
        println!("  {name:<44} {:<7} {got}", verdict(met));
    };
    target(
        &format!("ADD median <= {TARGET_ADD_RATIO}x reference"),
        add_ratio <= TARGET_ADD_RATIO,
        format!("worst {add_ratio:.2}x (N={add_n})"),
    );
    target(
        &format!("CHECK median <= {TARGET_CHECK_MS} ms"),
        check_ms <= TARGET_CHECK_MS,
        format!("worst {check_ms:.2} ms (N={check_n})"),
    );
    target(
        &format!("DEL median <= {TARGET_DEL_OVER_FLOOR}x ip link del"),
        del_ratio <= TARGET_DEL_OVER_FLOOR,
        format!("worst {del_ratio:.2}x (N={del_n})"),
    );
    target(
        &format!("ADD throughput at P=32 >= {TARGET_P32_OPS} ops/s"),
        p32 >= TARGET_P32_OPS,
        format!("{p32:.0} ops/s"),
    );
    target(
        &format!("peak RSS <= {TARGET_RSS_RATIO}x reference"),
        rss_ratio <= TARGET_RSS_RATIO,
        format!("{rss_ratio:.2}x"),
    );
    target("0 duplicate addresses", dups == 0, format!("{dups}"));
    target(
        "0 leaks (reservations + links after DEL)",
        leaks == 0,
        format!("{leaks}"),
    );
    println!("  (failed plugin calls: ours {failures} of {calls})");
}
