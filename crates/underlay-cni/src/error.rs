//! The CNI error object and the error-code table.

use crate::version::CniVersion;
use serde::{Deserialize, Serialize};

/// Well-known error codes (0–99 are reserved by the specification; 100+ are ours).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration (message names key and value).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (message names them).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content (JSON).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Invalid network namespace (libcni extension, not in SPEC.md).
    pub const INVALID_NETNS: u32 = 8;
    /// Try again later (transient).
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: plugin not available.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: plugin not available, existing containers may have limited connectivity.
    pub const NOT_AVAILABLE_DEGRADED: u32 = 51;
    /// The kernel (netlink, sysctl, netns) refused an operation.
    pub const KERNEL: u32 = 100;
    /// The requested address is in use, or the pool is exhausted.
    pub const ADDRESS_UNAVAILABLE: u32 = 101;
    /// The master/parent interface does not exist.
    pub const LINK_NOT_FOUND: u32 = 102;
    /// `CNI_IFNAME` already exists in the container.
    pub const LINK_EXISTS: u32 = 103;
    /// The delegated (IPAM) plugin was not found in `CNI_PATH`.
    pub const DELEGATE_NOT_FOUND: u32 = 104;
    /// The delegated plugin failed without a valid error object.
    pub const DELEGATE_FAILED: u32 = 105;
    /// Internal error (bug); same value as libcni's.
    pub const INTERNAL: u32 = 999;
}

/// A CNI error object: `{"cniVersion", "code", "msg", "details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
#[error("cni error {code}: {msg}")]
pub struct CniError {
    /// The error code (see [`code`]).
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Longer details (may be empty).
    #[serde(default)]
    pub details: String,
}

#[derive(Serialize)]
struct WireError<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    code: u32,
    msg: &'a str,
    details: &'a str,
}

impl CniError {
    /// An error with an arbitrary code.
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// Code 1: the configuration's version cannot be used for this command.
    pub fn incompatible_version(msg: impl Into<String>) -> CniError {
        CniError::new(code::INCOMPATIBLE_VERSION, msg)
    }

    /// Code 2: an unsupported key/value pair.
    pub fn unsupported_field(key: &str, value: impl std::fmt::Display) -> CniError {
        CniError::new(
            code::UNSUPPORTED_FIELD,
            format!("unsupported field {key}: {value}"),
        )
    }

    /// Code 3: the container is unknown.
    pub fn unknown_container(msg: impl Into<String>) -> CniError {
        CniError::new(code::UNKNOWN_CONTAINER, msg)
    }

    /// Code 4: invalid or missing environment variables (message names them).
    pub fn invalid_env(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_ENV, msg)
    }

    /// Code 5: I/O failure.
    pub fn io(msg: impl Into<String>) -> CniError {
        CniError::new(code::IO, msg)
    }

    /// Code 6: the input is not valid JSON.
    pub fn decode(msg: impl Into<String>) -> CniError {
        CniError::new(code::DECODE, msg)
    }

    /// Code 7: invalid network configuration.
    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_CONFIG, msg)
    }

    /// Code 11: transient failure.
    pub fn try_again(msg: impl Into<String>) -> CniError {
        CniError::new(code::TRY_AGAIN, msg)
    }

    /// Code 50 (STATUS): not available.
    pub fn not_available(msg: impl Into<String>) -> CniError {
        CniError::new(code::NOT_AVAILABLE, msg)
    }

    /// Code 51 (STATUS): not available, existing containers degraded.
    pub fn not_available_degraded(msg: impl Into<String>) -> CniError {
        CniError::new(code::NOT_AVAILABLE_DEGRADED, msg)
    }

    /// Code 100: the kernel refused an operation.
    pub fn kernel(msg: impl Into<String>) -> CniError {
        CniError::new(code::KERNEL, msg)
    }

    /// Code 101: address in use or pool exhausted.
    pub fn address_unavailable(msg: impl Into<String>) -> CniError {
        CniError::new(code::ADDRESS_UNAVAILABLE, msg)
    }

    /// Code 102: master/parent interface missing.
    pub fn link_not_found(msg: impl Into<String>) -> CniError {
        CniError::new(code::LINK_NOT_FOUND, msg)
    }

    /// Code 103: the container interface already exists.
    pub fn link_exists(msg: impl Into<String>) -> CniError {
        CniError::new(code::LINK_EXISTS, msg)
    }

    /// Code 999: internal error.
    pub fn internal(msg: impl Into<String>) -> CniError {
        CniError::new(code::INTERNAL, msg)
    }

    /// The error object as JSON, labelled with `version`.
    pub fn to_json(&self, version: CniVersion) -> String {
        let wire = WireError {
            cni_version: version.as_str(),
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        };
        serde_json::to_string(&wire).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses an error object written by another plugin.
    pub fn from_json(bytes: &[u8]) -> Result<CniError, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let e =
            CniError::invalid_env("required env variables [CNI_NETNS] missing").with_details("d");
        let v: serde_json::Value = serde_json::from_str(&e.to_json(CniVersion::V1_0_0)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion": "1.0.0", "code": 4,
                "msg": "required env variables [CNI_NETNS] missing", "details": "d"})
        );
    }

    #[test]
    fn parse_without_details() {
        let e = CniError::from_json(br#"{"code": 101, "msg": "no free address"}"#).unwrap();
        assert_eq!(e, CniError::address_unavailable("no free address"));
    }

    #[test]
    fn unsupported_field_names_key_and_value() {
        let e = CniError::unsupported_field("mode", "\"foo\"");
        assert_eq!(e.code, 2);
        assert_eq!(e.msg, "unsupported field mode: \"foo\"");
    }
}
