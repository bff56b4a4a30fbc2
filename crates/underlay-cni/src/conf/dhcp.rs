//! dhcp IPAM configuration (parse and validate only; the daemon does the work).

use super::{to_object, typed, ConfigError, NetConf};
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

/// The reference default daemon socket.
pub const DEFAULT_SOCKET_PATH: &str = "/run/cni/dhcp.sock";

/// Option names the reference plugin understands (plus any decimal 0..255).
pub const OPTION_NAMES: &[(&str, u8)] = &[
    ("dhcp-client-identifier", 61),
    ("subnet-mask", 1),
    ("routers", 3),
    ("host-name", 12),
    ("user-class", 77),
    ("vendor-class-identifier", 60),
];

const NAMES: &[&str] = &[
    "dhcp-client-identifier",
    "subnet-mask",
    "routers",
    "host-name",
    "user-class",
    "vendor-class-identifier",
    "<decimal 0..255>",
];

/// A DHCP option, by name or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DhcpOption {
    /// The option code.
    pub code: u8,
}

impl DhcpOption {
    /// Parses a name from [`OPTION_NAMES`] or a decimal code.
    pub fn parse(s: &str) -> Option<DhcpOption> {
        if let Some((_, code)) = OPTION_NAMES.iter().find(|(n, _)| *n == s) {
            return Some(DhcpOption { code: *code });
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().map(|code| DhcpOption { code })
    }
}

impl<'de> Deserialize<'de> for DhcpOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DhcpOption::parse(&s).ok_or_else(|| serde::de::Error::unknown_variant(&s, NAMES))
    }
}

/// `request[]`: an option to ask the server for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestOption {
    /// The option.
    pub option: DhcpOption,
    /// Drop the default requested options (routers, subnet-mask).
    #[serde(default, rename = "skipDefault")]
    pub skip_default: bool,
}

/// `provide[]`: an option to send to the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProvideOption {
    /// The option.
    pub option: DhcpOption,
    /// A literal value.
    #[serde(default)]
    pub value: Option<String>,
    /// Take the value from this `CNI_ARGS` key (e.g. `K8S_POD_NAME`).
    #[serde(default, rename = "fromArg")]
    pub from_arg: Option<String>,
}

/// A validated dhcp IPAM configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConf {
    /// The common keys.
    pub net: NetConf,
    /// `ipam.daemonSocketPath` (default [`DEFAULT_SOCKET_PATH`]).
    pub daemon_socket_path: PathBuf,
    /// `ipam.request`.
    pub request: Vec<RequestOption>,
    /// `ipam.provide`.
    pub provide: Vec<ProvideOption>,
    /// `ipam.priority`: metric of the routes learned.
    pub priority: Option<u32>,
    /// `ipam.ipv6` (underlay's addition): also lease an IPv6 address with DHCPv6.
    pub ipv6: bool,
}

#[derive(Deserialize)]
struct Raw {
    ipam: Option<RawIpam>,
}

#[derive(Deserialize)]
struct RawIpam {
    #[serde(default, rename = "daemonSocketPath")]
    daemon_socket_path: Option<String>,
    #[serde(default)]
    request: Vec<RequestOption>,
    #[serde(default)]
    provide: Vec<ProvideOption>,
    #[serde(default)]
    priority: Option<u32>,
    #[serde(default)]
    ipv6: bool,
}

impl DhcpConf {
    /// Parses and validates.
    pub fn parse(json: &[u8]) -> Result<DhcpConf, ConfigError> {
        let v = to_object(json)?;
        let net = NetConf::from_value(&v)?;
        let raw: Raw = typed(&v)?;
        let ipam = raw
            .ipam
            .ok_or_else(|| ConfigError::invalid("ipam", "missing ipam section"))?;
        let path = ipam
            .daemon_socket_path
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_SOCKET_PATH.to_string());
        Ok(DhcpConf {
            daemon_socket_path: PathBuf::from(path),
            request: ipam.request,
            provide: ipam.provide,
            priority: ipam.priority,
            ipv6: ipam.ipv6,
            net,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_options() {
        let c = DhcpConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"dhcp",
                 "daemonSocketPath":"/tmp/d.sock","priority":50,
                 "request":[{"skipDefault":true,"option":"121"},{"option":"routers"}],
                 "provide":[{"option":"host-name","fromArg":"K8S_POD_NAME"},
                            {"option":"dhcp-client-identifier","value":"id1"}]}}"#,
        )
        .unwrap();
        assert_eq!(c.daemon_socket_path, PathBuf::from("/tmp/d.sock"));
        assert_eq!(c.request[0].option.code, 121);
        assert!(c.request[0].skip_default);
        assert_eq!(c.provide[0].option.code, 12);
        assert_eq!(c.provide[0].from_arg.as_deref(), Some("K8S_POD_NAME"));
        assert_eq!(c.priority, Some(50));
        assert!(!c.ipv6);
        let c = DhcpConf::parse(br#"{"name":"n","ipam":{"type":"dhcp"}}"#).unwrap();
        assert_eq!(c.daemon_socket_path, PathBuf::from(DEFAULT_SOCKET_PATH));
    }

    #[test]
    fn bad_option_is_code_2() {
        for bad in ["256", "bogus", "-1"] {
            let json = format!(
                r#"{{"name":"n","ipam":{{"type":"dhcp","request":[{{"option":"{bad}"}}]}}}}"#
            );
            let e = crate::CniError::from(DhcpConf::parse(json.as_bytes()).unwrap_err());
            assert_eq!(e.code, 2, "{}", e.msg);
            assert!(
                e.msg.contains("ipam.request[0].option") && e.msg.contains(bad),
                "{}",
                e.msg
            );
        }
    }
}
