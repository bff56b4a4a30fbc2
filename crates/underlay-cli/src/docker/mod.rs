//! `underlay docker-plugin`: Docker's remote network driver and IPAM driver over the engine.
//!
//! Docker asks (see `underlay_docker`); this front-end maps each request to one engine call
//! and the outcome back. The mapping is in [`handler`]; what Docker's IPAM protocol needs kept
//! between calls (pools, which have no network yet when they are requested) is in [`pools`].
//! Every Docker network is an engine network named `docker-<12 characters of its ID>`, so
//! `underlay network ls` and `inspect` show them with the CLI's own.

mod endpoint;
mod handler;
mod network;
mod pools;

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};

use crate::commands::{open_engine, Ctx};
use handler::Plugin;

/// Where Docker finds a legacy plugin named `underlay`.
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/underlay.sock";

pub fn serve(ctx: &Ctx, socket: &Path) -> anyhow::Result<ExitCode> {
    // SIGTERM/SIGINT are taken by one thread (blocked everywhere else, before any thread
    // starts): it removes the socket, so dockerd does not keep retrying a dead one.
    let signals = stop_signals();
    signals
        .thread_block()
        .context("blocking SIGTERM and SIGINT")?;
    let mut engine = open_engine(ctx)?;
    for name in engine.expire_pending()? {
        tracing::info!(endpoint = %name, "dropped a pending endpoint Docker never created");
    }
    let listener = underlay_docker::bind(socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    let plugin = Arc::new(Plugin::new(Mutex::new(engine)));
    let path = socket.to_path_buf();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let signal = signals.wait();
            let _ = std::fs::remove_file(&path);
            tracing::info!(?signal, "stopping; socket removed");
            std::process::exit(0);
        })
        .context("starting the signal thread")?;
    tracing::info!(socket = %socket.display(), "Docker network and IPAM plugin ready");
    underlay_docker::serve(listener, plugin).context("serving the plugin socket")?;
    Ok(ExitCode::SUCCESS)
}

fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}
