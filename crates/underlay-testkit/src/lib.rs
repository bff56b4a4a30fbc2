//! Test support shared by underlay's crates. A dev-dependency only.
//!
//! [`vm`]: run a test binary's `#[ignore]`d tests inside the kernel VM (tests/vm/run).

pub mod vm;
