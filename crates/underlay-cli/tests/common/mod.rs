//! Fixtures for the root tests: throwaway namespaces with a veth parent, a private state
//! directory, and helpers that read the kernel with `ip -j`. Everything is removed on drop,
//! also when a test fails.

#![allow(dead_code)]

pub mod daemon;
pub mod dhcp;
pub mod docker;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tempfile::TempDir;

/// Fails loudly: these tests need CAP_NET_ADMIN and must never pass by skipping.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "these tests need root (network namespaces, macvlan): run them as root"
    );
    assert!(
        Command::new("ip").arg("-V").output().is_ok(),
        "these tests need iproute2's `ip`"
    );
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub fn ip(args: &[&str]) -> Output {
    run(Command::new("ip").args(args))
}

fn must(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named netns, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = ip(&["netns", "del", &name]);
        must(&["netns", "add", &name]);
        must(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A docker-host netns whose `eth0` (a veth, peer up) is the parent, container namespaces,
/// and a state directory.
pub struct TestLan {
    pub host: Netns,
    pub containers: Vec<Netns>,
    pub state: TempDir,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestLan {
    pub fn new(containers: usize) -> TestLan {
        require_root();
        let prefix = format!(
            "ult{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let host = Netns::new(format!("{prefix}-host"));
        must(&[
            "-n", &host.name, "link", "add", "eth0", "type", "veth", "peer", "name", "wire0",
        ]);
        must(&["-n", &host.name, "link", "set", "eth0", "up"]);
        must(&["-n", &host.name, "link", "set", "wire0", "up"]);
        let containers = (0..containers)
            .map(|i| Netns::new(format!("{prefix}-c{i}")))
            .collect();
        TestLan {
            host,
            containers,
            state: TempDir::new().unwrap(),
        }
    }

    pub fn c(&self, i: usize) -> &str {
        &self.containers[i].name
    }

    /// The `underlay` command, run inside the host netns with this lan's state directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.host.name,
            env!("CARGO_BIN_EXE_underlay"),
        ])
        .arg("--state-dir")
        .arg(self.state.path())
        .args(args)
        .env_remove("UNDERLAY_CRASH_AT")
        .env_remove("RUST_LOG");
        cmd
    }

    pub fn underlay(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.underlay(args);
        assert!(
            out.status.success(),
            "underlay {} failed ({:?}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs, asserts the exit code, returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.underlay(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "underlay {}: {stderr}",
            args.join(" ")
        );
        assert!(stderr.starts_with("underlay: "), "one clear line: {stderr}");
        stderr
    }

    pub fn create_default(&self) {
        self.ok(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "198.51.100.0/24",
            "--gateway",
            "198.51.100.1",
            "--ipv6",
            "--subnet",
            "2001:db8:5::/64",
            "-o",
            "parent=eth0",
            "lan",
        ]);
    }

    pub fn inspect(&self, network: &str) -> Value {
        let text = self.ok(&["network", "inspect", network]);
        serde_json::from_str::<Value>(&text).unwrap()[0].clone()
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state.path().join("state.db")).unwrap()
    }

    /// Checks the invariants that must hold after any crash once recovery ran:
    /// every endpoint is settled and owns exactly one link carrying its MAC; every macvlan in
    /// the containers belongs to an endpoint; reservations are exactly gateways + endpoints.
    pub fn assert_consistent(&self) {
        let db = self.db();
        let phases: Vec<String> = db
            .prepare("SELECT phase FROM endpoints")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            phases.iter().all(|p| p == "attached"),
            "unsettled endpoints: {phases:?}"
        );
        let endpoints: Vec<(String, String, Option<String>, Option<String>)> = db
            .prepare("SELECT netns, mac, ipv4, ipv6 FROM endpoints")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut expected: BTreeSet<String> = endpoints
            .iter()
            .flat_map(|e| [e.2.clone(), e.3.clone()])
            .flatten()
            .collect();
        let gateways: Vec<String> = db
            .prepare("SELECT ip FROM ipam_reservations WHERE owner = 'the gateway'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        expected.extend(gateways);
        let reserved: Vec<String> = db
            .prepare("SELECT ip FROM ipam_reservations")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let reserved_set: BTreeSet<String> = reserved.iter().cloned().collect();
        assert_eq!(reserved.len(), reserved_set.len(), "duplicate reservation");
        assert_eq!(reserved_set, expected, "leaked or missing reservations");
        for ns in &self.containers {
            let macs = macvlan_macs(&ns.name);
            let owned: BTreeSet<String> = endpoints
                .iter()
                .filter(|e| e.0 == format!("/run/netns/{}", ns.name))
                .map(|e| e.1.clone())
                .collect();
            assert_eq!(
                macs, owned,
                "links in {} do not match the endpoints",
                ns.name
            );
        }
    }
}

/// MACs of the macvlan links in a netns.
pub fn macvlan_macs(ns: &str) -> BTreeSet<String> {
    links(ns)
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "macvlan")
        .map(|l| l["address"].as_str().unwrap_or("").to_string())
        .collect()
}

pub fn links(ns: &str) -> Vec<Value> {
    let out = ip(&["-j", "-d", "-n", ns, "link", "show"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

pub fn link(ns: &str, name: &str) -> Option<Value> {
    links(ns).into_iter().find(|l| l["ifname"] == name)
}

pub fn addresses(ns: &str, dev: &str) -> Vec<String> {
    let out = ip(&["-j", "-n", ns, "addr", "show", "dev", dev]);
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

pub fn default_routes(ns: &str, family: &str) -> Vec<Value> {
    let out = ip(&["-j", family, "-n", ns, "route", "show", "default"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

pub fn pings(ns: &str, addr: &str) -> bool {
    // Two tries: the first IPv6 packet may wait for neighbour discovery.
    (0..2).any(|_| {
        run(Command::new("ip").args(["netns", "exec", ns, "ping", "-c1", "-W1", addr]))
            .status
            .success()
    })
}

/// One POST of Docker's plugin protocol on the plugin's unix socket; returns (status, body).
pub fn plugin_post(socket: &std::path::Path, call: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    let body = body.to_string();
    write!(
        stream,
        "POST /{call} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let text = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(text).unwrap_or(Value::Null))
}
