//! static IPAM configuration (`ipam.addresses`, routes, dns) with the
//! reference plugin's `CNI_ARGS`/`args`/`runtimeConfig` merging.

use super::{to_object, typed, ConfigError, NetConf};
use crate::addr::{ip_serde, parse_ip, IpNet, IpRequest};
use crate::args::CniArgs;
use crate::result::{Dns, Route};
use serde::Deserialize;
use std::net::IpAddr;

/// One static address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StaticAddress {
    /// The address with prefix length.
    pub address: IpNet,
    /// Its gateway.
    #[serde(default, deserialize_with = "ip_serde::opt")]
    pub gateway: Option<IpAddr>,
}

/// A validated static IPAM configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConf {
    /// The common keys.
    pub net: NetConf,
    /// Addresses after merging (see [`StaticConf::parse`]).
    pub addresses: Vec<StaticAddress>,
    /// `ipam.routes`.
    pub routes: Vec<Route>,
    /// `ipam.dns`.
    pub dns: Dns,
}

#[derive(Deserialize)]
struct Raw {
    ipam: Option<RawIpam>,
}

#[derive(Deserialize)]
struct RawIpam {
    #[serde(default)]
    addresses: Vec<StaticAddress>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Option<Dns>,
}

impl StaticConf {
    /// Parses and merges like the reference: `CNI_ARGS IP=` (CIDRs,
    /// comma-separated) are appended and `GATEWAY=` sets the gateway of every
    /// address containing it; then `args.cni.ips`, then `runtimeConfig.ips`,
    /// each *replacing* all addresses (they must be CIDRs).
    pub fn parse(json: &[u8], env_args: &CniArgs) -> Result<StaticConf, ConfigError> {
        let v = to_object(json)?;
        let net = NetConf::from_value(&v)?;
        let raw: Raw = typed(&v)?;
        let ipam = raw
            .ipam
            .ok_or_else(|| ConfigError::invalid("ipam", "missing ipam section"))?;
        env_args.check_known(&["IP", "GATEWAY"])?;
        let mut addresses = ipam.addresses;
        apply_env_args(&mut addresses, env_args)?;
        if !net.args.ips.is_empty() {
            addresses = replace_with("args.cni.ips", &net.args.ips)?;
        }
        if !net.runtime_config.ips.is_empty() {
            addresses = replace_with("runtimeConfig.ips", &net.runtime_config.ips)?;
        }
        Ok(StaticConf {
            addresses,
            routes: ipam.routes,
            dns: ipam.dns.unwrap_or_default(),
            net,
        })
    }
}

fn apply_env_args(addrs: &mut Vec<StaticAddress>, args: &CniArgs) -> Result<(), ConfigError> {
    for item in args.list("IP") {
        let address: IpNet = item.parse().map_err(|e: crate::addr::AddrError| {
            ConfigError::invalid("CNI_ARGS IP", e.to_string())
        })?;
        addrs.push(StaticAddress {
            address,
            gateway: None,
        });
    }
    for item in args.list("GATEWAY") {
        let gw = parse_ip(item).map_err(|_| {
            ConfigError::invalid(
                "CNI_ARGS GATEWAY",
                format!("invalid gateway address {item:?}"),
            )
        })?;
        for a in addrs.iter_mut().filter(|a| a.address.contains(gw)) {
            a.gateway = Some(gw);
        }
    }
    Ok(())
}

fn replace_with(key: &str, ips: &[IpRequest]) -> Result<Vec<StaticAddress>, ConfigError> {
    ips.iter()
        .map(|r| {
            let address = r.cidr().ok_or_else(|| {
                ConfigError::invalid(
                    key,
                    format!("an entry is not in CIDR notation: {:?}", r.to_string()),
                )
            })?;
            Ok(StaticAddress {
                address,
                gateway: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"static",
        "addresses":[{"address":"10.10.0.1/24","gateway":"10.10.0.254"},{"address":"3ffe:ffff:0:01ff::1/64"}],
        "routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.10.5.1","priority":10}],
        "dns":{"nameservers":["8.8.8.8"],"domain":"example.com","search":["example.com"]}}}"#;

    #[test]
    fn config_addresses() {
        let c = StaticConf::parse(CONF.as_bytes(), &CniArgs::default()).unwrap();
        assert_eq!(c.addresses.len(), 2);
        assert_eq!(c.addresses[0].gateway.unwrap().to_string(), "10.10.0.254");
        assert_eq!(c.routes[1].priority, Some(10));
        assert_eq!(c.dns.domain.as_deref(), Some("example.com"));
    }

    #[test]
    fn env_args_append_and_set_gateway() {
        let args = CniArgs::parse("IP=10.20.0.5/24,fd00::5/64;GATEWAY=10.20.0.1").unwrap();
        let c = StaticConf::parse(CONF.as_bytes(), &args).unwrap();
        assert_eq!(c.addresses.len(), 4);
        assert_eq!(c.addresses[2].address.to_string(), "10.20.0.5/24");
        assert_eq!(c.addresses[2].gateway.unwrap().to_string(), "10.20.0.1");
        assert_eq!(c.addresses[3].gateway, None);
        let bad = CniArgs::parse("IP=10.20.0.5").unwrap();
        let e = StaticConf::parse(CONF.as_bytes(), &bad).unwrap_err();
        assert!(
            e.to_string().contains("CNI_ARGS IP") && e.to_string().contains("10.20.0.5"),
            "{e}"
        );
    }

    #[test]
    fn runtime_config_replaces() {
        let json = CONF.replacen(
            r#""type":"macvlan","#,
            r#""type":"macvlan","args":{"cni":{"ips":["10.30.0.5/24"]}},"runtimeConfig":{"ips":["10.40.0.5/24"]},"#,
            1,
        );
        let c = StaticConf::parse(json.as_bytes(), &CniArgs::default()).unwrap();
        assert_eq!(c.addresses.len(), 1);
        assert_eq!(c.addresses[0].address.to_string(), "10.40.0.5/24");
        let json = CONF.replacen(
            r#""type":"macvlan","#,
            r#""runtimeConfig":{"ips":["10.40.0.5"]},"#,
            1,
        );
        let e = StaticConf::parse(json.as_bytes(), &CniArgs::default()).unwrap_err();
        assert!(
            e.to_string().contains("runtimeConfig.ips") && e.to_string().contains("10.40.0.5"),
            "{e}"
        );
    }

    #[test]
    fn bad_address_named() {
        let json = CONF.replace("10.10.0.1/24", "10.10.0.1");
        let e = StaticConf::parse(json.as_bytes(), &CniArgs::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("ipam.addresses[0].address") && msg.contains("10.10.0.1"),
            "{msg}"
        );
    }
}
