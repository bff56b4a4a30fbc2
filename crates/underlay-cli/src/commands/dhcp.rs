//! `underlay dhcp-daemon`: the lease keeper on its socket.

use std::process::ExitCode;

use anyhow::Context;
use underlay_core::leases::Keeper;
use underlay_linux::{bind_private_socket, systemd_listener};

use super::Ctx;

pub fn daemon(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let listener = match systemd_listener() {
        Some(listener) => listener,
        None => bind_private_socket(&ctx.dhcp_socket)
            .with_context(|| format!("listening on {}", ctx.dhcp_socket.display()))?,
    };
    let keeper = Keeper::open(&ctx.state_dir, underlay_core::events::EventBus::default())
        .with_context(|| format!("opening the leases in {}", ctx.state_dir.display()))?;
    tracing::info!(socket = %ctx.dhcp_socket.display(), "DHCP lease keeper ready");
    keeper
        .serve(&listener)
        .context("serving the lease keeper socket")?;
    Ok(ExitCode::SUCCESS)
}
