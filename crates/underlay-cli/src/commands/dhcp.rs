//! `underlay dhcp-daemon`: the lease keeper on its socket.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use underlay_core::leases::{Keeper, KeeperDefaults};
use underlay_linux::{bind_private_socket, systemd_listener};

use super::Ctx;
use crate::cli::DhcpDaemonArgs;

pub fn daemon(ctx: &Ctx, args: &DhcpDaemonArgs) -> anyhow::Result<ExitCode> {
    let listener = match systemd_listener() {
        Some(listener) => listener,
        None => bind_private_socket(&ctx.dhcp_socket)
            .with_context(|| format!("listening on {}", ctx.dhcp_socket.display()))?,
    };
    let keeper = Keeper::open(&ctx.state_dir, underlay_core::events::EventBus::default())
        .with_context(|| format!("opening the leases in {}", ctx.state_dir.display()))?
        .with_defaults(defaults(args));
    if let Some(pid_file) = &args.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing the pid file {}", pid_file.display()))?;
    }
    tracing::info!(socket = %ctx.dhcp_socket.display(), "DHCP lease keeper ready");
    keeper
        .serve(&listener)
        .context("serving the lease keeper socket")?;
    Ok(ExitCode::SUCCESS)
}

fn defaults(args: &DhcpDaemonArgs) -> KeeperDefaults {
    KeeperDefaults {
        timeout: Duration::from_millis(args.default_timeout_ms),
        broadcast: args.broadcast,
        resend_max: args.resend_max_ms.map(Duration::from_millis),
        netns_prefix: args.netns_prefix.clone(),
    }
}
