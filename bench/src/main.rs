//! `underlay-bench`: connect/disconnect latency and peak memory of the `underlay` CLI, next to
//! the floor of doing the same kernel work with `ip` commands. Prints one table on stdout.
//!
//! Usage: `underlay-bench --underlay PATH [--sizes 100,500] [--raw FILE.csv]` (root; see
//! `bench/run`).
//!
//! Layout while it runs (everything is named `ul-bench-*` and removed again, even on error):
//! - netns `ul-bench-host` holding a veth pair; its end `eth0` (up) is the macvlan parent. The
//!   bench process `setns`es into it once, so every child (`underlay`, `ip`) starts there without
//!   paying for `ip netns exec`.
//! - netns `ul-bench-c<i>` (targets of `underlay connect`) and `ul-bench-f<i>` (targets of the
//!   `ip` floor), created once for the largest N and reused by every size: an emptied netns is
//!   as good as a new one, and deleting namespaces mid-run would leave the kernel's async netns
//!   cleanup competing with the measurements.
//! - state dirs `/tmp/ul-bench-state-<pid>-<label>`, one fresh dir and network per size.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use nix::sched::{setns, CloneFlags};
use nix::sys::resource::{getrusage, UsageWho};
use underlay_bench::common::{
    exit_code, ip, ip_batch, parse_counts, timed, Cleanup, CleanupGuard, Sample, NETNS_DIR,
};

const PREFIX: &str = "ul-bench-";
const HOST_NS: &str = "ul-bench-host";
/// What a run leaves behind and removes: its namespaces and state dirs.
const CLEANUP: Cleanup = Cleanup {
    netns_prefix: PREFIX,
    dir_prefix: STATE_PREFIX,
};
const STATE_PREFIX: &str = "/tmp/ul-bench-state-";
const NETWORK: &str = "bench";
/// Largest N accepted, so every loop is bounded (addresses and names stay unique well below).
const MAX_N: usize = 4000;
/// Runs of each reference command (`--help`, `network ls`, `ip link show`).
const REFERENCE_RUNS: usize = 30;
/// Targets from the brief.
const TARGET_MEDIAN_MS: f64 = 2.5;
const TARGET_RSS_MIB: f64 = 8.0;
/// Hidden helper mode, see [`rss_probe_child`].
const RSS_PROBE: &str = "__rss-probe";
/// Hidden mode that only removes leftovers (used by `bench/run` on interrupt).
const CLEANUP_ONLY: &str = "--cleanup-only";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(RSS_PROBE) => rss_probe_child(&args[1..]),
        Some(CLEANUP_ONLY) => CLEANUP.remove_leftovers(),
        _ => parse_args(&args).and_then(|opts| run(&opts)),
    };
    exit_code("underlay-bench", result)
}

struct Opts {
    underlay: PathBuf,
    sizes: Vec<usize>,
    /// Where to write every single latency as CSV (operation,n,index,ms), if anywhere.
    raw: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut underlay = None;
    let mut sizes = vec![100, 500];
    let mut raw = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--underlay" => underlay = Some(PathBuf::from(it.next().context("--underlay PATH")?)),
            "--sizes" => {
                sizes = parse_counts("--sizes", it.next().context("--sizes N,N,...")?)?;
            }
            "--raw" => raw = Some(PathBuf::from(it.next().context("--raw FILE.csv")?)),
            "-h" | "--help" => {
                println!("usage: underlay-bench --underlay PATH [--sizes 100,500] [--raw FILE.csv]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (usage: --underlay PATH [--sizes 100,500] [--raw FILE.csv])"),
        }
    }
    let underlay = underlay.context("--underlay PATH is required")?;
    ensure!(underlay.is_file(), "{} is not a file", underlay.display());
    ensure!(!sizes.is_empty(), "--sizes is empty");
    for &n in &sizes {
        ensure!(
            (1..=MAX_N).contains(&n),
            "size {n} out of range 1..={MAX_N}"
        );
    }
    // Absolute, because the path must survive nothing but is printed in errors.
    let underlay = std::fs::canonicalize(&underlay)?;
    Ok(Opts {
        underlay,
        sizes,
        raw,
    })
}

struct Underlay<'a> {
    bin: &'a Path,
    state_dir: PathBuf,
}

impl Underlay<'_> {
    fn run(&self, args: &[&str]) -> Result<Duration> {
        timed(
            Command::new(self.bin)
                .arg("--state-dir")
                .arg(&self.state_dir)
                .args(args),
        )
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("--state-dir").arg(&self.state_dir).args(args);
        cmd
    }

    /// A fresh state dir with the bench network in it.
    fn fresh<'a>(bin: &'a Path, label: &str) -> Result<Underlay<'a>> {
        let state_dir = PathBuf::from(format!("{STATE_PREFIX}{}-{label}", std::process::id()));
        if state_dir.exists() {
            std::fs::remove_dir_all(&state_dir)?;
        }
        std::fs::create_dir_all(&state_dir)?;
        let u = Underlay { bin, state_dir };
        u.run(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "10.88.0.0/16",
            "-o",
            "parent=eth0",
            NETWORK,
        ])
        .context("network create")?;
        Ok(u)
    }

    fn remove(self) -> Result<()> {
        self.run(&["network", "rm", "--force", NETWORK])
            .context("network rm")?;
        std::fs::remove_dir_all(&self.state_dir)?;
        Ok(())
    }
}

fn target(i: usize) -> String {
    format!("{PREFIX}c{i}")
}

fn floor_ns(i: usize) -> String {
    format!("{PREFIX}f{i}")
}

struct Row {
    operation: String,
    n: usize,
    sample: Sample,
}

fn run(opts: &Opts) -> Result<()> {
    let max_n = *opts.sizes.iter().max().context("no sizes")?;

    CLEANUP
        .remove_leftovers()
        .context("removing leftovers of an earlier run")?;
    let _cleanup = CleanupGuard(CLEANUP);
    setup(max_n)?;

    // From here on this process and all its children live in the host netns.
    let host = File::open(format!("{NETNS_DIR}/{HOST_NS}")).context("opening host netns")?;
    setns(&host, CloneFlags::CLONE_NEWNET).context("setns into ul-bench-host")?;
    drop(host);

    let mut rows = Vec::new();

    // Reference points (also warm the page cache for both binaries).
    let refs = Underlay::fresh(&opts.underlay, "ref")?;
    let mut help = Vec::new();
    let mut ls = Vec::new();
    let mut ip_show = Vec::new();
    let mut spawn = Vec::new();
    for _ in 0..REFERENCE_RUNS {
        spawn.push(timed(&mut Command::new("/bin/true"))?);
        help.push(refs.run(&["--help"])?);
        ls.push(refs.run(&["network", "ls"])?);
        ip_show.push(ip(&["link", "show", "eth0"])?);
    }
    // One untimed connect/disconnect so the first timed connect is not a cold start.
    refs.run(&["connect", NETWORK, &target(0)])?;
    refs.run(&["disconnect", NETWORK, &target(0)])?;
    refs.remove()?;

    for &n in &opts.sizes {
        eprintln!("underlay-bench: N={n}: underlay connect/disconnect ...");
        let u = Underlay::fresh(&opts.underlay, &format!("n{n}"))?;
        let connects = (0..n)
            .map(|i| {
                u.run(&["connect", NETWORK, &target(i)])
                    .with_context(|| format!("connect #{i}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let disconnects = (0..n)
            .map(|i| {
                u.run(&["disconnect", NETWORK, &target(i)])
                    .with_context(|| format!("disconnect #{i}"))
            })
            .collect::<Result<Vec<_>>>()?;
        u.remove()?;

        eprintln!("underlay-bench: N={n}: ip floor ...");
        let (adds, dels) = ip_floor(n)?;

        rows.push(Row {
            operation: "underlay connect".into(),
            n,
            sample: Sample::new(&connects),
        });
        rows.push(Row {
            operation: "ip commands (5 per connect)".into(),
            n,
            sample: Sample::new(&adds),
        });
        rows.push(Row {
            operation: "underlay disconnect".into(),
            n,
            sample: Sample::new(&disconnects),
        });
        rows.push(Row {
            operation: "ip link del".into(),
            n,
            sample: Sample::new(&dels),
        });
    }
    // Group the rows by operation (sizes ascending within each).
    let order = [
        "underlay connect",
        "ip commands (5 per connect)",
        "underlay disconnect",
        "ip link del",
    ];
    rows.sort_by_key(|r| (order.iter().position(|o| *o == r.operation), r.n));
    rows.push(Row {
        operation: "underlay --help".into(),
        n: REFERENCE_RUNS,
        sample: Sample::new(&help),
    });
    rows.push(Row {
        operation: "underlay network ls".into(),
        n: REFERENCE_RUNS,
        sample: Sample::new(&ls),
    });
    rows.push(Row {
        operation: "ip link show eth0".into(),
        n: REFERENCE_RUNS,
        sample: Sample::new(&ip_show),
    });
    rows.push(Row {
        operation: "/bin/true (spawn floor)".into(),
        n: REFERENCE_RUNS,
        sample: Sample::new(&spawn),
    });

    eprintln!("underlay-bench: peak RSS ...");
    let rss = measure_rss(&opts.underlay)?;

    if let Some(path) = &opts.raw {
        write_raw(path, &rows).with_context(|| format!("writing {}", path.display()))?;
    }
    print_table(&rows, &rss, &opts.sizes);
    Ok(())
}

/// The host netns with its veth pair (both ends inside it, nothing in the caller's netns), and
/// `max_n` empty target namespaces of each kind.
fn setup(max_n: usize) -> Result<()> {
    eprintln!("underlay-bench: creating {} namespaces ...", 2 * max_n + 1);
    let mut batch = format!("netns add {HOST_NS}\n");
    for i in 0..max_n {
        writeln!(batch, "netns add {}\nnetns add {}", target(i), floor_ns(i))?;
    }
    ip_batch(None, &batch)?;
    for args in [
        vec![
            "-n", HOST_NS, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ],
        vec!["-n", HOST_NS, "link", "set", "peer0", "up"],
        vec!["-n", HOST_NS, "link", "set", "eth0", "up"],
    ] {
        ip(&args).context("setting up the parent veth")?;
    }
    Ok(())
}

/// The same kernel work as connect/disconnect, done by `ip` (as a shell script would): the time
/// of the 5 commands of one endpoint summed, then one `link del` per endpoint.
fn ip_floor(n: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut adds = Vec::with_capacity(n);
    for i in 0..n {
        let ns = floor_ns(i);
        let tmp = format!("ulb{i}");
        let addr = format!("10.89.{}.{}/16", (i + 2) / 256, (i + 2) % 256);
        let steps: [&[&str]; 5] = [
            &[
                "link", "add", &tmp, "link", "eth0", "netns", &ns, "type", "macvlan", "mode",
                "bridge",
            ],
            &["-n", &ns, "link", "set", &tmp, "name", "eth0"],
            &["-n", &ns, "addr", "add", &addr, "dev", "eth0"],
            &["-n", &ns, "link", "set", "eth0", "up"],
            &[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                "10.89.0.1",
                "metric",
                "0",
            ],
        ];
        let mut total = Duration::ZERO;
        for step in steps {
            total += ip(step).with_context(|| format!("ip floor endpoint #{i}"))?;
        }
        adds.push(total);
    }
    let dels = (0..n)
        .map(|i| ip(&["-n", &floor_ns(i), "link", "del", "eth0"]))
        .collect::<Result<Vec<_>>>()?;
    Ok((adds, dels))
}

/// Peak RSS (KiB) of single CLI runs.
struct Rss {
    connect: i64,
    ls: i64,
    help: i64,
    /// The probe helper's own peak: a child's figure at or below it is only an upper bound.
    probe_self: i64,
}

/// Peak RSS of one CLI run, measured with getrusage(RUSAGE_CHILDREN).ru_maxrss. That figure is
/// the maximum over *all* children a process has waited for, so it is taken in a dedicated
/// helper process (this binary re-executed in `__rss-probe` mode) whose only child is the one
/// `underlay` run being measured. No unsafe, no wait4.
///
/// Caveat: Rust spawns through posix_spawn (clone with CLONE_VM|CLONE_VFORK), and Linux folds the
/// high-water mark of the mm a process had before execve into its ru_maxrss, so the child's
/// figure is max(helper's RSS, underlay's RSS). The helper reports its own peak too; when the
/// child's figure is above it, the figure is underlay's own.
fn measure_rss(bin: &Path) -> Result<Rss> {
    let u = Underlay::fresh(bin, "rss")?;
    let probe = |args: &[&str]| -> Result<(i64, i64)> {
        let inner = u.command(args);
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg(RSS_PROBE)
            .arg(inner.get_program())
            .args(inner.get_args());
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .context("running the RSS probe")?;
        ensure!(
            out.status.success(),
            "RSS probe of {args:?} failed: {}",
            out.status
        );
        let text = String::from_utf8(out.stdout)?;
        let mut fields = text.split_whitespace().map(str::parse::<i64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(child)), Some(Ok(me))) => Ok((child, me)),
            _ => bail!("RSS probe printed {text:?}"),
        }
    };
    let (connect, probe_self) = probe(&["connect", NETWORK, &target(0)])?;
    let (ls, _) = probe(&["network", "ls"])?;
    let (help, _) = probe(&["--help"])?;
    u.run(&["disconnect", NETWORK, &target(0)])?;
    u.remove()?;
    Ok(Rss {
        connect,
        ls,
        help,
        probe_self,
    })
}

/// `__rss-probe PROGRAM ARGS...`: run it once (output discarded) and print
/// "<children max_rss KiB> <own max_rss KiB>".
fn rss_probe_child(args: &[String]) -> Result<()> {
    let (program, rest) = args.split_first().context("__rss-probe PROGRAM ARGS...")?;
    let status = Command::new(program)
        .args(rest)
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "{program} failed: {status}");
    let children = getrusage(UsageWho::RUSAGE_CHILDREN)?.max_rss();
    let me = getrusage(UsageWho::RUSAGE_SELF)?.max_rss();
    println!("{children} {me}");
    Ok(())
}

fn write_raw(path: &Path, rows: &[Row]) -> Result<()> {
    let mut csv = String::from("operation,n,index,ms\n");
    for r in rows {
        for (i, ms) in r.sample.ms.iter().enumerate() {
            writeln!(csv, "{},{},{i},{ms:.4}", r.operation, r.n)?;
        }
    }
    std::fs::write(path, csv)?;
    Ok(())
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

fn print_table(rows: &[Row], rss: &Rss, sizes: &[usize]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("underlay connect/disconnect benchmark (release build, {cores} cores)");
    println!(
        "{:<29} {:>5} {:>11} {:>8} {:>19}",
        "operation", "N", "median ms", "p95 ms", "last-100 median ms"
    );
    for r in rows {
        println!(
            "{:<29} {:>5} {:>11.2} {:>8.2} {:>19.2}",
            r.operation,
            r.n,
            r.sample.median(),
            r.sample.p95(),
            r.sample.tail_median()
        );
    }
    let bound = |kib: i64| {
        if kib <= rss.probe_self {
            " (upper bound)"
        } else {
            ""
        }
    };
    println!(
        "peak RSS of one underlay run: {:.1} MiB (target <= {TARGET_RSS_MIB} MiB); network ls {:.1} MiB{}, --help {:.1} MiB{}",
        mib(rss.connect),
        mib(rss.ls),
        bound(rss.ls),
        mib(rss.help),
        bound(rss.help)
    );
    if rss.connect <= rss.probe_self {
        println!(
            "  (connect figure is an upper bound: not above the probe's own {:.1} MiB)",
            mib(rss.probe_self)
        );
    }

    let connect = |n: usize| {
        rows.iter()
            .find(|r| r.operation == "underlay connect" && r.n == n)
    };
    let (Some(&lo), Some(&hi)) = (sizes.iter().min(), sizes.iter().max()) else {
        return;
    };
    let (Some(first), Some(last)) = (connect(lo), connect(hi)) else {
        return;
    };
    let median = sizes
        .iter()
        .filter_map(|&n| connect(n))
        .map(|r| r.sample.median())
        .fold(f64::NAN, f64::max);
    let ratio = last.sample.tail_median() / first.sample.tail_median();
    // The same comparison inside the largest run alone, immune to load drifting between runs.
    let within = last.sample.tail_median() / last.sample.head_median();
    println!(
        "targets: connect median <= {TARGET_MEDIAN_MS} ms ({}: worst median {median:.2} ms), RSS {}",
        if median <= TARGET_MEDIAN_MS { "met" } else { "MISSED" },
        if mib(rss.connect) <= TARGET_RSS_MIB { "met" } else { "MISSED" },
    );
    println!(
        "flatness: last-100 median at N={hi} / at N={lo} = {ratio:.2}; within N={hi}: last-100 / first-100 median = {within:.2}"
    );
}
