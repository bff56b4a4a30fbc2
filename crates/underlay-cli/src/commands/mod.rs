//! One module per command group; each function loads, calls the engine once and prints.

pub mod cni;
pub mod docs;
pub mod endpoint;
pub mod network;

use std::path::Path;

use anyhow::Context;
use underlay_core::{Engine, State};
use underlay_linux::LinuxKernel;

/// The state alone, for read-only commands (no netlink, no root needed beyond the files).
pub fn open_state(dir: &Path) -> anyhow::Result<State> {
    State::open(dir).with_context(|| format!("opening state in {}", dir.display()))
}

/// The engine over the real kernel.
pub fn open_engine(dir: &Path) -> anyhow::Result<Engine<LinuxKernel>> {
    let state = open_state(dir)?;
    let kernel = LinuxKernel::open().context("opening a netlink socket (are you root?)")?;
    Ok(Engine::new(kernel, state))
}
