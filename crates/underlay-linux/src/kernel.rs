//! The real [`Kernel`]: rtnetlink plus network namespaces.

use std::path::Path;

use crate::{
    write_sysctl, Error, IpvlanSpec, Kernel, MacvlanSpec, Netns, PacketSocket, RtNetlink, VlanSpec,
};

/// The host's kernel, reached through one rtnetlink socket in the caller's namespace.
#[derive(Debug)]
pub struct LinuxKernel {
    host: RtNetlink,
}

impl LinuxKernel {
    /// Opens the host netlink socket in the calling thread's namespace.
    pub fn open() -> Result<Self, Error> {
        Ok(LinuxKernel {
            host: RtNetlink::open()?,
        })
    }
}

impl Kernel for LinuxKernel {
    type Nl = RtNetlink;
    type Ns = Netns;
    type Frames = PacketSocket;

    fn host(&mut self) -> &mut RtNetlink {
        &mut self.host
    }

    fn open_netns(&mut self, path: &Path) -> Result<Option<Netns>, Error> {
        Netns::open(path)
    }

    fn host_netns(&mut self) -> Result<(Netns, std::path::PathBuf), Error> {
        let ns = Netns::host()?;
        let path = ns.path().to_path_buf();
        Ok((ns, path))
    }

    fn netlink_in(&mut self, ns: &Netns) -> Result<RtNetlink, Error> {
        RtNetlink::open_in(ns)
    }

    fn create_macvlan_in(&mut self, spec: &MacvlanSpec, ns: &Netns) -> Result<(), Error> {
        self.host.create_macvlan_in(spec, ns)
    }

    fn create_ipvlan_in(&mut self, spec: &IpvlanSpec, ns: &Netns) -> Result<(), Error> {
        self.host.create_ipvlan_in(spec, ns)
    }

    fn create_vlan_in(&mut self, spec: &VlanSpec, ns: &Netns) -> Result<(), Error> {
        self.host.create_vlan_in(spec, ns)
    }

    fn sysctls_in(&mut self, ns: &Netns, settings: &[(String, String)]) -> Result<(), Error> {
        if settings.is_empty() {
            return Ok(());
        }
        // One thread for all the settings: /proc/sys/net follows the opening thread's netns.
        ns.run(|| {
            settings
                .iter()
                .try_for_each(|(key, value)| write_sysctl(key, value))
        })?
    }

    fn frame_socket_in(&mut self, ns: &Netns, ifindex: u32) -> Result<PacketSocket, Error> {
        PacketSocket::open_in(ns, ifindex)
    }

    fn netns_id(&mut self, ns: &Netns) -> Result<(u64, u64), Error> {
        ns.id()
    }
}
