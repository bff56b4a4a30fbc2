//! The IPAM plugin a main plugin delegates to, found through CNI_PATH as the spec says. When
//! the plugin found there is this very binary (our `host-local`, `static` or `dhcp` linked to
//! `underlay-cni`), it runs in-process: the same code, without a process spawn per ADD, DEL
//! and CHECK.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use underlay_cni::{CmdArgs, CniError, CniResult, DelegateIpam, Plugin};

use crate::dhcp::DhcpPlugin;
use crate::hostlocal::HostLocalPlugin;
use crate::static_ipam::StaticPlugin;

pub struct Ipam<'a> {
    kind: &'a str,
    args: &'a CmdArgs,
    in_process: Option<&'static dyn Plugin>,
}

impl<'a> Ipam<'a> {
    /// The IPAM plugin of type `kind` for this invocation.
    pub fn new(kind: &'a str, args: &'a CmdArgs) -> Ipam<'a> {
        let in_process = ours(kind).filter(|_| found_plugin_is_this_binary(kind, args));
        Ipam {
            kind,
            args,
            in_process,
        }
    }

    pub fn add(&self) -> Result<CniResult, CniError> {
        match self.in_process {
            Some(plugin) => plugin.add(self.args).map(CniResult::into_ipam),
            None => self.delegate().add(self.kind, &self.args.stdin),
        }
    }

    pub fn del(&self) -> Result<(), CniError> {
        match self.in_process {
            Some(plugin) => plugin.del(self.args),
            None => self.delegate().del(self.kind, &self.args.stdin),
        }
    }

    pub fn check(&self) -> Result<(), CniError> {
        match self.in_process {
            Some(plugin) => plugin.check(self.args),
            None => self.delegate().check(self.kind, &self.args.stdin),
        }
    }

    pub fn status(&self) -> Result<(), CniError> {
        match self.in_process {
            Some(plugin) => plugin.status(self.args),
            None => self.delegate().status(self.kind, &self.args.stdin),
        }
    }

    pub fn gc(&self) -> Result<(), CniError> {
        match self.in_process {
            Some(plugin) => plugin.gc(self.args),
            None => self.delegate().gc(self.kind, &self.args.stdin),
        }
    }

    fn delegate(&self) -> DelegateIpam<'a> {
        DelegateIpam::new(&self.args.env)
    }
}

fn ours(kind: &str) -> Option<&'static dyn Plugin> {
    match kind {
        "host-local" => Some(&HostLocalPlugin),
        "static" => Some(&StaticPlugin),
        "dhcp" => Some(&DhcpPlugin),
        _ => None,
    }
}

/// Whether the `kind` plugin CNI_PATH resolves to is the file this process runs from (the
/// same inode: through any symlink or hard link).
fn found_plugin_is_this_binary(kind: &str, args: &CmdArgs) -> bool {
    let Ok(found) = DelegateIpam::new(&args.env).find(kind) else {
        return false;
    };
    let same =
        |a: std::fs::Metadata, b: std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    match (
        fs::metadata(Path::new(&found)),
        fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => same(a, b),
        _ => false,
    }
}
