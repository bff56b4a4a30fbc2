//! The two error kinds of the plugin boundary: an operation that failed
//! ([`PluginError`], HTTP 500) and a request we could not decode
//! ([`RequestError`], HTTP 404 or 400).

use std::error::Error;

/// An operation failed; answered with HTTP 500 and `{"Err": message}`.
///
/// libnetwork logs the message and shows it to the user (`docker network
/// create` prints it), so it should name the bad value and must not carry
/// secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// One lowercase sentence, no trailing period.
    pub message: String,
}

impl PluginError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> PluginError {
        PluginError {
            message: message.into(),
        }
    }

    /// An error whose message is `error` followed by its `source()` chain,
    /// joined with ": " (the engine's errors wrap their causes).
    pub fn from_error(error: &(dyn Error + 'static)) -> PluginError {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        PluginError { message }
    }
}

/// A request that cannot be handed to a [`Handler`](crate::Handler).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The path names no method we implement (HTTP 404, which libnetwork
    /// takes as "optional method not implemented").
    #[error("unknown plugin method {0:?}")]
    UnknownMethod(String),
    /// The body is not JSON, or a field has the wrong type or value (HTTP 400).
    #[error("invalid {method} body: {}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    InvalidBody {
        /// The method, e.g. `NetworkDriver.Join`.
        method: &'static str,
        /// The path of the bad field (`IPv4Data[0].Pool`); `None` for the body as a whole.
        field: Option<String>,
        /// What is wrong, with serde_json's position.
        message: String,
    },
}

impl RequestError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::UnknownMethod(_) => 404,
            RequestError::InvalidBody { .. } => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("attach endpoint ab12")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn from_error_joins_the_source_chain() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "link eth9 not found");
        let err = PluginError::from_error(&Outer(inner));
        assert_eq!(err.message, "attach endpoint ab12: link eth9 not found");
        assert_eq!(err.to_string(), err.message);
    }
}
