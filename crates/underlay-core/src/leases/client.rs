//! The engine's side of the keeper socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proto::{KeeperRequest, KeeperResponse, LeaseReply, LeaseRequest};
use super::Leases;
use crate::Error;

/// Where `underlay dhcp-daemon` listens unless told otherwise (`UNDERLAY_DHCP_SOCKET`).
pub const DEFAULT_KEEPER_SOCKET: &str = "/run/underlay/dhcp.sock";

/// Longest answer a client reads: a `List` of every lease stays far below it.
const MAX_RESPONSE: u64 = 16 << 20;
/// Margin over the request's own timeout before a client gives up on the keeper.
const SLACK: Duration = Duration::from_secs(5);

/// Talks to a lease keeper over its unix socket; one connection per request.
#[derive(Debug, Clone)]
pub struct KeeperClient {
    path: PathBuf,
}

impl KeeperClient {
    pub fn new(path: impl Into<PathBuf>) -> KeeperClient {
        KeeperClient { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and reads its answer, waiting at most `wait` for it.
    pub fn call(&self, request: &KeeperRequest, wait: Duration) -> Result<KeeperResponse, Error> {
        let mut stream = UnixStream::connect(&self.path).map_err(|e| {
            Error::Io(format!(
                "no DHCP lease keeper answers at {} ({e}): start it with `underlay dhcp-daemon` \
                 (systemd: underlay-dhcp.socket)",
                self.path.display()
            ))
        })?;
        let fail = |e: std::io::Error| {
            Error::Io(format!(
                "talking to the lease keeper at {}: {e}",
                self.path.display()
            ))
        };
        stream.set_read_timeout(Some(wait)).map_err(fail)?;
        let mut line = serde_json::to_vec(request).map_err(|e| Error::Io(e.to_string()))?;
        line.push(b'\n');
        stream.write_all(&line).map_err(fail)?;
        let mut answer = String::new();
        BufReader::new(std::io::Read::take(&stream, MAX_RESPONSE))
            .read_line(&mut answer)
            .map_err(fail)?;
        if answer.is_empty() {
            return Err(Error::Io(format!(
                "the lease keeper at {} closed the connection without answering",
                self.path.display()
            )));
        }
        serde_json::from_str(&answer).map_err(|e| {
            Error::Io(format!(
                "the lease keeper sent an answer that is not valid: {e}"
            ))
        })
    }

    /// Whether a keeper answers.
    pub fn ping(&self) -> Result<String, Error> {
        match self.call(&KeeperRequest::Ping, SLACK)? {
            KeeperResponse::Pong { version } => Ok(version),
            other => Err(unexpected(&other)),
        }
    }
}

impl Leases for KeeperClient {
    fn acquire(&mut self, request: &LeaseRequest) -> Result<LeaseReply, Error> {
        let wait = Duration::from_millis(request.timeout_ms)
            + Duration::from_millis(request.probe_ms.unwrap_or(0)) * 4
            + SLACK;
        match self.call(&KeeperRequest::Acquire(Box::new(request.clone())), wait)? {
            KeeperResponse::Lease(reply) => Ok(*reply),
            KeeperResponse::Error(err) => Err(err.into()),
            other => Err(unexpected(&other)),
        }
    }

    fn relocate(&mut self, key: &str, netns: &str, alias: &str) -> Result<(), Error> {
        self.relocate_call(key, netns, alias)
    }

    fn release(&mut self, key: &str) -> Result<bool, Error> {
        let request = KeeperRequest::Release {
            key: key.to_string(),
        };
        match self.call(&request, SLACK)? {
            KeeperResponse::Released { found } => Ok(found),
            KeeperResponse::Error(err) => Err(err.into()),
            other => Err(unexpected(&other)),
        }
    }
}

impl KeeperClient {
    fn relocate_call(&self, key: &str, netns: &str, alias: &str) -> Result<(), Error> {
        let request = KeeperRequest::Relocate {
            key: key.to_string(),
            netns: netns.to_string(),
            alias: alias.to_string(),
        };
        match self.call(&request, SLACK)? {
            KeeperResponse::Relocated => Ok(()),
            KeeperResponse::Error(err) => Err(err.into()),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(response: &KeeperResponse) -> Error {
    Error::Io(format!(
        "the lease keeper gave an unexpected answer: {response:?}"
    ))
}
