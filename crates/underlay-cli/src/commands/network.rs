use std::process::ExitCode;

use underlay_core::{inspect_json, list_json, network_health, CreateNetwork, Health};
use underlay_linux::RtNetlink;

use super::{open_engine, open_state, Ctx};
use crate::cli::{CreateArgs, Format, NetworkCommand, OnOff};
use crate::output::print_table;

pub fn run(ctx: &Ctx, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCommand::Create(args) => create(ctx, *args),
        NetworkCommand::Ls { format } => list(ctx, format),
        NetworkCommand::Inspect { names } => inspect(ctx, &names),
        NetworkCommand::Rm { force, names } => remove(ctx, force, &names),
        NetworkCommand::Update { name, host_access } => update(ctx, &name, host_access),
    }
}

fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let req = CreateNetwork {
        name: args.name,
        driver: args.driver,
        subnets: args.subnet,
        gateways: args.gateway,
        ip_ranges: args.ip_range,
        aux_addresses: args.aux_address,
        ipv6: args.ipv6,
        options: args.opt,
        internal: args.internal,
        labels: args.label,
        ipam_driver: args.ipam_driver,
        ipam_options: args.ipam_opt,
    };
    // Validate before touching anything, so bad input needs neither root nor a state dir.
    req.validate()?;
    let net = open_engine(ctx)?.create_network(&req)?;
    println!("{}", net.id);
    Ok(ExitCode::SUCCESS)
}

fn list(ctx: &Ctx, format: Format) -> anyhow::Result<ExitCode> {
    let state = open_state(&ctx.state_dir)?;
    let mut nl = host_netlink();
    let rows = state
        .networks()?
        .iter()
        .map(|net| list_json(&state, net, health(&mut nl, net).as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table => print_table(
            &[
                "NETWORK ID",
                "NAME",
                "DRIVER",
                "PARENT",
                "SUBNETS",
                "ENDPOINTS",
                "STATUS",
            ],
            &rows,
            &[
                "ID",
                "Name",
                "Driver",
                "Parent",
                "Subnets",
                "Endpoints",
                "Status",
            ],
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what it finds; a missing name is an error after the others are printed (as Docker).
fn inspect(ctx: &Ctx, names: &[String]) -> anyhow::Result<ExitCode> {
    let state = open_state(&ctx.state_dir)?;
    let mut nl = host_netlink();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match state.network(name)? {
            Some(net) => found.push(inspect_json(&state, &net, health(&mut nl, &net).as_ref())?),
            None => missing.push(name.as_str()),
        }
    }
    println!("{}", serde_json::to_string_pretty(&found)?);
    if !missing.is_empty() {
        anyhow::bail!(underlay_core::Error::NotFound(format!(
            "no such network: {}",
            missing.join(", ")
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// A netlink socket for reading the parents' state; `None` where netlink is not available
/// (health is then shown as unknown, and the rest of the answer still comes from the state).
fn host_netlink() -> Option<RtNetlink> {
    RtNetlink::open().ok()
}

fn health(nl: &mut Option<RtNetlink>, net: &underlay_core::Network) -> Option<Health> {
    network_health(nl.as_mut()?, net).ok()
}

fn update(ctx: &Ctx, name: &str, host_access: Option<OnOff>) -> anyhow::Result<ExitCode> {
    let Some(host_access) = host_access else {
        anyhow::bail!(underlay_core::Error::Invalid(
            "network update needs something to change: --host-access on|off".into()
        ));
    };
    let net = open_engine(ctx)?.set_host_access(name, host_access == OnOff::On)?;
    println!("{}", net.name());
    Ok(ExitCode::SUCCESS)
}

/// Removes each network in turn; reports every failure and exits 1 if any.
fn remove(ctx: &Ctx, force: bool, names: &[String]) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    let mut failed = false;
    for name in names {
        match engine.remove_network(name, force) {
            Ok(net) => println!("{}", net.name()),
            Err(err) => {
                eprintln!("underlay: {err}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
