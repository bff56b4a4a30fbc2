//! JSON decoding with key paths in error messages.

use super::ConfigError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes bytes into a JSON object (syntax errors are code 6).
pub(crate) fn to_object(json: &[u8]) -> Result<Value, ConfigError> {
    let v: Value = serde_json::from_slice(json).map_err(|e| ConfigError::Decode(e.to_string()))?;
    if !v.is_object() {
        return Err(ConfigError::Decode(
            "network configuration must be a JSON object".into(),
        ));
    }
    Ok(v)
}

/// Deserializes `T` from `v`, naming the offending key path on error.
/// Unknown enum values become [`ConfigError::Unsupported`] (code 2),
/// anything else [`ConfigError::Invalid`] (code 7).
pub(crate) fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let key = e.path().to_string();
        let reason = e.inner().to_string();
        if reason.starts_with("unknown variant") {
            ConfigError::Unsupported { key, reason }
        } else {
            ConfigError::Invalid { key, reason }
        }
    })
}
