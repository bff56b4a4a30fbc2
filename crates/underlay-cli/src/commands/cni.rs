use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::cli::CniCommand;

/// The plugin types `underlay-cni` answers as.
const PLUGIN_TYPES: &[&str] = &["macvlan", "ipvlan", "vlan", "host-local", "static", "dhcp"];
const BINARY: &str = "underlay-cni";

pub fn run(cmd: CniCommand) -> anyhow::Result<ExitCode> {
    let CniCommand::Install { dir, binary, force } = cmd;
    let source = match binary {
        Some(path) => path,
        None => next_to_this_binary()?,
    };
    install(&source, &dir, force)?;
    Ok(ExitCode::SUCCESS)
}

fn next_to_this_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding this binary")?;
    let path = me.with_file_name(BINARY);
    if !path.exists() {
        bail!(
            "{} does not exist: build it (cargo build -p underlay-cni-plugins) or pass --binary",
            path.display()
        );
    }
    Ok(path)
}

/// Copies the binary in (through a temporary name, so a runtime never runs half a file), then
/// points each type name at it.
fn install(source: &Path, dir: &Path, force: bool) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in PLUGIN_TYPES {
        let target = dir.join(name);
        if !force && target.symlink_metadata().is_ok() && !is_ours(&target) {
            bail!(
                "{} exists and is not underlay's: pass --force to replace it",
                target.display()
            );
        }
    }
    let temp = dir.join(format!(".{BINARY}.new"));
    fs::copy(source, &temp)
        .with_context(|| format!("copying {} to {}", source.display(), temp.display()))?;
    fs::rename(&temp, dir.join(BINARY))
        .with_context(|| format!("installing {BINARY} in {}", dir.display()))?;
    for name in PLUGIN_TYPES {
        let target = dir.join(name);
        let _ = fs::remove_file(&target);
        symlink(BINARY, &target).with_context(|| format!("linking {}", target.display()))?;
        println!("{} -> {BINARY}", target.display());
    }
    Ok(())
}

fn is_ours(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|to| to == Path::new(BINARY))
}
