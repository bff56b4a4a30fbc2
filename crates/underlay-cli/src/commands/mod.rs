//! One module per command group; each function loads, calls the engine once and prints.

pub mod cni;
pub mod daemon;
pub mod dhcp;
pub mod docs;
pub mod endpoint;
pub mod network;

use std::path::{Path, PathBuf};

use anyhow::Context;
use underlay_core::leases::KeeperClient;
use underlay_core::{Engine, State};
use underlay_linux::LinuxKernel;

/// What every command may need: where the state and the lease keeper are.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub state_dir: PathBuf,
    pub dhcp_socket: PathBuf,
}

/// The state alone, for read-only commands (no netlink, no root needed beyond the files).
pub fn open_state(dir: &Path) -> anyhow::Result<State> {
    State::open(dir).with_context(|| format!("opening state in {}", dir.display()))
}

/// The engine over the real kernel; DHCP networks reach the lease keeper over its socket
/// (connected only when an operation needs it).
pub fn open_engine(ctx: &Ctx) -> anyhow::Result<Engine<LinuxKernel>> {
    let state = open_state(&ctx.state_dir)?;
    let kernel = LinuxKernel::open().context("opening a netlink socket (are you root?)")?;
    let keeper = KeeperClient::new(&ctx.dhcp_socket);
    Ok(Engine::new(kernel, state).with_leases(Box::new(keeper)))
}
