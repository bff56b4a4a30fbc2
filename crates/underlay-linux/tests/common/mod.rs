//! Helpers for the privileged tests: every test works in network namespaces it creates itself
//! (`ip netns add ul-test-...`) and that are deleted when the guard drops, also on panic.
//! Nothing is ever created in, or sent to, the machine's own namespace.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use underlay_linux::{MacvlanMode, MacvlanSpec, Netlink, Netns, RtNetlink};

/// Panics loudly unless running as root: these tests must never pass by doing nothing.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { nix::libc::geteuid() };
    assert!(
        euid == 0,
        "underlay-linux integration tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create \
         network namespaces); running as uid {euid}. Run them with sudo or in a root container."
    );
}

/// A network namespace created for one test, deleted on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new() -> TestNetns {
        require_root();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ul-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run_ip(&["netns", "add", &name]);
        let netns = TestNetns { name };
        // The namespace's loopback starts down; bring it up like a container runtime would.
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A handle on the namespace.
    pub fn open(&self) -> Netns {
        Netns::open(self.path())
            .expect("open test netns")
            .expect("test netns exists")
    }

    /// A netlink socket inside the namespace.
    pub fn netlink(&self) -> RtNetlink {
        RtNetlink::open_in(&self.open()).expect("open netlink in test netns")
    }

    /// Runs `ip -n NAME args...` and returns its stdout; panics with stderr on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// `ip -d -j link show NAME` as JSON.
    pub fn link_json(&self, link: &str) -> serde_json::Value {
        let out = self.ip(&["-d", "-j", "link", "show", "dev", link]);
        let mut links: Vec<serde_json::Value> =
            serde_json::from_str(&out).expect("ip -j prints JSON");
        assert_eq!(links.len(), 1, "one link named {link}: {out}");
        links.remove(0)
    }

    /// Creates a veth pair `a`/`b` in the namespace, to serve as macvlan parent, and returns
    /// the index of `a`.
    pub fn veth(&self, a: &str, b: &str) -> u32 {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        let link = self.link_json(a);
        link["ifindex"].as_u64().expect("ifindex") as u32
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let status = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        if !matches!(status, Ok(status) if status.success()) {
            eprintln!("warning: could not delete test netns {}", self.name);
        }
    }
}

fn run_ip(args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run ip {args:?} (is iproute2 installed?): {error}"));
    assert!(
        output.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

pub fn spec(name: &str, parent: u32, mode: MacvlanMode) -> MacvlanSpec {
    MacvlanSpec {
        name: name.to_string(),
        parent,
        mode,
        mac: None,
        mtu: None,
        bc_queue_len: None,
    }
}

/// Index of link `name`, which must exist.
pub fn index_of(nl: &mut impl Netlink, name: &str) -> u32 {
    nl.link_by_name(name)
        .expect("link_by_name")
        .unwrap_or_else(|| panic!("link {name} exists"))
        .index
}
