//! The free-form `Options` map of network-driver requests (Go's
//! `map[string]interface{}`): values may be strings, bools, numbers, arrays
//! or objects, so the map is kept as JSON and read through typed accessors.

use crate::PluginError;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Option keys libnetwork puts into `Options` (its `netlabel` package).
pub mod labels {
    /// The `-o key=value` driver options of `docker network create`, a map of strings.
    pub const GENERIC: &str = "com.docker.network.generic";
    /// Whether IPv4 is enabled on the network (bool; absent before Docker 28 = enabled).
    pub const ENABLE_IPV4: &str = "com.docker.network.enable_ipv4";
    /// Whether IPv6 is enabled on the network (bool).
    pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
    /// Whether the network is `--internal` (bool): no default gateway service.
    pub const INTERNAL: &str = "com.docker.network.internal";
    /// The interface name requested for the container (`driver-opt com.docker.network.endpoint.ifname`).
    pub const ENDPOINT_IFNAME: &str = "com.docker.network.endpoint.ifname";
    /// The container interface prefix (`-o com.docker.network.container_iface_prefix`).
    pub const CONTAINER_IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";
}

/// A network-driver `Options` map; `null` and absent decode as empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options(pub Map<String, Value>);

impl<'de> Deserialize<'de> for Options {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Options, D::Error> {
        Ok(Options(
            Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

impl Options {
    /// The raw value of an option.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// The whole map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// A string option; an error if present with another type.
    pub fn string(&self, key: &str) -> Result<Option<&str>, PluginError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, "a string", other)),
        }
    }

    /// A bool option, given as a JSON bool or as a string Go's
    /// `strconv.ParseBool` accepts ("true", "1", "f", ...).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, PluginError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => parse_go_bool(s)
                .map(Some)
                .ok_or_else(|| wrong_type(key, "a bool", &Value::String(s.clone()))),
            Some(other) => Err(wrong_type(key, "a bool", other)),
        }
    }

    /// The `-o key=value` options of `docker network create`
    /// ([`labels::GENERIC`]); empty when absent.
    pub fn generic_options(&self) -> Result<BTreeMap<String, String>, PluginError> {
        let map = match self.get(labels::GENERIC) {
            None => return Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map,
            Some(other) => return Err(wrong_type(labels::GENERIC, "an object", other)),
        };
        map.iter()
            .map(|(key, value)| generic_entry(key, value))
            .collect()
    }

    /// Whether IPv4 is enabled; libnetwork before Docker 28 does not send
    /// [`labels::ENABLE_IPV4`] and always enables it.
    pub fn ipv4_enabled(&self) -> Result<bool, PluginError> {
        Ok(self.bool(labels::ENABLE_IPV4)?.unwrap_or(true))
    }

    /// Whether IPv6 is enabled ([`labels::ENABLE_IPV6`], default false).
    pub fn ipv6_enabled(&self) -> Result<bool, PluginError> {
        Ok(self.bool(labels::ENABLE_IPV6)?.unwrap_or(false))
    }

    /// Whether the network is internal ([`labels::INTERNAL`], default false).
    pub fn internal(&self) -> Result<bool, PluginError> {
        Ok(self.bool(labels::INTERNAL)?.unwrap_or(false))
    }
}

fn generic_entry(key: &str, value: &Value) -> Result<(String, String), PluginError> {
    match value {
        Value::String(s) => Ok((key.to_owned(), s.clone())),
        other => Err(wrong_type(
            &format!("{}.{key}", labels::GENERIC),
            "a string",
            other,
        )),
    }
}

fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> PluginError {
    PluginError::new(format!("option {key} must be {expected}, got {got}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: Value) -> Options {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn null_and_absent_maps_are_empty() {
        assert_eq!(options(Value::Null), Options::default());
        let opts = options(json!({}));
        assert_eq!(opts.generic_options().unwrap(), BTreeMap::new());
        assert!(opts.ipv4_enabled().unwrap());
        assert!(!opts.ipv6_enabled().unwrap());
        assert!(!opts.internal().unwrap());
        assert!(serde_json::from_value::<Options>(json!([1])).is_err());
    }

    #[test]
    fn reads_what_dockerd_sends_for_network_create() {
        let opts = options(json!({
            "com.docker.network.enable_ipv4": true,
            "com.docker.network.enable_ipv6": true,
            "com.docker.network.internal": false,
            "com.docker.network.generic": {"parent": "eth0.10", "mode": "bridge"},
        }));
        let generic = opts.generic_options().unwrap();
        assert_eq!(generic.get("parent").map(String::as_str), Some("eth0.10"));
        assert_eq!(generic.get("mode").map(String::as_str), Some("bridge"));
        assert_eq!(generic.len(), 2);
        assert!(opts.ipv4_enabled().unwrap());
        assert!(opts.ipv6_enabled().unwrap());
        assert!(!opts.internal().unwrap());
    }

    #[test]
    fn bools_may_be_go_bool_strings() {
        let opts = options(json!({"a": "true", "b": "0", "c": "F", "d": "yes", "e": 1, "f": null}));
        assert_eq!(opts.bool("a").unwrap(), Some(true));
        assert_eq!(opts.bool("b").unwrap(), Some(false));
        assert_eq!(opts.bool("c").unwrap(), Some(false));
        assert_eq!(
            opts.bool("d").unwrap_err().message,
            "option d must be a bool, got \"yes\""
        );
        assert_eq!(
            opts.bool("e").unwrap_err().message,
            "option e must be a bool, got 1"
        );
        assert_eq!(opts.bool("f").unwrap(), None);
        assert_eq!(opts.bool("missing").unwrap(), None);
    }

    #[test]
    fn wrong_types_are_errors_that_name_the_key() {
        let opts = options(json!({
            "com.docker.network.generic": {"parent": "eth0", "mtu": 1500},
            "com.docker.network.enable_ipv6": {"x": 1},
            "com.docker.network.endpoint.ifname": 7,
        }));
        assert_eq!(
            opts.generic_options().unwrap_err().message,
            "option com.docker.network.generic.mtu must be a string, got 1500"
        );
        assert_eq!(
            opts.ipv6_enabled().unwrap_err().message,
            "option com.docker.network.enable_ipv6 must be a bool, got {\"x\":1}"
        );
        assert_eq!(
            opts.string(labels::ENDPOINT_IFNAME).unwrap_err().message,
            "option com.docker.network.endpoint.ifname must be a string, got 7"
        );
        let not_a_map = options(json!({"com.docker.network.generic": "parent=eth0"}));
        assert_eq!(
            not_a_map.generic_options().unwrap_err().message,
            "option com.docker.network.generic must be an object, got \"parent=eth0\""
        );
    }

    #[test]
    fn nested_values_are_kept() {
        let opts = options(
            json!({"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]}),
        );
        assert_eq!(
            opts.get("com.docker.network.endpoint.exposedports"),
            Some(&json!([{"Proto": 6, "Port": 80}]))
        );
        assert_eq!(opts.as_map().len(), 1);
    }
}
