//! How a network's containers get their addresses: the local pool or the LAN's DHCP server for
//! IPv4, one explicit IPv6 mode, and conflict detection (`--ipam-driver`, `--ipam-opt`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where IPv4 addresses come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpamDriver {
    /// underlay's own pools (`--subnet`, `--ip-range`...), Docker's "default".
    #[default]
    Local,
    /// The LAN's DHCP server, through the lease keeper (`underlay dhcp-daemon`).
    Dhcp,
}

impl IpamDriver {
    pub fn name(self) -> &'static str {
        match self {
            IpamDriver::Local => "default",
            IpamDriver::Dhcp => "dhcp",
        }
    }
}

/// One explicit knob for IPv6 on a network's container links: nothing happens that the user did
/// not ask for (no surprise SLAAC or ULA address from a router advertisement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ipv6Mode {
    /// An address from the network's IPv6 subnet; router advertisements are ignored.
    Static,
    /// An address from the LAN's DHCPv6 server (IA_NA); router advertisements are accepted for
    /// routes only.
    Dhcpv6,
    /// The kernel's stateless autoconfiguration from router advertisements.
    Slaac,
    /// IPv6 disabled on the link (Docker's behaviour for networks without `--ipv6`).
    Off,
}

impl Ipv6Mode {
    pub fn name(self) -> &'static str {
        match self {
            Ipv6Mode::Static => "static",
            Ipv6Mode::Dhcpv6 => "dhcpv6",
            Ipv6Mode::Slaac => "slaac",
            Ipv6Mode::Off => "off",
        }
    }

    fn parse(text: &str) -> Option<Ipv6Mode> {
        [
            Ipv6Mode::Static,
            Ipv6Mode::Dhcpv6,
            Ipv6Mode::Slaac,
            Ipv6Mode::Off,
        ]
        .into_iter()
        .find(|m| m.name() == text)
    }
}

/// How long conflict detection listens for an answer, unless `--ipam-opt probe_ms=`.
pub const DEFAULT_PROBE: Duration = Duration::from_millis(100);
/// How long a DHCP exchange may take before `connect` fails, unless `--ipam-opt dhcp_timeout=`.
pub const DEFAULT_DHCP_TIMEOUT: Duration = Duration::from_secs(10);

const IPAM_OPTIONS: &[&str] = &[
    "dhcpv6",
    "ipv6_mode",
    "conflict_detection",
    "probe_ms",
    "dhcp_servers",
    "dhcp_timeout",
    "dhcp_broadcast",
];

/// A network's addressing, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Addressing {
    pub driver: IpamDriver,
    /// `None` in networks stored before the knob existed: see [`Addressing::ipv6_mode`].
    pub ipv6_mode: Option<Ipv6Mode>,
    /// Probe every address (ARP / duplicate address detection) before it is committed.
    pub conflict_detection: Option<bool>,
    pub probe_ms: Option<u32>,
    /// DHCPv4 servers whose answers are accepted; empty: any.
    pub dhcp_servers: Vec<Ipv4Addr>,
    pub dhcp_timeout_secs: Option<u32>,
    /// Ask DHCPv4 servers to broadcast their answers; `None`: only on ipvlan (shared MAC).
    pub dhcp_broadcast: Option<bool>,
    /// The `--ipam-opt` pairs as given, for `inspect`.
    pub options: BTreeMap<String, String>,
}

impl Addressing {
    /// Validates `--ipam-driver` and `--ipam-opt`; `has_v6_subnet`: an IPv6 `--subnet` was given.
    pub(crate) fn parse(
        driver: Option<&str>,
        options: BTreeMap<String, String>,
        has_v6_subnet: bool,
    ) -> Result<Addressing, Error> {
        if let Some(key) = options.keys().find(|k| !IPAM_OPTIONS.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "unknown --ipam-opt {key:?} (known: {})",
                IPAM_OPTIONS.join(", ")
            )));
        }
        let get = |key: &str| options.get(key).map(String::as_str);
        let addressing = Addressing {
            driver: parse_driver(driver)?,
            ipv6_mode: Some(ipv6_mode(get("ipv6_mode"), get("dhcpv6"), has_v6_subnet)?),
            conflict_detection: get("conflict_detection")
                .map(|v| parse_bool("conflict_detection", v))
                .transpose()?,
            probe_ms: get("probe_ms")
                .map(|v| parse_number("probe_ms", v, 10, 10_000))
                .transpose()?,
            dhcp_servers: get("dhcp_servers").map_or(Ok(Vec::new()), parse_servers)?,
            dhcp_timeout_secs: get("dhcp_timeout")
                .map(|v| parse_number("dhcp_timeout", v, 1, 300))
                .transpose()?,
            dhcp_broadcast: get("dhcp_broadcast")
                .map(|v| parse_bool("dhcp_broadcast", v))
                .transpose()?,
            options: options.clone(),
        };
        addressing.check_dhcp_only_options()?;
        Ok(addressing)
    }

    fn check_dhcp_only_options(&self) -> Result<(), Error> {
        let dhcp_used = self.driver == IpamDriver::Dhcp || self.ipv6_mode == Some(Ipv6Mode::Dhcpv6);
        let dhcp_only = ["dhcp_servers", "dhcp_timeout", "dhcp_broadcast"];
        match dhcp_only.iter().find(|k| self.options.contains_key(**k)) {
            Some(key) if !dhcp_used => Err(Error::invalid(format!(
                "--ipam-opt {key} needs DHCP: --ipam-driver dhcp or --ipam-opt ipv6_mode=dhcpv6"
            ))),
            _ => Ok(()),
        }
    }

    /// The IPv6 mode; networks stored before the knob existed keep what they had: a pool
    /// address when they have an IPv6 subnet, no IPv6 otherwise.
    pub fn ipv6_mode(&self, has_v6_subnet: bool) -> Ipv6Mode {
        self.ipv6_mode.unwrap_or(if has_v6_subnet {
            Ipv6Mode::Static
        } else {
            Ipv6Mode::Off
        })
    }

    pub fn conflict_detection(&self) -> bool {
        self.conflict_detection.unwrap_or(true)
    }

    pub fn probe_time(&self) -> Duration {
        self.probe_ms
            .map_or(DEFAULT_PROBE, |ms| Duration::from_millis(u64::from(ms)))
    }

    pub fn dhcp_timeout(&self) -> Duration {
        self.dhcp_timeout_secs
            .map_or(DEFAULT_DHCP_TIMEOUT, |s| Duration::from_secs(u64::from(s)))
    }

    /// Whether endpoints of this network need the lease keeper.
    pub fn uses_dhcp(&self, has_v6_subnet: bool) -> bool {
        self.driver == IpamDriver::Dhcp || self.ipv6_mode(has_v6_subnet) == Ipv6Mode::Dhcpv6
    }
}

fn parse_driver(driver: Option<&str>) -> Result<IpamDriver, Error> {
    match driver {
        None | Some("default" | "local" | "underlay") => Ok(IpamDriver::Local),
        Some("dhcp") => Ok(IpamDriver::Dhcp),
        Some(other) => Err(Error::invalid(format!(
            "unknown --ipam-driver {other:?} (use default or dhcp)"
        ))),
    }
}

/// `ipv6_mode=` wins; `dhcpv6=true` is its short form; the default follows the subnets.
fn ipv6_mode(
    mode: Option<&str>,
    dhcpv6: Option<&str>,
    has_v6_subnet: bool,
) -> Result<Ipv6Mode, Error> {
    let dhcpv6 = dhcpv6.map(|v| parse_bool("dhcpv6", v)).transpose()?;
    let mode = match (mode, dhcpv6) {
        (Some(text), flag) => {
            let mode = Ipv6Mode::parse(text).ok_or_else(|| {
                Error::invalid(format!(
                    "invalid --ipam-opt ipv6_mode {text:?} (use static, dhcpv6, slaac or off)"
                ))
            })?;
            if flag.is_some_and(|f| f != (mode == Ipv6Mode::Dhcpv6)) {
                return Err(Error::invalid(format!(
                    "--ipam-opt dhcpv6 contradicts --ipam-opt ipv6_mode={text}"
                )));
            }
            mode
        }
        (None, Some(true)) => Ipv6Mode::Dhcpv6,
        (None, _) if has_v6_subnet => Ipv6Mode::Static,
        (None, _) => Ipv6Mode::Off,
    };
    match (mode, has_v6_subnet) {
        (Ipv6Mode::Static, false) => Err(Error::invalid(
            "ipv6_mode=static needs an IPv6 --subnet (and --ipv6)",
        )),
        (Ipv6Mode::Dhcpv6 | Ipv6Mode::Slaac | Ipv6Mode::Off, true) => Err(Error::invalid(format!(
            "ipv6_mode={} does not use an IPv6 --subnet: drop the subnet or use ipv6_mode=static",
            mode.name()
        ))),
        _ => Ok(mode),
    }
}

fn parse_bool(key: &str, text: &str) -> Result<bool, Error> {
    match text {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::invalid(format!(
            "invalid --ipam-opt {key} {text:?}: expected true or false"
        ))),
    }
}

fn parse_number(key: &str, text: &str, min: u32, max: u32) -> Result<u32, Error> {
    match text.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::invalid(format!(
            "invalid --ipam-opt {key} {text:?}: expected a number from {min} to {max}"
        ))),
    }
}

fn parse_servers(text: &str) -> Result<Vec<Ipv4Addr>, Error> {
    text.split(',')
        .map(|s| {
            s.trim().parse().map_err(|_| {
                Error::invalid(format!(
                    "invalid --ipam-opt dhcp_servers entry {s:?}: expected IPv4 addresses separated by commas"
                ))
            })
        })
        .collect()
}
