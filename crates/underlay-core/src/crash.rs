//! Crash points for the crash-consistency tests.
//!
//! When `UNDERLAY_CRASH_AT` names a point, the process sends itself SIGKILL there: no
//! destructor, no rollback, no SQLite close, exactly as `kill -9` would leave things. The test
//! suite runs every operation with every point and checks the invariants afterwards (see
//! docs/state.md). Unset, a crash point costs one cached environment look-up.

use std::sync::OnceLock;

/// Every crash point, in the order an operation passes them.
pub const CRASH_POINTS: &[&str] = &[
    "attach-reserved",
    "attach-link-created",
    "attach-renamed",
    "attach-leased",
    "attach-configured",
    "attach-committed",
    "detach-marked",
    "detach-unplumbed",
    "rm-detached",
];

pub(crate) fn crash_point(name: &str) {
    static WANTED: OnceLock<Option<String>> = OnceLock::new();
    let wanted = WANTED.get_or_init(|| std::env::var("UNDERLAY_CRASH_AT").ok());
    if wanted.as_deref() == Some(name) {
        tracing::warn!(point = name, "crashing on purpose (UNDERLAY_CRASH_AT)");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}
