//! ipvlan plugin configuration (reference keys plus our `flag` and `vlan`).

use super::{check_range, to_object, typed, validate_link_name, ConfigError, NetConf};
use serde::Deserialize;

/// ipvlan mode (`""` is accepted as the default, l2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanMode {
    /// L2 (default).
    #[default]
    #[serde(alias = "")]
    L2,
    /// L3.
    L3,
    /// L3S (L3 with netfilter).
    L3s,
}

/// ipvlan flag (ours; the reference plugin always uses bridge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanFlag {
    /// Bridge (default).
    #[default]
    #[serde(alias = "")]
    Bridge,
    /// Private.
    Private,
    /// VEPA.
    Vepa,
}

/// A validated ipvlan configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvlanConf {
    /// The common keys.
    pub net: NetConf,
    /// `master`; `None` means: the single interface of `prevResult` when
    /// chained (see [`IpvlanConf::chained_master`]), else the default-route interface.
    pub master: Option<String>,
    /// `mode`.
    pub mode: IpvlanMode,
    /// Ours: `flag`.
    pub flag: IpvlanFlag,
    /// `mtu`; `None` (or 0) inherits the master's.
    pub mtu: Option<u32>,
    /// `linkInContainer`.
    pub link_in_container: bool,
    /// Ours: 802.1Q sub-interface of the master (1..4094).
    pub vlan: Option<u16>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    mode: IpvlanMode,
    #[serde(default)]
    flag: IpvlanFlag,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default, rename = "linkInContainer")]
    link_in_container: bool,
    #[serde(default)]
    vlan: Option<u16>,
}

impl IpvlanConf {
    /// Parses and validates.
    pub fn parse(json: &[u8]) -> Result<IpvlanConf, ConfigError> {
        let v = to_object(json)?;
        let net = NetConf::from_value(&v)?;
        let raw: Raw = typed(&v)?;
        let master = raw.master.filter(|m| !m.is_empty());
        if let Some(m) = &master {
            validate_link_name("master", m)?;
        }
        if let Some(vlan) = raw.vlan {
            check_range("vlan", vlan.into(), 1, 4094)?;
        }
        Ok(IpvlanConf {
            master,
            mode: raw.mode,
            flag: raw.flag,
            mtu: raw.mtu.filter(|m| *m != 0),
            link_in_container: raw.link_in_container,
            vlan: raw.vlan,
            net,
        })
    }

    /// When chained without `master`: the single named interface of
    /// `prevResult` (reference behaviour). `Ok(None)` when not chained.
    pub fn chained_master(&self) -> Result<Option<&str>, ConfigError> {
        if self.master.is_some() {
            return Ok(self.master.as_deref());
        }
        let Some(prev) = &self.net.prev_result else {
            return Ok(None);
        };
        match prev.interfaces.as_slice() {
            [only] if !only.name.is_empty() => Ok(Some(&only.name)),
            _ => Err(ConfigError::invalid(
                "master",
                "chained master failure: prevResult lacks a single named interface",
            )),
        }
    }

    /// ADD needs an IPAM section unless chained (prevResult IPs are reused).
    pub fn check_ipam_for_add(&self) -> Result<(), ConfigError> {
        if self.net.ipam.is_none() && self.net.prev_result.is_none() {
            return Err(ConfigError::invalid(
                "ipam",
                "ipam must be specified when not chained",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CniError;

    #[test]
    fn all_keys_and_defaults() {
        let c = IpvlanConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"ipvlan","master":"eth1","mode":"l3s",
                 "flag":"private","mtu":9000,"linkInContainer":false,"vlan":7,
                 "ipam":{"type":"host-local","subnet":"10.0.0.0/24"}}"#,
        )
        .unwrap();
        assert_eq!(
            (c.mode, c.flag, c.mtu, c.vlan),
            (IpvlanMode::L3s, IpvlanFlag::Private, Some(9000), Some(7))
        );
        assert!(c.check_ipam_for_add().is_ok());
        let c = IpvlanConf::parse(br#"{"name":"n","type":"ipvlan"}"#).unwrap();
        assert_eq!((c.mode, c.flag), (IpvlanMode::L2, IpvlanFlag::Bridge));
        assert!(c.check_ipam_for_add().is_err());
        assert_eq!(c.chained_master().unwrap(), None);
    }

    #[test]
    fn chained_master_from_prev_result() {
        let c = IpvlanConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"ipvlan","prevResult":{"cniVersion":"1.0.0",
                 "interfaces":[{"name":"net1","sandbox":"/var/run/netns/x"}],
                 "ips":[{"address":"10.0.0.2/24","interface":0}]}}"#,
        )
        .unwrap();
        assert_eq!(c.chained_master().unwrap(), Some("net1"));
        assert!(c.check_ipam_for_add().is_ok());
        let c = IpvlanConf::parse(
            br#"{"name":"n","prevResult":{"interfaces":[{"name":"a"},{"name":"b"}]}}"#,
        )
        .unwrap();
        assert!(c.chained_master().is_err());
    }

    #[test]
    fn bad_mode_and_flag_are_code_2() {
        for json in [
            r#"{"name":"n","mode":"l4"}"#,
            r#"{"name":"n","flag":"passthru"}"#,
        ] {
            let e: CniError = IpvlanConf::parse(json.as_bytes()).unwrap_err().into();
            assert_eq!(e.code, 2, "{}", e.msg);
        }
    }
}
