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

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tempfile::TempDir;

/// The CLI under test; packed into the VM at this same path.
const UNDERLAY: &str = env!("CARGO_BIN_EXE_underlay");

// =============================================================================================
// The host side: boot the VM and run the ignored tests of this binary inside it.
// =============================================================================================

/// dnsmasq, for the DHCP tests in the VM (scripts/setup installs it).
const DNSMASQ: &str = "/usr/sbin/dnsmasq";

#[test]
fn kernel_vm_suite() {
    underlay_testkit::vm::run_ignored_tests_in_vm(&[Path::new(UNDERLAY), Path::new(DNSMASQ)]);
}

// =============================================================================================
// Helpers for the VM-only tests. Reusable: the ipvlan / VLAN tests build on these.
// =============================================================================================

use underlay_testkit::vm::require_vm;

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

// =============================================================================================
// ipvlan and 802.1Q VLAN parents, end to end with the real CLI.
// =============================================================================================

/// `ip netns exec NS ping -c1 -W1 ADDR` succeeded (two tries: neighbour discovery under TCG).
fn pings(ns: &Netns, addr: &str) -> bool {
    (0..2).any(|_| {
        run(ns.exec("ping").args(["-c1", "-W1", addr]))
            .status
            .success()
    })
}

/// The non-loopback links of a namespace.
fn links_but_lo(ns: &Netns) -> Vec<String> {
    json(&ns.ip(&["-j", "link", "show"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap_or_default().to_string())
        .filter(|n| n != "lo")
        .collect()
}

fn default_routes(ns: &Netns) -> Value {
    json(&ns.ip(&["-j", "route", "show", "default"]))
}

fn has_link(ns: &Netns, ifname: &str) -> bool {
    run(Command::new("ip").args(["-n", &ns.name, "link", "show", "dev", ifname]))
        .status
        .success()
}

impl Underlay<'_> {
    /// Runs, asserts exit code `code`; returns stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = run(&mut self.cmd(args));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "underlay {args:?}: {stderr}");
        stderr
    }
}

/// Every ipvlan mode and flag: what `ip -d` reports, the shared MAC, the routes, and who can
/// talk to whom (bridge: the two endpoints of a parent talk; private: they cannot).
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_ipvlan_modes_flags_routes_and_reachability() {
    require_vm();
    let host = Netns::new("ipvhost");
    let underlay = Underlay::new(&host);
    for (i, mode) in ["l2", "l3", "l3s"].iter().enumerate() {
        for (j, flag) in ["bridge", "private", "vepa"].iter().enumerate() {
            // The kernel keeps mode and flag per parent: one parent per combination.
            let parent = format!("p{i}{j}");
            host.add_dummy(&parent);
            let octet = 10 + i * 3 + j;
            let subnet = format!("10.{octet}.0.0/24");
            let name = format!("n{i}{j}");
            underlay.ok(&[
                "network",
                "create",
                "-d",
                "ipvlan",
                "--subnet",
                &subnet,
                "-o",
                &format!("parent={parent}"),
                "-o",
                &format!("ipvlan_mode={mode}"),
                "-o",
                &format!("ipvlan_flag={flag}"),
                &name,
            ]);
            let (a, b) = (Netns::new("ipva"), Netns::new("ipvb"));
            underlay.ok(&["connect", &name, &a.name]);
            underlay.ok(&["connect", &name, &b.name]);

            let link = a.addr("eth0");
            assert_eq!(kind(&link), "ipvlan", "{mode} {flag}: {link}");
            assert_eq!(link["linkinfo"]["info_data"]["mode"], *mode, "{link}");
            assert_eq!(link["linkinfo"]["info_data"][*flag], true, "{link}");
            assert_eq!(
                link["address"],
                host.link(&parent)["address"],
                "ipvlan shares the parent's MAC"
            );
            let routes = default_routes(&a);
            assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
            if *mode == "l2" {
                assert_eq!(ipv4_addrs(&link), [format!("10.{octet}.0.2/24")]);
                assert_eq!(routes[0]["gateway"], format!("10.{octet}.0.1"), "{routes}");
            } else {
                // Routed modes: no gateway reserved, a device route.
                assert_eq!(ipv4_addrs(&link), [format!("10.{octet}.0.1/24")]);
                assert!(routes[0].get("gateway").is_none(), "{mode}: {routes}");
                assert_eq!(routes[0]["dev"], "eth0", "{routes}");
            }
            let peer = ipv4_addrs(&b.addr("eth0"))[0]
                .split('/')
                .next()
                .unwrap()
                .to_string();
            // vepa hairpins through the switch; a dummy parent has none, so only bridge talks.
            assert_eq!(pings(&a, &peer), *flag == "bridge", "{mode} {flag}: a -> b");
            underlay.ok(&["network", "rm", "--force", &name]);
            assert!(
                links_but_lo(&a).is_empty(),
                "{mode} {flag}: rm left {:?}",
                links_but_lo(&a)
            );
        }
    }
}

/// `--mac` is refused on ipvlan; a parent already serving a macvlan made outside underlay is
/// refused by the kernel, clearly, and the failed attach leaves no link and no address.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_ipvlan_refusals_leave_nothing_behind() {
    require_vm();
    let host = Netns::new("refhost");
    let c = Netns::new("refc");
    host.add_dummy("eth0");
    let underlay = Underlay::new(&host);
    underlay.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0",
        "ipv",
    ]);
    let err = underlay.fails(
        2,
        &["connect", "ipv", &c.name, "--mac", "02:00:00:00:00:01"],
    );
    assert!(
        err.contains("--mac cannot be used on ipvlan network ipv"),
        "{err}"
    );

    host.ip(&[
        "link", "add", "link", "eth0", "name", "mv0", "type", "macvlan",
    ]);
    let err = underlay.fails(1, &["connect", "ipv", &c.name]);
    assert!(
        err.contains("already carries links of another kind"),
        "{err}"
    );
    assert!(
        links_but_lo(&c).is_empty(),
        "failed attach left {:?}",
        links_but_lo(&c)
    );
    let net = json(&underlay.ok(&["network", "inspect", "ipv"]));
    assert_eq!(net[0]["Endpoints"].as_object().unwrap().len(), 0, "{net}");

    host.ip(&["link", "del", "mv0"]);
    underlay.ok(&["connect", "ipv", &c.name]);
    assert_eq!(
        ipv4_addrs(&c.addr("eth0")),
        ["198.51.100.2/24"],
        "the address was not leaked"
    );

    // The state refuses macvlan on a parent carrying an ipvlan network.
    let err = underlay.fails(
        1,
        &[
            "network",
            "create",
            "--subnet",
            "203.0.113.0/24",
            "-o",
            "parent=eth0",
            "mac",
        ],
    );
    assert!(
        err.contains("cannot put macvlan and ipvlan links on one parent"),
        "{err}"
    );
}

/// Two hosts joined by a trunk. VLAN 10 and VLAN 20 carry the same subnet: containers on the
/// same VLAN reach each other across the trunk, containers on the other VLAN do not. Networks
/// delete the sub-interfaces they created, never one the user made.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_vlan_parents_isolate_and_are_owned() {
    require_vm();
    let (ha, hb) = (Netns::new("trunka"), Netns::new("trunkb"));
    ip(&[
        "link", "add", "tr", "netns", &ha.name, "type", "veth", "peer", "name", "tr", "netns",
        &hb.name,
    ]);
    for h in [&ha, &hb] {
        h.ip(&["link", "set", "tr", "name", "eth0"]);
        h.ip(&["link", "set", "eth0", "up"]);
    }
    let (ua, ub) = (Underlay::new(&ha), Underlay::new(&hb));
    let subnet = "192.168.10.0/24";
    ua.ok(&[
        "network",
        "create",
        "--subnet",
        subnet,
        "--ip-range",
        "192.168.10.0/25",
        "-o",
        "parent=eth0.10",
        "--internal",
        "v10",
    ]);
    ub.ok(&[
        "network",
        "create",
        "--subnet",
        subnet,
        "--ip-range",
        "192.168.10.128/25",
        "-o",
        "parent=eth0",
        "-o",
        "vlan=10",
        "--internal",
        "v10",
    ]);
    ub.ok(&[
        "network",
        "create",
        "--subnet",
        subnet,
        "--ip-range",
        "192.168.10.128/25",
        "-o",
        "parent=eth0.20",
        "--internal",
        "v20",
    ]);
    for (h, id) in [(&ha, 10), (&hb, 10), (&hb, 20)] {
        let vlan = h.link(&format!("eth0.{id}"));
        assert_eq!(kind(&vlan), "vlan", "{vlan}");
        assert_eq!(vlan["linkinfo"]["info_data"]["id"], id, "{vlan}");
        assert!(
            vlan["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{vlan}"
        );
    }
    let (a10, b10, b20) = (Netns::new("a10"), Netns::new("b10"), Netns::new("b20"));
    ua.ok(&["connect", "v10", &a10.name]);
    ub.ok(&["connect", "v10", &b10.name]);
    ub.ok(&["connect", "v20", &b20.name, "--ip", "192.168.10.200"]);
    assert_eq!(ipv4_addrs(&b10.addr("eth0")), ["192.168.10.128/24"]);
    assert!(pings(&a10, "192.168.10.128"), "same VLAN across the trunk");
    assert!(
        !pings(&a10, "192.168.10.200"),
        "VLAN 20 must be unreachable from VLAN 10"
    );

    // A sub-interface the user made is used, and stays.
    ha.ip(&[
        "link", "add", "link", "eth0", "name", "eth0.30", "type", "vlan", "id", "30",
    ]);
    ua.ok(&[
        "network",
        "create",
        "--subnet",
        "203.0.113.0/24",
        "-o",
        "parent=eth0.30",
        "--internal",
        "v30",
    ]);
    ua.ok(&["network", "rm", "v30"]);
    assert!(
        has_link(&ha, "eth0.30"),
        "the user's eth0.30 must not be deleted"
    );
    // An existing interface named like a VLAN that is not that VLAN is refused.
    ha.add_dummy("eth0.33");
    let err = ua.fails(
        1,
        &[
            "network",
            "create",
            "--subnet",
            "203.0.113.0/24",
            "-o",
            "parent=eth0.33",
            "--internal",
            "bad",
        ],
    );
    assert!(
        err.contains("interface eth0.33 exists but is not VLAN 33 of eth0"),
        "{err}"
    );
    assert!(json(&ua.ok(&["network", "ls", "--format", "json"]))
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["Name"] != "bad"));

    ua.ok(&["network", "rm", "--force", "v10"]);
    assert!(
        !has_link(&ha, "eth0.10"),
        "created eth0.10 goes with its network"
    );
    assert!(links_but_lo(&a10).is_empty());
    ub.ok(&["network", "rm", "--force", "v10"]);
    assert!(!has_link(&hb, "eth0.10"));
    assert!(has_link(&hb, "eth0.20"), "still used by v20");
    ub.ok(&["network", "rm", "--force", "v20"]);
    assert!(!has_link(&hb, "eth0.20"));
}

/// An internal network without a parent gets its own dummy, deleted with it.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_internal_network_owns_a_dummy_parent() {
    require_vm();
    let host = Netns::new("dmhost");
    let c = Netns::new("dmc");
    let underlay = Underlay::new(&host);
    let id = underlay.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "--internal",
        "int",
    ]);
    let dummy = format!("dm-{}", &id.trim()[..12]);
    assert_eq!(kind(&host.link(&dummy)), "dummy");
    underlay.ok(&["connect", "int", &c.name]);
    assert_eq!(kind(&c.link("eth0")), "macvlan");
    assert!(
        default_routes(&c).as_array().unwrap().is_empty(),
        "internal: no default route"
    );
    underlay.ok(&["network", "rm", "--force", "int"]);
    assert!(!has_link(&host, &dummy), "the dummy goes with its network");
}

/// Reboot, simulated: the VLAN sub-interface is gone and the container's namespace was
/// recreated. `restore` recreates the sub-interface and releases the dead endpoint; the
/// network works again and hands out the same address.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_restore_recreates_vlan_parents_after_a_reboot() {
    require_vm();
    let host = Netns::new("rshost");
    host.add_dummy("eth0");
    let underlay = Underlay::new(&host);
    underlay.ok(&[
        "network",
        "create",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0.42",
        "lan",
    ]);
    let c1 = Netns::new("rsc1");
    underlay.ok(&["connect", "lan", &c1.name]);
    let c1_name = c1.name.clone();

    // A reboot: the VLAN and every netns are gone when `restore` runs (before any runtime
    // starts its containers again).
    host.ip(&["link", "del", "eth0.42"]);
    drop(c1);

    let out = underlay.ok(&["restore"]);
    assert!(
        out.contains("recreated parent eth0.42 of network lan"),
        "{out}"
    );
    assert!(
        out.contains(&format!("released endpoint lan/{c1_name}")),
        "{out}"
    );
    let vlan = host.link("eth0.42");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 42, "{vlan}");
    let c1 = Netns { name: c1_name };
    ip(&["netns", "add", &c1.name]);
    underlay.ok(&["connect", "lan", &c1.name]);
    assert_eq!(ipv4_addrs(&c1.addr("eth0")), ["198.51.100.2/24"]);
    // Still owned: removing the network deletes it.
    underlay.ok(&["network", "rm", "--force", "lan"]);
    assert!(!has_link(&host, "eth0.42"));
}

/// The README's main job on a kernel with 802.1Q: every lab check passes, none is skipped (on a
/// host without 8021q the VLAN-trunk scenario is skipped, which `tests/lab.rs` covers).
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_lab_run_passes_every_check_with_the_vlan_trunk_scenario() {
    require_vm();
    let out = ok(Command::new(UNDERLAY).args(["lab", "run"]));
    let summary = out.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("44 passed, 0 failed") && !summary.contains("skipped"),
        "{summary}\n{out}"
    );
    assert!(
        out.contains("c1 (VLAN 10) cannot reach c3 (VLAN 20)"),
        "{out}"
    );
}

/// ipvlan L2 endpoints all carry their parent's MAC: the DHCP server tells them apart by client
/// identifier, and answers by broadcast (the keeper asks for it on ipvlan).
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_ipvlan_l2_endpoints_get_distinct_dhcp_leases() {
    require_vm();
    let mut lan = common::dhcp::DhcpLan::new(2);
    lan.start_dnsmasq(&[
        "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,2m",
        "--no-ping",
    ]);
    lan.start_keeper();
    lan.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--ipam-driver",
        "dhcp",
        "-o",
        "parent=eth0",
        "lan",
    ]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["connect", "lan", lan.c(1)]);
    let v4 = |ns: &str| -> String {
        let all = common::addresses(ns, "eth0");
        assert_eq!(all.len(), 1, "{ns}: {all:?}");
        all[0].split('/').next().unwrap().to_string()
    };
    let (a, b) = (v4(lan.c(0)), v4(lan.c(1)));
    assert_ne!(a, b, "two endpoints, two leases");
    for addr in [&a, &b] {
        let last: u8 = addr.rsplit('.').next().unwrap().parse().unwrap();
        assert!(
            addr.starts_with("198.51.100.") && (100..=150).contains(&last),
            "{addr}"
        );
    }
    let mac = |ns: &str| common::link(ns, "eth0").unwrap()["address"].clone();
    assert_eq!(mac(lan.c(0)), mac(lan.c(1)), "ipvlan: one MAC");
    let leases = lan.dnsmasq_leases(0);
    assert!(leases.contains(&a) && leases.contains(&b), "{leases}");
    assert!(common::pings(lan.c(0), &b), "siblings reach each other");
    assert!(common::pings(lan.c(1), common::dhcp::ROUTER), "and the LAN");
    lan.ok(&["disconnect", "lan", lan.c(0)]);
    lan.ok(&["disconnect", "lan", lan.c(1)]);
    let log = lan.dnsmasq_log(0);
    for addr in [&a, &b] {
        assert!(log.contains(&format!("DHCPRELEASE(br0) {addr}")), "{log}");
    }
}

/// Runs `ip -n NS args` in the lan's docker host.
fn lan_ip(lan: &common::TestLan, args: &[&str]) {
    let mut full = vec!["-n", lan.host.name.as_str()];
    full.extend_from_slice(args);
    ip(&full);
}

/// A NIC reset under a VLAN parent: the trunk goes (and with it eth0.10 and the macvlans), comes
/// back; the supervisor makes eth0.10 again and every endpoint's link on it, as they were.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_supervisor_rebuilds_a_vlan_parent_and_its_endpoints() {
    require_vm();
    let lan = common::TestLan::new(2);
    lan.ok(&[
        "network",
        "create",
        "--subnet",
        "192.168.10.0/24",
        "-o",
        "parent=eth0.10",
        "v10",
    ]);
    lan.ok(&["connect", "v10", lan.c(0)]);
    lan.ok(&["connect", "v10", lan.c(1)]);
    let macs = || [0, 1].map(|i| common::link(lan.c(i), "eth0").map(|l| l["address"].clone()));
    let was = macs();
    let daemon = common::daemon::Daemon::start(&lan);
    lan_ip(&lan, &["link", "del", "eth0"]);
    daemon.expect("parent_gone", None);
    lan_ip(
        &lan,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "wire0",
        ],
    );
    lan_ip(&lan, &["link", "set", "eth0", "up"]);
    lan_ip(&lan, &["link", "set", "wire0", "up"]);
    daemon.expect("parent_recreated", None);
    daemon.expect("endpoint_recreated", Some(lan.c(0)));
    daemon.expect("endpoint_recreated", Some(lan.c(1)));
    let vlan = common::link(&lan.host.name, "eth0.10").expect("eth0.10 made again");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 10);
    assert_eq!(macs(), was);
    assert_eq!(common::addresses(lan.c(1), "eth0"), ["192.168.10.3/24"]);
    assert!(common::pings(lan.c(0), "192.168.10.3"));
}

/// ipvlan endpoints carry their parent's MAC: a parent made again with another MAC gives its
/// endpoints the new one.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_supervisor_rebuilds_ipvlan_endpoints_with_the_new_parent_mac() {
    require_vm();
    let lan = common::TestLan::new(2);
    lan.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "198.51.100.0/24",
        "-o",
        "parent=eth0",
        "lan",
    ]);
    lan.ok(&["connect", "lan", lan.c(0)]);
    lan.ok(&["connect", "lan", lan.c(1)]);
    let daemon = common::daemon::Daemon::start(&lan);
    lan_ip(&lan, &["link", "del", "eth0"]);
    daemon.expect("parent_gone", None);
    lan_ip(
        &lan,
        &[
            "link",
            "add",
            "eth0",
            "address",
            "02:00:00:00:00:99",
            "type",
            "veth",
            "peer",
            "name",
            "wire0",
        ],
    );
    lan_ip(&lan, &["link", "set", "eth0", "up"]);
    lan_ip(&lan, &["link", "set", "wire0", "up"]);
    daemon.expect("endpoint_recreated", Some(lan.c(0)));
    daemon.expect("endpoint_recreated", Some(lan.c(1)));
    for i in 0..2 {
        let link = common::link(lan.c(i), "eth0").expect("eth0 back");
        assert_eq!(link["address"], "02:00:00:00:00:99");
        assert_eq!(link["linkinfo"]["info_kind"], "ipvlan");
    }
    let shown = lan.inspect("lan");
    assert_eq!(
        shown["Endpoints"][lan.c(0)]["MacAddress"],
        "02:00:00:00:00:99",
        "the state follows"
    );
    assert!(common::pings(lan.c(0), "198.51.100.3"));
}

/// Asserts 200; returns the body.
fn plugin_ok(socket: &Path, call: &str, body: Value) -> Value {
    let (status, answer) = common::plugin_post(socket, call, &body);
    assert_eq!(status, 200, "{call} {body}: {answer}");
    answer
}

/// The Docker plugin on an 802.1Q parent, driven through the calls dockerd makes (the host
/// kernel has no 8021q, so no dockerd here): `network create -o parent=eth0.20` creates and
/// owns eth0.20, an endpoint's link hangs off it, `network rm` removes it again.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_docker_plugin_creates_and_removes_a_vlan_parent() {
    require_vm();
    let lan = common::TestLan::new(1);
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("underlay.sock");
    let mut plugin = lan
        .cmd(&["docker-plugin", "--socket", &socket.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _plugin = Kill(&mut plugin);
    let started = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            started.elapsed().as_secs() < 10,
            "the plugin never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let activated = plugin_ok(&socket, "Plugin.Activate", serde_json::json!({}));
    assert_eq!(
        activated["Implements"],
        serde_json::json!(["NetworkDriver", "IpamDriver"])
    );
    let pool = plugin_ok(
        &socket,
        "IpamDriver.RequestPool",
        serde_json::json!({"AddressSpace": "LocalDefault", "Pool": "192.168.20.0/24",
                           "SubPool": "", "Options": {}, "V6": false}),
    );
    let pool_id = pool["PoolID"].as_str().unwrap().to_string();
    plugin_ok(
        &socket,
        "IpamDriver.RequestAddress",
        serde_json::json!({"PoolID": pool_id, "Address": "192.168.20.1",
                           "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    let network_id = "a".repeat(64);
    plugin_ok(
        &socket,
        "NetworkDriver.CreateNetwork",
        serde_json::json!({"NetworkID": network_id,
            "Options": {"com.docker.network.generic": {"parent": "eth0.20"}},
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "192.168.20.0/24",
                          "Gateway": "192.168.20.1/24", "AuxAddresses": {}}],
            "IPv6Data": []}),
    );
    let vlan = common::link(&lan.host.name, "eth0.20").expect("eth0.20 created");
    assert_eq!(kind(&vlan), "vlan", "{vlan}");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 20);
    assert_eq!(vlan["link"], "eth0");
    let listed = lan.ok(&["network", "ls"]);
    assert!(listed.contains("docker-aaaaaaaaaaaa"), "{listed}");

    let address = plugin_ok(
        &socket,
        "IpamDriver.RequestAddress",
        serde_json::json!({"PoolID": pool_id, "Address": "", "Options": {}}),
    );
    assert_eq!(address["Address"], "192.168.20.2/24");
    let endpoint_id = "e".repeat(64);
    plugin_ok(
        &socket,
        "NetworkDriver.CreateEndpoint",
        serde_json::json!({"NetworkID": network_id, "EndpointID": endpoint_id,
            "Interface": {"Address": "192.168.20.2/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": {}}),
    );
    let joined = plugin_ok(
        &socket,
        "NetworkDriver.Join",
        serde_json::json!({"NetworkID": network_id, "EndpointID": endpoint_id,
            "SandboxKey": format!("/run/netns/{}", lan.c(0)), "Options": {}}),
    );
    let src = joined["InterfaceName"]["SrcName"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(joined["Gateway"], "192.168.20.1", "{joined}");
    let link = common::link(&lan.host.name, &src).expect("the endpoint link");
    assert_eq!(
        link["link"], "eth0.20",
        "the endpoint hangs off the VLAN: {link}"
    );

    // While the network has an endpoint, its parent stays; deleting the network removes it.
    for (call, body) in [
        (
            "NetworkDriver.Leave",
            serde_json::json!({"NetworkID": network_id, "EndpointID": endpoint_id}),
        ),
        (
            "NetworkDriver.DeleteEndpoint",
            serde_json::json!({"NetworkID": network_id, "EndpointID": endpoint_id}),
        ),
        (
            "IpamDriver.ReleaseAddress",
            serde_json::json!({"PoolID": pool_id, "Address": "192.168.20.2"}),
        ),
    ] {
        plugin_ok(&socket, call, body);
    }
    assert!(
        common::link(&lan.host.name, "eth0.20").is_some(),
        "eth0.20 went with the endpoint"
    );
    assert!(
        common::link(&lan.host.name, &src).is_none(),
        "{src} outlived DeleteEndpoint"
    );
    plugin_ok(
        &socket,
        "NetworkDriver.DeleteNetwork",
        serde_json::json!({"NetworkID": network_id}),
    );
    assert!(
        common::link(&lan.host.name, "eth0.20").is_none(),
        "network rm left eth0.20"
    );
    plugin_ok(
        &socket,
        "IpamDriver.ReleaseAddress",
        serde_json::json!({"PoolID": pool_id, "Address": "192.168.20.1"}),
    );
    plugin_ok(
        &socket,
        "IpamDriver.ReleasePool",
        serde_json::json!({"PoolID": pool_id}),
    );
    let listed = lan.ok(&["network", "ls"]);
    assert!(!listed.contains("docker-aaaaaaaaaaaa"), "{listed}");
}

/// The addresses (without prefix) of endpoint `endpoint` of `network`, v4 and v6.
fn endpoint_addresses(lan: &common::TestLan, network: &str, endpoint: &str) -> (String, String) {
    let net = lan.inspect(network);
    let field = |key: &str| {
        let value = net["Endpoints"][endpoint][key]
            .as_str()
            .unwrap_or_else(|| panic!("{net}"));
        value.split('/').next().unwrap().to_string()
    };
    (field("IPv4Address"), field("IPv6Address"))
}

/// Host access where the host kernel cannot test it: an ipvlan network gets an ipvlan shim in
/// its own mode, a macvlan network on an owned 802.1Q parent a macvlan shim on that VLAN. Each
/// time the host, holding its own address on the parent, cannot reach the container before,
/// reaches it both ways in both families with host access, and is cut off again without.
#[test]
#[ignore = "runs inside the kernel VM: tests/vm/run"]
fn vm_host_access_on_ipvlan_and_on_a_vlan_parent() {
    require_vm();
    for (driver, parent, shim_kind) in [
        ("ipvlan", "eth0", "ipvlan"),
        ("macvlan", "eth0.30", "macvlan"),
    ] {
        let lan = common::TestLan::new(1);
        lan.ok(&[
            "network",
            "create",
            "-d",
            driver,
            "--subnet",
            "198.51.100.0/24",
            "--aux-address",
            "host=198.51.100.10",
            "--ipv6",
            "--subnet",
            "2001:db8:5::/64",
            "--aux-address",
            "host6=2001:db8:5::10",
            "-o",
            &format!("parent={parent}"),
            "ha",
        ]);
        for (addr, extra) in [
            ("198.51.100.10/24", None),
            ("2001:db8:5::10/64", Some("nodad")),
        ] {
            let mut args = vec!["-n", &lan.host.name, "addr", "add", addr, "dev", parent];
            args.extend(extra);
            assert!(common::ip(&args).status.success(), "{args:?}");
        }
        lan.ok(&["connect", "ha", lan.c(0)]);
        let (v4, v6) = endpoint_addresses(&lan, "ha", lan.c(0));
        assert!(
            !common::pings(&lan.host.name, &v4),
            "{driver}: the parent reached its child"
        );

        lan.ok(&["network", "update", "ha", "--host-access", "on"]);
        let id = lan.inspect("ha")["Id"].as_str().unwrap().to_string();
        let shim_name = format!("ulh{}", &id[..12]);
        let shim = common::link(&lan.host.name, &shim_name).expect("the host access link");
        assert_eq!(shim["linkinfo"]["info_kind"], shim_kind, "{shim}");
        assert_eq!(shim["link"], parent, "{shim}");
        let shim_addresses = common::addresses(&lan.host.name, &shim_name);
        let shim_address = |v6: bool| {
            let found = shim_addresses
                .iter()
                .map(|a| a.split('/').next().unwrap())
                .find(|a| a.contains(':') == v6 && !a.starts_with("fe80"));
            found
                .unwrap_or_else(|| panic!("{shim_addresses:?}"))
                .to_string()
        };
        let (shim4, shim6) = (shim_address(false), shim_address(true));
        for (from, to) in [
            (lan.host.name.as_str(), v4.as_str()),
            (lan.host.name.as_str(), v6.as_str()),
            (lan.c(0), shim4.as_str()),
            (lan.c(0), shim6.as_str()),
        ] {
            assert!(
                common::pings(from, to),
                "{driver} on {parent}: {from} cannot reach {to} (shim {shim_addresses:?})"
            );
        }

        lan.ok(&["network", "update", "ha", "--host-access", "off"]);
        assert!(
            common::link(&lan.host.name, &shim_name).is_none(),
            "{driver}: shim left"
        );
        assert!(
            !common::pings(&lan.host.name, &v4),
            "{driver}: still reachable without"
        );
        lan.ok(&["network", "rm", "--force", "ha"]);
    }
}
