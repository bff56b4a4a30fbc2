//! Core and kernel errors as CNI error objects: one place maps outcomes to the protocol.

use underlay_cni::error::code;
use underlay_cni::error::CniError;

/// The CNI code for an engine error: bad input 7, a missing link 102, a conflict (name taken,
/// parent busy) 103 or 101, the kernel 100.
pub fn from_core(err: underlay_core::Error) -> CniError {
    let code = match &err {
        underlay_core::Error::Invalid(_) => code::INVALID_CONFIG,
        underlay_core::Error::NotFound(_) => code::LINK_NOT_FOUND,
        underlay_core::Error::Conflict(_) => code::LINK_EXISTS,
        underlay_core::Error::Ipam(_) => code::ADDRESS_UNAVAILABLE,
        underlay_core::Error::Io(_) | underlay_core::Error::State(_) => code::IO,
        _ => code::KERNEL,
    };
    CniError::new(code, err.to_string())
}

/// A kernel-boundary error as CNI code 100.
pub fn from_kernel(context: &str, err: underlay_linux::Error) -> CniError {
    CniError::new(code::KERNEL, format!("{context}: {err}"))
}

/// A host-local store error: address problems are 101, the rest I/O.
pub fn from_hostlocal(err: underlay_ipam::HostLocalError) -> CniError {
    use underlay_ipam::HostLocalError as E;
    let code = match &err {
        E::Io { .. } => code::IO,
        E::InvalidNetworkName { .. }
        | E::InvalidAttachment { .. }
        | E::InvalidRange { .. }
        | E::InvalidRangeSet { .. } => code::INVALID_CONFIG,
        _ => code::ADDRESS_UNAVAILABLE,
    };
    CniError::new(code, err.to_string())
}
