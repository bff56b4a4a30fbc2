//! The kernel as a plugin process uses it: [`underlay_linux::LinuxKernel`]'s verbs, except that
//! work inside the container's netns (opening its netlink socket, writing its sysctls) is done
//! by this process's own thread stepping into the netns and straight back, instead of by a
//! thread spawned for it.
//!
//! A plugin is a short-lived process with one thread, so nothing else can observe the thread
//! in the container's netns, and a thread spawn (stack, malloc arena, scheduling on the other
//! core) costs more than everything else a netlink socket needs. Should the way back fail, the
//! process aborts rather than carry on acting in the wrong namespace.

use std::path::Path;

use nix::sched::{setns, CloneFlags};
use underlay_linux::{
    write_sysctl, Error, IpvlanSpec, Kernel, MacvlanSpec, Netns, PacketSocket, RtNetlink, VlanSpec,
};

/// The host's netlink socket (in the netns the plugin was started in) plus the container work.
pub struct PluginKernel {
    host: RtNetlink,
}

impl PluginKernel {
    pub fn open() -> Result<Self, Error> {
        Ok(PluginKernel {
            host: RtNetlink::open()?,
        })
    }
}

/// Runs `f` with the calling thread in `ns`, then puts the thread back where it was.
pub fn inside<T>(ns: &Netns, f: impl FnOnce() -> T) -> Result<T, Error> {
    let home = Netns::current()?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| Error::Io {
        path: ns.path().to_path_buf(),
        source: errno.into(),
    })?;
    let out = f();
    if let Err(errno) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
        eprintln!(
            "underlay-cni: cannot return to the netns {} after working in {}: {errno}",
            home.path().display(),
            ns.path().display()
        );
        std::process::abort();
    }
    Ok(out)
}

/// A netlink socket that lives in `ns`.
pub fn netlink_in(ns: &Netns) -> Result<RtNetlink, Error> {
    inside(ns, RtNetlink::open)?
}

impl Kernel for PluginKernel {
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
        netlink_in(ns)
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
        inside(ns, || {
            settings
                .iter()
                .try_for_each(|(key, value)| write_sysctl(key, value))
        })?
    }

    fn frame_socket_in(&mut self, ns: &Netns, ifindex: u32) -> Result<PacketSocket, Error> {
        inside(ns, || PacketSocket::open(ifindex))?
    }

    fn netns_id(&mut self, ns: &Netns) -> Result<(u64, u64), Error> {
        ns.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh netns (root only, like every test of this crate), kept alive by its handle.
    fn new_netns() -> Netns {
        std::thread::spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare (run as root)");
            Netns::current().unwrap()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn work_inside_a_netns_happens_there_and_the_thread_comes_back() {
        let home = Netns::current().unwrap().id().unwrap();
        let other = new_netns();
        let seen = inside(&other, || Netns::current().unwrap().id().unwrap()).unwrap();
        assert_eq!(seen, other.id().unwrap());
        assert_ne!(seen, home);
        assert_eq!(Netns::current().unwrap().id().unwrap(), home);
        // A socket opened there stays there: the new netns has nothing but `lo`.
        let mut nl = netlink_in(&other).unwrap();
        let names: Vec<String> = underlay_linux::Netlink::links(&mut nl)
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, ["lo"]);
        assert_eq!(Netns::current().unwrap().id().unwrap(), home);
    }
}
