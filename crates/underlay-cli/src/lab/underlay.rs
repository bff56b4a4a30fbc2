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
    /// The lab's own lease keeper socket (in the state directory).
    dhcp_socket: String,
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
            dhcp_socket: utf8(&state_dir.join("dhcp.sock"))?,
        })
    }

    /// The lab's state directory (the DHCP scenario keeps dnsmasq's files there too).
    pub fn state_dir(&self) -> &str {
        &self.state_dir
    }

    /// The argv of this binary run in the docker host with the lab's state and keeper socket.
    fn argv<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut argv = vec![
            "netns",
            "exec",
            HOST,
            &self.exe,
            "--state-dir",
            &self.state_dir,
            "--dhcp-socket",
            &self.dhcp_socket,
        ];
        argv.extend_from_slice(args);
        argv
    }

    /// Starts the lab's lease keeper in the docker host; it runs until killed.
    pub fn spawn_keeper(&self) -> anyhow::Result<std::process::Child> {
        let child = std::process::Command::new("ip")
            .args(self.argv(&["dhcp-daemon"]))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the lease keeper")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.dhcp_socket).is_err() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the lease keeper did not start listening on {}",
                self.dhcp_socket
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(child)
    }

    /// `ip netns exec ul-lab-host underlay --state-dir DIR args...`, whatever its exit code.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Ran> {
        sys::run("ip", &self.argv(args))
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
