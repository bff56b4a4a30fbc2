//! `underlay`: the command-line front-end. It parses arguments, calls one engine method and
//! prints the outcome; the logic lives in `underlay-core`.

mod cli;
mod commands;
mod docker;
mod lab;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("underlay: {}", error_chain(&err));
            exit_code_for(&err)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = commands::Ctx {
        state_dir: cli.state_dir,
        dhcp_socket: cli.dhcp_socket,
    };
    match cli.command {
        Command::Network(cmd) => commands::network::run(&ctx, cmd),
        Command::Connect(args) => commands::endpoint::connect(&ctx, args),
        Command::Disconnect(args) => commands::endpoint::disconnect(&ctx, args),
        Command::Gc => commands::endpoint::gc(&ctx),
        Command::Restore => commands::endpoint::restore(&ctx),
        Command::DhcpDaemon(args) => commands::dhcp::daemon(&ctx, &args),
        Command::Daemon { settle_every } => {
            commands::daemon::daemon(&ctx, std::time::Duration::from_secs(settle_every))
        }
        Command::Events => commands::daemon::events(&ctx),
        Command::DockerPlugin { socket } => docker::serve(&ctx, &socket),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Cni(cmd) => commands::cni::run(cmd),
        Command::Completions { shell } => commands::docs::completions(shell),
        Command::Man { dir } => commands::docs::man(&dir),
    }
}

/// Logs go to stderr; `RUST_LOG` wins over `--log-level`.
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// "context: cause: cause" on one line.
fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// 2 for invalid input (nothing changed), 1 for operational failures.
fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    let invalid = err
        .chain()
        .filter_map(|c| c.downcast_ref::<underlay_core::Error>())
        .any(underlay_core::Error::is_invalid_input);
    ExitCode::from(if invalid { 2 } else { 1 })
}
