//! `underlay-docker-bench`: wall time of `docker run --network X --rm IMAGE true` on a network
//! of the plugin under test against Docker's built-in macvlan driver on the same parent, in
//! the same run, in a private dockerd. Prints one table on stdout.
//!
//! Usage: `underlay-docker-bench [--runs 20] [--raw FILE.csv] [--driver NAME] [--ipam-driver
//! NAME] (--underlay PATH | -- PLUGIN-COMMAND...)` (root; see `bench/docker`). The plugin
//! command runs in the daemon's namespaces and must serve `/run/docker/plugins/<driver>.sock`;
//! `{dir}` in it stands for the run's temp dir. Default: `PATH --state-dir {dir}/state
//! --dhcp-socket {dir}/dhcp.sock docker-plugin` with driver and IPAM driver `underlay`.
//!
//! What one run is: the docker CLI spawned with `run --rm --network X IMAGE true` and reaped,
//! timed from spawn to exit: create, attach, start, exit, detach, remove, as a user sees it.
//! Three series, the order rotated every round to spread drift: the built-in macvlan, the
//! plugin's network (both `--subnet 198.51.100.0/24 --gateway 198.51.100.1 -o parent=eth0`),
//! and `--network none` as the floor of everything that is not networking. If the plugin
//! cannot share the parent's subnet with the macvlan network, the two networks take turns
//! (each created before and removed after its runs, untimed).
//!
//! Layout while it runs (everything is named `uldock-bench-*` and removed again, even on
//! error; `--cleanup-only` finds what an interrupted run left):
//! - netns `uldock-bench-switch`: a bridge holding the router 198.51.100.1/24; netns
//!   `uldock-bench-host`: `eth0`, a veth to the switch, the parent of both networks;
//! - a private mount namespace held by a shell in the host netns (a tmpfs over `/run` and
//!   `/etc/docker`, sysfs of the host netns, the cgroup tree kept), in which dockerd (vfs, no
//!   bridge, no iptables, cgroup parent `uldock-bench-<pid>`) and the plugin run;
//! - `/tmp/uldock-bench-<pid>`: data-root, exec-root, sockets, logs, the plugin's state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use underlay_bench::common::{exit_code, ip_batch, Cleanup, Sample};

const PREFIX: &str = "uldock-bench-";
const SWITCH_NS: &str = "uldock-bench-switch";
const HOST_NS: &str = "uldock-bench-host";
const TMP_PREFIX: &str = "/tmp/uldock-bench-";
const CLEANUP: Cleanup = Cleanup {
    netns_prefix: PREFIX,
    dir_prefix: TMP_PREFIX,
};
const IMAGE: &str = "uldock-bench-busybox";
const BUSYBOX: &str = "/bin/busybox";
const SUBNET: &str = "198.51.100.0/24";
const GATEWAY: &str = "198.51.100.1";
const BUILTIN_NET: &str = "bench-macvlan";
const PLUGIN_NET: &str = "bench-plugin";
const DEFAULT_RUNS: usize = 20;
const MAX_RUNS: usize = 1000;
/// Untimed runs per series before measuring (page cache, first plugin connection).
const WARMUP: usize = 2;
/// Target from the issue: plugin median <= 1.2x the built-in macvlan's.
const TARGET_RATIO: f64 = 1.2;
const DOCKERD_START: Duration = Duration::from_secs(60);
const PLUGIN_START: Duration = Duration::from_secs(20);
const SWEEP: Duration = Duration::from_secs(10);
const CLEANUP_ONLY: &str = "--cleanup-only";
const USAGE: &str = "usage: underlay-docker-bench [--runs 20] [--raw FILE.csv] [--driver NAME] \
    [--ipam-driver NAME] (--underlay PATH | -- PLUGIN-COMMAND...)";

/// Same script as the test fixture's holder (crates/underlay-cli/tests/common/docker.rs).
/// `$1` names the tmpfs on `/run`: the mark by which cleanup recognises the namespace.
const HOLDER_SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=755 "$1" /run
mkdir -p /run/docker/plugins /run/ul-cgroup
mount --rbind /sys/fs/cgroup /run/ul-cgroup
mount -t sysfs sysfs /sys
mount --rbind /run/ul-cgroup /sys/fs/cgroup
umount -l /run/ul-cgroup
rmdir /run/ul-cgroup
for dir in /etc/docker /usr/lib/docker/plugins; do
  if [ -d "$dir" ]; then mount -t tmpfs -o mode=755 uldock-bench-etc "$dir"; fi
done
echo ready
read -r _ || true
"#;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(CLEANUP_ONLY) => remove_leftovers(),
        _ => parse_args(&args).and_then(|opts| run(&opts)),
    };
    exit_code("underlay-docker-bench", result)
}

struct Opts {
    runs: usize,
    driver: String,
    ipam_driver: String,
    /// The plugin command, `{dir}` not yet replaced.
    plugin: Vec<String>,
    raw: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let (ours, plugin) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let (mut runs, mut raw, mut underlay) = (DEFAULT_RUNS, None, None);
    let (mut driver, mut ipam_driver) = (String::from("underlay"), None);
    let mut it = ours.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value ({USAGE})"))
        };
        match arg.as_str() {
            "--runs" => {
                let v = value()?;
                runs = v.parse().with_context(|| format!("bad run count {v:?}"))?;
            }
            "--raw" => raw = Some(PathBuf::from(value()?)),
            "--driver" => driver = value()?.clone(),
            "--ipam-driver" => ipam_driver = Some(value()?.clone()),
            "--underlay" => underlay = Some(value()?.clone()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    ensure!(
        (1..=MAX_RUNS).contains(&runs),
        "run count {runs} out of range 1..={MAX_RUNS}"
    );
    let plugin = match (plugin.is_empty(), underlay) {
        (false, _) => plugin,
        (true, Some(path)) => default_plugin(&path)?,
        (true, None) => bail!("give --underlay PATH or a plugin command after -- ({USAGE})"),
    };
    Ok(Opts {
        runs,
        ipam_driver: ipam_driver.unwrap_or_else(|| driver.clone()),
        driver,
        plugin,
        raw,
    })
}

fn default_plugin(underlay: &str) -> Result<Vec<String>> {
    let path = fs::canonicalize(underlay).with_context(|| format!("no such file {underlay}"))?;
    Ok([
        &path.to_string_lossy(),
        "--state-dir",
        "{dir}/state",
        "--dhcp-socket",
        "{dir}/dhcp.sock",
        "docker-plugin",
    ]
    .map(String::from)
    .to_vec())
}

fn check_tools() -> Result<()> {
    for tool in [
        "dockerd",
        "containerd",
        "runc",
        "docker",
        "nsenter",
        "unshare",
        "tar",
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        ensure!(
            found,
            "{tool} is missing (Debian: docker.io pulls dockerd, containerd and runc)"
        );
    }
    ensure!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing (Debian: busybox-static)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The LAN and the private daemon

/// The switch with the router, and the docker host whose `eth0` is plugged into it.
fn setup_lan() -> Result<()> {
    ip_batch(
        None,
        &format!("netns add {SWITCH_NS}\nnetns add {HOST_NS}\n"),
    )?;
    ip_batch(
        Some(SWITCH_NS),
        &format!(
            "link set lo up\nlink add br0 type bridge\naddr add {GATEWAY}/24 dev br0\n\
             link set br0 up\n"
        ),
    )?;
    ip_batch(
        Some(HOST_NS),
        &format!(
            "link set lo up\nlink add eth0 type veth peer name port0\n\
             link set port0 netns {SWITCH_NS}\nlink set eth0 up\n"
        ),
    )?;
    ip_batch(Some(SWITCH_NS), "link set port0 master br0 up\n")
        .context("plugging eth0 into the switch")
}

/// dockerd, its namespaces and the plugin; [`Drop`] kills all of it.
struct Daemon {
    dir: PathBuf,
    cgroup_parent: String,
    holder: Child,
    holder_stdin: Option<ChildStdin>,
    dockerd: Option<Child>,
    plugin: Option<Child>,
}

impl Daemon {
    fn start(dir: PathBuf) -> Result<Daemon> {
        // The cgroup parent, and the name of the tmpfs that marks the mount namespace.
        let name = format!("{PREFIX}{}", std::process::id());
        let (holder, holder_stdin) = start_holder(&dir, &name)?;
        let mut daemon = Daemon {
            cgroup_parent: name,
            dir,
            holder,
            holder_stdin: Some(holder_stdin),
            dockerd: None,
            plugin: None,
        };
        daemon.start_dockerd()?;
        Ok(daemon)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn in_daemon_ns(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.id().to_string(), "-m", "-n", "--"])
            .args(argv);
        cmd
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        for var in [
            "DOCKER_HOST",
            "DOCKER_CONTEXT",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DOCKER_CONFIG", self.path("cli"))
            .arg("-H")
            .arg(format!("unix://{}", self.path("docker.sock").display()))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a docker command to success; returns stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self
            .docker(args)
            .output()
            .context("spawning the docker CLI")?;
        ensure!(
            out.status.success(),
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn start_dockerd(&mut self) -> Result<()> {
        fs::create_dir_all(self.path("cli"))?;
        fs::write(self.path("daemon.json"), r#"{"storage-driver": "vfs"}"#)?;
        let log = fs::File::create(self.path("dockerd.log"))?;
        let p = |name: &str| self.path(name).display().to_string();
        let argv: Vec<String> = [
            "dockerd".to_string(),
            format!("--config-file={}", p("daemon.json")),
            format!("--data-root={}", p("data")),
            format!("--exec-root={}", p("exec")),
            format!("--pidfile={}", p("docker.pid")),
            format!("--host=unix://{}", p("docker.sock")),
            format!("--cgroup-parent={}", self.cgroup_parent),
        ]
        .into_iter()
        .chain(
            [
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
                "--exec-opt=native.cgroupdriver=cgroupfs",
            ]
            .map(String::from),
        )
        .collect();
        let child = self
            .in_daemon_ns(&argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        self.dockerd = Some(child);
        self.wait_dockerd()
    }

    fn wait_dockerd(&mut self) -> Result<()> {
        let start = Instant::now();
        while self.ok(&["version"]).is_err() {
            let exited = self.dockerd.as_mut().context("dockerd")?.try_wait()?;
            ensure!(
                exited.is_none() && start.elapsed() < DOCKERD_START,
                "dockerd did not come up ({}); see {}",
                exit_text(exited),
                self.path("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn start_plugin(&mut self, argv: &[String], name: &str) -> Result<()> {
        let log = fs::File::create(self.path("plugin.log"))?;
        let child = self
            .in_daemon_ns(argv)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the plugin {argv:?}"))?;
        self.plugin = Some(child);
        let socket = format!(
            "/proc/{}/root/run/docker/plugins/{name}.sock",
            self.holder.id()
        );
        let start = Instant::now();
        while UnixStream::connect(&socket).is_err() {
            let exited = self.plugin.as_mut().context("plugin")?.try_wait()?;
            ensure!(
                exited.is_none() && start.elapsed() < PLUGIN_START,
                "the plugin does not listen on /run/docker/plugins/{name}.sock ({}): {}",
                exit_text(exited),
                fs::read_to_string(self.path("plugin.log"))
                    .unwrap_or_default()
                    .trim()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `docker import` of `/bin/busybox` with a link per applet; nothing is pulled.
    fn import_image(&self) -> Result<()> {
        let root = self.path("rootfs");
        fs::create_dir_all(root.join("bin"))?;
        fs::copy(BUSYBOX, root.join("bin/busybox"))?;
        let list = Command::new(BUSYBOX).arg("--list").output()?;
        ensure!(list.status.success(), "{BUSYBOX} --list failed");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.contains('/') {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
            }
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--owner=0", "--group=0", "--numeric-owner", "-c", "."])
            .output()?;
        ensure!(tar.status.success(), "tar of the image failed");
        let mut child = self
            .docker(&["import", "-c", "ENV PATH=/bin", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(&tar.stdout)?;
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for mut child in [self.dockerd.take(), self.plugin.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.holder_stdin.take());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        sweep();
    }
}

fn exit_text(status: Option<std::process::ExitStatus>) -> String {
    status.map_or("still running".into(), |s| format!("exited: {s}"))
}

/// `nsenter --net=/run/netns/HOST unshare -m --propagation slave sh -c HOLDER_SCRIPT sh NAME`;
/// the shell holds the mount namespace until its stdin closes.
fn start_holder(dir: &Path, name: &str) -> Result<(Child, ChildStdin)> {
    let log = fs::File::create(dir.join("holder.log"))?;
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{HOST_NS}"))
        .args(["--", "unshare", "-m", "--propagation", "slave", "--"])
        .args(["sh", "-c", HOLDER_SCRIPT, "sh", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting the namespace holder")?;
    let stdin = child.stdin.take().context("stdin")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "setting up the private mount namespace failed: {}",
            fs::read_to_string(dir.join("holder.log"))
                .unwrap_or_default()
                .trim()
        );
    }
    Ok((child, stdin))
}

// ---------------------------------------------------------------------------------------------
// Cleanup: processes by namespace and cgroup, then namespaces and temp dirs

fn ns_inode(pid: u32, kind: &str) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    link.to_str()?
        .strip_prefix(&format!("{kind}:["))?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Directories named `PREFIX*` in the cgroup trees (one per v1 hierarchy, some below this
/// process's own cgroup).
fn bench_cgroups() -> Vec<PathBuf> {
    fn find(dir: &Path, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                found.push(entry.path());
            } else if depth > 1 {
                find(&entry.path(), depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    find(Path::new("/sys/fs/cgroup"), 5, &mut found);
    found
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn cgroup_procs(dir: &Path, pids: &mut Vec<u32>) {
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for sub in subdirs(dir) {
        cgroup_procs(&sub, pids);
    }
}

fn remove_cgroup_tree(dir: &Path) {
    for sub in subdirs(dir) {
        remove_cgroup_tree(&sub);
    }
    let _ = fs::remove_dir(dir);
}

/// Processes in a mount namespace whose `/run` is a tmpfs named `PREFIX*`: recognised by that
/// mark, not by a remembered inode, which the kernel reuses once a namespace is freed.
fn in_bench_namespaces() -> Vec<u32> {
    let mut by_ns: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for pid in all_pids() {
        if let Some(ns) = ns_inode(pid, "mnt") {
            by_ns.entry(ns).or_default().push(pid);
        }
    }
    let marked = |pid: u32| {
        let mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        mounts.lines().any(|l| {
            l.split_once(" - ")
                .and_then(|(_, fs)| fs.strip_prefix("tmpfs "))
                .is_some_and(|source| source.starts_with(PREFIX))
        })
    };
    by_ns
        .into_values()
        .filter(|pids| marked(pids[0]))
        .flatten()
        .collect()
}

/// The processes of a run: in its mount namespace (dockerd, containerd, shims, the plugin) or
/// in its cgroups (the containers).
fn bench_processes() -> Vec<u32> {
    let mut pids = in_bench_namespaces();
    for dir in bench_cgroups() {
        cgroup_procs(&dir, &mut pids);
    }
    pids
}

/// SIGKILL until none is left, then the cgroups go.
fn sweep() {
    let start = Instant::now();
    loop {
        let left = bench_processes();
        if left.is_empty() || start.elapsed() > SWEEP {
            break;
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    while !bench_cgroups().is_empty() && start.elapsed() < SWEEP * 2 {
        for dir in bench_cgroups() {
            remove_cgroup_tree(&dir);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What an interrupted run left: its processes, cgroups, namespaces and temp dirs.
fn remove_leftovers() -> Result<()> {
    sweep();
    CLEANUP.remove_leftovers()
}

/// Removes everything on drop, so an early error return leaves nothing behind.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = remove_leftovers() {
            eprintln!("underlay-docker-bench cleanup: {e:#}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Copy, PartialEq)]
enum Series {
    Builtin,
    Plugin,
    NoNetwork,
}

const SERIES: [Series; 3] = [Series::Builtin, Series::Plugin, Series::NoNetwork];

impl Series {
    fn network(self) -> &'static str {
        match self {
            Series::Builtin => BUILTIN_NET,
            Series::Plugin => PLUGIN_NET,
            Series::NoNetwork => "none",
        }
    }
}

struct Networks<'a> {
    daemon: &'a Daemon,
    opts: &'a Opts,
    /// Both networks exist side by side; otherwise each is created around its own runs.
    side_by_side: bool,
}

impl<'a> Networks<'a> {
    fn create(&self, series: Series) -> Result<()> {
        let mut args = vec!["network", "create"];
        if series == Series::Plugin {
            args.extend([
                "-d",
                &self.opts.driver,
                "--ipam-driver",
                &self.opts.ipam_driver,
            ]);
        } else {
            args.extend(["-d", "macvlan"]);
        }
        args.extend([
            "--subnet",
            SUBNET,
            "--gateway",
            GATEWAY,
            "-o",
            "parent=eth0",
        ]);
        args.push(series.network());
        self.daemon.ok(&args).map(drop)
    }

    fn remove(&self, series: Series) -> Result<()> {
        self.daemon
            .ok(&["network", "rm", series.network()])
            .map(drop)
    }

    /// Creates both networks if they can share the parent and subnet; otherwise none yet.
    fn setup(daemon: &'a Daemon, opts: &'a Opts) -> Result<Networks<'a>> {
        let mut n = Networks {
            daemon,
            opts,
            side_by_side: true,
        };
        n.create(Series::Builtin)?;
        if let Err(e) = n.create(Series::Plugin) {
            eprintln!("underlay-docker-bench: the networks cannot coexist ({e:#}); taking turns");
            n.remove(Series::Builtin)?;
            n.side_by_side = false;
            n.create(Series::Plugin)?;
            n.remove(Series::Plugin)?;
        }
        Ok(n)
    }

    /// One `docker run --rm` on the series' network, timed from spawn to exit.
    fn timed_run(&self, series: Series, argv: &[&str]) -> Result<(Duration, String)> {
        let turns = !self.side_by_side && series != Series::NoNetwork;
        if turns {
            self.create(series)?;
        }
        let mut args = vec!["run", "--rm", "--network", series.network(), IMAGE];
        args.extend_from_slice(argv);
        let mut cmd = self.daemon.docker(&args);
        let start = Instant::now();
        let out = cmd.output().context("spawning the docker CLI")?;
        let elapsed = start.elapsed();
        ensure!(
            out.status.success(),
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if turns {
            self.remove(series)?;
        }
        Ok((elapsed, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// Untimed runs; the first shows that the container really got an address on the LAN.
    fn warm_up(&self, series: Series) -> Result<()> {
        let (_, shown) = self.timed_run(series, &["ip", "-o", "-4", "addr", "show"])?;
        if series != Series::NoNetwork {
            ensure!(
                shown.contains("inet 198.51.100."),
                "a container on {} got no address in {SUBNET}: {shown}",
                series.network()
            );
        }
        for _ in 1..WARMUP {
            self.timed_run(series, &["true"])?;
        }
        Ok(())
    }

    /// `runs` rounds; round r starts with series r mod 3, so each series goes first, second
    /// and third equally often.
    fn measure(&self, runs: usize) -> Result<Vec<Vec<Duration>>> {
        let mut times = vec![Vec::with_capacity(runs); SERIES.len()];
        for round in 0..runs {
            for k in 0..SERIES.len() {
                let i = (round + k) % SERIES.len();
                times[i].push(self.timed_run(SERIES[i], &["true"])?.0);
            }
        }
        Ok(times)
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Health {
    containers_left: usize,
    links_left: Vec<String>,
}

/// After all runs: containers docker still lists, links in the docker host netns other than
/// `lo` and `eth0`.
fn health(daemon: &Daemon) -> Result<Health> {
    let containers = daemon.ok(&["ps", "-aq"])?;
    let out = Command::new("ip")
        .args(["-n", HOST_NS, "-o", "link", "show"])
        .output()?;
    let links_left = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .filter(|name| name != "lo" && name != "eth0")
        .collect();
    Ok(Health {
        containers_left: containers.lines().count(),
        links_left,
    })
}

fn run(opts: &Opts) -> Result<()> {
    check_tools()?;
    remove_leftovers().context("removing leftovers of an earlier run")?;
    let _guard = Guard;
    let dir = PathBuf::from(format!("{TMP_PREFIX}{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    setup_lan()?;
    eprintln!("underlay-docker-bench: starting a private dockerd ...");
    let mut daemon = Daemon::start(dir.clone())?;
    daemon.import_image()?;
    let dir_text = dir.display().to_string();
    let plugin: Vec<String> = opts
        .plugin
        .iter()
        .map(|a| a.replace("{dir}", &dir_text))
        .collect();
    daemon.start_plugin(&plugin, &opts.driver)?;

    let networks = Networks::setup(&daemon, opts)?;
    for series in SERIES {
        networks.warm_up(series)?;
    }
    eprintln!(
        "underlay-docker-bench: {} x 3 runs of docker run --rm ...",
        opts.runs
    );
    let times = networks.measure(opts.runs)?;
    let samples: Vec<Sample> = times.iter().map(|t| Sample::new(t)).collect();
    if let Some(path) = &opts.raw {
        write_raw(path, &samples).with_context(|| format!("writing {}", path.display()))?;
    }
    let health = health(&daemon)?;
    let versions = daemon.ok(&[
        "version",
        "--format",
        "dockerd {{.Server.Version}}, docker CLI {{.Client.Version}}",
    ])?;
    print_table(
        opts,
        &plugin,
        &samples,
        &health,
        versions.trim(),
        networks.side_by_side,
    );
    Ok(())
}

fn write_raw(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut csv = String::from("series,index,ms\n");
    for (series, s) in ["macvlan", "plugin", "none"].iter().zip(samples) {
        for (i, ms) in s.ms.iter().enumerate() {
            writeln!(csv, "{series},{i},{ms:.3}")?;
        }
    }
    fs::write(path, csv)?;
    Ok(())
}

fn print_table(
    opts: &Opts,
    plugin: &[String],
    samples: &[Sample],
    health: &Health,
    versions: &str,
    side_by_side: bool,
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (builtin, ours, none) = (&samples[0], &samples[1], &samples[2]);
    println!(
        "docker run --rm --network X IMAGE true, wall time in ms (CLI spawn to exit), {} runs each, \
         order rotated every round",
        opts.runs
    );
    println!(
        "{versions}, vfs storage, {cores} cores; plugin: {}",
        plugin.join(" ")
    );
    println!(
        "{:<44} {:>9} {:>9} {:>11}",
        "network", "median", "p95", "vs macvlan"
    );
    let row = |name: String, s: &Sample| {
        println!(
            "{name:<44} {:>9.1} {:>9.1} {:>10.2}x",
            s.median(),
            s.p95(),
            s.median() / builtin.median()
        );
    };
    row("macvlan (built-in driver), parent eth0".into(), builtin);
    row(
        format!(
            "{} (driver {}, IPAM {}), parent eth0",
            opts.driver, opts.driver, opts.ipam_driver
        ),
        ours,
    );
    row("--network none (floor: no networking)".into(), none);
    println!(
        "networking above the floor (medians): macvlan {:+.1} ms, {} {:+.1} ms",
        builtin.median() - none.median(),
        opts.driver,
        ours.median() - none.median()
    );
    println!(
        "networks: {}, subnet {SUBNET}, gateway {GATEWAY}",
        if side_by_side {
            "both on eth0 side by side"
        } else {
            "on eth0 one at a time (created and removed around each run, untimed)"
        }
    );
    println!(
        "after the runs: {} containers left, {} links left in the docker host netns{}",
        health.containers_left,
        health.links_left.len(),
        if health.links_left.is_empty() {
            String::new()
        } else {
            format!(" ({})", health.links_left.join(", "))
        }
    );
    let ratio = ours.median() / builtin.median();
    println!();
    println!(
        "target: {} median <= {TARGET_RATIO}x built-in macvlan   {}   {ratio:.2}x",
        opts.driver,
        if ratio <= TARGET_RATIO {
            "MET"
        } else {
            "MISSED"
        }
    );
}
