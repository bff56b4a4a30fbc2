//! Requests from front-ends, as they typed them, and their validation into the model.
//!
//! Validation is pure: it looks at nothing but the request, so a rejected request has touched
//! neither the kernel nor the state.

use std::collections::BTreeMap;
use std::net::IpAddr;

use underlay_ipam::{Pool, Subnet};
use underlay_linux::{IpvlanFlag, IpvlanMode, MacvlanMode};

use crate::model::{parse_ipvlan_flag, parse_ipvlan_mode, parse_macvlan_mode};
use crate::{Driver, Error, Family, IfName, IpConfig, MacAddr, NetworkSpec, Parent};

/// `network create`, with every value still as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateNetwork {
    pub name: String,
    pub driver: String,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ip_ranges: Vec<String>,
    /// `NAME=IP` pairs.
    pub aux_addresses: Vec<String>,
    pub ipv6: bool,
    /// `-o KEY=VALUE` pairs.
    pub options: Vec<String>,
    pub internal: bool,
    /// `KEY=VALUE` pairs.
    pub labels: Vec<String>,
}

/// `connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connect {
    pub network: String,
    pub target: String,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac: Option<String>,
    pub ifname: Option<String>,
    pub name: Option<String>,
}

/// `disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    pub network: String,
    /// A netns (name, path, PID) or an endpoint name.
    pub target: String,
}

const MACVLAN_OPTIONS: &[&str] = &["parent", "vlan", "macvlan_mode", "mtu", "metric"];
const IPVLAN_OPTIONS: &[&str] = &[
    "parent",
    "vlan",
    "ipvlan_mode",
    "ipvlan_flag",
    "mtu",
    "metric",
];

impl CreateNetwork {
    /// Checks every value and builds the network definition.
    pub fn validate(&self) -> Result<NetworkSpec, Error> {
        check_network_name(&self.name)?;
        let options = parse_pairs("-o", &self.options)?;
        let driver = self.driver(&options)?;
        let (ipv4, ipv6) = self.ip_configs(&driver)?;
        Ok(NetworkSpec {
            name: self.name.clone(),
            parent: self.parent(&driver, &options)?,
            driver,
            ipv4,
            ipv6,
            mtu: options.get("mtu").map(|v| parse_mtu(v)).transpose()?,
            metric: options
                .get("metric")
                .map(|v| parse_metric(v))
                .transpose()?
                .unwrap_or(0),
            internal: self.internal,
            labels: parse_pairs("--label", &self.labels)?,
            options,
        })
    }

    fn driver(&self, options: &BTreeMap<String, String>) -> Result<Driver, Error> {
        let known = match self.driver.as_str() {
            "macvlan" => MACVLAN_OPTIONS,
            "ipvlan" => IPVLAN_OPTIONS,
            other => {
                return Err(Error::invalid(format!(
                    "unknown driver {other:?} (supported: macvlan, ipvlan)"
                )))
            }
        };
        if let Some(key) = options.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "unknown option {key:?} for the {} driver (known: {})",
                self.driver,
                known.join(", ")
            )));
        }
        let option = |key: &str| options.get(key).map(String::as_str);
        Ok(match self.driver.as_str() {
            "macvlan" => Driver::Macvlan {
                mode: parse_option(
                    option("macvlan_mode"),
                    MacvlanMode::Bridge,
                    parse_macvlan_mode,
                    "macvlan_mode",
                    "bridge, private, vepa or passthru",
                )?,
            },
            _ => Driver::Ipvlan {
                mode: parse_option(
                    option("ipvlan_mode"),
                    IpvlanMode::L2,
                    parse_ipvlan_mode,
                    "ipvlan_mode",
                    "l2, l3 or l3s",
                )?,
                flag: parse_option(
                    option("ipvlan_flag"),
                    IpvlanFlag::Bridge,
                    parse_ipvlan_flag,
                    "ipvlan_flag",
                    "bridge, private or vepa",
                )?,
            },
        })
    }

    /// `-o parent=eth0`, `-o parent=eth0.100`, `-o parent=eth0 -o vlan=100`, or nothing for an
    /// `--internal` network (which then gets a dummy parent of its own).
    fn parent(&self, driver: &Driver, options: &BTreeMap<String, String>) -> Result<Parent, Error> {
        let vlan = options
            .get("vlan")
            .map(|v| parse_vlan_id(v, "-o vlan"))
            .transpose()?;
        let Some(given) = options.get("parent") else {
            return match (vlan, self.internal) {
                (Some(_), _) => Err(Error::invalid("-o vlan needs the trunk interface: -o parent=IFNAME")),
                (None, true) => Ok(Parent::Dummy),
                (None, false) => Err(Error::invalid(format!(
                    "{} networks need a parent interface: -o parent=IFNAME (or --internal for a network without one)",
                    driver.name()
                ))),
            };
        };
        let name: IfName = given
            .parse()
            .map_err(|e| Error::invalid(format!("invalid parent: {e}")))?;
        if let Some(id) = vlan {
            return Ok(Parent::Vlan {
                name: vlan_link_name(&name, id),
                trunk: name,
                id,
            });
        }
        match split_vlan_name(given) {
            Some((trunk, id)) => Ok(Parent::Vlan {
                trunk: trunk
                    .parse()
                    .map_err(|e| Error::invalid(format!("invalid parent: {e}")))?,
                id: parse_vlan_id(id, &format!("parent {given}"))?,
                name,
            }),
            None => Ok(Parent::Link { name }),
        }
    }

    fn ip_configs(&self, driver: &Driver) -> Result<(Option<IpConfig>, Option<IpConfig>), Error> {
        let subnets = self.subnets_by_family()?;
        if subnets.is_empty() {
            return Err(Error::invalid("a network needs at least one --subnet"));
        }
        let v6 = subnets.iter().find(|s| !s.is_ipv4());
        match (v6, self.ipv6) {
            (Some(s), false) => {
                return Err(Error::invalid(format!("IPv6 subnet {s} needs --ipv6")))
            }
            (None, true) => return Err(Error::invalid("--ipv6 needs an IPv6 --subnet")),
            _ => {}
        }
        let gateways =
            assign_to_subnets("gateway", &self.gateways, &subnets, parse_ip, |ip, s| {
                s.contains(*ip)
            })?;
        let ranges = assign_to_subnets(
            "ip range",
            &self.ip_ranges,
            &subnets,
            parse_subnet,
            |r, s| s.contains(r.addr()) && r.prefix() >= s.prefix(),
        )?;
        let aux = self.aux_by_subnet(&subnets)?;
        let mut configs = subnets.iter().map(|subnet| {
            let key = subnet.to_string();
            ip_config(
                *subnet,
                gateways.get(&key).copied(),
                ranges.get(&key).copied(),
                aux.get(&key).cloned().unwrap_or_default(),
                driver,
            )
        });
        let first = configs.next().transpose()?;
        let second = configs.next().transpose()?;
        Ok(match first {
            Some(c) if c.subnet.is_ipv4() => (Some(c), second),
            other => (None, other),
        })
    }

    /// The subnets, at most one per family, IPv4 first.
    fn subnets_by_family(&self) -> Result<Vec<Subnet>, Error> {
        let mut subnets: Vec<Subnet> = self
            .subnets
            .iter()
            .map(|s| parse_subnet(s))
            .collect::<Result<_, _>>()?;
        subnets.sort_by_key(|s| !s.is_ipv4());
        if let [a, b, ..] = subnets.as_slice() {
            if a.is_ipv4() == b.is_ipv4() || subnets.len() > 2 {
                let family = if a.is_ipv4() == b.is_ipv4() {
                    Family::of(a.addr())
                } else {
                    Family::of(subnets[2].addr())
                };
                return Err(Error::invalid(format!(
                    "only one {} subnet per network is supported (got {})",
                    family.name(),
                    self.subnets.join(", ")
                )));
            }
        }
        Ok(subnets)
    }

    fn aux_by_subnet(
        &self,
        subnets: &[Subnet],
    ) -> Result<BTreeMap<String, BTreeMap<String, IpAddr>>, Error> {
        let mut out: BTreeMap<String, BTreeMap<String, IpAddr>> = BTreeMap::new();
        for (name, ip) in parse_pairs("--aux-address", &self.aux_addresses)? {
            let ip = parse_ip(&ip)?;
            let subnet = subnets.iter().find(|s| s.contains(ip)).ok_or_else(|| {
                Error::invalid(format!(
                    "aux address {name}={ip} is not in any subnet ({})",
                    list(subnets)
                ))
            })?;
            out.entry(subnet.to_string()).or_default().insert(name, ip);
        }
        Ok(out)
    }
}

impl Connect {
    /// The requested static address of `family`, checked for its family.
    pub fn requested_ip(&self, family: Family) -> Result<Option<IpAddr>, Error> {
        let (flag, text) = match family {
            Family::V4 => ("--ip", &self.ip),
            Family::V6 => ("--ip6", &self.ip6),
        };
        let Some(text) = text else { return Ok(None) };
        let ip = parse_ip(text)?;
        if Family::of(ip) != family {
            return Err(Error::invalid(format!(
                "{flag} {ip} is not an {} address",
                family.name()
            )));
        }
        Ok(Some(ip))
    }

    pub fn mac(&self) -> Result<Option<MacAddr>, Error> {
        self.mac.as_deref().map(str::parse).transpose()
    }

    pub fn ifname(&self) -> Result<IfName, Error> {
        self.ifname.as_deref().unwrap_or("eth0").parse()
    }

    /// Checks every flag of the request on its own.
    pub fn validate(&self) -> Result<(), Error> {
        self.requested_ip(Family::V4)?;
        self.requested_ip(Family::V6)?;
        self.mac()?;
        self.ifname()?;
        if let Some(name) = &self.name {
            check_endpoint_name(name)?;
        }
        Ok(())
    }
}

fn ip_config(
    subnet: Subnet,
    gateway: Option<IpAddr>,
    ip_range: Option<Subnet>,
    aux_addresses: BTreeMap<String, IpAddr>,
    driver: &Driver,
) -> Result<IpConfig, Error> {
    let whole = Pool::new("check", subnet, None)?;
    Pool::new("check", subnet, ip_range)?;
    let gateway = match gateway {
        Some(gw) => {
            whole
                .check_static(gw)
                .map_err(|e| Error::invalid(format!("invalid gateway: {e}")))?;
            Some(gw)
        }
        // Routed through the device: no gateway unless the user names one.
        None if driver.routes_via_device() => None,
        // Docker's default gateway: the first usable address of the subnet.
        None => Some(subnet.nth(whole.window().map_or(0, |(lo, _)| lo))),
    };
    if let Some((name, ip)) = aux_addresses.iter().find(|(_, ip)| Some(**ip) == gateway) {
        return Err(Error::invalid(format!(
            "aux address {name}={ip} is the gateway"
        )));
    }
    Ok(IpConfig {
        subnet,
        gateway,
        ip_range,
        aux_addresses,
    })
}

/// Matches each value (a gateway, a range) to the one subnet that contains it.
fn assign_to_subnets<T: Copy + std::fmt::Display>(
    what: &str,
    values: &[String],
    subnets: &[Subnet],
    parse: impl Fn(&str) -> Result<T, Error>,
    inside: impl Fn(&T, &Subnet) -> bool,
) -> Result<BTreeMap<String, T>, Error> {
    let mut out = BTreeMap::new();
    for text in values {
        let value = parse(text)?;
        let subnet = subnets.iter().find(|s| inside(&value, s)).ok_or_else(|| {
            Error::invalid(format!(
                "{what} {value} is not in any subnet ({})",
                list(subnets)
            ))
        })?;
        if out.insert(subnet.to_string(), value).is_some() {
            return Err(Error::invalid(format!(
                "more than one {what} given for subnet {subnet}"
            )));
        }
    }
    Ok(out)
}

fn list(subnets: &[Subnet]) -> String {
    subnets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_subnet(text: &str) -> Result<Subnet, Error> {
    text.parse()
        .map_err(|e: underlay_ipam::IpamError| Error::invalid(e.to_string()))
}

fn parse_ip(text: &str) -> Result<IpAddr, Error> {
    text.parse()
        .map_err(|_| Error::invalid(format!("invalid IP address {text:?}")))
}

/// `KEY=VALUE` pairs; a repeated key is an error.
fn parse_pairs(flag: &str, pairs: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| {
                Error::invalid(format!("invalid {flag} {pair:?}: expected KEY=VALUE"))
            })?;
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(Error::invalid(format!("{flag} {key} is given twice")));
        }
    }
    Ok(out)
}

/// An option value that must be one of a few names; `default` when absent.
fn parse_option<T>(
    given: Option<&str>,
    default: T,
    parse: fn(&str) -> Option<T>,
    key: &str,
    choices: &str,
) -> Result<T, Error> {
    match given {
        None => Ok(default),
        Some(value) => parse(value)
            .ok_or_else(|| Error::invalid(format!("invalid {key} {value:?} (use {choices})"))),
    }
}

/// 802.1Q IDs 0 and 4095 are reserved.
fn parse_vlan_id(text: &str, what: &str) -> Result<u16, Error> {
    match text.parse::<u16>() {
        Ok(id) if (1..=4094).contains(&id) => Ok(id),
        _ => Err(Error::invalid(format!(
            "invalid VLAN ID {text:?} in {what}: expected 1 to 4094"
        ))),
    }
}

/// `eth0.100` → (`eth0`, `100`): a parent name whose last dot is followed by digits only.
fn split_vlan_name(name: &str) -> Option<(&str, &str)> {
    let (trunk, id) = name.rsplit_once('.')?;
    (!trunk.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .then_some((trunk, id))
}

/// `<trunk>.<id>`, as `ip link` and Docker name VLAN sub-interfaces. When that exceeds the
/// kernel's 15 bytes, the trunk name is cut so that `.<id>` still fits:
/// `enp0s31f6long` + VLAN 4094 → `enp0s31f6l.4094`.
pub fn vlan_link_name(trunk: &IfName, id: u16) -> IfName {
    let suffix = format!(".{id}");
    let room = 15 - suffix.len();
    let mut cut = trunk.as_str().len().min(room);
    while !trunk.as_str().is_char_boundary(cut) {
        cut -= 1;
    }
    IfName::new_unchecked(format!("{}{suffix}", &trunk.as_str()[..cut]))
}

fn parse_mtu(text: &str) -> Result<u32, Error> {
    match text.parse::<u32>() {
        Ok(mtu) if (68..=65535).contains(&mtu) => Ok(mtu),
        _ => Err(Error::invalid(format!(
            "invalid mtu {text:?}: expected a number from 68 to 65535"
        ))),
    }
}

/// Route metrics are u32 in the kernel; accept the whole range, nothing outside it.
fn parse_metric(text: &str) -> Result<u32, Error> {
    text.parse::<u32>().map_err(|_| {
        Error::invalid(format!(
            "invalid metric {text:?}: expected a number from 0 to 4294967295"
        ))
    })
}

/// Docker's rule for network names: an alphanumeric, then alphanumerics, `_`, `.` or `-`.
fn check_network_name(name: &str) -> Result<(), Error> {
    check_name("network", name)
}

pub(crate) fn check_endpoint_name(name: &str) -> Result<(), Error> {
    check_name("endpoint", name)
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !first_ok || !rest_ok || name.len() > 128 {
        return Err(Error::invalid(format!(
            "invalid {what} name {name:?}: use a letter or digit, then letters, digits, '_', '.' or '-' (at most 128)"
        )));
    }
    Ok(())
}
