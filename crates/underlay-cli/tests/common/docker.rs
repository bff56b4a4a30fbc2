//! A real, private dockerd on a LAN built from namespaces, for end-to-end tests of Docker
//! network plugins.
//!
//! Layout (all of it made by [`DockerLan::new`] and removed on drop, also when a test fails):
//! - the LAN of [`DhcpLan`]: a switch netns whose bridge holds the router 198.51.100.1/24 and
//!   2001:db8:d::1/64 (dnsmasq on demand), and the docker host netns whose `eth0` hangs off the
//!   switch: the parent for the networks under test;
//! - a private mount namespace, held open by a small "holder" process sitting in the docker
//!   host netns: a tmpfs over `/run` (so plugin discovery in `/run/docker/plugins` sees only
//!   our sockets, and containerd's hard-wired `/run/containerd` stays ours), a tmpfs over
//!   `/etc/docker` (the host's daemon.json, key.json and plugin specs), and a sysfs remounted in
//!   the docker host netns (`/sys/class/net` shows its links) with the host's cgroup tree kept;
//! - dockerd (and the containerd it starts) inside that mount + net namespace, with its
//!   data-root, exec-root, pidfile and socket in a temp dir, vfs storage, no bridge, no
//!   iptables, no userland proxy, and a cgroup parent of its own;
//! - the plugin under test, started in the same mount + net namespace (`nsenter -t HOLDER -m
//!   -n`), so its socket in `/run/docker/plugins` is the one dockerd discovers.
//!
//! Teardown does not rely on dockerd or the plugin behaving: it kills dockerd and the plugin,
//! then every process left in the private mount namespace (containerd, shims, anything a test
//! started there) and in the cgroup parent (the containers), removes the cgroups, and lets
//! the mount namespace die with its last process; the LAN and temp dirs go after that.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{fs, thread};

use serde_json::Value;
use tempfile::TempDir;

use super::dhcp::DhcpLan;
use super::{require_root, run};

/// The test image: Debian's static busybox with its applet links, imported, never pulled.
pub const IMAGE: &str = "ul-test-busybox";
pub const SUBNET: &str = "198.51.100.0/24";
pub const GATEWAY: &str = super::dhcp::ROUTER;
pub const SUBNET6: &str = "2001:db8:d::/64";
pub const GATEWAY6: &str = super::dhcp::ROUTER6;
/// Where the test image's busybox comes from (Debian: busybox-static).
const BUSYBOX: &str = "/bin/busybox";
/// How long dockerd may take to answer, to stop, and a plugin to listen.
const DOCKERD_START: Duration = Duration::from_secs(60);
const DOCKERD_STOP: Duration = Duration::from_secs(30);
const PLUGIN_START: Duration = Duration::from_secs(20);
const SWEEP: Duration = Duration::from_secs(10);

/// Sets up the private mount namespace, prints `ready`, then holds the namespace until its
/// stdin closes (the fixture drops it, or the test process dies). `$1` names the tmpfs on
/// `/run`: the mark by which teardown recognises the namespace.
const HOLDER_SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=755 "$1" /run
mkdir -p /run/docker/plugins /run/ul-cgroup
# sysfs shows the links of the netns it is mounted from; keep the cgroup tree across the
# remount, runc needs it.
mount --rbind /sys/fs/cgroup /run/ul-cgroup
mount -t sysfs sysfs /sys
mount --rbind /run/ul-cgroup /sys/fs/cgroup
umount -l /run/ul-cgroup
rmdir /run/ul-cgroup
for dir in /etc/docker /usr/lib/docker/plugins; do
  if [ -d "$dir" ]; then mount -t tmpfs -o mode=755 ul-docker-etc "$dir"; fi
done
echo ready
read -r _ || true
"#;

/// A minimal udhcpc hook, so `udhcpc -i eth0` in the image configures what it leases.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done ;;
esac
"#;

/// What dockerd is started with besides the fixed isolation flags.
#[derive(Clone, Default)]
pub struct DockerOptions {
    /// `--live-restore`: containers keep running while dockerd is down.
    pub live_restore: bool,
    /// Extra dockerd arguments (`--log-level=debug`, `--default-address-pool ...`).
    pub dockerd_args: Vec<String>,
}

/// A plugin process in the daemon's namespaces, and how to start it again.
struct Plugin {
    child: Child,
    name: String,
    argv: Vec<String>,
}

pub struct DockerLan {
    /// The switch, the docker host netns (`lan.host.name`), dnsmasq, the lease keeper.
    pub lan: DhcpLan,
    dir: TempDir,
    holder: Child,
    holder_stdin: Option<ChildStdin>,
    mnt_ns: u64,
    /// Unique per fixture: the cgroup parent, and the source of the tmpfs on the private
    /// mount namespace's `/run`.
    name: String,
    options: DockerOptions,
    dockerd: Option<Child>,
    plugin: Option<Plugin>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl DockerLan {
    pub fn new() -> DockerLan {
        DockerLan::with_options(DockerOptions::default())
    }

    /// The LAN, the private namespaces, dockerd answering, and the test image imported.
    pub fn with_options(options: DockerOptions) -> DockerLan {
        let started = Instant::now();
        require_docker();
        let lan = DhcpLan::new(0);
        let dir = tempfile::Builder::new()
            .prefix("ul-docker-")
            .tempdir()
            .unwrap();
        let name = format!(
            "ul-docker-{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let (holder, holder_stdin) = start_holder(&lan.host.name, dir.path(), &name);
        let mnt_ns = ns_inode(holder.id(), "mnt").expect("the holder's mount namespace");
        let mut docker = DockerLan {
            lan,
            dir,
            holder,
            holder_stdin: Some(holder_stdin),
            mnt_ns,
            name,
            options,
            dockerd: None,
            plugin: None,
        };
        fs::create_dir(docker.path("cli")).unwrap();
        fs::write(docker.path("daemon.json"), r#"{"storage-driver": "vfs"}"#).unwrap();
        docker.start_dockerd();
        docker.import_image();
        eprintln!("DockerLan ready in {:?}", started.elapsed());
        docker
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The docker host netns (where dockerd, the plugin and `eth0` live).
    pub fn host(&self) -> &str {
        &self.lan.host.name
    }

    /// `path` as the daemon's mount namespace sees it (e.g. `/run/docker/plugins`).
    pub fn daemon_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.holder.id()))
    }

    /// A command run in the daemon's mount + net namespaces.
    pub fn in_daemon_ns(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "-n", "--"])
            .args(argv);
        cmd
    }

    pub fn socket(&self) -> PathBuf {
        self.path("docker.sock")
    }

    pub fn data_root(&self) -> PathBuf {
        self.path("data")
    }

    /// The inode of the private mount namespace (while the fixture lives: the kernel reuses
    /// the numbers of freed namespaces).
    pub fn mnt_ns(&self) -> u64 {
        self.mnt_ns
    }

    // -----------------------------------------------------------------------------------------
    // The docker CLI

    /// The real `docker` CLI against the private daemon only (its own config dir, no
    /// DOCKER_* from the environment).
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
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
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        run(&mut self.docker_cmd(args))
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {} failed ({:?}): {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.logs_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "docker {} succeeded but should fail: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// `docker inspect` of one object, as JSON.
    pub fn inspect(&self, object: &str) -> Value {
        let text = self.ok(&["inspect", object]);
        serde_json::from_str::<Value>(&text).unwrap()[0].clone()
    }

    /// `docker run -d` of a container that sleeps (stop timeout 1 s: busybox `sleep` as PID 1
    /// ignores SIGTERM); `args` go before the image (`--network`, `--ip`, `--restart`...).
    /// Returns the container ID.
    pub fn run_sleeper(&self, name: &str, args: &[&str]) -> String {
        let mut full = vec!["run", "-d", "--name", name, "--stop-timeout", "1"];
        full.extend_from_slice(args);
        full.extend_from_slice(&[IMAGE, "sleep", "86400"]);
        self.ok(&full).trim().to_string()
    }

    fn import_image(&self) {
        let mut cmd = self.docker_cmd(&[
            "import",
            "-c",
            "ENV PATH=/bin:/sbin",
            "-c",
            r#"CMD ["sh"]"#,
            "-",
            IMAGE,
        ]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker import");
        child.stdin.take().unwrap().write_all(image_tar()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // -----------------------------------------------------------------------------------------
    // dockerd

    /// Starts dockerd (again: same data-root, so containers, networks and images persist) and
    /// waits until it answers.
    pub fn start_dockerd(&mut self) {
        assert!(self.dockerd.is_none(), "dockerd is already running");
        let log = append_log(&self.path("dockerd.log"), "dockerd (re)started");
        let child = self
            .in_daemon_ns(&["dockerd"])
            .args(self.dockerd_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        self.dockerd = Some(child);
        self.wait_dockerd_ready();
    }

    fn dockerd_args(&self) -> Vec<String> {
        let p = |name: &str| self.path(name).display().to_string();
        let mut args = vec![
            format!("--config-file={}", p("daemon.json")),
            format!("--data-root={}", p("data")),
            format!("--exec-root={}", p("exec")),
            format!("--pidfile={}", p("docker.pid")),
            format!("--host=unix://{}", p("docker.sock")),
            format!("--cgroup-parent={}", self.name),
        ];
        args.extend(
            [
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
                "--exec-opt=native.cgroupdriver=cgroupfs",
                "--shutdown-timeout=5",
            ]
            .map(String::from),
        );
        if self.options.live_restore {
            args.push("--live-restore".into());
        }
        args.extend(self.options.dockerd_args.iter().cloned());
        args
    }

    fn wait_dockerd_ready(&mut self) {
        let start = Instant::now();
        loop {
            let out = self.docker(&["version", "--format", "{{.Server.Version}}"]);
            if out.status.success() {
                return;
            }
            let exited = self.dockerd.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && start.elapsed() < DOCKERD_START,
                "dockerd did not come up ({}, {:?}): {}\n{}",
                exit_text(exited),
                start.elapsed(),
                String::from_utf8_lossy(&out.stderr),
                self.dockerd_log_tail()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dockerd_pid(&self) -> Option<u32> {
        self.dockerd.as_ref().map(Child::id)
    }

    /// A clean stop (SIGTERM, waits for the exit): without live-restore dockerd stops the
    /// containers first.
    pub fn stop_dockerd(&mut self) {
        let Some(mut child) = self.dockerd.take() else {
            return;
        };
        signal(child.id(), "TERM");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < DOCKERD_STOP,
                "dockerd did not stop within {DOCKERD_STOP:?}\n{}",
                self.dockerd_log_tail()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9 of dockerd (its containerd follows it; shims and containers stay).
    pub fn kill_dockerd(&mut self) {
        let Some(mut child) = self.dockerd.take() else {
            return;
        };
        let containerd = self.containerd();
        let _ = child.kill();
        let _ = child.wait();
        if let Some(containerd) = containerd {
            self.settle_orphan_containerd(containerd);
        }
    }

    fn containerd(&self) -> Option<ProcessId> {
        let pidfile = fs::read_to_string(self.path("exec/containerd/containerd.pid")).ok()?;
        ProcessId::of(pidfile.trim().parse().ok()?)
    }

    /// containerd dies with dockerd (parent-death signal) and is reparented to PID 1 to be
    /// reaped. Until then it is a zombie, which the next dockerd takes for a live containerd
    /// (kill -0 succeeds) and waits on it in vain; an init that reaps late (as on the test VMs)
    /// would make every kill -9 + start fail. A zombie has exited: its pidfile is stale.
    fn settle_orphan_containerd(&self, containerd: ProcessId) {
        let start = Instant::now();
        while containerd.alive() && start.elapsed() < SWEEP {
            thread::sleep(Duration::from_millis(10));
        }
        if ProcessId::of(containerd.pid) == Some(containerd) && !containerd.alive() {
            let _ = fs::remove_file(self.path("exec/containerd/containerd.pid"));
        }
    }

    pub fn restart_dockerd(&mut self) {
        self.stop_dockerd();
        self.start_dockerd();
    }

    pub fn dockerd_log(&self) -> String {
        fs::read_to_string(self.path("dockerd.log")).unwrap_or_default()
    }

    pub fn dockerd_log_tail(&self) -> String {
        format!("dockerd log tail:\n{}", tail(&self.dockerd_log(), 20))
    }

    fn logs_tail(&self) -> String {
        let plugin = match &self.plugin {
            Some(_) => format!("\nplugin log tail:\n{}", tail(&self.plugin_log(), 20)),
            None => String::new(),
        };
        format!("{}{plugin}", self.dockerd_log_tail())
    }

    // -----------------------------------------------------------------------------------------
    // The plugin under test

    /// Starts `argv` in the daemon's mount + net namespaces (prefix it with `env VAR=...` for
    /// an environment) and waits until `/run/docker/plugins/<name>.sock` accepts connections.
    /// stdout and stderr go to [`plugin_log`](Self::plugin_log).
    pub fn start_plugin(&mut self, name: &str, argv: &[&str]) {
        assert!(self.plugin.is_none(), "a plugin is already running");
        let log = append_log(
            &self.path("plugin.log"),
            &format!("plugin {name} (re)started"),
        );
        let child = self
            .in_daemon_ns(argv)
            .env_remove("RUST_LOG")
            .env_remove("UNDERLAY_CRASH_AT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start the plugin {argv:?}: {e}"));
        self.plugin = Some(Plugin {
            child,
            name: name.to_string(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
        });
        self.wait_plugin_listening();
    }

    /// underlay's own plugin: `underlay --state-dir … --dhcp-socket … docker-plugin`, serving
    /// `/run/docker/plugins/underlay.sock` (network and IPAM driver "underlay"), with the state
    /// and keeper socket of [`DhcpLan`].
    pub fn start_underlay_plugin(&mut self) {
        let state = self.lan.state_dir().display().to_string();
        let socket = self.lan.socket().display().to_string();
        let argv = [
            env!("CARGO_BIN_EXE_underlay"),
            "--state-dir",
            &state,
            "--dhcp-socket",
            &socket,
            "--log-level",
            "debug",
            "docker-plugin",
        ];
        self.start_plugin("underlay", &argv);
    }

    /// The plugin's socket, as seen from outside the daemon's mount namespace.
    pub fn plugin_socket(&self, name: &str) -> PathBuf {
        self.daemon_path(&format!("/run/docker/plugins/{name}.sock"))
    }

    fn wait_plugin_listening(&mut self) {
        let socket = self.plugin_socket(&self.plugin.as_ref().unwrap().name);
        let start = Instant::now();
        while UnixStream::connect(&socket).is_err() {
            let exited = self.plugin.as_mut().unwrap().child.try_wait().unwrap();
            assert!(
                exited.is_none() && start.elapsed() < PLUGIN_START,
                "the plugin is not listening on {} ({})\nplugin log tail:\n{}",
                socket.display(),
                exit_text(exited),
                tail(&self.plugin_log(), 20)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn plugin_pid(&self) -> Option<u32> {
        self.plugin.as_ref().map(|p| p.child.id())
    }

    /// kill -9 of the plugin (its socket file stays behind, as after a crash).
    pub fn kill_plugin(&mut self) {
        if let Some(mut p) = self.plugin.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// kill -9, then the same command again; returns when the new process listens.
    pub fn restart_plugin(&mut self) {
        let plugin = self.plugin.as_ref().expect("no plugin to restart");
        let (name, argv) = (plugin.name.clone(), plugin.argv.clone());
        self.kill_plugin();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.start_plugin(&name, &argv);
    }

    pub fn plugin_log(&self) -> String {
        fs::read_to_string(self.path("plugin.log")).unwrap_or_default()
    }

    /// The lease keeper (`underlay dhcp-daemon`) in the daemon's namespaces, so it can open
    /// the container netns paths dockerd hands out (they are mounts in that mount namespace).
    pub fn start_keeper(&mut self) {
        let log = append_log(&self.lan.keeper_log(), "keeper (re)started");
        let launcher = self.in_daemon_ns(&[env!("CARGO_BIN_EXE_underlay")]);
        self.lan.start_keeper_with(launcher, log);
    }

    /// The `underlay` CLI in the daemon's namespaces, with the plugin's state directory.
    pub fn underlay(&self, args: &[&str]) -> Output {
        run(self
            .in_daemon_ns(&[env!("CARGO_BIN_EXE_underlay")])
            .arg("--state-dir")
            .arg(self.lan.state_dir())
            .arg("--dhcp-socket")
            .arg(self.lan.socket())
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("UNDERLAY_CRASH_AT"))
    }

    // -----------------------------------------------------------------------------------------
    // Containers, seen from the kernel

    /// The PID of a running container's first process (`.State.Pid`).
    pub fn pid(&self, container: &str) -> u32 {
        let out = self.ok(&["inspect", "-f", "{{.State.Pid}}", container]);
        let pid: u32 = out.trim().parse().unwrap();
        assert_ne!(pid, 0, "container {container} is not running");
        pid
    }

    /// `argv` (host binaries) in the container's network namespace.
    pub fn in_container_netns(&self, container: &str, argv: &[&str]) -> Output {
        let pid = self.pid(container).to_string();
        run(Command::new("nsenter")
            .args(["-t", &pid, "-n", "--"])
            .args(argv))
    }

    fn container_json(&self, container: &str, args: &[&str]) -> Vec<Value> {
        let mut argv = vec!["ip", "-j"];
        argv.extend_from_slice(args);
        let out = self.in_container_netns(container, &argv);
        assert!(
            out.status.success(),
            "ip {} in {container}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// `ip -j -d link show` in the container.
    pub fn container_links(&self, container: &str) -> Vec<Value> {
        self.container_json(container, &["-d", "link", "show"])
    }

    pub fn container_link(&self, container: &str, ifname: &str) -> Option<Value> {
        self.container_links(container)
            .into_iter()
            .find(|l| l["ifname"] == ifname)
    }

    /// Global addresses of `dev` in the container, as `ip/prefixlen`.
    pub fn container_addresses(&self, container: &str, dev: &str) -> Vec<String> {
        self.container_json(container, &["addr", "show", "dev", dev])
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    }

    /// `ip -j <family> route show [args]` in the container (`family`: "-4" or "-6").
    pub fn container_routes(&self, container: &str, family: &str, args: &[&str]) -> Vec<Value> {
        let mut full = vec![family, "route", "show"];
        full.extend_from_slice(args);
        self.container_json(container, &full)
    }

    /// One ping from the container's netns (two tries: the first IPv6 packet may wait for
    /// neighbour discovery).
    pub fn pings_from(&self, container: &str, addr: &str) -> bool {
        (0..2).any(|_| {
            self.in_container_netns(container, &["ping", "-c1", "-W1", addr])
                .status
                .success()
        })
    }

    /// What docker says a container has on `network`: (IPv4/len, IPv6/len, MAC); empty strings
    /// for what it has not.
    pub fn endpoint(&self, container: &str, network: &str) -> (String, String, String) {
        let c = self.inspect(container);
        let n = &c["NetworkSettings"]["Networks"][network];
        assert!(n.is_object(), "{container} is not on {network}: {c}");
        let with_len = |ip: &str, len: &str| match n[ip].as_str() {
            Some("") | None => String::new(),
            Some(a) => format!("{a}/{}", n[len]),
        };
        (
            with_len("IPAddress", "IPPrefixLen"),
            with_len("GlobalIPv6Address", "GlobalIPv6PrefixLen"),
            n["MacAddress"].as_str().unwrap_or("").to_string(),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Teardown

    /// Everything this fixture made, to check after drop that none of it is left.
    pub fn footprint(&self) -> Footprint {
        let mut pids = fixture_processes(&self.name);
        pids.push(self.holder.id());
        Footprint {
            processes: pids.into_iter().filter_map(ProcessId::of).collect(),
            netns: vec![self.lan.srv.name.clone(), self.lan.host.name.clone()],
            dirs: vec![
                self.dir.path().to_path_buf(),
                self.lan.dir.path().to_path_buf(),
            ],
            name: self.name.clone(),
        }
    }

    /// Kills every process of the fixture: dockerd, the plugin, whatever runs in the private
    /// mount namespace or in the cgroup parent; then removes the cgroups.
    fn kill_everything(&mut self) {
        self.kill_dockerd();
        self.kill_plugin();
        self.lan.kill_keeper();
        drop(self.holder_stdin.take());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let start = Instant::now();
        loop {
            let left = fixture_processes(&self.name);
            if left.is_empty() || start.elapsed() > SWEEP {
                break;
            }
            for pid in left {
                signal(pid, "KILL");
            }
            thread::sleep(Duration::from_millis(20));
        }
        remove_cgroups(&self.name);
    }
}

impl Drop for DockerLan {
    fn drop(&mut self) {
        self.kill_everything();
    }
}

// ---------------------------------------------------------------------------------------------
// Preconditions and the image

/// Fails loudly, naming what to install: the Docker tests never pass by skipping.
pub fn require_docker() {
    require_root();
    let missing = missing_tools(std::env::var_os("PATH").as_deref());
    assert!(
        missing.is_empty(),
        "the Docker tests need {} (Debian: docker.io pulls dockerd, containerd and runc; \
         util-linux has nsenter and unshare; scripts/setup installs them)",
        missing.join(", ")
    );
    let busybox = fs::read(BUSYBOX).unwrap_or_default();
    assert!(
        is_static_elf(&busybox),
        "the Docker tests need a static {BUSYBOX} for their image (Debian: busybox-static; \
         scripts/setup installs it)"
    );
}

/// The tools a Docker test runs that are not on `path`.
pub fn missing_tools(path: Option<&std::ffi::OsStr>) -> Vec<&'static str> {
    let dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    [
        "dockerd",
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "docker",
        "nsenter",
        "unshare",
        "tar",
    ]
    .into_iter()
    .filter(|tool| !dirs.iter().any(|d| d.join(tool).is_file()))
    .collect()
}

/// An ELF executable without a PT_INTERP program header needs no dynamic loader, so it runs
/// in an image that has nothing else.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    // 64-bit little-endian only: the test machines are x86_64 or aarch64.
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..usize::from(count)).all(|i| {
        let at = phoff as usize + i * usize::from(size);
        u32_at(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

/// The image as a tarball, built once per test binary: `/bin/busybox` plus a link per applet
/// (sh, ping, ip, sleep, true, cat, udhcpc, ...), and the udhcpc hook.
pub fn image_tar() -> &'static [u8] {
    static TAR: OnceLock<Vec<u8>> = OnceLock::new();
    TAR.get_or_init(build_image_tar)
}

fn build_image_tar() -> Vec<u8> {
    let root = TempDir::new().unwrap();
    let r = |p: &str| root.path().join(p);
    for dir in [
        "bin",
        "sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "usr/share/udhcpc",
    ] {
        fs::create_dir_all(r(dir)).unwrap();
    }
    fs::copy(BUSYBOX, r("bin/busybox")).unwrap();
    let list = run(Command::new(BUSYBOX).arg("--list"));
    assert!(list.status.success(), "{BUSYBOX} --list failed");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", r(&format!("bin/{applet}"))).unwrap();
        }
    }
    let hook = r("usr/share/udhcpc/default.script");
    fs::write(&hook, UDHCPC_SCRIPT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(Command::new("tar").arg("-C").arg(root.path()).args([
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "-c",
        ".",
    ]));
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---------------------------------------------------------------------------------------------
// Processes, namespaces, cgroups

/// `nsenter --net=/run/netns/HOST unshare -m --propagation slave sh -c HOLDER_SCRIPT sh NAME`:
/// nsenter and unshare exec, so the child is the shell that holds the namespace. Slave
/// propagation: the host's mounts and unmounts (`ip netns del`) still reach it, ours never
/// leave it.
fn start_holder(host_netns: &str, dir: &Path, name: &str) -> (Child, ChildStdin) {
    let log = fs::File::create(dir.join("holder.log")).unwrap();
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{host_netns}"))
        .args(["--", "unshare", "-m", "--propagation", "slave", "--"])
        .args(["sh", "-c", HOLDER_SCRIPT, "sh", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start the namespace holder");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "setting up the private mount namespace failed: {}",
            fs::read_to_string(dir.join("holder.log")).unwrap_or_default()
        );
    }
    (child, stdin)
}

/// The inode of `/proc/PID/ns/KIND` (`mnt:[4026531840]`), if the process is alive.
pub fn ns_inode(pid: u32, kind: &str) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    let text = link.to_string_lossy().into_owned();
    text.strip_prefix(&format!("{kind}:["))?
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

/// Processes in a mount namespace whose `/run` is the tmpfs named `name` (zombies have no
/// namespace and do not count). Recognised by that mark, not by the namespace's inode: the
/// kernel hands a freed namespace's number to the next one made.
pub fn processes_in_private_ns(name: &str) -> Vec<u32> {
    let mark = format!(" - tmpfs {name} ");
    let mut by_ns: std::collections::BTreeMap<u64, Vec<u32>> = Default::default();
    for pid in all_pids() {
        if let Some(ns) = ns_inode(pid, "mnt") {
            by_ns.entry(ns).or_default().push(pid);
        }
    }
    by_ns
        .into_values()
        .filter(|pids| {
            let mounts = fs::read_to_string(format!("/proc/{}/mountinfo", pids[0]));
            mounts.is_ok_and(|m| m.contains(&mark))
        })
        .flatten()
        .collect()
}

/// Everything a fixture runs: in its private mount namespace (dockerd, containerd, shims,
/// the plugin, the keeper) or in its cgroups (the containers).
fn fixture_processes(name: &str) -> Vec<u32> {
    let mut pids = processes_in_private_ns(name);
    pids.extend(procs_in_cgroups(&cgroup_dirs(name)));
    pids
}

/// Every directory named `name` in the cgroup trees (cgroup v1 puts one per hierarchy, some
/// below this process's own cgroup; v2 one).
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    find_dirs(Path::new("/sys/fs/cgroup"), name, 5, &mut found);
    found
}

fn find_dirs(dir: &Path, name: &str, depth: u32, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name() == name {
            found.push(entry.path());
        } else if depth > 1 {
            find_dirs(&entry.path(), name, depth - 1, found);
        }
    }
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

/// The processes in these cgroups and their descendants.
fn procs_in_cgroups(dirs: &[PathBuf]) -> Vec<u32> {
    let mut pids = Vec::new();
    for dir in dirs {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        pids.extend(procs_in_cgroups(&subdirs(dir)));
    }
    pids
}

/// rmdir, deepest first (cgroup directories hold only kernel files, which rmdir takes along).
fn remove_cgroup_tree(dir: &Path) {
    for sub in subdirs(dir) {
        remove_cgroup_tree(&sub);
    }
    let _ = fs::remove_dir(dir);
}

fn remove_cgroups(name: &str) {
    // A just-killed task can keep its cgroup busy for a moment.
    let start = Instant::now();
    while !cgroup_dirs(name).is_empty() && start.elapsed() < SWEEP {
        for dir in cgroup_dirs(name) {
            remove_cgroup_tree(&dir);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn exit_text(status: Option<std::process::ExitStatus>) -> String {
    status.map_or("still running".into(), |s| format!("exited: {s}"))
}

fn append_log(path: &Path, banner: &str) -> fs::File {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(file, "===== {banner} =====").unwrap();
    file
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Checking that nothing is left

/// A process identified by PID and start time, so a reused PID is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessId {
    pub pid: u32,
    start: u64,
}

impl ProcessId {
    fn of(pid: u32) -> Option<ProcessId> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22 (starttime); the command name (field 2) may hold spaces, so count after ')'.
        let after = &stat[stat.rfind(')')? + 2..];
        let start = after.split_whitespace().nth(19)?.parse().ok()?;
        Some(ProcessId { pid, start })
    }

    /// Still running (a zombie counts as gone: it has exited and holds no namespace).
    pub fn alive(&self) -> bool {
        ProcessId::of(self.pid) == Some(*self) && ns_inode(self.pid, "mnt").is_some()
    }
}

pub struct Footprint {
    pub processes: Vec<ProcessId>,
    pub netns: Vec<String>,
    pub dirs: Vec<PathBuf>,
    /// The fixture's cgroup parent and the mark of its mount namespace.
    pub name: String,
}

impl Footprint {
    /// What is still there, one line each; empty when the fixture cleaned up.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .processes
            .iter()
            .filter(|p| p.alive())
            .map(|p| format!("process {}", p.pid))
            .collect();
        left.extend(
            fixture_processes(&self.name)
                .iter()
                .map(|pid| format!("process {pid} in the private namespace or cgroups")),
        );
        left.extend(
            self.netns
                .iter()
                .filter(|n| Path::new("/run/netns").join(n).exists())
                .map(|n| format!("netns {n}")),
        );
        left.extend(
            self.dirs
                .iter()
                .filter(|d| d.exists())
                .map(|d| format!("directory {}", d.display())),
        );
        left.extend(
            cgroup_dirs(&self.name)
                .iter()
                .map(|d| format!("cgroup {}", d.display())),
        );
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        left.extend(
            mounts
                .lines()
                .filter(|l| self.dirs.iter().any(|d| l.contains(&*d.to_string_lossy())))
                .map(|l| format!("mount {l}")),
        );
        left
    }
}
