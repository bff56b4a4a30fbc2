//! The lease keeper's protocol: one JSON request per line on a unix stream, one JSON response
//! per line back. Typed on both sides (firecracker-style: one request, response and error set).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a client asks the keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeeperRequest {
    Acquire(Box<LeaseRequest>),
    Release {
        key: String,
    },
    /// The lease's link moved to another netns (a runtime moved it into its container): find
    /// it there, by its alias, from now on.
    Relocate {
        key: String,
        netns: String,
        alias: String,
    },
    List,
    /// Liveness (CNI STATUS).
    Ping,
    /// Every event from now on, one JSON line each, until the client hangs up.
    Events,
}

/// The keeper's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum KeeperResponse {
    Lease(Box<LeaseReply>),
    Released { found: bool },
    Relocated,
    Leases { leases: Vec<LeaseSummary> },
    Pong { version: String },
    Error(KeeperError),
}

/// A failure, with the class the client maps to its own errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperError {
    pub kind: KeeperErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeeperErrorKind {
    /// The request itself is wrong; nothing was done.
    Invalid,
    /// The netns or the link is not there.
    NotFound,
    /// Every address offered was found in use on the LAN.
    Conflict,
    /// No server answered within the timeout.
    Timeout,
    Failed,
}

impl KeeperError {
    pub fn new(kind: KeeperErrorKind, message: impl Into<String>) -> KeeperError {
        KeeperError {
            kind,
            message: message.into(),
        }
    }
}

impl From<KeeperError> for Error {
    fn from(err: KeeperError) -> Error {
        match err.kind {
            KeeperErrorKind::Invalid => Error::Invalid(err.message),
            KeeperErrorKind::NotFound => Error::NotFound(err.message),
            KeeperErrorKind::Conflict => Error::Conflict(err.message),
            KeeperErrorKind::Timeout | KeeperErrorKind::Failed => Error::Io(err.message),
        }
    }
}

/// One endpoint's DHCP identity and wishes. The keeper persists it to renew after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Who the lease is for: `endpoint/<id>` (the engine) or `cni/<network>/<container>/<ifname>`.
    pub key: String,
    /// The container's netns file.
    pub netns: String,
    /// The container-side interface; it must exist (the keeper brings it up).
    pub ifname: String,
    /// The link's alias, which finds it when its name is not known (a runtime renamed it).
    #[serde(default)]
    pub alias: Option<String>,
    /// DHCPv4 client identifier (option 61).
    #[serde(with = "super::hex")]
    pub client_id: Vec<u8>,
    /// DHCPv6 client DUID and IA_NA identifier.
    #[serde(with = "super::hex")]
    pub duid: Vec<u8>,
    pub iaid: u32,
    pub hostname: Option<String>,
    pub v4: bool,
    pub v6: bool,
    /// Ask for broadcast answers (ipvlan: the MAC is shared).
    pub broadcast: bool,
    /// DHCPv4 servers whose answers are accepted; empty: any.
    pub servers: Vec<Ipv4Addr>,
    /// How long an exchange may take; 0: the keeper's default (`dhcp daemon -timeout`, 10 s).
    pub timeout_ms: u64,
    /// Probe each leased address this long before using it (DECLINE if it is live); `None`:
    /// no conflict detection.
    pub probe_ms: Option<u64>,
    /// How the keeper re-applies a changed lease to the link.
    pub apply: ApplyPolicy,
    /// Option 60, sent to DHCPv4 servers.
    #[serde(default)]
    pub vendor_class: Option<String>,
    /// DHCPv4 option codes asked for on top of the ones a lease is made of.
    #[serde(default)]
    pub params: Vec<u8>,
    /// More DHCPv4 options to send, as they go on the wire (CNI `provide`).
    #[serde(default)]
    pub options: Vec<RawOption>,
    /// Ceiling of the DHCPv4 retransmission delay; `None`: the keeper's (`-resendmax`).
    #[serde(default)]
    pub resend_max_ms: Option<u64>,
}

/// One DHCP option: its code and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOption {
    pub code: u8,
    #[serde(with = "super::hex")]
    pub value: Vec<u8>,
}

/// What a lease turns into on the link, when the keeper applies it itself (a lease that
/// changed at renewal, or came back after expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyPolicy {
    /// Metric of the routes learned from DHCP.
    pub metric: u32,
    /// Install the default route the server gives (not on `--internal` networks).
    pub default_route: bool,
}

/// A granted lease, per family.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LeaseReply {
    pub v4: Option<Lease4Info>,
    pub v6: Option<Lease6Info>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease4Info {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    /// Classless static routes (option 121) when given, else the default route via the first
    /// router (option 3).
    pub routes: Vec<Route4Info>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub mtu: Option<u16>,
    pub lease_secs: u64,
    pub t1_secs: u64,
    pub t2_secs: u64,
    /// When the server granted it, in Unix milliseconds.
    pub acquired_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route4Info {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    /// `0.0.0.0`: on-link.
    pub gateway: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease6Info {
    pub address: Ipv6Addr,
    /// DHCPv6 says nothing of prefixes: /128, with the on-link prefix from router adverts.
    pub prefix: u8,
    #[serde(with = "super::hex")]
    pub server_duid: Vec<u8>,
    /// Where the server's reply came from, and its unicast address when it offered one.
    pub server_addr: Ipv6Addr,
    pub server_unicast: Option<Ipv6Addr>,
    pub dns: Vec<Ipv6Addr>,
    pub search: Vec<String>,
    pub preferred_secs: u64,
    pub valid_secs: u64,
    pub t1_secs: u64,
    pub t2_secs: u64,
    pub acquired_ms: u64,
}

/// One kept lease, for `List`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseSummary {
    pub key: String,
    pub netns: String,
    pub ifname: String,
    /// A thread is keeping it (false: its task ended on an error; the next sweep or restart
    /// picks it up again).
    pub renewing: bool,
    pub lease: LeaseReply,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let request = KeeperRequest::Release {
            key: "endpoint/ab".into(),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(text, r#"{"op":"release","key":"endpoint/ab"}"#);
        assert_eq!(
            serde_json::from_str::<KeeperRequest>(&text).unwrap(),
            request
        );
        let bad = serde_json::from_str::<KeeperRequest>(r#"{"op":"release","key":"k","x":1}"#);
        assert!(bad.is_err());
        let unknown = serde_json::from_str::<KeeperRequest>(r#"{"op":"explode"}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn errors_map_to_engine_errors() {
        let err: Error = KeeperError::new(KeeperErrorKind::Conflict, "10.0.0.5 is live").into();
        assert!(matches!(err, Error::Conflict(_)));
        let err: Error = KeeperError::new(KeeperErrorKind::Invalid, "bad").into();
        assert!(err.is_invalid_input());
    }
}
