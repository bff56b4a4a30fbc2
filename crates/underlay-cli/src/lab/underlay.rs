//! The real `underlay` binary, driven as a subprocess from inside the docker-host namespace:
//! the network's parent (`eth0`) is looked up in the namespace the CLI runs in.

use anyhow::Context;
use serde_json::Value;

use super::sys::{self, Ran};
use super::topology::HOST;

pub struct Underlay {
    /// This very binary.
    exe: String,
    state_dir: String,
}

/// One endpoint as `network inspect` shows it.
pub struct EndpointInfo {
    pub ipv4: String,
    pub ipv6: String,
    pub mac: String,
}

impl Underlay {
    pub fn new(state_dir: &std::path::Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the underlay binary")?;
        Ok(Underlay {
            exe: utf8(&exe)?,
            state_dir: utf8(state_dir)?,
        })
    }

    /// `ip netns exec ul-lab-host underlay --state-dir DIR args...`, whatever its exit code.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Ran> {
        let mut argv = vec![
            "netns",
            "exec",
            HOST,
            &self.exe,
            "--state-dir",
            &self.state_dir,
        ];
        argv.extend_from_slice(args);
        sys::run("ip", &argv)
    }

    /// Runs and requires exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(self.run(args)?.expect_exit(0)?.stdout)
    }

    /// The endpoints of `network`, by name, from `network inspect`.
    pub fn endpoints(&self, network: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
        let out = self.ok(&["network", "inspect", network])?;
        let json: Value = serde_json::from_str(&out)
            .with_context(|| format!("parsing `network inspect {network}` output: {out}"))?;
        match json.pointer("/0/Endpoints") {
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(Value::Null) | None => Ok(serde_json::Map::new()),
            Some(other) => anyhow::bail!("unexpected Endpoints in inspect output: {other}"),
        }
    }

    /// One endpoint of `network`, or an error if inspect does not list it.
    pub fn endpoint(&self, network: &str, name: &str) -> anyhow::Result<EndpointInfo> {
        let endpoints = self.endpoints(network)?;
        let ep = endpoints
            .get(name)
            .with_context(|| format!("`network inspect {network}` has no endpoint {name}"))?;
        let field = |key: &str| {
            ep.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Ok(EndpointInfo {
            ipv4: field("IPv4Address"),
            ipv6: field("IPv6Address"),
            mac: field("MacAddress"),
        })
    }

    /// Names of the networks in `network ls --format json`.
    pub fn network_names(&self) -> anyhow::Result<Vec<String>> {
        let out = self.ok(&["network", "ls", "--format", "json"])?;
        let json: Value = serde_json::from_str(&out)
            .with_context(|| format!("parsing `network ls --format json` output: {out}"))?;
        let rows = json
            .as_array()
            .with_context(|| format!("`network ls --format json` is not an array: {out}"))?;
        Ok(rows
            .iter()
            .map(|row| {
                row.get("Name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            })
            .collect())
    }
}

fn utf8(path: &std::path::Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}
