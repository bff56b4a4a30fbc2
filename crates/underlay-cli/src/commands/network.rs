use std::path::Path;
use std::process::ExitCode;

use underlay_core::{inspect_json, list_json, CreateNetwork};

use super::{open_engine, open_state};
use crate::cli::{CreateArgs, Format, NetworkCommand};
use crate::output::print_table;

pub fn run(state_dir: &Path, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCommand::Create(args) => create(state_dir, args),
        NetworkCommand::Ls { format } => list(state_dir, format),
        NetworkCommand::Inspect { names } => inspect(state_dir, &names),
        NetworkCommand::Rm { force, names } => remove(state_dir, force, &names),
    }
}

fn create(state_dir: &Path, args: CreateArgs) -> anyhow::Result<ExitCode> {
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
    };
    // Validate before touching anything, so bad input needs neither root nor a state dir.
    req.validate()?;
    let net = open_engine(state_dir)?.create_network(&req)?;
    println!("{}", net.id);
    Ok(ExitCode::SUCCESS)
}

fn list(state_dir: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let state = open_state(state_dir)?;
    let rows = state
        .networks()?
        .iter()
        .map(|net| list_json(&state, net))
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
            ],
            &rows,
            &["ID", "Name", "Driver", "Parent", "Subnets", "Endpoints"],
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what it finds; a missing name is an error after the others are printed (as Docker).
fn inspect(state_dir: &Path, names: &[String]) -> anyhow::Result<ExitCode> {
    let state = open_state(state_dir)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match state.network(name)? {
            Some(net) => found.push(inspect_json(&state, &net)?),
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

/// Removes each network in turn; reports every failure and exits 1 if any.
fn remove(state_dir: &Path, force: bool, names: &[String]) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(state_dir)?;
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
