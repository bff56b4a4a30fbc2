//! The CNI environment variables: command, container id, netns, ifname,
//! args and plugin search path.

use crate::args::CniArgs;
use crate::error::CniError;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// A CNI operation (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach (best effort, idempotent).
    Del,
    /// Verify an attachment (config ≥ 0.4.0).
    Check,
    /// Report supported versions.
    Version,
    /// Readiness (config ≥ 1.1.0).
    Status,
    /// Garbage-collect stale attachments (config ≥ 1.1.0).
    Gc,
}

impl Command {
    /// Parses the exact upper-case command name.
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// The command name as in `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// The variables (besides `CNI_COMMAND`) the specification requires.
    pub fn required_vars(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Version | Command::Status | Command::Gc => &[],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A missing or malformed environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Required variables are unset or empty.
    #[error("required env variables [{}] missing", .0.join(","))]
    Missing(Vec<&'static str>),
    /// `CNI_COMMAND` is not a known command.
    #[error("unknown CNI_COMMAND {0:?}")]
    UnknownCommand(String),
    /// A variable has an invalid value.
    #[error("invalid {var} {value:?}: {reason}")]
    Invalid {
        /// The variable name.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
}

impl From<EnvError> for CniError {
    fn from(e: EnvError) -> CniError {
        CniError::invalid_env(e.to_string())
    }
}

/// The parsed CNI environment. Variables that are unset, empty, or not
/// required by the command are empty strings / `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (validated when required).
    pub container_id: String,
    /// `CNI_NETNS` (optional for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (validated when required).
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:` (empty entries dropped).
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// Reads and validates the environment through `get` (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_env(get: &impl Fn(&str) -> Option<String>) -> Result<CniEnv, EnvError> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let Some(cmd) = var("CNI_COMMAND") else {
            return Err(EnvError::Missing(vec!["CNI_COMMAND"]));
        };
        let command = Command::parse(&cmd).ok_or(EnvError::UnknownCommand(cmd))?;
        let missing: Vec<&'static str> = command
            .required_vars()
            .iter()
            .copied()
            .filter(|k| var(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(EnvError::Missing(missing));
        }
        let required = |k: &str| command.required_vars().contains(&k);
        let container_id = var("CNI_CONTAINERID").unwrap_or_default();
        if required("CNI_CONTAINERID") {
            validate_container_id(&container_id)?;
        }
        let ifname = var("CNI_IFNAME").unwrap_or_default();
        if required("CNI_IFNAME") {
            validate_ifname(&ifname).map_err(|reason| EnvError::Invalid {
                var: "CNI_IFNAME",
                value: ifname.clone(),
                reason,
            })?;
        }
        let raw_args = var("CNI_ARGS").unwrap_or_default();
        let args = CniArgs::parse(&raw_args).map_err(|e| EnvError::Invalid {
            var: "CNI_ARGS",
            value: raw_args.clone(),
            reason: match e {
                crate::args::ArgsError::Pair(_) => "every ;-separated item must be KEY=VALUE",
                _ => "malformed",
            },
        })?;
        Ok(CniEnv {
            command,
            container_id,
            netns: var("CNI_NETNS").map(PathBuf::from),
            ifname,
            args,
            path: split_path(&var("CNI_PATH").unwrap_or_default()),
        })
    }

    /// Reads the environment from a map (tests, embedding).
    pub fn from_map(map: &HashMap<String, String>) -> Result<CniEnv, EnvError> {
        CniEnv::from_env(&|k: &str| map.get(k).cloned())
    }

    /// The variables to hand to a delegated plugin, with `command` substituted.
    pub fn to_vars(&self, command: Command) -> Vec<(&'static str, String)> {
        let netns = self
            .netns
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let path: Vec<String> = self.path.iter().map(|p| p.display().to_string()).collect();
        vec![
            ("CNI_COMMAND", command.as_str().to_string()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.raw().to_string()),
            ("CNI_PATH", path.join(":")),
        ]
    }
}

fn split_path(raw: &str) -> Vec<PathBuf> {
    raw.split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Validates `CNI_CONTAINERID`: non-empty, alphanumeric first, then alphanumerics, `_`, `.`, `-`.
pub fn validate_container_id(id: &str) -> Result<(), EnvError> {
    if is_safe_name(id) {
        Ok(())
    } else {
        Err(EnvError::Invalid {
            var: "CNI_CONTAINERID",
            value: id.to_string(),
            reason: "must start with an alphanumeric and contain only alphanumerics, '_', '.', '-'",
        })
    }
}

/// Whether `s` matches `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn is_safe_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Validates a Linux interface name like the kernel's `dev_valid_name`.
pub fn validate_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("interface name is empty");
    }
    if name.len() > 15 {
        return Err("interface name is longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("interface name cannot be . or ..");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err("interface name contains '/', ':' or whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, EnvError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_map(&map)
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
        ("CNI_ARGS", "IgnoreUnknown=1;IP=10.0.0.5"),
    ];

    #[test]
    fn full_add_env() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id, "abc123");
        assert_eq!(
            e.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(e.args.get("IP"), Some("10.0.0.5"));
        let vars = e.to_vars(Command::Del);
        assert_eq!(vars[0], ("CNI_COMMAND", "DEL".to_string()));
        assert_eq!(vars[5].1, "/opt/cni/bin:/usr/lib/cni");
    }

    #[test]
    fn missing_vars_named() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert_eq!(e, EnvError::Missing(vec!["CNI_CONTAINERID", "CNI_NETNS"]));
        let c: CniError = e.into();
        assert_eq!(c.code, 4);
        assert_eq!(
            c.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS] missing"
        );
        let e = env(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "required env variables [CNI_COMMAND] missing"
        );
    }

    #[test]
    fn del_does_not_need_netns() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "a"),
            ("CNI_IFNAME", "eth0"),
        ]);
        assert_eq!(e.unwrap().netns, None);
    }

    #[test]
    fn gc_status_version_need_only_command() {
        for cmd in ["GC", "STATUS", "VERSION"] {
            let e = env(&[
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", ""),
                ("CNI_IFNAME", ""),
            ]);
            assert!(e.is_ok(), "{cmd}");
        }
    }

    #[test]
    fn invalid_values_named() {
        let mut bad: Vec<(&str, &str)> = ADD.to_vec();
        bad[1] = ("CNI_CONTAINERID", "-bad");
        let msg = env(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("CNI_CONTAINERID") && msg.contains("-bad"),
            "{msg}"
        );
        bad[1] = ("CNI_CONTAINERID", "ok");
        bad[3] = ("CNI_IFNAME", "this-name-is-too-long");
        let msg = env(&bad).unwrap_err().to_string();
        assert!(msg.contains("CNI_IFNAME"), "{msg}");
        bad[3] = ("CNI_IFNAME", "eth0");
        bad[5] = ("CNI_ARGS", "IP");
        let msg = env(&bad).unwrap_err().to_string();
        assert!(msg.contains("CNI_ARGS"), "{msg}");
        let e = env(&[("CNI_COMMAND", "add")]).unwrap_err();
        assert_eq!(e.to_string(), "unknown CNI_COMMAND \"add\"");
    }

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("eth0.100").is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "0123456789abcdef"] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn safe_names() {
        assert!(is_safe_name("a.b_c-1"));
        assert!(!is_safe_name(""));
        assert!(!is_safe_name(".a"));
        assert!(!is_safe_name("a/b"));
    }
}
