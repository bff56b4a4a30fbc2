//! host-local IPAM configuration (`ipam.ranges`, legacy single range,
//! routes, dataDir, resolvConf) with the reference plugin's validation.

use super::{to_object, typed, ConfigError, NetConf};
use crate::addr::{ip_serde, next_ip, parse_ip, prev_ip, to_bits, IpNet};
use crate::args::CniArgs;
use crate::result::Route;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// The reference plugin's default `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A range as written in the configuration (also the `ipRanges` capability).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RangeConf {
    /// The subnet (must be a network address).
    pub subnet: IpNet,
    /// First allocatable address (default: subnet + 1).
    #[serde(default, rename = "rangeStart", deserialize_with = "ip_serde::opt")]
    pub range_start: Option<IpAddr>,
    /// Last allocatable address (default: last address, minus broadcast for IPv4).
    #[serde(default, rename = "rangeEnd", deserialize_with = "ip_serde::opt")]
    pub range_end: Option<IpAddr>,
    /// Gateway (default: subnet + 1; never allocated).
    #[serde(default, deserialize_with = "ip_serde::opt")]
    pub gateway: Option<IpAddr>,
}

/// A validated range with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet (network address, no host bits).
    pub subnet: IpNet,
    /// First allocatable address.
    pub range_start: IpAddr,
    /// Last allocatable address.
    pub range_end: IpAddr,
    /// Gateway (skipped by the allocator).
    pub gateway: IpAddr,
}

/// A range set: ranges of one family, allocated as one pool (one address per set).
pub type RangeSet = Vec<Range>;

impl Range {
    /// Whether `ip` is allocatable from this range (inside subnet and start..=end).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.subnet.contains(ip)
            && to_bits(ip) >= to_bits(self.range_start)
            && to_bits(ip) <= to_bits(self.range_end)
    }

    fn overlaps(&self, o: &Range) -> bool {
        self.subnet.is_ipv4() == o.subnet.is_ipv4()
            && (self.contains(o.range_start)
                || self.contains(o.range_end)
                || o.contains(self.range_start)
                || o.contains(self.range_end))
    }
}

/// A validated host-local configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLocalConf {
    /// The common keys.
    pub net: NetConf,
    /// Range sets, in the reference order: `runtimeConfig.ipRanges`, then the
    /// legacy single range, then `ipam.ranges`.
    pub ranges: Vec<RangeSet>,
    /// `ipam.routes`.
    pub routes: Vec<Route>,
    /// `ipam.dataDir`.
    pub data_dir: Option<PathBuf>,
    /// `ipam.resolvConf`.
    pub resolv_conf: Option<PathBuf>,
    /// Requested addresses: `CNI_ARGS IP=`, then `args.cni.ips`, then `runtimeConfig.ips`.
    pub requested_ips: Vec<IpAddr>,
}

#[derive(Deserialize)]
struct Raw {
    ipam: Option<RawIpam>,
}

#[derive(Deserialize)]
struct RawIpam {
    #[serde(default)]
    subnet: Option<IpNet>,
    #[serde(default, rename = "rangeStart", deserialize_with = "ip_serde::opt")]
    range_start: Option<IpAddr>,
    #[serde(default, rename = "rangeEnd", deserialize_with = "ip_serde::opt")]
    range_end: Option<IpAddr>,
    #[serde(default, deserialize_with = "ip_serde::opt")]
    gateway: Option<IpAddr>,
    #[serde(default)]
    ranges: Vec<Vec<RangeConf>>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default, rename = "dataDir")]
    data_dir: Option<String>,
    #[serde(default, rename = "resolvConf")]
    resolv_conf: Option<String>,
}

impl HostLocalConf {
    /// Parses and validates like the reference `LoadIPAMConfig`.
    pub fn parse(json: &[u8], env_args: &CniArgs) -> Result<HostLocalConf, ConfigError> {
        let v = to_object(json)?;
        let net = NetConf::from_value(&v)?;
        let raw: Raw = typed(&v)?;
        let ipam = raw
            .ipam
            .ok_or_else(|| ConfigError::invalid("ipam", "missing ipam section"))?;
        env_args.check_known(&["IP"])?;
        let mut requested_ips = Vec::new();
        for item in env_args.list("IP") {
            let ip = parse_ip(item)
                .map_err(|_| ConfigError::invalid("CNI_ARGS IP", format!("invalid IP {item:?}")))?;
            requested_ips.push(ip);
        }
        requested_ips.extend(net.args.ips.iter().map(|r| r.ip));
        requested_ips.extend(net.runtime_config.ips.iter().map(|r| r.ip));
        let ranges = collect_ranges(&net, &ipam)?;
        Ok(HostLocalConf {
            ranges,
            routes: ipam.routes,
            data_dir: ipam.data_dir.filter(|s| !s.is_empty()).map(PathBuf::from),
            resolv_conf: ipam
                .resolv_conf
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            requested_ips,
            net,
        })
    }

    /// The data directory (default [`DEFAULT_DATA_DIR`]).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }
}

fn collect_ranges(net: &NetConf, ipam: &RawIpam) -> Result<Vec<RangeSet>, ConfigError> {
    let mut sets: Vec<(String, &[RangeConf])> = Vec::new();
    for (i, s) in net.runtime_config.ip_ranges.iter().enumerate() {
        sets.push((format!("runtimeConfig.ipRanges[{i}]"), s));
    }
    let legacy = ipam.subnet.map(|subnet| {
        [RangeConf {
            subnet,
            range_start: ipam.range_start,
            range_end: ipam.range_end,
            gateway: ipam.gateway,
        }]
    });
    if let Some(l) = &legacy {
        sets.push(("ipam.subnet".to_string(), l));
    }
    for (i, s) in ipam.ranges.iter().enumerate() {
        sets.push((format!("ipam.ranges[{i}]"), s));
    }
    if sets.is_empty() {
        return Err(ConfigError::invalid(
            "ipam.ranges",
            "no IP ranges specified",
        ));
    }
    let mut out: Vec<RangeSet> = Vec::with_capacity(sets.len());
    for (key, set) in &sets {
        let set = canonical_set(set).map_err(|why| ConfigError::invalid(key, why))?;
        if let Some(j) = out.iter().position(|o| sets_overlap(o, &set)) {
            return Err(ConfigError::invalid(
                key,
                format!("range set overlaps with {}", sets[j].0),
            ));
        }
        out.push(set);
    }
    Ok(out)
}

fn sets_overlap(a: &RangeSet, b: &RangeSet) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

fn canonical_set(set: &[RangeConf]) -> Result<RangeSet, String> {
    if set.is_empty() {
        return Err("empty range set".into());
    }
    let mut out: RangeSet = Vec::with_capacity(set.len());
    for (j, r) in set.iter().enumerate() {
        let r = canonical_range(r).map_err(|why| format!("range {j}: {why}"))?;
        if out
            .first()
            .is_some_and(|f| f.subnet.is_ipv4() != r.subnet.is_ipv4())
        {
            return Err("mixed address families".into());
        }
        if let Some(o) = out.iter().find(|o| o.overlaps(&r)) {
            return Err(format!("subnets {} and {} overlap", o.subnet, r.subnet));
        }
        out.push(r);
    }
    Ok(out)
}

/// Validates one range and fills in the defaults (reference `Range.Canonicalize`).
pub fn canonical_range(r: &RangeConf) -> Result<Range, String> {
    let subnet = r.subnet;
    if subnet.prefix() + 2 > subnet.max_prefix() {
        return Err(format!("network {subnet} too small to allocate from"));
    }
    if subnet.has_host_bits() {
        return Err(format!(
            "network {subnet} has host bits set: for a prefix of length {} the network address is {}",
            subnet.prefix(),
            subnet.network()
        ));
    }
    let same_family = |ip: IpAddr| ip.is_ipv4() == subnet.is_ipv4();
    let gateway = r.gateway.unwrap_or_else(|| next_ip(subnet.addr()));
    if !same_family(gateway) {
        return Err(format!(
            "gateway {gateway} is not in the family of {subnet}"
        ));
    }
    let start = r.range_start.unwrap_or_else(|| next_ip(subnet.addr()));
    if !subnet.contains(start) {
        return Err(format!("rangeStart {start} not in network {subnet}"));
    }
    let end = r.range_end.unwrap_or_else(|| default_end(subnet));
    if !subnet.contains(end) {
        return Err(format!("rangeEnd {end} not in network {subnet}"));
    }
    if to_bits(start) > to_bits(end) {
        return Err(format!("rangeStart {start} is after rangeEnd {end}"));
    }
    Ok(Range {
        subnet,
        range_start: start,
        range_end: end,
        gateway,
    })
}

/// The last address of the subnet, minus the broadcast address for IPv4.
fn default_end(subnet: IpNet) -> IpAddr {
    if subnet.is_ipv4() {
        prev_ip(subnet.last())
    } else {
        subnet.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(ipam: &str) -> Result<HostLocalConf, ConfigError> {
        let json = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{ipam}}}"#);
        HostLocalConf::parse(json.as_bytes(), &CniArgs::default())
    }

    #[test]
    fn defaults_filled() {
        let c = conf(r#"{"type":"host-local","subnet":"10.1.0.0/24"}"#).unwrap();
        let r = &c.ranges[0][0];
        assert_eq!(r.gateway.to_string(), "10.1.0.1");
        assert_eq!(r.range_start.to_string(), "10.1.0.1");
        assert_eq!(r.range_end.to_string(), "10.1.0.254");
        assert_eq!(c.data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
        let c = conf(r#"{"type":"host-local","ranges":[[{"subnet":"fd00::/120"}]]}"#).unwrap();
        assert_eq!(c.ranges[0][0].range_end.to_string(), "fd00::ff");
    }

    #[test]
    fn too_small_and_host_bits() {
        for (ipam, want) in [
            (r#"{"subnet":"10.0.0.0/31"}"#, "too small"),
            (r#"{"subnet":"10.0.0.0/32"}"#, "too small"),
            (r#"{"ranges":[[{"subnet":"fd00::/127"}]]}"#, "too small"),
            (r#"{"ranges":[[{"subnet":"fd00::/128"}]]}"#, "too small"),
            (r#"{"subnet":"10.0.0.5/24"}"#, "host bits"),
            (
                r#"{"subnet":"10.0.0.0/24","rangeStart":"10.0.1.1"}"#,
                "rangeStart 10.0.1.1 not in",
            ),
            (
                r#"{"subnet":"10.0.0.0/24","rangeEnd":"10.0.1.1"}"#,
                "rangeEnd 10.0.1.1 not in",
            ),
            (
                r#"{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.9","rangeEnd":"10.0.0.8"}"#,
                "after",
            ),
            (r#"{"ranges":[]}"#, "no IP ranges"),
            (r#"{"ranges":[[]]}"#, "empty range set"),
        ] {
            let e = conf(ipam).unwrap_err();
            assert!(e.to_string().contains(want), "{ipam}: {e}");
            assert_eq!(crate::CniError::from(e).code, 7);
        }
        assert!(conf(r#"{"subnet":"10.0.0.0/30"}"#).is_ok());
    }

    #[test]
    fn families_and_overlaps() {
        let e =
            conf(r#"{"ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"fd00::/64"}]]}"#).unwrap_err();
        assert!(e.to_string().contains("mixed address families"), "{e}");
        let e = conf(r#"{"ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"10.0.0.0/25"}]]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let e =
            conf(r#"{"subnet":"10.0.0.0/24","ranges":[[{"subnet":"10.0.0.0/24"}]]}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("ipam.ranges[0]: range set overlaps with ipam.subnet"),
            "{e}"
        );
        let c = conf(
            r#"{"ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.20"},
            {"subnet":"10.0.1.0/24"}],[{"subnet":"fd00::/64","gateway":"fd00::fe"}]]}"#,
        )
        .unwrap();
        assert_eq!(c.ranges.len(), 2);
        assert_eq!(c.ranges[1][0].gateway.to_string(), "fd00::fe");
        assert!(c.ranges[0][0].contains("10.0.0.15".parse().unwrap()));
        assert!(!c.ranges[0][0].contains("10.0.0.21".parse().unwrap()));
    }

    #[test]
    fn runtime_ranges_first_and_requested_ips() {
        let json = br#"{"cniVersion":"1.1.0","name":"n","type":"ipvlan",
            "runtimeConfig":{"ipRanges":[[{"subnet":"192.168.9.0/24"}]],"ips":["10.0.0.7/24"]},
            "args":{"cni":{"ips":["10.0.0.6"]}},
            "ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]],
                    "dataDir":"/run/x","resolvConf":"/etc/resolv.conf"}}"#;
        let args = CniArgs::parse("IP=10.0.0.5").unwrap();
        let c = HostLocalConf::parse(json, &args).unwrap();
        assert_eq!(c.ranges[0][0].subnet.to_string(), "192.168.9.0/24");
        let ips: Vec<String> = c.requested_ips.iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
        assert_eq!(c.data_dir(), PathBuf::from("/run/x"));
        let bad = CniArgs::parse("IP=nope").unwrap();
        let e = HostLocalConf::parse(json, &bad).unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
        let unknown = CniArgs::parse("FOO=1").unwrap();
        let e = crate::CniError::from(HostLocalConf::parse(json, &unknown).unwrap_err());
        assert_eq!(e.code, 4);
    }

    #[test]
    fn missing_ipam_and_bad_subnet_named() {
        let e = HostLocalConf::parse(br#"{"name":"n"}"#, &CniArgs::default()).unwrap_err();
        assert!(e.to_string().contains("ipam"), "{e}");
        let e = conf(r#"{"ranges":[[{"subnet":"10.0.0.0/40"}]]}"#).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("ipam.ranges[0][0].subnet") && msg.contains("10.0.0.0/40"),
            "{msg}"
        );
    }
}
