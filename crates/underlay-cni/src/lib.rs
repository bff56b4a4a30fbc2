//! # underlay-cni: the CNI wire format
//!
//! A pure library (no kernel access) implementing what the underlay CNI
//! plugins — drop-in replacements for the reference `macvlan`, `ipvlan`,
//! `vlan`, `host-local`, `static` and `dhcp` — exchange with a runtime,
//! per the CNI specification 0.3.0 … 1.1.0:
//!
//! - [`version`]: versions, negotiation (`cniVersion` + `cniVersions`), the VERSION reply;
//! - [`env`](mod@env) and [`args`]: `CNI_*` variables, validated per command, and `CNI_ARGS`;
//! - [`conf`]: the common keys ([`NetConf`]), the conflist, and one typed,
//!   validated configuration per plugin, accepting every key the reference
//!   plugin accepts (unknown keys are ignored, wrong types/values rejected);
//! - [`result`]: results parsed from and written in any supported version;
//! - [`error`]: the error object and code table;
//! - [`skel`]: a dispatcher ([`Plugin`], [`run`]) enforcing the version rules;
//! - [`delegate`]: running a delegated IPAM plugin found in `CNI_PATH`.
//!
//! Errors are written as JSON to **stdout** (libcni reads them there) with
//! exit code 1; logs belong on stderr.
//!
//! ## Error codes
//!
//! | code | meaning |
//! | --- | --- |
//! | 1 | incompatible CNI version (also: CHECK below 0.4.0, STATUS/GC below 1.1.0, any command with 0.1.0/0.2.0) |
//! | 2 | unsupported field: a key has a value we do not support (message names key and value) |
//! | 3 | container unknown or does not exist |
//! | 4 | invalid/missing environment variables, including malformed or unknown `CNI_ARGS` (message names them) |
//! | 5 | I/O failure |
//! | 6 | failed to decode content (not JSON, not an object, unparsable delegate result) |
//! | 7 | invalid network configuration (wrong type or value; message names key and value) |
//! | 8 | invalid network namespace (libcni extension) |
//! | 11 | try again later |
//! | 50 | STATUS: plugin not available |
//! | 51 | STATUS: not available, existing containers may have limited connectivity |
//! | 100 | the kernel refused an operation (netlink, sysctl, netns) |
//! | 101 | address in use, or address pool exhausted |
//! | 102 | master/parent interface not found |
//! | 103 | `CNI_IFNAME` already exists in the container |
//! | 104 | delegated plugin not found in `CNI_PATH` |
//! | 105 | delegated plugin failed without a valid error object |
//! | 999 | internal error |
//!
//! ## Decisions on ambiguities
//!
//! - GC attachments: both `cni.dev/valid-attachments` (libcni) and
//!   `cni.dev/attachments` (spec text) are read; both present → union; none → keep everything.
//! - VERSION answers with the request's `cniVersion` (or 1.1.0 if absent/unknown) and
//!   lists 0.3.0–1.1.0 only (no 0.1.0/0.2.0 result shapes are produced).
//! - GC and STATUS require only `CNI_COMMAND`; a delegate lookup with an empty
//!   `CNI_PATH` fails with code 4 naming `CNI_PATH`.
//! - Results: 0.x writes `ips[].version` and drops interface `mtu`; 1.0.0 drops
//!   `socketPath`/`pciID` and the route `mtu`/`advmss`/`priority`/`table`/`scope`.
//! - Network names must also not contain `..` (stricter than libcni).

pub mod addr;
pub mod args;
pub mod conf;
pub mod delegate;
pub mod env;
pub mod error;
pub mod result;
pub mod skel;
pub mod version;

pub use addr::{IpNet, IpRequest, MacAddr};
pub use args::CniArgs;
pub use conf::{ConfigError, NetConf};
pub use delegate::DelegateIpam;
pub use env::{CniEnv, Command};
pub use error::CniError;
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use skel::{run, run_main, CmdArgs, Plugin};
pub use version::{CniVersion, VersionInfo};
