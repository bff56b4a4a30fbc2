//! The host side of the kernel-VM tests: boot the VM with `tests/vm/run`, packing the calling
//! test binary (and the binaries it needs) at their host paths, and run that binary inside with
//! `--ignored`, so that its `#[ignore]`d tests run in the VM and nowhere else.
//!
//! A crate's VM test file has one host-side test calling [`run_ignored_tests_in_vm`] and VM-only
//! tests marked `#[ignore = "runs inside the kernel VM: tests/vm/run"]` that start with
//! [`require_vm`]. `UNDERLAY_VM_TESTS=<filter>` narrows the inner run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// The harness script, from the workspace root.
pub const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vm/run");

/// Whether this process runs inside the kernel VM.
pub fn in_vm() -> bool {
    std::env::var_os("UNDERLAY_IN_VM").is_some_and(|v| v == "1")
}

/// VM tests change the kernel's network state: never on a developer's machine.
pub fn require_vm() {
    assert!(
        in_vm(),
        "this test runs only inside the kernel VM: its crate's VM test, run as root, runs it there"
    );
}

/// Boots the VM, runs the calling test binary's ignored tests inside it with `binaries` packed
/// too, and panics with the inner failure report unless at least one test ran and all passed.
pub fn run_ignored_tests_in_vm(binaries: &[&Path]) {
    assert!(
        !in_vm(),
        "the VM suite must not run inside the VM (the inner run passes --ignored)"
    );
    require_root();
    let me = std::env::current_exe().expect("the path of this test binary");
    // stderr joins stdout, so the harness's notes and the console keep their order.
    let mut cmd = Command::new("bash");
    cmd.args(["-c", r#"exec 2>&1; exec bash "$0" "$@""#, HARNESS]);
    for binary in binaries {
        cmd.arg("--exe").arg(binary);
    }
    cmd.arg("--")
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
    println!("VM suite: {passed} test(s) passed inside the VM");
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

/// Runs the harness; every line of its output is echoed with `println!` as it comes (visible
/// live with `--nocapture`, otherwise shown by libtest on failure) and kept.
fn run_streaming(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {HARNESS}: {e}"));
    let mut console = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line.unwrap_or_else(|e| format!("<unreadable console line: {e}>"));
        println!("{line}");
        console.push_str(&line);
        console.push('\n');
    }
    let status = child.wait().expect("waiting for the harness");
    (status.code(), console)
}

/// libtest's failure report (from `failures:` on), or the whole output when there is no such
/// section (the VM itself failed).
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
