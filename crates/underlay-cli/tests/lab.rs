//! The README's main job, end to end: `underlay lab run` must pass every check and leave no
//! namespace behind. Needs root.

mod common;

use std::process::Command;

#[test]
fn lab_run_passes_every_check_and_cleans_up() {
    common::require_root();
    let out = Command::new(env!("CARGO_BIN_EXE_underlay"))
        .args(["lab", "run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lab run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default();
    let (passed, failed) = counts(summary);
    assert!(passed >= 20 && failed == 0, "summary: {summary}");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("ul-lab-"),
        "lab namespaces left behind"
    );
}

/// `N passed, N failed[, N skipped]` → (passed, failed).
fn counts(summary: &str) -> (u32, u32) {
    let number = |word: &str| {
        summary
            .split(", ")
            .find_map(|part| part.strip_suffix(word)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {word:?} count in {summary:?}"))
    };
    (number(" passed"), number(" failed"))
}
