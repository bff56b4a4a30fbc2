//! Shared by the plugin tests: namespaces with a master, a CNI_PATH of plugin links, a
//! host-local data dir, and a runner that calls a plugin as a runtime would.

#![allow(dead_code)]

pub mod dhcp;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use tempfile::TempDir;

pub const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "the CNI plugin tests need root (network namespaces): run them as root"
    );
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A host netns whose `eth0` (veth, up) is the master, container namespaces, a CNI_PATH with
/// the plugin links, a host-local data dir and a directory for the VLAN parent records. All
/// removed on drop.
pub struct Fixture {
    pub host: String,
    pub containers: Vec<String>,
    pub bin: TempDir,
    pub data: TempDir,
    pub parents: TempDir,
}

impl Fixture {
    pub fn new(containers: usize) -> Fixture {
        require_root();
        let tag = format!(
            "ulc{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let host = format!("{tag}-h");
        ip(&["netns", "add", &host]);
        ip(&[
            "-n", &host, "link", "add", "eth0", "type", "veth", "peer", "name", "w0",
        ]);
        ip(&["-n", &host, "link", "set", "eth0", "up"]);
        ip(&["-n", &host, "link", "set", "w0", "up"]);
        let containers = (0..containers)
            .map(|i| format!("{tag}-c{i}"))
            .collect::<Vec<_>>();
        for c in &containers {
            ip(&["netns", "add", c]);
        }
        let bin = TempDir::new().unwrap();
        for t in ["macvlan", "ipvlan", "vlan", "host-local", "static", "dhcp"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_underlay-cni"), bin.path().join(t))
                .unwrap();
        }
        Fixture {
            host,
            containers,
            bin,
            data: TempDir::new().unwrap(),
            parents: TempDir::new().unwrap(),
        }
    }

    pub fn netns(&self, i: usize) -> PathBuf {
        Path::new("/run/netns").join(&self.containers[i])
    }

    pub fn macvlan_conf(&self, version: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": version, "name": "net1", "type": "macvlan", "master": "eth0", "mode": "bridge",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": self.data.path()}
        })
    }

    /// Runs the plugin at `plugin` as the runtime would, inside the host netns, with its
    /// directory as CNI_PATH; returns (exit code, stdout).
    pub fn cni_in(
        &self,
        plugin: &Path,
        command: &str,
        conf: &Value,
        container: &str,
        ifname: &str,
        netns: Option<&Path>,
    ) -> (i32, Value) {
        run_with_stdin(
            self.command(plugin, command, container, ifname, netns),
            conf.to_string().as_bytes(),
        )
    }

    /// The plugin command, as the runtime builds it, inside the host netns.
    pub fn command(
        &self,
        plugin: &Path,
        command: &str,
        container: &str,
        ifname: &str,
        netns: Option<&Path>,
    ) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host]).arg(plugin);
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", plugin.parent().expect("a plugin directory"))
            .env("UNDERLAY_CNI_PARENTS_DIR", self.parents.path());
        if let Some(ns) = netns {
            cmd.env("CNI_NETNS", ns);
        }
        cmd
    }

    /// The names of the VLAN parents with a record (owned ones).
    pub fn parent_records(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.parents.path())
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter_map(|n| n.strip_suffix(".json").map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `ip -d link show NAME` in the host netns, as JSON.
    pub fn host_link(&self, name: &str) -> Option<Value> {
        let out = Command::new("ip")
            .args(["-j", "-d", "-n", &self.host, "link", "show", "dev", name])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone())
    }

    /// Runs one of our plugins as the runtime would, inside the host netns; returns (exit
    /// code, stdout).
    pub fn cni(
        &self,
        plugin: &str,
        command: &str,
        conf: &Value,
        container: &str,
        ifname: &str,
        netns: Option<&Path>,
    ) -> (i32, Value) {
        self.cni_in(
            &self.bin.path().join(plugin),
            command,
            conf,
            container,
            ifname,
            netns,
        )
    }

    pub fn reservations(&self) -> Vec<String> {
        let dir = self.data.path().join("net1");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.retain(|n| n.parse::<std::net::IpAddr>().is_ok());
        names.sort();
        names
    }

    pub fn link(&self, i: usize, ifname: &str) -> Option<Value> {
        let out = Command::new("ip")
            .args([
                "-j",
                "-d",
                "-n",
                &self.containers[i],
                "addr",
                "show",
                "dev",
                ifname,
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for ns in self.containers.iter().chain([&self.host]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub fn run_with_stdin(mut cmd: Command, input: &[u8]) -> (i32, Value) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout: Value = if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    (out.status.code().unwrap_or(-1), stdout)
}

pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut conf = conf.clone();
    conf["prevResult"] = prev.clone();
    conf
}
