//! `underlay daemon`: the lease keeper and the parent supervisor in one process; `underlay
//! events`: its event stream.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use underlay_core::events::EventBus;
use underlay_core::leases::Keeper;
use underlay_core::{Engine, ParentsSeen};
use underlay_linux::{bind_private_socket, systemd_listener, LinkEvent, LinkMonitor, LinuxKernel};

use super::{open_state, Ctx};

/// A look at every parent at least this often, even without link events.
const LOOK_EVERY: Duration = Duration::from_secs(5);
pub fn daemon(ctx: &Ctx, settle_every: Duration) -> anyhow::Result<ExitCode> {
    let bus = EventBus::default();
    let listener = listen(ctx)?;
    let keeper = Keeper::open(&ctx.state_dir, bus.clone())
        .with_context(|| format!("opening the leases in {}", ctx.state_dir.display()))?;
    let state = open_state(&ctx.state_dir)?;
    let kernel = LinuxKernel::open().context("opening a netlink socket (are you root?)")?;
    let mut engine = Engine::new(kernel, state).with_leases(Box::new(keeper.clone()));
    let mut monitor = LinkMonitor::open().context("subscribing to link events")?;
    let mut seen = ParentsSeen::default();
    // The first look is taken before the socket answers: whoever connects (and subscribes to
    // the events) sees changes from a known picture on.
    engine.supervise(&mut seen, &bus, true)?;
    let mut settled = Some(Instant::now());
    serve_in_background(keeper, listener)?;
    tracing::info!("supervisor ready");
    let mut netns_died = false;
    loop {
        let settle = netns_died || settled.is_none_or(|at| at.elapsed() >= settle_every);
        match engine.supervise(&mut seen, &bus, settle) {
            Ok(_) if settle => settled = Some(Instant::now()),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "supervision pass failed"),
        }
        let events = monitor.next(LOOK_EVERY).context("reading link events")?;
        // A container's netns died: its endpoints are released now, not at the next settle.
        netns_died = events.contains(&LinkEvent::NetnsGone);
    }
}

/// The socket systemd passed, or `--dhcp-socket`.
fn listen(ctx: &Ctx) -> anyhow::Result<UnixListener> {
    match systemd_listener() {
        Some(listener) => Ok(listener),
        None => bind_private_socket(&ctx.dhcp_socket)
            .with_context(|| format!("listening on {}", ctx.dhcp_socket.display())),
    }
}

fn serve_in_background(keeper: Keeper, listener: UnixListener) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("keeper".into())
        .spawn(move || {
            if let Err(e) = keeper.serve(&listener) {
                tracing::error!(error = %e, "the keeper's socket failed");
                std::process::exit(1);
            }
        })
        .context("starting the keeper")?;
    Ok(())
}

/// Prints the daemon's events as they happen, one JSON object per line.
pub fn events(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut stream = UnixStream::connect(&ctx.dhcp_socket).with_context(|| {
        format!(
            "no underlay daemon answers at {}: start `underlay daemon`",
            ctx.dhcp_socket.display()
        )
    })?;
    stream.write_all(b"{\"op\":\"events\"}\n")?;
    let mut lines = BufReader::new(stream).lines();
    lines.next().context("the daemon closed the stream")??; // "subscribed"
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{}", line?)?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
