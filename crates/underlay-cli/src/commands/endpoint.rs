use std::process::ExitCode;

use serde_json::json;
use underlay_core::{Connect, Disconnect, RepairReport};

use super::{open_engine, Ctx};
use crate::cli::{ConnectArgs, DisconnectArgs, Format};

pub fn connect(ctx: &Ctx, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let req = Connect {
        network: args.network,
        target: args.target,
        ip: args.ip,
        ip6: args.ip6,
        mac: args.mac,
        ifname: Some(args.ifname),
        name: args.name,
        dhcp_client_id: args.dhcp_client_id,
        dhcp_duid: args.dhcp_duid,
        hostname: args.hostname,
    };
    req.validate()?;
    let ep = open_engine(ctx)?.connect(&req)?;
    let addresses: Vec<String> = [ep.ipv4, ep.ipv6]
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    match args.format {
        Format::Json => println!(
            "{}",
            json!({"Name": ep.name, "EndpointID": ep.id, "Interface": ep.ifname.as_str(), "MacAddress": ep.mac.to_string(),
                   "IPv4Address": ep.ipv4, "IPv6Address": ep.ipv6, "Netns": ep.netns})
        ),
        Format::Table => println!(
            "{} {} {} {}",
            ep.name,
            ep.ifname,
            ep.mac,
            addresses.join(" ")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn disconnect(ctx: &Ctx, args: DisconnectArgs) -> anyhow::Result<ExitCode> {
    let req = Disconnect {
        network: args.network,
        target: args.target,
    };
    open_engine(ctx)?.disconnect(&req)?;
    Ok(ExitCode::SUCCESS)
}

pub fn gc(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let report = open_engine(ctx)?.gc()?;
    Ok(print_repairs(&report))
}

pub fn restore(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let report = open_engine(ctx)?.restore()?;
    Ok(print_repairs(&report))
}

/// One line per repair; exit 1 when something could not be repaired.
fn print_repairs(report: &RepairReport) -> ExitCode {
    for name in &report.rolled_back {
        println!("rolled back interrupted operation of endpoint {name}");
    }
    for what in &report.recreated {
        println!("{what}");
    }
    for name in &report.released {
        println!("released endpoint {name} (its namespace or link is gone)");
    }
    for name in &report.relinked {
        println!("recreated the link of endpoint {name} (its parent had been reset)");
    }
    for what in &report.missing {
        eprintln!("underlay: {what}");
    }
    if report.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
