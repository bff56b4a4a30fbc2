use crate::cli::LabCommand;
use std::process::ExitCode;
pub fn run(_cmd: LabCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("lab: not built yet")
}
