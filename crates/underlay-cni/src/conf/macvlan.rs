//! macvlan plugin configuration (reference keys plus our `vlan`).

use super::{check_range, to_object, typed, validate_link_name, ConfigError, NetConf};
use crate::addr::MacAddr;
use crate::args::CniArgs;
use serde::Deserialize;

/// macvlan mode (`""` is accepted as the default, bridge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Bridge (default).
    #[default]
    #[serde(alias = "")]
    Bridge,
    /// Private.
    Private,
    /// VEPA.
    Vepa,
    /// Passthru.
    Passthru,
}

/// A validated macvlan configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanConf {
    /// The common keys.
    pub net: NetConf,
    /// `master`; `None` means the default-route interface (resolved by the caller).
    pub master: Option<String>,
    /// `mode`.
    pub mode: MacvlanMode,
    /// `mtu`; `None` (or 0 in the JSON) inherits the master's. The upper
    /// bound (the master's MTU) is checked by the caller.
    pub mtu: Option<u32>,
    /// The MAC to use: `runtimeConfig.mac`, else `CNI_ARGS MAC=`, else `mac`.
    pub mac: Option<MacAddr>,
    /// `linkInContainer`: the master lives in the container netns.
    pub link_in_container: bool,
    /// `bcqueuelen`: broadcast queue length.
    pub bcqueuelen: Option<u32>,
    /// Ours: put the macvlan on 802.1Q sub-interface `vlan` (1..4094) of the master.
    pub vlan: Option<u16>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    mode: MacvlanMode,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default, rename = "linkInContainer")]
    link_in_container: bool,
    #[serde(default)]
    bcqueuelen: Option<u32>,
    #[serde(default)]
    vlan: Option<u16>,
}

impl MacvlanConf {
    /// Parses and validates; `env_args` supplies `MAC=` (keys other than MAC need `IgnoreUnknown`).
    pub fn parse(json: &[u8], env_args: &CniArgs) -> Result<MacvlanConf, ConfigError> {
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
        env_args.check_known(&["MAC"])?;
        let mac = pick_mac(&net, raw.mac.as_deref(), env_args)?;
        Ok(MacvlanConf {
            master,
            mode: raw.mode,
            mtu: raw.mtu.filter(|m| *m != 0),
            mac,
            link_in_container: raw.link_in_container,
            bcqueuelen: raw.bcqueuelen,
            vlan: raw.vlan,
            net,
        })
    }
}

fn pick_mac(
    net: &NetConf,
    conf: Option<&str>,
    args: &CniArgs,
) -> Result<Option<MacAddr>, ConfigError> {
    if let Some(m) = net.runtime_config.mac {
        return Ok(Some(m));
    }
    let parse = |key: &str, s: &str| {
        s.parse::<MacAddr>()
            .map_err(|e| ConfigError::invalid(key, e.to_string()))
    };
    match (
        args.get("MAC").filter(|s| !s.is_empty()),
        conf.filter(|s| !s.is_empty()),
    ) {
        (Some(m), _) => parse("CNI_ARGS MAC", m).map(Some),
        (None, Some(m)) => parse("mac", m).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CniError;

    fn parse(json: &str) -> Result<MacvlanConf, ConfigError> {
        MacvlanConf::parse(json.as_bytes(), &CniArgs::default())
    }

    #[test]
    fn all_keys() {
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","master":"eth0","mode":"vepa",
                "mtu":1400,"mac":"0a:00:00:00:00:01","linkInContainer":true,"bcqueuelen":100,"vlan":20}"#,
        )
        .unwrap();
        assert_eq!(c.master.as_deref(), Some("eth0"));
        assert_eq!(c.mode, MacvlanMode::Vepa);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.mac.unwrap().to_string(), "0a:00:00:00:00:01");
        assert!(c.link_in_container);
        assert_eq!(c.bcqueuelen, Some(100));
        assert_eq!(c.vlan, Some(20));
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"name":"n","type":"macvlan","mode":"","mtu":0}"#).unwrap();
        assert_eq!(c.master, None);
        assert_eq!(c.mode, MacvlanMode::Bridge);
        assert_eq!(c.mtu, None);
        assert_eq!(c.mac, None);
    }

    #[test]
    fn mac_precedence() {
        let json = br#"{"name":"n","type":"macvlan","mac":"0a:00:00:00:00:01"}"#;
        let args = CniArgs::parse("MAC=0a:00:00:00:00:02").unwrap();
        let c = MacvlanConf::parse(json, &args).unwrap();
        assert_eq!(c.mac.unwrap().to_string(), "0a:00:00:00:00:02");
        let json = br#"{"name":"n","type":"macvlan","mac":"0a:00:00:00:00:01",
                        "runtimeConfig":{"mac":"0a:00:00:00:00:03"}}"#;
        let c = MacvlanConf::parse(json, &args).unwrap();
        assert_eq!(c.mac.unwrap().to_string(), "0a:00:00:00:00:03");
    }

    #[test]
    fn errors_name_key_and_value() {
        let e: CniError = parse(r#"{"name":"n","mode":"foo"}"#).unwrap_err().into();
        assert_eq!(e.code, 2);
        assert!(e.msg.contains("mode") && e.msg.contains("foo"), "{}", e.msg);
        let e: CniError = parse(r#"{"name":"n","mtu":-1}"#).unwrap_err().into();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("mtu") && e.msg.contains("-1"), "{}", e.msg);
        let e: CniError = parse(r#"{"name":"n","vlan":4095}"#).unwrap_err().into();
        assert!(
            e.code == 7 && e.msg.contains("vlan") && e.msg.contains("4095"),
            "{}",
            e.msg
        );
        let e: CniError = parse(r#"{"name":"n","vlan":0}"#).unwrap_err().into();
        assert_eq!(e.code, 7);
        let e: CniError = parse(r#"{"name":"n","mac":"nope"}"#).unwrap_err().into();
        assert!(
            e.code == 7 && e.msg.contains("mac") && e.msg.contains("nope"),
            "{}",
            e.msg
        );
        let e: CniError = parse(r#"{"name":"n","master":"a/b"}"#).unwrap_err().into();
        assert!(e.code == 7 && e.msg.contains("master"), "{}", e.msg);
        let e: CniError = parse(r#"{"name":"n","linkInContainer":"yes"}"#)
            .unwrap_err()
            .into();
        assert!(
            e.code == 7 && e.msg.contains("linkInContainer"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn unknown_keys_ignored() {
        assert!(parse(r#"{"name":"n","type":"macvlan","futureKey":{"a":1}}"#).is_ok());
    }
}
