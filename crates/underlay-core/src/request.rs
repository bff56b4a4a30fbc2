//! Requests from front-ends, as they typed them, and their validation into the model.
//!
//! Validation is pure: it looks at nothing but the request, so a rejected request has touched
//! neither the kernel nor the state.

use std::collections::BTreeMap;
use std::net::IpAddr;

use underlay_ipam::{Pool, Subnet};
use underlay_linux::{IpvlanFlag, IpvlanMode, MacvlanMode};

use crate::addressing::{Addressing, IpamDriver, Ipv6Mode};
use crate::model::{parse_ipvlan_flag, parse_ipvlan_mode, parse_macvlan_mode};
use crate::{Driver, Error, Family, HostAccess, IfName, IpConfig, MacAddr, NetworkSpec, Parent};

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
    /// `--ipam-driver`: `default` (the local pools) or `dhcp`.
    pub ipam_driver: Option<String>,
    /// `--ipam-opt KEY=VALUE` pairs.
    pub ipam_options: Vec<String>,
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
    /// DHCP: the client identifier to present (hex), instead of the derived one.
    pub dhcp_client_id: Option<String>,
    /// DHCPv6: the DUID to present (hex), instead of the derived one.
    pub dhcp_duid: Option<String>,
    /// DHCP: the host name to send (default: the endpoint name).
    pub hostname: Option<String>,
}

/// The DHCP identity parts a `connect` gives explicitly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DhcpOverrides {
    pub client_id: Option<Vec<u8>>,
    pub duid: Option<Vec<u8>>,
}

/// `disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    pub network: String,
    /// A netns (name, path, PID) or an endpoint name.
    pub target: String,
}

const MACVLAN_OPTIONS: &[&str] = &[
    "parent",
    "vlan",
    "macvlan_mode",
    "mtu",
    "metric",
    "host_access",
    "host_access_ip",
    "host_access_ip6",
];
const IPVLAN_OPTIONS: &[&str] = &[
    "parent",
    "vlan",
    "ipvlan_mode",
    "ipvlan_flag",
    "mtu",
    "metric",
    "host_access",
    "host_access_ip",
    "host_access_ip6",
];

impl CreateNetwork {
    /// Checks every value and builds the network definition.
    pub fn validate(&self) -> Result<NetworkSpec, Error> {
        check_network_name(&self.name)?;
        let options = parse_pairs("-o", &self.options)?;
        let driver = self.driver(&options)?;
        let ipam = self.addressing()?;
        check_layer2_needs(&driver, &ipam)?;
        let (ipv4, ipv6) = self.ip_configs(&driver, &ipam)?;
        let host_access = host_access(&options, ipv4.as_ref(), ipv6.as_ref(), &ipam)?;
        Ok(NetworkSpec {
            ipam,
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
            host_access,
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

    fn addressing(&self) -> Result<Addressing, Error> {
        let has_v6_subnet = self.subnets.iter().any(|s| s.contains(':'));
        let options = parse_pairs("--ipam-opt", &self.ipam_options)?;
        Addressing::parse(self.ipam_driver.as_deref(), options, has_v6_subnet)
    }

    fn ip_configs(
        &self,
        driver: &Driver,
        ipam: &Addressing,
    ) -> Result<(Option<IpConfig>, Option<IpConfig>), Error> {
        let subnets = self.subnets_by_family()?;
        let v4 = subnets.iter().find(|s| s.is_ipv4());
        let v6 = subnets.iter().find(|s| !s.is_ipv4());
        let v6_mode = ipam.ipv6_mode(v6.is_some());
        check_address_sources(ipam.driver, v4, v6_mode)?;
        match (v6, self.ipv6) {
            (Some(s), false) => {
                return Err(Error::invalid(format!("IPv6 subnet {s} needs --ipv6")))
            }
            (None, true) if v6_mode == Ipv6Mode::Off => {
                return Err(Error::invalid(
                    "--ipv6 needs an IPv6 --subnet (or --ipam-opt ipv6_mode=dhcpv6 or slaac)",
                ))
            }
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
        self.dhcp_overrides()?;
        if let Some(host) = &self.hostname {
            check_hostname(host)?;
        }
        Ok(())
    }

    /// `--dhcp-client-id` and `--dhcp-duid` as bytes.
    pub(crate) fn dhcp_overrides(&self) -> Result<DhcpOverrides, Error> {
        let parse = |flag: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| {
                    underlay_dhcp::identity::parse_hex(t)
                        .map_err(|e| Error::invalid(format!("invalid {flag} {t:?}: {e}")))
                })
                .transpose()
        };
        Ok(DhcpOverrides {
            client_id: parse("--dhcp-client-id", &self.dhcp_client_id)?,
            duid: parse("--dhcp-duid", &self.dhcp_duid)?,
        })
    }
}

/// `-o host_access=true [-o host_access_ip=IP] [-o host_access_ip6=IP6]`. An explicit address
/// must be in its family's subnet; a family whose addresses come from DHCP has no pool to take
/// one from, so it needs one given.
pub(crate) fn host_access(
    options: &BTreeMap<String, String>,
    ipv4: Option<&IpConfig>,
    ipv6: Option<&IpConfig>,
    ipam: &Addressing,
) -> Result<Option<HostAccess>, Error> {
    let on = match options.get("host_access").map(String::as_str) {
        None | Some("false" | "off" | "0") => false,
        Some("true" | "on" | "1") => true,
        Some(other) => {
            return Err(Error::invalid(format!(
                "invalid host_access {other:?}: expected true or false"
            )))
        }
    };
    let given =
        |key: &str, family: Family, config: Option<&IpConfig>| -> Result<Option<IpAddr>, Error> {
            let Some(text) = options.get(key) else {
                return Ok(None);
            };
            let ip = parse_ip(text)?;
            if Family::of(ip) != family {
                return Err(Error::invalid(format!(
                    "{key} {ip} is not an {} address",
                    family.name()
                )));
            }
            if let Some(c) = config.filter(|c| !c.subnet.contains(ip)) {
                return Err(Error::invalid(format!(
                    "{key} {ip} is not in subnet {}",
                    c.subnet
                )));
            }
            Ok(Some(ip))
        };
    let access = HostAccess {
        ipv4: given("host_access_ip", Family::V4, ipv4)?,
        ipv6: given("host_access_ip6", Family::V6, ipv6)?,
    };
    if !on {
        return match (access.ipv4, access.ipv6) {
            (None, None) => Ok(None),
            _ => Err(Error::invalid("host_access_ip needs -o host_access=true")),
        };
    }
    if ipam.driver == IpamDriver::Dhcp && access.ipv4.is_none() {
        return Err(Error::invalid(
            "host_access on a DHCP network needs -o host_access_ip=IP: an address of the LAN the DHCP server does not hand out",
        ));
    }
    Ok(Some(access))
}

/// DHCP and conflict detection speak broadcast and ARP: ipvlan L3/L3S passes neither.
fn check_layer2_needs(driver: &Driver, ipam: &Addressing) -> Result<(), Error> {
    if !driver.routes_via_device() {
        return Ok(());
    }
    let dhcp = ipam.driver == IpamDriver::Dhcp || ipam.ipv6_mode == Some(Ipv6Mode::Dhcpv6);
    if dhcp || ipam.conflict_detection == Some(true) {
        let what = if dhcp { "DHCP" } else { "conflict_detection" };
        return Err(Error::invalid(format!(
            "{what} needs layer 2, which ipvlan l3 and l3s do not carry: use ipvlan_mode=l2 or macvlan"
        )));
    }
    Ok(())
}

/// Every network needs somewhere to take addresses from, and IPv4 has one source only.
fn check_address_sources(
    driver: IpamDriver,
    v4: Option<&Subnet>,
    v6_mode: Ipv6Mode,
) -> Result<(), Error> {
    match (driver, v4) {
        (IpamDriver::Dhcp, Some(s)) => Err(Error::invalid(format!(
            "--ipam-driver dhcp takes IPv4 addresses from the LAN's DHCP server: drop --subnet {s}"
        ))),
        (IpamDriver::Local, None) if matches!(v6_mode, Ipv6Mode::Off) => Err(Error::invalid(
            "a network needs at least one --subnet (or --ipam-driver dhcp, or --ipam-opt ipv6_mode=dhcpv6 or slaac)",
        )),
        _ => Ok(()),
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

/// A DHCP host name (option 12): letters, digits and hyphens in dot-separated labels of at most
/// 63 bytes (RFC 1123), 253 in all.
fn check_hostname(name: &str) -> Result<(), Error> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(Error::invalid(format!(
            "invalid --hostname {name:?}: use letters, digits and '-' in dot-separated labels of at most 63"
        )));
    }
    Ok(())
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
