//! The network configuration list (`.conflist`), as a runtime sees it:
//! version negotiation and building each plugin's single-plugin config.

use super::{to_object, typed, validate_network_name, validate_plugin_type, ConfigError};
use crate::version::{negotiate, CniVersion};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A parsed conflist.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfList {
    /// `cniVersion`.
    pub cni_version: Option<String>,
    /// `cniVersions` (1.1).
    pub cni_versions: Vec<String>,
    /// `name` (validated).
    pub name: String,
    /// `disableCheck`.
    pub disable_check: bool,
    /// `disableGC` (1.1).
    pub disable_gc: bool,
    /// `loadOnlyInlinedPlugins` (1.1).
    pub load_only_inlined_plugins: bool,
    /// The plugin objects, each with a valid `type`.
    pub plugins: Vec<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default, rename = "cniVersion")]
    cni_version: Option<String>,
    #[serde(default, rename = "cniVersions")]
    cni_versions: Vec<String>,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "disableCheck", deserialize_with = "lenient_bool")]
    disable_check: bool,
    #[serde(default, rename = "disableGC", deserialize_with = "lenient_bool")]
    disable_gc: bool,
    #[serde(
        default,
        rename = "loadOnlyInlinedPlugins",
        deserialize_with = "lenient_bool"
    )]
    load_only_inlined_plugins: bool,
    #[serde(default)]
    plugins: Vec<Map<String, Value>>,
}

/// Accepts `true`/`false` and the strings `"true"`/`"false"` (as libcni does).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "invalid value {other}, expected a boolean"
        ))),
    }
}

impl NetConfList {
    /// Parses and validates a conflist.
    pub fn parse(json: &[u8]) -> Result<NetConfList, ConfigError> {
        let raw: Raw = typed(&to_object(json)?)?;
        validate_network_name(&raw.name)?;
        if raw.plugins.is_empty() {
            return Err(ConfigError::invalid("plugins", "no plugins in list"));
        }
        for (i, p) in raw.plugins.iter().enumerate() {
            let key = format!("plugins[{i}].type");
            match p.get("type") {
                Some(Value::String(t)) => validate_plugin_type(&key, t)?,
                _ => return Err(ConfigError::invalid(key, "missing plugin type")),
            }
        }
        Ok(NetConfList {
            cni_version: raw.cni_version,
            cni_versions: raw.cni_versions,
            name: raw.name,
            disable_check: raw.disable_check,
            disable_gc: raw.disable_gc,
            load_only_inlined_plugins: raw.load_only_inlined_plugins,
            plugins: raw.plugins,
        })
    }

    /// The version to run the list with: the highest supported entry of
    /// `cniVersions`, else `cniVersion`.
    pub fn version(&self) -> Result<CniVersion, ConfigError> {
        negotiate(self.cni_version.as_deref(), &self.cni_versions)
            .ok_or_else(|| ConfigError::Version(self.cni_version.clone().unwrap_or_default()))
    }

    /// The single-plugin config for plugin `index`, as a runtime builds it:
    /// `cniVersion` and `name` inserted, `capabilities` removed,
    /// `runtimeConfig` = declared capabilities ∩ `runtime` values, and
    /// `prevResult` when given.
    pub fn plugin_config(
        &self,
        index: usize,
        version: CniVersion,
        runtime: &Map<String, Value>,
        prev_result: Option<&Value>,
    ) -> Option<Value> {
        let mut conf = self.plugins.get(index)?.clone();
        conf.insert("cniVersion".into(), version.as_str().into());
        conf.insert("name".into(), self.name.clone().into());
        let caps = conf.remove("capabilities");
        let rc: Map<String, Value> = runtime
            .iter()
            .filter(|(k, _)| has_capability(caps.as_ref(), k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rc.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(rc));
        }
        if let Some(p) = prev_result {
            conf.insert("prevResult".into(), p.clone());
        }
        Some(Value::Object(conf))
    }
}

fn has_capability(caps: Option<&Value>, key: &str) -> bool {
    caps.and_then(|c| c.get(key)).and_then(Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negotiation_and_plugin_config() {
        let l = NetConfList::parse(
            br#"{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.1.0"],"name":"n","disableCheck":"true",
                 "plugins":[{"type":"macvlan","capabilities":{"mac":true},"master":"eth0"}]}"#,
        )
        .unwrap();
        assert!(l.disable_check);
        let v = l.version().unwrap();
        assert_eq!(v, CniVersion::V1_1_0);
        let runtime: Map<String, Value> =
            json!({"mac": "0a:00:00:00:00:01", "ips": ["10.0.0.1/24"]})
                .as_object()
                .unwrap()
                .clone();
        let conf = l.plugin_config(0, v, &runtime, None).unwrap();
        assert_eq!(
            conf,
            json!({"cniVersion":"1.1.0","name":"n","type":"macvlan","master":"eth0",
                   "runtimeConfig":{"mac":"0a:00:00:00:00:01"}})
        );
        assert!(l.plugin_config(1, v, &runtime, None).is_none());
    }

    #[test]
    fn rejects() {
        for (json, want) in [
            (r#"{"name":"n","plugins":[]}"#, "plugins"),
            (r#"{"name":"n","plugins":[{"x":1}]}"#, "plugins[0].type"),
            (r#"{"name":"a/b","plugins":[{"type":"x"}]}"#, "name"),
            (
                r#"{"name":"n","disableGC":3,"plugins":[{"type":"x"}]}"#,
                "disableGC",
            ),
        ] {
            let e = NetConfList::parse(json.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        let l =
            NetConfList::parse(br#"{"cniVersion":"9.0.0","name":"n","plugins":[{"type":"x"}]}"#)
                .unwrap();
        assert!(l.version().is_err());
    }
}
