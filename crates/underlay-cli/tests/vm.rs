//! Tests that need link kinds the host kernel may lack (ipvlan, 802.1Q VLAN, dummy). They run
//! inside a QEMU VM booted on Debian's cloud kernel, see tests/vm/README.md.
//!
//! How: `kernel_vm_suite` is the only test that runs on the host (as root). It boots the VM
//! with `tests/vm/run`, packing this very test binary and the `underlay` binary at their host
//! paths, and runs this binary inside with `--ignored`: so every `#[ignore]`d test below runs
//! in the VM, and nowhere else. It fails when the inner run fails (with the inner output) or
//! ran no test.
//!
//!   cargo test -p underlay-cli --test vm                          # all VM tests
//!   UNDERLAY_VM_TESTS=vm_kernel cargo test -p underlay-cli --test vm   # a filter
//!
//! A new VM test: `#[test] #[ignore = "runs inside the kernel VM: tests/vm/run"]`, start it
//! with `require_vm()`, and use the helpers below.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tempfile::TempDir;

/// The harness that builds the initramfs and boots the VM.
const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vm/run");
/// The CLI under test; packed into the VM at this same path.
const UNDERLAY: &str = env!("CARGO_BIN_EXE_underlay");

// =============================================================================================
// The host side: boot the VM and run the ignored tests of this binary inside it.
// =============================================================================================

#[test]
fn kernel_vm_suite() {
    assert!(
        !in_vm(),
        "kernel_vm_suite must not run inside the VM (the inner run passes --ignored)"
    );
    require_root();
    let me = std::env::current_exe().expect("the path of this test binary");
    // stderr joins stdout, so the harness's notes and the console keep their order.
    let mut cmd = Command::new("bash");
    cmd.args(["-c", r#"exec 2>&1; exec bash "$0" "$@""#, HARNESS])
        .arg("--exe")
        .arg(UNDERLAY)
        .arg("--")
        .arg(&me)
        .args(["--ignored", "--test-threads=1"]);
    if let Some(filter) = std::env::var_os("UNDERLAY_VM_TESTS") {
        cmd.arg(filter);
    }
    let (code, console) = run_streaming(cmd);
    if code != Some(0) {
        panic!(
            "the VM test run failed (exit status {code:?}; 125 = the VM itself failed)\n\
             ===== inner output (failures) =====\n{}",
            failure_excerpt(&console)
        );
    }
    let passed = passed_count(&console)
        .unwrap_or_else(|| panic!("no `test result: ok. N passed` line from the VM:\n{console}"));
    assert!(
        passed > 0,
        "the VM ran no test (filter UNDERLAY_VM_TESTS={:?})",
        std::env::var("UNDERLAY_VM_TESTS").unwrap_or_default()
    );
    println!("kernel_vm_suite: {passed} VM test(s) passed inside the VM");
}

/// Runs the harness; every line of its output is echoed with `println!` as it comes (visible
/// live with `--nocapture`, otherwise shown by libtest on failure) and kept.
fn run_streaming(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {HARNESS}: {e}"));
    let mut console = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_else(|e| format!("<unreadable console line: {e}>"));
        println!("{line}");
        console.push_str(&line);
        console.push('\n');
    }
    let status = child.wait().expect("waiting for the harness");
    (status.code(), console)
}

/// libtest's failure report (from `failures:` on) with the harness's last words, or the
/// whole output when there is no such section (the VM itself failed).
fn failure_excerpt(console: &str) -> String {
    match console.find("\nfailures:\n") {
        Some(at) => console[at + 1..].to_string(),
        None => console.to_string(),
    }
}

/// N from libtest's `test result: ok. N passed; ...`.
fn passed_count(console: &str) -> Option<u32> {
    console.lines().find_map(|line| {
        line.trim()
            .strip_prefix("test result: ok. ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

// =============================================================================================
// Helpers for the VM-only tests. Reusable: the ipvlan / VLAN tests build on these.
// =============================================================================================

fn in_vm() -> bool {
    std::env::var_os("UNDERLAY_IN_VM").is_some_and(|v| v == "1")
}

/// VM tests change the kernel's network state: never on a developer's machine.
fn require_vm() {
    assert!(
        in_vm(),
        "this test runs only inside the kernel VM: `cargo test -p underlay-cli --test vm` as \
         root runs it there"
    );
}

fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "the VM tests need root (QEMU, the kernel cache under /var/cache, apt): run them as root"
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Asserts success; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip ARGS`, asserted to succeed; returns stdout.
fn ip(args: &[&str]) -> String {
    ok(Command::new("ip").args(args))
}

/// Parses `ip -j` output.
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

static NEXT_NETNS: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`/run/netns/NAME`, `lo` up), deleted on drop, also when the
/// test fails.
struct Netns {
    name: String,
}

impl Netns {
    /// A unique name from TAG: `ulvm-TAG-N`.
    fn new(tag: &str) -> Netns {
        let name = format!("ulvm-{tag}-{}", NEXT_NETNS.fetch_add(1, Ordering::SeqCst));
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`, asserted to succeed; returns stdout.
    fn ip(&self, args: &[&str]) -> String {
        ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip netns exec NAME PROGRAM`: a command to run inside the namespace.
    fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// `ip -d -j link show dev IFNAME` in this namespace: the link's JSON object.
    fn link(&self, ifname: &str) -> Value {
        json(&self.ip(&["-d", "-j", "link", "show", "dev", ifname]))[0].clone()
    }

    /// `ip -d -j addr show dev IFNAME`: the link with its `addr_info`.
    fn addr(&self, ifname: &str) -> Value {
        json(&self.ip(&["-d", "-j", "addr", "show", "dev", ifname]))[0].clone()
    }

    /// Adds a dummy link (up): a parent for macvlan, ipvlan and VLAN links in tests.
    fn add_dummy(&self, ifname: &str) {
        self.ip(&["link", "add", ifname, "type", "dummy"]);
        self.ip(&["link", "set", ifname, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// The `underlay` CLI run inside HOST (the namespace that owns the parent links), with its
/// own state directory.
struct Underlay<'a> {
    host: &'a Netns,
    state: TempDir,
}

impl<'a> Underlay<'a> {
    fn new(host: &'a Netns) -> Underlay<'a> {
        Underlay {
            host,
            state: TempDir::new().expect("a state directory"),
        }
    }

    fn state_dir(&self) -> &Path {
        self.state.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.host.exec(UNDERLAY);
        cmd.arg("--state-dir").arg(self.state_dir()).args(args);
        cmd
    }

    /// Asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.cmd(args))
    }
}

/// `linkinfo.info_kind` of an `ip -d -j` link object.
fn kind(link: &Value) -> &str {
    link["linkinfo"]["info_kind"].as_str().unwrap_or_default()
}

/// The IPv4 addresses (`a.b.c.d/len`) of an `ip -j addr` link object.
fn ipv4_addrs(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
        .collect()
}

// =============================================================================================
// VM-only tests.
// =============================================================================================

/// The VM kernel has every link kind underlay uses, and `ip -d -j` reports them as the
/// engine expects.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_kernel_has_the_link_kinds() {
    require_vm();
    let ns = Netns::new("kinds");

    ns.add_dummy("dummy0");
    assert_eq!(kind(&ns.link("dummy0")), "dummy");

    ns.ip(&[
        "link",
        "add",
        "link",
        "dummy0",
        "name",
        "dummy0.100",
        "type",
        "vlan",
        "id",
        "100",
    ]);
    let vlan = ns.link("dummy0.100");
    assert_eq!(kind(&vlan), "vlan", "{vlan}");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 100, "{vlan}");
    assert_eq!(
        vlan["linkinfo"]["info_data"]["protocol"], "802.1Q",
        "{vlan}"
    );

    // The ipvlan mode and flags belong to the parent's port, shared by all its ipvlans (a new
    // ipvlan with another mode changes them for all): one parent per combination.
    let ipvlans = [
        ("l2", "bridge"),
        ("l3", "private"),
        ("l3", "vepa"),
        ("l3", "bridge"),
        ("l3s", "bridge"),
    ];
    for (i, (mode, flag)) in ipvlans.iter().enumerate() {
        let parent = format!("ipvp{i}");
        let name = format!("ipv{i}");
        ns.add_dummy(&parent);
        ns.ip(&[
            "link", "add", "link", &parent, "name", &name, "type", "ipvlan", "mode", mode, flag,
        ]);
        let link = ns.link(&name);
        assert_eq!(kind(&link), "ipvlan", "{link}");
        assert_eq!(link["linkinfo"]["info_data"]["mode"], *mode, "{link}");
        assert_eq!(link["linkinfo"]["info_data"][flag], true, "{link}");
    }

    // A link with ipvlans cannot take a macvlan (EBUSY): the macvlan gets its own parent.
    ns.add_dummy("mvp");
    ns.ip(&[
        "link", "add", "link", "mvp", "name", "mv0", "type", "macvlan", "mode", "bridge",
    ]);
    let mv = ns.link("mv0");
    assert_eq!(kind(&mv), "macvlan", "{mv}");
    assert_eq!(mv["linkinfo"]["info_data"]["mode"], "bridge", "{mv}");

    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    assert_eq!(kind(&ns.link("va")), "veth");
    assert_eq!(kind(&ns.link("vb")), "veth");
}

/// Named namespaces work in the VM, and the real CLI attaches one with a macvlan.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_netns_and_underlay_binary_work() {
    require_vm();
    let host = Netns::new("host");
    let c1 = Netns::new("c1");
    let listed = ip(&["netns", "list"]);
    assert!(
        listed.contains(&host.name) && listed.contains(&c1.name),
        "{listed}"
    );

    let version = ok(Command::new(UNDERLAY).arg("--version"));
    assert!(version.starts_with("underlay "), "{version}");

    host.add_dummy("eth0");
    let underlay = Underlay::new(&host);
    underlay.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0",
        "lan",
    ]);
    underlay.ok(&["connect", "lan", &c1.name]);

    let eth0 = c1.addr("eth0");
    assert_eq!(kind(&eth0), "macvlan", "{eth0}");
    assert_eq!(ipv4_addrs(&eth0), ["198.51.100.2/24"], "{eth0}");

    underlay.ok(&["disconnect", "lan", &c1.name]);
    let links = json(&c1.ip(&["-j", "link", "show"]));
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] == "lo"),
        "disconnect left links behind: {links}"
    );
    underlay.ok(&["network", "rm", "lan"]);
}
