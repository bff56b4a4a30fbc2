//! A LAN with real DHCP servers, built from namespaces each test creates: a switch (a bridge
//! in the "srv" netns, which also runs dnsmasq on it with 198.51.100.1 and 2001:db8:d::1),
//! the docker host whose `eth0` hangs off the switch, extra LAN hosts (a squatter, a rogue
//! server), container namespaces, and the lease keeper (`underlay dhcp-daemon`) in the docker
//! host. Everything is killed and removed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{ip, must, require_root, run, Netns};

pub const ROUTER: &str = "198.51.100.1";
pub const ROUTER6: &str = "2001:db8:d::1";

pub struct DhcpLan {
    pub srv: Netns,
    pub host: Netns,
    pub hosts: Vec<Netns>,
    pub containers: Vec<Netns>,
    pub dir: TempDir,
    pub dnsmasq: Vec<Dnsmasq>,
    pub keeper: Option<Child>,
    prefix: String,
    ports: u32,
}

/// A dnsmasq in a namespace, with its lease file and log.
pub struct Dnsmasq {
    pub child: Child,
    pub leases: PathBuf,
    pub log: PathBuf,
    /// How it was started, to start it again.
    ns: String,
    args: Vec<String>,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl DhcpLan {
    pub fn new(containers: usize) -> DhcpLan {
        require_root();
        assert!(
            Command::new("dnsmasq").arg("--version").output().is_ok(),
            "the DHCP tests need dnsmasq (Debian: dnsmasq-base; scripts/setup installs it)"
        );
        let prefix = format!(
            "uld{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let srv = Netns::new(format!("{prefix}-srv"));
        must(&["-n", &srv.name, "link", "add", "br0", "type", "bridge"]);
        must(&[
            "-n",
            &srv.name,
            "addr",
            "add",
            &format!("{ROUTER}/24"),
            "dev",
            "br0",
        ]);
        must(&[
            "-n",
            &srv.name,
            "addr",
            "add",
            &format!("{ROUTER6}/64"),
            "dev",
            "br0",
            "nodad",
        ]);
        must(&["-n", &srv.name, "link", "set", "br0", "up"]);
        let host = Netns::new(format!("{prefix}-host"));
        let mut lan = DhcpLan {
            srv,
            host,
            hosts: Vec::new(),
            containers: (0..containers)
                .map(|i| Netns::new(format!("{prefix}-c{i}")))
                .collect(),
            dir: TempDir::new().unwrap(),
            dnsmasq: Vec::new(),
            keeper: None,
            prefix,
            ports: 0,
        };
        let host_name = lan.host.name.clone();
        lan.plug(&host_name, "eth0");
        lan
    }

    /// A veth from `ns`'s `ifname` to a port of the switch.
    fn plug(&mut self, ns: &str, ifname: &str) {
        self.ports += 1;
        let port = format!("p{}", self.ports);
        must(&[
            "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", &port,
        ]);
        must(&["-n", ns, "link", "set", &port, "netns", &self.srv.name]);
        must(&[
            "-n",
            &self.srv.name,
            "link",
            "set",
            &port,
            "master",
            "br0",
            "up",
        ]);
        must(&["-n", ns, "link", "set", ifname, "up"]);
    }

    /// Another machine on the LAN holding `addresses` (CIDR); returns its netns name.
    pub fn add_host(&mut self, addresses: &[&str]) -> String {
        let ns = Netns::new(format!("{}-h{}", self.prefix, self.hosts.len()));
        let name = ns.name.clone();
        self.hosts.push(ns);
        self.plug(&name, "eth0");
        for addr in addresses {
            must(&["-n", &name, "addr", "add", addr, "dev", "eth0", "nodad"]);
        }
        name
    }

    pub fn c(&self, i: usize) -> &str {
        &self.containers[i].name
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn socket(&self) -> PathBuf {
        self.path("keeper.sock")
    }

    pub fn keeper_log(&self) -> PathBuf {
        self.path("keeper.log")
    }

    /// Starts dnsmasq in `ns` listening on `dev`, with these extra arguments (ranges,
    /// options...); returns its number.
    pub fn start_dnsmasq_in(&mut self, ns: &str, dev: &str, args: &[&str]) -> usize {
        let n = self.dnsmasq.len();
        let mut full: Vec<String> = vec![format!("--interface={dev}")];
        full.extend(args.iter().map(|a| a.to_string()));
        let leases = self.path(&format!("dnsmasq{n}.leases"));
        let log = self.path(&format!("dnsmasq{n}.log"));
        let child = self.spawn_dnsmasq(ns, &full, &leases, &log, n);
        self.dnsmasq.push(Dnsmasq {
            child,
            leases,
            log,
            ns: ns.to_string(),
            args: full,
        });
        self.wait_dnsmasq_ready(n, 1);
        n
    }

    fn spawn_dnsmasq(
        &self,
        ns: &str,
        args: &[String],
        leases: &Path,
        log: &Path,
        n: usize,
    ) -> Child {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "dnsmasq",
                "-k",
                "--conf-file=/dev/null",
                "--no-resolv",
            ])
            .args([
                "--no-hosts",
                "--port=0",
                "--bind-interfaces",
                "--user=root",
                "--log-dhcp",
            ])
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!(
                "--pid-file={}",
                self.path(&format!("dnsmasq{n}.pid")).display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq")
    }

    /// Waits until dnsmasq `n` logged its start `times` times.
    fn wait_dnsmasq_ready(&self, n: usize, times: usize) {
        let log = self.dnsmasq[n].log.clone();
        wait_for(Duration::from_secs(5), || {
            fs::read_to_string(&log)
                .is_ok_and(|l| l.matches("sockets bound exclusively").count() >= times)
        });
    }

    /// Starts a stopped dnsmasq again, with the same lease file and log.
    pub fn restart_dnsmasq(&mut self, n: usize) {
        let starts = self
            .dnsmasq_log(n)
            .matches("sockets bound exclusively")
            .count();
        let d = &self.dnsmasq[n];
        let child = self.spawn_dnsmasq(
            &d.ns.clone(),
            &d.args.clone(),
            &d.leases.clone(),
            &d.log.clone(),
            n,
        );
        self.dnsmasq[n].child = child;
        self.wait_dnsmasq_ready(n, starts + 1);
    }

    pub fn start_dnsmasq(&mut self, args: &[&str]) -> usize {
        let srv = self.srv.name.clone();
        self.start_dnsmasq_in(&srv, "br0", args)
    }

    pub fn stop_dnsmasq(&mut self, n: usize) {
        let d = &mut self.dnsmasq[n];
        let _ = d.child.kill();
        let _ = d.child.wait();
    }

    /// (Re)starts the lease keeper in the docker host, logging at debug level.
    pub fn start_keeper(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.keeper_log())
            .unwrap();
        let mut launcher = Command::new("ip");
        launcher.args([
            "netns",
            "exec",
            &self.host.name,
            env!("CARGO_BIN_EXE_underlay"),
        ]);
        self.start_keeper_with(launcher, log);
    }

    /// Starts the lease keeper through `launcher` (a command that ends in the `underlay`
    /// binary, run where the keeper must live), logging at debug level into `log`; returns
    /// once it listens.
    pub fn start_keeper_with(&mut self, mut launcher: Command, log: fs::File) {
        let child = launcher
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--dhcp-socket")
            .arg(self.socket())
            .args(["--log-level", "debug", "dhcp-daemon"])
            .env_remove("RUST_LOG")
            .env_remove("UNDERLAY_CRASH_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the lease keeper");
        self.keeper = Some(child);
        let socket = self.socket();
        wait_for(Duration::from_secs(5), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
    }

    /// kill -9 of the keeper.
    pub fn kill_keeper(&mut self) {
        if let Some(mut child) = self.keeper.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.host.name,
            env!("CARGO_BIN_EXE_underlay"),
        ])
        .arg("--state-dir")
        .arg(self.state_dir())
        .arg("--dhcp-socket")
        .arg(self.socket())
        .args(args)
        .env_remove("UNDERLAY_CRASH_AT")
        .env_remove("RUST_LOG");
        cmd
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = run(&mut self.cmd(args));
        assert!(
            out.status.success(),
            "underlay {} failed: {}\nkeeper log tail:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.keeper_log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs, asserts exit status `code`, returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = run(&mut self.cmd(args));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "underlay {}: {stderr}",
            args.join(" ")
        );
        stderr
    }

    pub fn inspect(&self, network: &str) -> serde_json::Value {
        let text = self.ok(&["network", "inspect", network]);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()[0].clone()
    }

    pub fn keeper_log_tail(&self) -> String {
        let text = fs::read_to_string(self.keeper_log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn dnsmasq_log(&self, n: usize) -> String {
        fs::read_to_string(&self.dnsmasq[n].log).unwrap_or_default()
    }

    pub fn dnsmasq_leases(&self, n: usize) -> String {
        fs::read_to_string(&self.dnsmasq[n].leases).unwrap_or_default()
    }
}

impl Drop for DhcpLan {
    fn drop(&mut self) {
        self.kill_keeper();
        self.dnsmasq.clear();
        let _ = ip(&["netns", "list"]);
    }
}

/// Polls `done` every 50 ms until it holds; panics after `limit`.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of a dnsmasq log that mention `what`.
pub fn lines_with(log: &str, what: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(what))
        .map(String::from)
        .collect()
}
