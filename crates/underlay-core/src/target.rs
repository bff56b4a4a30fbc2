//! Where an endpoint goes: a named netns, a netns path, or a process.

use std::path::{Path, PathBuf};

use crate::Error;

/// A network namespace as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ip netns` name: `/run/netns/NAME`.
    Named(String),
    /// A PID: `/proc/PID/ns/net`.
    Pid(u32),
    /// Any path to a netns file (a bind mount or `/proc/.../ns/net`).
    Path(PathBuf),
}

impl Target {
    /// Digits are a PID, anything with a `/` is a path, the rest a name under `/run/netns`.
    pub fn parse(text: &str) -> Result<Target, Error> {
        if text.is_empty() {
            return Err(Error::invalid("the target netns is empty"));
        }
        if text.contains('/') {
            return Ok(Target::Path(PathBuf::from(text)));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let pid = text
                .parse()
                .map_err(|_| Error::invalid(format!("invalid PID {text:?}")))?;
            return Ok(Target::Pid(pid));
        }
        if text == "." || text == ".." {
            return Err(Error::invalid(format!("invalid netns name {text:?}")));
        }
        Ok(Target::Named(text.to_string()))
    }

    /// The netns file.
    pub fn path(&self) -> PathBuf {
        match self {
            Target::Named(name) => Path::new("/run/netns").join(name),
            Target::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            Target::Path(path) => path.clone(),
        }
    }

    /// The endpoint name used when the user gives none.
    pub fn default_endpoint_name(&self) -> Option<String> {
        match self {
            Target::Named(name) => Some(name.clone()),
            Target::Pid(pid) => Some(format!("pid{pid}")),
            Target::Path(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Target::parse("c1").unwrap().path(),
            PathBuf::from("/run/netns/c1")
        );
        assert_eq!(
            Target::parse("42").unwrap().path(),
            PathBuf::from("/proc/42/ns/net")
        );
        assert_eq!(
            Target::parse("/var/run/x").unwrap().path(),
            PathBuf::from("/var/run/x")
        );
        assert!(Target::parse("").is_err());
        assert!(Target::parse("..").is_err());
        assert!(Target::parse("99999999999").is_err());
    }
}
