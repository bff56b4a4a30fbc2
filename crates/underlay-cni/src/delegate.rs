//! Delegation to an IPAM plugin: found in `CNI_PATH`, run with the same
//! environment (command substituted) and the complete configuration on stdin.

use crate::env::{CniEnv, Command};
use crate::error::{code, CniError};
use crate::result::CniResult;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// What a finished delegate produced (its stderr goes to ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status was zero.
    pub success: bool,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
}

/// Runs an executable; replaceable in tests.
pub trait Exec {
    /// Runs `program` with `env` added to the inherited environment and `stdin` piped in.
    fn exec(
        &self,
        program: &Path,
        env: &[(&'static str, String)],
        stdin: &[u8],
    ) -> std::io::Result<ExecOutput>;
}

/// [`Exec`] with real processes (retries "text file busy" like libcni).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessExec;

impl Exec for ProcessExec {
    fn exec(
        &self,
        program: &Path,
        env: &[(&'static str, String)],
        stdin: &[u8],
    ) -> std::io::Result<ExecOutput> {
        let mut attempt = 0;
        loop {
            match spawn_once(program, env, stdin) {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
                }
                other => return other,
            }
        }
    }
}

fn spawn_once(
    program: &Path,
    env: &[(&'static str, String)],
    stdin: &[u8],
) -> std::io::Result<ExecOutput> {
    let mut child = std::process::Command::new(program)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut pipe = child.stdin.take();
    let output = std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(p) = pipe.as_mut() {
                // A delegate that exits without reading stdin is not our error.
                let _ = p.write_all(stdin);
            }
        });
        child.wait_with_output()
    })?;
    Ok(ExecOutput {
        success: output.status.success(),
        stdout: output.stdout,
    })
}

/// Calls a delegated IPAM plugin for the command being served.
#[derive(Debug, Clone)]
pub struct DelegateIpam<'a, E: Exec = ProcessExec> {
    env: &'a CniEnv,
    exec: E,
}

impl<'a> DelegateIpam<'a, ProcessExec> {
    /// A delegate runner using real processes.
    pub fn new(env: &'a CniEnv) -> Self {
        DelegateIpam {
            env,
            exec: ProcessExec,
        }
    }
}

impl<'a, E: Exec> DelegateIpam<'a, E> {
    /// A delegate runner with a custom executor.
    pub fn with_exec(env: &'a CniEnv, exec: E) -> Self {
        DelegateIpam { env, exec }
    }

    /// The first `CNI_PATH` entry holding an executable file named `plugin_type`.
    pub fn find(&self, plugin_type: &str) -> Result<PathBuf, CniError> {
        crate::conf::validate_plugin_type("ipam.type", plugin_type)?;
        if self.env.path.is_empty() {
            return Err(CniError::invalid_env(format!(
                "CNI_PATH is empty: cannot find delegated plugin {plugin_type:?}"
            )));
        }
        self.env
            .path
            .iter()
            .map(|dir| dir.join(plugin_type))
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                CniError::new(
                    code::DELEGATE_NOT_FOUND,
                    format!(
                        "failed to find plugin {plugin_type:?} in CNI_PATH {:?}",
                        self.env.path
                    ),
                )
            })
    }

    /// ADD: returns the delegate's result (in IPAM form).
    pub fn add(&self, plugin_type: &str, conf: &[u8]) -> Result<CniResult, CniError> {
        let out = self.call(Command::Add, plugin_type, conf)?;
        CniResult::parse(&out)
            .map(CniResult::into_ipam)
            .map_err(|e| {
                CniError::decode(format!("invalid result from {plugin_type:?}: {}", e.msg))
            })
    }

    /// DEL (also used to undo an ADD that failed later).
    pub fn del(&self, plugin_type: &str, conf: &[u8]) -> Result<(), CniError> {
        self.call(Command::Del, plugin_type, conf).map(drop)
    }

    /// CHECK.
    pub fn check(&self, plugin_type: &str, conf: &[u8]) -> Result<(), CniError> {
        self.call(Command::Check, plugin_type, conf).map(drop)
    }

    /// GC.
    pub fn gc(&self, plugin_type: &str, conf: &[u8]) -> Result<(), CniError> {
        self.call(Command::Gc, plugin_type, conf).map(drop)
    }

    /// STATUS.
    pub fn status(&self, plugin_type: &str, conf: &[u8]) -> Result<(), CniError> {
        self.call(Command::Status, plugin_type, conf).map(drop)
    }

    fn call(&self, command: Command, plugin_type: &str, conf: &[u8]) -> Result<Vec<u8>, CniError> {
        let program = self.find(plugin_type)?;
        let vars = self.env.to_vars(command);
        let out = self.exec.exec(&program, &vars, conf).map_err(|e| {
            CniError::new(
                code::DELEGATE_FAILED,
                format!("cannot run {}: {e}", program.display()),
            )
        })?;
        interpret(out, plugin_type)
    }
}

/// Maps a delegate's output: success gives stdout; failure gives its error
/// object, or code 105 when it wrote none.
pub fn interpret(out: ExecOutput, plugin_type: &str) -> Result<Vec<u8>, CniError> {
    if out.success {
        return Ok(out.stdout);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Err(CniError::new(
            code::DELEGATE_FAILED,
            format!("plugin {plugin_type:?} failed with no error message"),
        ));
    }
    match CniError::from_json(&out.stdout) {
        Ok(e) => Err(e),
        Err(e) => Err(CniError::new(
            code::DELEGATE_FAILED,
            format!(
                "plugin {plugin_type:?} failed with an unparsable error {:?}: {e}",
                text.trim()
            ),
        )),
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpret_outputs() {
        let ok = ExecOutput {
            success: true,
            stdout: b"{}".to_vec(),
        };
        assert_eq!(interpret(ok, "x").unwrap(), b"{}");
        let err = ExecOutput {
            success: false,
            stdout:
                br#"{"cniVersion":"1.0.0","code":101,"msg":"no addresses left","details":"pool"}"#
                    .to_vec(),
        };
        let e = interpret(err, "x").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (101, "no addresses left", "pool")
        );
        let e = interpret(
            ExecOutput {
                success: false,
                stdout: vec![],
            },
            "x",
        )
        .unwrap_err();
        assert_eq!(e.code, 105);
        let e = interpret(
            ExecOutput {
                success: false,
                stdout: b"panic!".to_vec(),
            },
            "x",
        )
        .unwrap_err();
        assert!(e.code == 105 && e.msg.contains("panic!"), "{}", e.msg);
    }
}
