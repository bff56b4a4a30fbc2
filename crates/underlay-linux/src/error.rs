use std::io;
use std::path::PathBuf;

/// A failure at the kernel boundary. Messages are lowercase and name what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel answered a netlink request with an error (`errno`).
    #[error("{op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: io::Error,
    },
    /// The kernel's answer could not be understood.
    #[error("{op}: unexpected netlink answer: {detail}")]
    Protocol { op: String, detail: String },
    /// A file-system operation (netns file, sysctl) failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A path exists but is not a network namespace.
    #[error("{} is not a network namespace", path.display())]
    NotNetns { path: PathBuf },
}

impl Error {
    /// The errno behind the error, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// A netlink error built from an errno, for fakes and tests.
    pub fn from_errno(op: impl Into<String>, errno: i32) -> Self {
        Error::Kernel {
            op: op.into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }
}
