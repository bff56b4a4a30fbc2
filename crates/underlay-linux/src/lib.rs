//! The only kernel boundary of underlay.
//!
//! Everything that talks to the kernel lives here: a synchronous rtnetlink socket with typed
//! verbs ([`Netlink`]), network-namespace handles ([`Netns`]) and sysctl writes. The rest of
//! the workspace programs against the [`Netlink`] and [`Kernel`] traits so that the core can be
//! tested with recording fakes and without privileges.

mod error;
mod kernel;
mod monitor;
mod netlink;
mod netns;
mod packet;
mod sysctl;
mod types;
mod udp;
mod unix_socket;

pub use error::Error;
pub use kernel::LinuxKernel;
pub use monitor::{LinkEvent, LinkMonitor};
pub use netlink::RtNetlink;
pub use netns::Netns;
pub use packet::{FrameSocket, PacketSocket};
pub use sysctl::write_sysctl;
pub use types::{
    IpNet, IpvlanFlag, IpvlanMode, IpvlanSpec, Link, MacvlanMode, MacvlanSpec, Route, VlanSpec,
};
pub use udp::{udp_socket, udp_socket_in};
pub use unix_socket::{bind_private_socket, systemd_listener};

/// Typed rtnetlink verbs, all acting in the network namespace the socket was opened in.
///
/// Link indexes are those of that namespace. "Not found" is not an error for look-ups
/// (`Ok(None)`) nor for [`Netlink::delete_link`] (`Ok(false)`), so teardown can be idempotent.
pub trait Netlink {
    /// The link called `name`, if any.
    fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, Error>;
    /// The link with index `index`, if any.
    fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, Error>;
    /// Every link of the namespace.
    fn links(&mut self) -> Result<Vec<Link>, Error>;
    /// Creates a macvlan link named `spec.name` on parent `spec.parent` in this namespace.
    fn create_macvlan(&mut self, spec: &MacvlanSpec) -> Result<(), Error>;
    /// Creates an ipvlan slave named `spec.name` on parent `spec.parent` in this namespace.
    fn create_ipvlan(&mut self, spec: &IpvlanSpec) -> Result<(), Error>;
    /// Creates an 802.1Q VLAN sub-interface in this namespace.
    fn create_vlan(&mut self, spec: &VlanSpec) -> Result<(), Error>;
    /// Creates a dummy link in this namespace (a parent for networks with no uplink).
    fn create_dummy(&mut self, name: &str) -> Result<(), Error>;
    /// Sets the alias (`IFLA_IFALIAS`) of link `index`.
    fn set_alias(&mut self, index: u32, alias: &str) -> Result<(), Error>;
    /// Renames link `index` (kernels before 6.6 require the link to be down).
    fn rename_link(&mut self, index: u32, name: &str) -> Result<(), Error>;
    /// Sets the MTU of link `index`.
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), Error>;
    /// Sets the administrative state of link `index` to up.
    fn set_up(&mut self, index: u32) -> Result<(), Error>;
    /// Deletes link `index`; `Ok(false)` when it was already gone.
    fn delete_link(&mut self, index: u32) -> Result<bool, Error>;
    /// Adds `addr` to link `index`. IPv6 addresses are added with `IFA_F_NODAD`.
    fn add_address(&mut self, index: u32, addr: IpNet) -> Result<(), Error>;
    /// Removes `addr` from link `index`; `Ok(false)` when it was not there.
    fn delete_address(&mut self, index: u32, addr: IpNet) -> Result<bool, Error>;
    /// Every address of link `index`.
    fn addresses(&mut self, index: u32) -> Result<Vec<IpNet>, Error>;
    /// Adds a route (main table, protocol static).
    fn add_route(&mut self, route: &Route) -> Result<(), Error>;
    /// Removes a route (matched on destination, gateway, output link and metric); `Ok(false)`
    /// when there was no such route.
    fn delete_route(&mut self, route: &Route) -> Result<bool, Error>;
    /// The routes of the main table whose output interface is `index`, both families.
    fn routes(&mut self, index: u32) -> Result<Vec<Route>, Error>;
    /// The link of the IPv4 default route with the lowest metric (the CNI plugins' default
    /// `master`), if there is one.
    fn default_route_link(&mut self) -> Result<Option<u32>, Error>;
}

/// The host as the core sees it: a netlink socket in the caller's namespace, plus what it takes
/// to work inside another namespace.
pub trait Kernel {
    /// The netlink socket type.
    type Nl: Netlink;
    /// A handle that keeps a network namespace open.
    type Ns;
    /// Raw Ethernet frames on one link (conflict detection).
    type Frames: FrameSocket;

    /// The netlink socket of the caller's own namespace (the "host").
    fn host(&mut self) -> &mut Self::Nl;
    /// Opens the namespace at `path` (a bind mount like `/run/netns/NAME` or `/proc/PID/ns/net`).
    /// `Ok(None)` when nothing is there; an error when something is there but is not a netns.
    fn open_netns(&mut self, path: &std::path::Path) -> Result<Option<Self::Ns>, Error>;
    /// The caller's own namespace (the host), and a path that names it for other processes
    /// too (see [`Netns::host`]).
    fn host_netns(&mut self) -> Result<(Self::Ns, std::path::PathBuf), Error>;
    /// A netlink socket that lives in `ns`.
    fn netlink_in(&mut self, ns: &Self::Ns) -> Result<Self::Nl, Error>;
    /// Creates a macvlan on a parent of the host namespace directly inside `ns`, so that it never
    /// appears in the host namespace (`IFLA_NET_NS_FD` on `RTM_NEWLINK`).
    fn create_macvlan_in(&mut self, spec: &MacvlanSpec, ns: &Self::Ns) -> Result<(), Error>;
    /// Creates an ipvlan slave of a host parent directly inside `ns`, like
    /// [`Kernel::create_macvlan_in`].
    fn create_ipvlan_in(&mut self, spec: &IpvlanSpec, ns: &Self::Ns) -> Result<(), Error>;
    /// Creates an 802.1Q sub-interface of a host parent directly inside `ns`.
    fn create_vlan_in(&mut self, spec: &VlanSpec, ns: &Self::Ns) -> Result<(), Error>;
    /// Writes sysctls (`("net/ipv4/conf/eth0/arp_notify", "1")`, relative to `/proc/sys`) inside `ns`.
    fn sysctls_in(&mut self, ns: &Self::Ns, settings: &[(String, String)]) -> Result<(), Error>;
    /// A socket for raw Ethernet frames on link `ifindex` of `ns`.
    fn frame_socket_in(&mut self, ns: &Self::Ns, ifindex: u32) -> Result<Self::Frames, Error>;
    /// Identity of the namespace (`st_dev`, `st_ino` of its nsfs inode).
    fn netns_id(&mut self, ns: &Self::Ns) -> Result<(u64, u64), Error>;
    /// Makes sure the host hears of `ns`'s death (see [`RtNetlink::ensure_netns_id`]).
    fn watch_netns(&mut self, ns: &Self::Ns) -> Result<(), Error>;
}
