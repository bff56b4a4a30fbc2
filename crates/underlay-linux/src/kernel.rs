//! The real [`Kernel`]: rtnetlink plus network namespaces.

use std::path::Path;

use crate::{
    write_sysctl, Error, IpvlanSpec, Kernel, MacvlanSpec, Netns, PacketSocket, RtNetlink, VlanSpec,
};

/// The host's kernel, reached through one rtnetlink socket in the caller's namespace.
#[derive(Debug)]
pub struct LinuxKernel {
    host: RtNetlink,
    /// Work inside other namespaces is done by the calling thread itself ([`Netns::run_here`])
    /// instead of by a thread spawned for it ([`Netns::run`]).
    single_threaded: bool,
}

impl LinuxKernel {
    /// Opens the host netlink socket in the calling thread's namespace.
    pub fn open() -> Result<Self, Error> {
        Ok(LinuxKernel {
            host: RtNetlink::open()?,
            single_threaded: false,
        })
    }

    /// [`LinuxKernel::open`] for a process with one thread (a CNI plugin): that thread steps
    /// into a container's namespace and straight back, see [`Netns::run_here`].
    pub fn open_single_threaded() -> Result<Self, Error> {
        Ok(LinuxKernel {
            host: RtNetlink::open()?,
            single_threaded: true,
        })
    }

    /// Runs `f` inside `ns`, the way this kernel was opened for.
    fn inside<T: Send>(&self, ns: &Netns, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        if self.single_threaded {
            ns.run_here(f)
        } else {
            ns.run(f)
        }
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
        self.inside(ns, RtNetlink::open)?
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
        // One step in for all the settings: /proc/sys/net follows the opening thread's netns.
        self.inside(ns, || {
            settings
                .iter()
                .try_for_each(|(key, value)| write_sysctl(key, value))
        })?
    }

    fn frame_socket_in(&mut self, ns: &Netns, ifindex: u32) -> Result<PacketSocket, Error> {
        self.inside(ns, || PacketSocket::open(ifindex))?
    }

    fn netns_id(&mut self, ns: &Netns) -> Result<(u64, u64), Error> {
        ns.id()
    }

    fn watch_netns(&mut self, ns: &Netns) -> Result<(), Error> {
        self.host.ensure_netns_id(ns)
    }
}
