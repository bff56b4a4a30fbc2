//! Network configurations: the common keys every plugin receives, the
//! conflist (runtime side), and one typed configuration per plugin.

mod decode;
pub mod dhcp;
pub mod host_local;
pub mod ipvlan;
pub mod list;
pub mod macvlan;
pub mod static_ipam;
pub mod vlan;

pub(crate) use decode::{to_object, typed};

use crate::addr::{IpRequest, MacAddr};
use crate::args::ArgsError;
use crate::env::is_safe_name;
use crate::error::CniError;
use crate::result::{CniResult, Dns};
use crate::version::CniVersion;
use host_local::RangeConf;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A rejected network configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or not a JSON object (code 6).
    #[error("failed to decode network configuration: {0}")]
    Decode(String),
    /// A key has a wrong type or value (code 7).
    #[error("invalid network configuration: {key}: {reason}")]
    Invalid {
        /// The key path (e.g. `ipam.ranges[0][0].subnet`).
        key: String,
        /// What is wrong, quoting the value.
        reason: String,
    },
    /// A key has a value this plugin does not support (code 2).
    #[error("unsupported field {key}: {reason}")]
    Unsupported {
        /// The key path.
        key: String,
        /// The value and what is supported.
        reason: String,
    },
    /// `cniVersion` is not a known version (code 1).
    #[error("incompatible CNI version {0:?}")]
    Version(String),
    /// `CNI_ARGS` does not fit the plugin (code 4).
    #[error(transparent)]
    Args(#[from] ArgsError),
}

impl ConfigError {
    /// A code-7 error for `key`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl From<ConfigError> for CniError {
    fn from(e: ConfigError) -> CniError {
        let code = match &e {
            ConfigError::Decode(_) => crate::error::code::DECODE,
            ConfigError::Invalid { .. } => crate::error::code::INVALID_CONFIG,
            ConfigError::Unsupported { .. } => crate::error::code::UNSUPPORTED_FIELD,
            ConfigError::Version(_) => crate::error::code::INCOMPATIBLE_VERSION,
            ConfigError::Args(_) => crate::error::code::INVALID_ENV,
        };
        CniError::new(code, e.to_string())
    }
}

/// The IPAM section's `type` (the rest is for the IPAM plugin).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpamRef {
    /// The IPAM plugin's executable name.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
}

/// `runtimeConfig`: the capability values the runtime inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RuntimeConfig {
    /// `ips` capability: `ip` or `ip/prefix`.
    #[serde(default)]
    pub ips: Vec<IpRequest>,
    /// `mac` capability.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// `ipRanges` capability (host-local `ranges` shape).
    #[serde(default, rename = "ipRanges")]
    pub ip_ranges: Vec<Vec<RangeConf>>,
}

/// `args.cni` (CONVENTIONS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CniArgsSection {
    /// `args.cni.ips`.
    #[serde(default)]
    pub ips: Vec<IpRequest>,
    /// `args.cni.labels`.
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// A `{key, value}` label in `args.cni.labels`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

/// One live attachment listed in a GC request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct GcAttachment {
    /// `CNI_CONTAINERID` of the attachment.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of the attachment.
    pub ifname: String,
}

#[derive(Deserialize)]
struct RawArgs {
    #[serde(default)]
    cni: Option<CniArgsSection>,
}

#[derive(Deserialize)]
struct RawNetConf {
    #[serde(rename = "cniVersion", default)]
    cni_version: Option<String>,
    #[serde(rename = "cniVersions", default)]
    cni_versions: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    plugin_type: String,
    #[serde(default)]
    capabilities: BTreeMap<String, bool>,
    #[serde(default)]
    ipam: Option<IpamRef>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RuntimeConfig>,
    #[serde(default)]
    args: Option<RawArgs>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Option<Vec<GcAttachment>>,
    #[serde(rename = "cni.dev/attachments", default)]
    attachments: Option<Vec<GcAttachment>>,
}

/// The keys every plugin understands, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    /// `cniVersion` (absent means 0.1.0, as in libcni).
    pub cni_version: CniVersion,
    /// `cniVersions` as given (runtime-side list; unknown entries kept).
    pub cni_versions: Vec<String>,
    /// `name` (validated).
    pub name: String,
    /// `type`.
    pub plugin_type: String,
    /// `capabilities` (normally removed by the runtime).
    pub capabilities: BTreeMap<String, bool>,
    /// `ipam`, when present with a non-empty `type`.
    pub ipam: Option<IpamRef>,
    /// `dns`.
    pub dns: Dns,
    /// `runtimeConfig`.
    pub runtime_config: RuntimeConfig,
    /// `args.cni`.
    pub args: CniArgsSection,
    /// `prevResult`, parsed.
    pub prev_result: Option<CniResult>,
    /// GC: the live attachments; `None` when the request lists none (keep everything).
    pub gc_attachments: Option<Vec<GcAttachment>>,
}

impl NetConf {
    /// Parses and validates the common keys; other keys are ignored.
    pub fn parse(json: &[u8]) -> Result<NetConf, ConfigError> {
        NetConf::from_value(&to_object(json)?)
    }

    /// As [`NetConf::parse`], from a decoded JSON object.
    pub fn from_value(v: &Value) -> Result<NetConf, ConfigError> {
        let raw: RawNetConf = typed(v)?;
        let cni_version = match raw.cni_version.as_deref() {
            None | Some("") => CniVersion::V0_1_0,
            Some(s) => CniVersion::parse(s).ok_or_else(|| ConfigError::Version(s.into()))?,
        };
        let name = raw.name.unwrap_or_default();
        validate_network_name(&name)?;
        let ipam = raw.ipam.filter(|i| !i.plugin_type.is_empty());
        if let Some(i) = &ipam {
            validate_plugin_type("ipam.type", &i.plugin_type)?;
        }
        let prev_result = match raw.prev_result.filter(|p| !is_empty_json(p)) {
            None => None,
            Some(p) => Some(
                CniResult::from_value(&p).map_err(|e| ConfigError::invalid("prevResult", e.msg))?,
            ),
        };
        Ok(NetConf {
            cni_version,
            cni_versions: raw.cni_versions,
            name,
            plugin_type: raw.plugin_type,
            capabilities: raw.capabilities,
            ipam,
            dns: raw.dns.unwrap_or_default(),
            runtime_config: raw.runtime_config.unwrap_or_default(),
            args: raw.args.and_then(|a| a.cni).unwrap_or_default(),
            prev_result,
            gc_attachments: merge_attachments(raw.valid_attachments, raw.attachments),
        })
    }

    /// The IPAM plugin type, if any.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam.as_ref().map(|i| i.plugin_type.as_str())
    }

    /// GC: whether the attachment (container id, ifname) must be kept.
    /// Without a list in the request, everything is kept.
    pub fn gc_keeps(&self, container_id: &str, ifname: &str) -> bool {
        match &self.gc_attachments {
            None => true,
            Some(list) => list
                .iter()
                .any(|a| a.container_id == container_id && a.ifname == ifname),
        }
    }
}

fn is_empty_json(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

/// Both spellings are accepted; if both are present their union is kept
/// (the safe direction for a garbage collector).
fn merge_attachments(
    a: Option<Vec<GcAttachment>>,
    b: Option<Vec<GcAttachment>>,
) -> Option<Vec<GcAttachment>> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(mut x), Some(y)) => {
            for item in y {
                if !x.contains(&item) {
                    x.push(item);
                }
            }
            Some(x)
        }
    }
}

/// Validates a network name: alphanumeric first, then alphanumerics,
/// `_`, `.`, `-`; and no `..` anywhere.
pub fn validate_network_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::invalid("name", "missing network name"));
    }
    if !is_safe_name(name) || name.contains("..") {
        return Err(ConfigError::invalid(
            "name",
            format!("invalid characters in network name {name:?}"),
        ));
    }
    Ok(())
}

/// Validates a plugin type (an executable name to look up in `CNI_PATH`).
pub fn validate_plugin_type(key: &str, t: &str) -> Result<(), ConfigError> {
    if is_safe_name(t) && !t.contains("..") {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("invalid plugin type {t:?}"),
        ))
    }
}

/// Validates an interface name found in the configuration (`master`).
pub(crate) fn validate_link_name(key: &str, name: &str) -> Result<(), ConfigError> {
    crate::env::validate_ifname(name)
        .map_err(|why| ConfigError::invalid(key, format!("{name:?}: {why}")))
}

/// Checks `value` is in `lo..=hi`.
pub(crate) fn check_range(key: &str, value: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{value} is out of range (must be {lo}..{hi})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_defaults() {
        let c = NetConf::parse(br#"{"name":"n1","type":"macvlan"}"#).unwrap();
        assert_eq!(c.cni_version, CniVersion::V0_1_0);
        assert!(c.ipam.is_none());
        assert!(c.gc_keeps("any", "eth0"));
        let c =
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{}}"#).unwrap();
        assert_eq!(c.ipam_type(), None);
    }

    #[test]
    fn names() {
        for bad in ["", "-a", "a/b", "a..b", "a b"] {
            let json = serde_json::json!({"name": bad, "type": "x"}).to_string();
            let e = NetConf::parse(json.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key, .. } if key == "name"),
                "{bad}: {e}"
            );
        }
        assert!(validate_network_name("a.b-c_d").is_ok());
    }

    #[test]
    fn error_codes() {
        let e: CniError = NetConf::parse(b"{not json").unwrap_err().into();
        assert_eq!(e.code, 6);
        let e: CniError = NetConf::parse(b"[1]").unwrap_err().into();
        assert_eq!(e.code, 6);
        let e: CniError = NetConf::parse(br#"{"name":"n","cniVersion":"7.0.0"}"#)
            .unwrap_err()
            .into();
        assert_eq!(e.code, 1);
        let e: CniError = NetConf::parse(br#"{"name":"n","capabilities":{"ips":"yes"}}"#)
            .unwrap_err()
            .into();
        assert_eq!(e.code, 7);
        assert!(
            e.msg.contains("capabilities.ips") && e.msg.contains("\"yes\""),
            "{}",
            e.msg
        );
        let e: CniError = NetConf::parse(br#"{"name":"n","ipam":{"type":"../evil"}}"#)
            .unwrap_err()
            .into();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("ipam.type"), "{}", e.msg);
    }

    #[test]
    fn runtime_config_and_args() {
        let c = NetConf::parse(
            br#"{"name":"n","runtimeConfig":{"ips":["10.0.0.5/24"],"mac":"0a:00:00:00:00:01",
                 "portMappings":[{"x":1}]},
                 "args":{"cni":{"ips":["10.0.0.6"],"labels":[{"key":"app","value":"web"}]}}}"#,
        )
        .unwrap();
        assert_eq!(c.runtime_config.ips[0].to_string(), "10.0.0.5/24");
        assert_eq!(
            c.runtime_config.mac.unwrap().to_string(),
            "0a:00:00:00:00:01"
        );
        assert_eq!(c.args.ips[0].to_string(), "10.0.0.6");
        assert_eq!(c.args.labels[0].value, "web");
        let e = NetConf::parse(br#"{"name":"n","runtimeConfig":{"mac":"zz"}}"#).unwrap_err();
        assert!(
            e.to_string().contains("runtimeConfig.mac") && e.to_string().contains("zz"),
            "{e}"
        );
    }

    #[test]
    fn gc_attachments_both_spellings() {
        let c = NetConf::parse(
            br#"{"name":"n","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert!(c.gc_keeps("c1", "eth0"));
        assert!(!c.gc_keeps("c2", "eth0"));
        let c = NetConf::parse(
            br#"{"name":"n","cni.dev/attachments":[{"containerID":"c2","ifname":"eth1"}],
                 "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert!(c.gc_keeps("c1", "eth0") && c.gc_keeps("c2", "eth1"));
        let c = NetConf::parse(br#"{"name":"n","cni.dev/attachments":[]}"#).unwrap();
        assert!(!c.gc_keeps("c1", "eth0"));
    }

    #[test]
    fn prev_result_parsed_or_named() {
        let c = NetConf::parse(
            br#"{"name":"n","cniVersion":"0.4.0","prevResult":{"cniVersion":"0.4.0",
                 "ips":[{"version":"4","address":"10.0.0.2/24"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            c.prev_result.unwrap().ips[0].address.to_string(),
            "10.0.0.2/24"
        );
        let e = NetConf::parse(br#"{"name":"n","prevResult":{"ips":[{"address":"bad"}]}}"#)
            .unwrap_err();
        assert!(
            e.to_string().contains("prevResult") && e.to_string().contains("bad"),
            "{e}"
        );
        let c = NetConf::parse(br#"{"name":"n","prevResult":{}}"#).unwrap();
        assert!(c.prev_result.is_none());
    }
}
