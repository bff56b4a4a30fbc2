/// What went wrong, as one lowercase sentence naming the bad value.
///
/// [`Error::Invalid`] is bad input (front-ends report it as a usage error); everything else is
/// an operational failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request was malformed or contradicts itself; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The request is well formed but conflicts with what exists (names, addresses, parents).
    #[error("{0}")]
    Conflict(String),
    /// Something named in the request does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The kernel refused or failed an operation.
    #[error("{context}: {source}")]
    Kernel {
        context: String,
        #[source]
        source: underlay_linux::Error,
    },
    #[error(transparent)]
    Ipam(#[from] underlay_ipam::IpamError),
    /// The state database failed.
    #[error("state: {0}")]
    State(String),
    #[error("{0}")]
    Io(String),
    /// Several independent steps failed (teardown keeps going and reports all).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub(crate) fn kernel(
        context: impl Into<String>,
    ) -> impl FnOnce(underlay_linux::Error) -> Error {
        let context = context.into();
        move |source| Error::Kernel { context, source }
    }

    /// Whether the error is bad input rather than an operational failure.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            Error::Invalid(_) => true,
            Error::Ipam(e) => matches!(
                e,
                underlay_ipam::IpamError::InvalidCidr { .. }
                    | underlay_ipam::IpamError::RangeOutsideSubnet { .. }
                    | underlay_ipam::IpamError::OutsideSubnet { .. }
                    | underlay_ipam::IpamError::OutsideRange { .. }
                    | underlay_ipam::IpamError::NetworkAddress { .. }
                    | underlay_ipam::IpamError::BroadcastAddress { .. }
            ),
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::State(err.to_string())
    }
}

impl From<underlay_ipam::StoreError> for Error {
    fn from(err: underlay_ipam::StoreError) -> Self {
        Error::State(err.0)
    }
}
