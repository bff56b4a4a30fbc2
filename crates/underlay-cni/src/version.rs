//! CNI specification versions, version negotiation and the VERSION reply.

use serde::Serialize;
use std::fmt;

/// A released CNI specification version.
///
/// `V0_1_0` and `V0_2_0` are known only so that a VERSION request (or an
/// error reply) can name them; every other command with them fails with
/// code 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.1.0 (the initial specification).
    V0_1_0,
    /// 0.2.0 (added VERSION).
    V0_2_0,
    /// 0.3.0 (rich results, chaining).
    V0_3_0,
    /// 0.3.1.
    V0_3_1,
    /// 0.4.0 (CHECK, prevResult on DEL).
    V0_4_0,
    /// 1.0.0 (`ips[].version` removed).
    V1_0_0,
    /// 1.1.0 (GC, STATUS, `cniVersions`, route and interface additions).
    V1_1_0,
}

/// The versions this crate can execute ADD/DEL with, oldest first.
pub const SUPPORTED_VERSIONS: [CniVersion; 5] = [
    CniVersion::V0_3_0,
    CniVersion::V0_3_1,
    CniVersion::V0_4_0,
    CniVersion::V1_0_0,
    CniVersion::V1_1_0,
];

impl CniVersion {
    /// The newest version this crate speaks.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// Parses an exact version string ("0.3.1"); unknown strings give `None`.
    pub fn parse(s: &str) -> Option<CniVersion> {
        Some(match s {
            "0.1.0" => CniVersion::V0_1_0,
            "0.2.0" => CniVersion::V0_2_0,
            "0.3.0" => CniVersion::V0_3_0,
            "0.3.1" => CniVersion::V0_3_1,
            "0.4.0" => CniVersion::V0_4_0,
            "1.0.0" => CniVersion::V1_0_0,
            "1.1.0" => CniVersion::V1_1_0,
            _ => return None,
        })
    }

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether ADD/DEL (and results) are supported in this version.
    pub fn is_supported(self) -> bool {
        self >= CniVersion::V0_3_0
    }

    /// Whether results in this version carry `ips[].version`.
    pub fn has_ip_version(self) -> bool {
        self < CniVersion::V1_0_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CniVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The supported version list as strings (for messages and the VERSION reply).
pub fn supported_strings() -> Vec<&'static str> {
    SUPPORTED_VERSIONS.iter().map(|v| v.as_str()).collect()
}

/// Runtime-side negotiation (spec 1.1): the highest version listed in
/// `cniVersions` that this crate supports, else `cniVersion` as given.
///
/// Returns `None` when neither yields a known version.
pub fn negotiate(cni_version: Option<&str>, cni_versions: &[String]) -> Option<CniVersion> {
    let best = cni_versions
        .iter()
        .filter_map(|s| CniVersion::parse(s))
        .filter(|v| v.is_supported())
        .max();
    best.or_else(|| cni_version.and_then(CniVersion::parse))
}

/// The reply to the VERSION command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// Echoes the request's version (or [`CniVersion::LATEST`] if it was absent or unknown).
    #[serde(rename = "cniVersion")]
    pub cni_version: &'static str,
    /// Every version this plugin can be called with.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<&'static str>,
}

impl VersionInfo {
    /// The VERSION reply for a request written in `request` (if known).
    pub fn for_request(request: Option<CniVersion>) -> VersionInfo {
        VersionInfo {
            cni_version: request.unwrap_or(CniVersion::LATEST).as_str(),
            supported_versions: supported_strings(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_roundtrip_and_order() {
        for v in SUPPORTED_VERSIONS {
            assert_eq!(CniVersion::parse(v.as_str()), Some(v));
        }
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert_eq!(CniVersion::parse("1.0.1"), None);
        assert!(!CniVersion::V0_2_0.is_supported());
        assert!(CniVersion::V0_4_0.has_ip_version());
        assert!(!CniVersion::V1_0_0.has_ip_version());
    }

    #[test]
    fn negotiation_prefers_highest_supported_cni_versions_entry() {
        let list = vec!["0.4.0".to_string(), "1.1.0".into(), "9.9.9".into()];
        assert_eq!(negotiate(Some("0.3.1"), &list), Some(CniVersion::V1_1_0));
        assert_eq!(
            negotiate(Some("1.0.0"), &["2.0.0".into()]),
            Some(CniVersion::V1_0_0)
        );
        assert_eq!(negotiate(None, &[]), None);
    }

    #[test]
    fn version_info_echoes_request() {
        let info = VersionInfo::for_request(Some(CniVersion::V0_2_0));
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"cniVersion": "0.2.0",
                "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
        assert_eq!(VersionInfo::for_request(None).cni_version, "1.1.0");
    }
}
