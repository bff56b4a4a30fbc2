//! A LAN with a real DHCP server for the `dhcp` plugin tests: the plugin fixture with
//! `eth0`'s peer moved into a LAN netns that runs dnsmasq (198.51.100.1, 2001:db8:d::1), and the
//! keeper started as `dhcp daemon`. Everything is killed and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use super::{ip, run_with_stdin, Fixture};

pub const RANGE4: &str = "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,2m";
pub const RANGE6: &str = "--dhcp-range=2001:db8:d::100,2001:db8:d::1ff,64,2m";

/// The plugin fixture with `eth0`'s peer moved into a LAN netns that runs dnsmasq, and the
/// keeper. Fields drop in order: the processes go before their namespaces.
pub struct Lan {
    pub keeper: Option<Child>,
    pub dnsmasq: Option<Child>,
    pub dir: TempDir,
    pub f: Fixture,
    pub lan: String,
}

impl Lan {
    pub fn new(containers: usize) -> Lan {
        assert!(
            Command::new("dnsmasq").arg("--version").output().is_ok(),
            "the dhcp plugin tests need dnsmasq (Debian: dnsmasq-base; scripts/setup installs it)"
        );
        let f = Fixture::new(containers);
        let lan = format!("{}-lan", f.host);
        ip(&["netns", "add", &lan]);
        ip(&["-n", &f.host, "link", "set", "w0", "netns", &lan]);
        // No duplicate address detection on the server's side: its addresses are usable at once.
        let no_dad = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lan,
                "sysctl",
                "-qw",
                "net.ipv6.conf.w0.accept_dad=0",
            ])
            .status()
            .unwrap();
        assert!(no_dad.success(), "sysctl accept_dad in {lan}");
        ip(&["-n", &lan, "addr", "add", "198.51.100.1/24", "dev", "w0"]);
        ip(&[
            "-n",
            &lan,
            "addr",
            "add",
            "2001:db8:d::1/64",
            "dev",
            "w0",
            "nodad",
        ]);
        ip(&["-n", &lan, "link", "set", "w0", "up"]);
        Lan {
            keeper: None,
            dnsmasq: None,
            dir: TempDir::new().unwrap(),
            f,
            lan,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("dhcp.sock")
    }

    pub fn leases_file(&self) -> PathBuf {
        self.dir.path().join("dnsmasq.leases")
    }

    /// dnsmasq's lease file. It is truncated and rewritten in place, so a read can catch it
    /// half-written: read until two reads 20 ms apart agree.
    pub fn leases(&self) -> String {
        let read = || std::fs::read_to_string(self.leases_file()).unwrap_or_default();
        let mut last = read();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = read();
            if now == last {
                return now;
            }
            last = now;
        }
    }

    pub fn start_dnsmasq(&mut self, extra: &[&str]) {
        let log = self.dir.path().join("dnsmasq.log");
        // Errors before the log file is open (a bad flag, a file it cannot write) go to stderr.
        let stderr_path = self.dir.path().join("dnsmasq.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lan,
                "dnsmasq",
                "-k",
                "--conf-file=/dev/null",
            ])
            .args(["--no-resolv", "--no-hosts", "--port=0", "--bind-interfaces"])
            .args(["--interface=w0", "--user=root", "--log-dhcp", "--no-ping"])
            .args(["--dhcp-option=option:dns-server,198.51.100.53"])
            .arg(format!("--dhcp-leasefile={}", self.leases_file().display()))
            .arg(format!("--log-facility={}", log.display()))
            // A pid file of its own: with the default (/run/dnsmasq.pid) two servers starting
            // at once race on its unlink + O_EXCL create, and the loser exits 3.
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("dnsmasq.pid").display()
            ))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start dnsmasq");
        self.dnsmasq = Some(child);
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("sockets bound exclusively") {
                break;
            }
            let exited = self.dnsmasq.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(10),
                "dnsmasq did not start ({exited:?}):\n{text}{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop_dnsmasq(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `dhcp daemon FLAGS` as a service unit starts it (through the `dhcp` link).
    pub fn daemon_command(&self, flags: &[&str]) -> Command {
        let underlay = underlay_cli_binary();
        assert!(
            underlay.is_file(),
            "`dhcp daemon` runs {}: build it (`cargo build -p underlay-cli`; `cargo test --workspace` does)",
            underlay.display()
        );
        let mut cmd = Command::new(self.f.bin.path().join("dhcp"));
        cmd.env("UNDERLAY_BIN", &underlay);
        cmd.arg("daemon")
            .arg("-socketpath")
            .arg(self.socket())
            .args(flags)
            .env("UNDERLAY_STATE_DIR", self.dir.path().join("state"));
        cmd
    }

    pub fn start_keeper(&mut self, flags: &[&str]) {
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("keeper.log"))
            .unwrap();
        let child = self
            .daemon_command(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dhcp daemon");
        self.keeper = Some(child);
        let socket = self.socket();
        wait_for(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
    }

    pub fn kill_keeper(&mut self) {
        if let Some(mut child) = self.keeper.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn keeper_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("keeper.log")).unwrap_or_default()
    }

    pub fn conf(&self, version: &str, ipam: Value) -> Value {
        let mut ipam_section = json!({"type": "dhcp", "daemonSocketPath": self.socket()});
        for (k, v) in ipam.as_object().unwrap() {
            ipam_section[k] = v.clone();
        }
        json!({"cniVersion": version, "name": "lan", "type": "macvlan", "master": "eth0",
               "mode": "bridge", "ipam": ipam_section})
    }

    pub fn cni(
        &self,
        command: &str,
        conf: &Value,
        container: &str,
        netns: Option<&Path>,
    ) -> (i32, Value) {
        self.f
            .cni("macvlan", command, conf, container, "eth0", netns)
    }

    pub fn cni_args(
        &self,
        command: &str,
        conf: &Value,
        container: &str,
        netns: Option<&Path>,
        cni_args: &str,
    ) -> (i32, Value) {
        let mut cmd = self.f.command(
            &self.f.bin.path().join("macvlan"),
            command,
            container,
            "eth0",
            netns,
        );
        cmd.env("CNI_ARGS", cni_args);
        run_with_stdin(cmd, conf.to_string().as_bytes())
    }

    /// The container's eth0 addresses ("a.b.c.d/len"), global scope.
    pub fn addresses(&self, i: usize) -> Vec<String> {
        self.f
            .link(i, "eth0")
            .map(|link| {
                link["addr_info"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["scope"] == "global")
                    .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn ping_router_from(&self, i: usize) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.f.containers[i], "ping", "-c1", "-W2"])
            .arg("198.51.100.1")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.kill_keeper();
        self.stop_dnsmasq();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.lan])
            .status();
    }
}

/// The `underlay` binary cargo builds beside `underlay-cni` (same profile directory).
pub fn underlay_cli_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_underlay-cni")).with_file_name("underlay")
}

pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "gave up after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn address_of(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {result}"))
        .to_string()
}
