//! A skel-like dispatcher: environment + stdin in, result or error JSON
//! out, exit code returned. Process I/O lives only in [`run_main`].

use crate::conf::NetConf;
use crate::env::{CniEnv, Command};
use crate::error::CniError;
use crate::result::CniResult;
use crate::version::{supported_strings, CniVersion, VersionInfo};
use std::io::{Read, Write};

/// What a plugin command receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdArgs {
    /// The environment.
    pub env: CniEnv,
    /// The configuration's version (answer in it).
    pub version: CniVersion,
    /// The common configuration keys.
    pub conf: NetConf,
    /// The raw configuration (parse the plugin's own keys from it; pass it to delegates).
    pub stdin: Vec<u8>,
}

/// A CNI plugin. STATUS and GC default to success (nothing to report or collect).
pub trait Plugin {
    /// ADD: attach and return the result.
    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError>;
    /// DEL: detach; must succeed when the resources are already gone.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError>;
    /// CHECK: verify the attachment in `conf.prev_result`.
    fn check(&self, args: &CmdArgs) -> Result<(), CniError>;
    /// STATUS: ready to serve ADD? (errors 50/51).
    fn status(&self, _args: &CmdArgs) -> Result<(), CniError> {
        Ok(())
    }
    /// GC: release what `conf.gc_keeps` does not keep.
    fn gc(&self, _args: &CmdArgs) -> Result<(), CniError> {
        Ok(())
    }
}

/// Runs one command: parses the environment (through `getenv`) and the
/// configuration, enforces the version rules, calls `plugin`, and writes
/// the result (ADD), the VERSION reply, or an error object to `stdout`.
/// Returns the process exit code (0 or 1).
pub fn run(
    plugin: &impl Plugin,
    getenv: &impl Fn(&str) -> Option<String>,
    stdin: &[u8],
    stdout: &mut impl Write,
) -> i32 {
    match dispatch(plugin, getenv, stdin) {
        Ok(out) => match write_out(stdout, out.as_deref()) {
            Ok(()) => 0,
            Err(e) => fail(stdout, stdin, &CniError::io(format!("writing result: {e}"))),
        },
        Err(e) => fail(stdout, stdin, &e),
    }
}

/// [`run`] on the real process environment, stdin and stdout.
pub fn run_main(plugin: &impl Plugin) -> i32 {
    let mut input = Vec::new();
    let mut out = std::io::stdout().lock();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return fail(
            &mut out,
            &[],
            &CniError::io(format!("error reading from stdin: {e}")),
        );
    }
    run(plugin, &|k: &str| std::env::var(k).ok(), &input, &mut out)
}

fn write_out(w: &mut impl Write, out: Option<&str>) -> std::io::Result<()> {
    if let Some(text) = out {
        w.write_all(text.as_bytes())?;
        w.flush()?;
    }
    Ok(())
}

fn fail(w: &mut impl Write, stdin: &[u8], e: &CniError) -> i32 {
    let version = request_version(stdin).unwrap_or(CniVersion::LATEST);
    // Nothing more can be reported if stdout itself is broken.
    let _ = write_out(w, Some(&e.to_json(version)));
    1
}

/// The `cniVersion` of the request, when it is a known version.
fn request_version(stdin: &[u8]) -> Option<CniVersion> {
    let v: serde_json::Value = serde_json::from_slice(stdin).ok()?;
    CniVersion::parse(v.get("cniVersion")?.as_str()?)
}

fn dispatch(
    plugin: &impl Plugin,
    getenv: &impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Result<Option<String>, CniError> {
    let env = CniEnv::from_env(getenv)?;
    if env.command == Command::Version {
        let info = VersionInfo::for_request(request_version(stdin));
        return Ok(Some(
            serde_json::to_string(&info).map_err(|e| CniError::internal(e.to_string()))?,
        ));
    }
    let conf = NetConf::parse(stdin)?;
    check_version(env.command, conf.cni_version)?;
    let args = CmdArgs {
        version: conf.cni_version,
        env,
        conf,
        stdin: stdin.to_vec(),
    };
    match args.env.command {
        Command::Add => plugin.add(&args).map(|r| Some(r.to_json(args.version))),
        Command::Del => plugin.del(&args).map(|()| None),
        Command::Check => plugin.check(&args).map(|()| None),
        Command::Status => plugin.status(&args).map(|()| None),
        Command::Gc => plugin.gc(&args).map(|()| None),
        Command::Version => Ok(None),
    }
}

/// The version rules: every command needs a supported version (≥ 0.3.0);
/// CHECK needs ≥ 0.4.0; STATUS and GC need ≥ 1.1.0. Violations are code 1.
pub fn check_version(command: Command, version: CniVersion) -> Result<(), CniError> {
    if !version.is_supported() {
        return Err(
            CniError::incompatible_version("incompatible CNI versions").with_details(format!(
                "config is {:?}, plugin supports {:?}",
                version.as_str(),
                supported_strings()
            )),
        );
    }
    let min = match command {
        Command::Check => CniVersion::V0_4_0,
        Command::Status | Command::Gc => CniVersion::V1_1_0,
        _ => return Ok(()),
    };
    if version < min {
        return Err(CniError::incompatible_version(format!(
            "config version {version} does not allow {command} (needs {min} or later)"
        )));
    }
    Ok(())
}
