//! vlan plugin configuration.

use super::{check_range, to_object, typed, validate_link_name, ConfigError, NetConf};
use serde::Deserialize;

/// A validated vlan configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanConf {
    /// The common keys.
    pub net: NetConf,
    /// `master` (required).
    pub master: String,
    /// `vlanId`: 0..4094 like the reference (absent = 0, priority-tagged).
    pub vlan_id: u16,
    /// `mtu`; `None` (or 0) inherits the master's.
    pub mtu: Option<u32>,
    /// `linkInContainer`.
    pub link_in_container: bool,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    master: Option<String>,
    #[serde(default, rename = "vlanId")]
    vlan_id: i64,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default, rename = "linkInContainer")]
    link_in_container: bool,
}

impl VlanConf {
    /// Parses and validates.
    pub fn parse(json: &[u8]) -> Result<VlanConf, ConfigError> {
        let v = to_object(json)?;
        let net = NetConf::from_value(&v)?;
        let raw: Raw = typed(&v)?;
        let master = raw.master.filter(|m| !m.is_empty()).ok_or_else(|| {
            ConfigError::invalid(
                "master",
                "\"master\" is required: the host interface to create the VLAN on",
            )
        })?;
        validate_link_name("master", &master)?;
        let id = u64::try_from(raw.vlan_id).map_err(|_| {
            ConfigError::invalid(
                "vlanId",
                format!("{} is out of range (must be 0..4094)", raw.vlan_id),
            )
        })?;
        check_range("vlanId", id, 0, 4094)?;
        Ok(VlanConf {
            master,
            vlan_id: id as u16,
            mtu: raw.mtu.filter(|m| *m != 0),
            link_in_container: raw.link_in_container,
            net,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_range() {
        let c = VlanConf::parse(
            br#"{"name":"n","type":"vlan","master":"eth0","vlanId":4094,"mtu":1500,"linkInContainer":true}"#,
        )
        .unwrap();
        assert_eq!(
            (c.master.as_str(), c.vlan_id, c.mtu, c.link_in_container),
            ("eth0", 4094, Some(1500), true)
        );
        assert_eq!(
            VlanConf::parse(br#"{"name":"n","master":"eth0"}"#)
                .unwrap()
                .vlan_id,
            0
        );
        for (json, key) in [
            (r#"{"name":"n","master":"eth0","vlanId":4095}"#, "4095"),
            (r#"{"name":"n","master":"eth0","vlanId":-1}"#, "-1"),
            (r#"{"name":"n","vlanId":5}"#, "master"),
        ] {
            let e = crate::CniError::from(VlanConf::parse(json.as_bytes()).unwrap_err());
            assert!(e.code == 7 && e.msg.contains(key), "{}", e.msg);
        }
    }
}
