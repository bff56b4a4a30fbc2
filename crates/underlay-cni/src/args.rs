//! `CNI_ARGS`: `K=V;K=V` pairs, with the conventional `IP=`, `MAC=`,
//! `GATEWAY=` and `IgnoreUnknown=` keys.

use crate::error::CniError;

/// Parsed `CNI_ARGS`, in order, plus the raw string (passed on to delegates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    raw: String,
    pairs: Vec<(String, String)>,
}

/// A malformed `CNI_ARGS` string or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A segment is not exactly `KEY=VALUE`.
    #[error("invalid CNI_ARGS pair {0:?}")]
    Pair(String),
    /// `IgnoreUnknown` is not a boolean.
    #[error("invalid CNI_ARGS value IgnoreUnknown={0:?} (expected 1, 0, true or false)")]
    Bool(String),
    /// Keys the plugin does not know, without `IgnoreUnknown=1`.
    #[error("unknown CNI_ARGS keys {0:?} (set IgnoreUnknown=1 to ignore them)")]
    Unknown(Vec<String>),
}

impl From<ArgsError> for CniError {
    fn from(e: ArgsError) -> CniError {
        CniError::invalid_env(e.to_string())
    }
}

impl CniArgs {
    /// Parses `K=V;K=V`. Empty segments are skipped; a segment without
    /// exactly one `=` is an error (like libcni's `LoadArgs`).
    pub fn parse(raw: &str) -> Result<CniArgs, ArgsError> {
        let mut pairs = Vec::new();
        for seg in raw.split(';').filter(|s| !s.is_empty()) {
            let mut kv = seg.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() => pairs.push((k.into(), v.into())),
                _ => return Err(ArgsError::Pair(seg.to_string())),
            }
        }
        Ok(CniArgs {
            raw: raw.to_string(),
            pairs,
        })
    }

    /// The raw string as received.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The last value given for `key` (case-sensitive, like libcni).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `IgnoreUnknown` as a boolean (absent = false).
    pub fn ignore_unknown(&self) -> Result<bool, ArgsError> {
        match self.get("IgnoreUnknown") {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(true),
                "0" | "false" | "" => Ok(false),
                _ => Err(ArgsError::Bool(v.to_string())),
            },
        }
    }

    /// Fails on keys outside `known` (plus `IgnoreUnknown`) unless
    /// `IgnoreUnknown` is true — the reference plugins' behaviour.
    pub fn check_known(&self, known: &[&str]) -> Result<(), ArgsError> {
        let ignore = self.ignore_unknown()?;
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        if unknown.is_empty() || ignore {
            Ok(())
        } else {
            Err(ArgsError::Unknown(unknown))
        }
    }

    /// A comma-separated value split into trimmed, non-empty items (`IP=a,b`).
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_pairs() {
        let a = CniArgs::parse("IgnoreUnknown=1;IP=10.0.0.5;K8S_POD_NAME=web;").unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("ip"), None);
        assert!(a.ignore_unknown().unwrap());
        assert!(a.check_known(&["IP"]).is_ok());
        assert_eq!(a.raw(), "IgnoreUnknown=1;IP=10.0.0.5;K8S_POD_NAME=web;");
    }

    #[test]
    fn bad_pairs() {
        assert_eq!(
            CniArgs::parse("A=1=2"),
            Err(ArgsError::Pair("A=1=2".into()))
        );
        assert_eq!(
            CniArgs::parse("novalue"),
            Err(ArgsError::Pair("novalue".into()))
        );
        assert_eq!(CniArgs::parse("=x"), Err(ArgsError::Pair("=x".into())));
    }

    #[test]
    fn unknown_keys_rejected_without_ignore() {
        let a = CniArgs::parse("IP=10.0.0.5;FOO=bar").unwrap();
        let e = a.check_known(&["IP"]).unwrap_err();
        assert_eq!(e, ArgsError::Unknown(vec!["FOO".into()]));
        assert!(e.to_string().contains("FOO"));
        let e: CniError = e.into();
        assert_eq!(e.code, 4);
        let a = CniArgs::parse("IgnoreUnknown=maybe").unwrap();
        assert!(a.ignore_unknown().is_err());
    }

    #[test]
    fn list_values() {
        let a = CniArgs::parse("IP=10.0.0.5/24, fd00::5/64").unwrap();
        assert_eq!(a.list("IP"), vec!["10.0.0.5/24", "fd00::5/64"]);
        assert!(a.list("GATEWAY").is_empty());
    }
}
