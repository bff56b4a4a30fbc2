//! UDP sockets bound to one link of a namespace: DHCP once the link has an address (renewals
//! are unicast to and from the leased address, and the kernel resolves the server's MAC), and
//! DHCPv6, which always speaks from the link-local address.

use std::ffi::OsString;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::{Error, Netns};

/// Opens a UDP socket in `ns`, tied to link `device` and bound to `bind`.
///
/// The device is set before `bind`: the kernel then lets sockets on different links share a
/// port (a container on two DHCP networks has two clients on port 68).
pub fn udp_socket_in(
    ns: &Netns,
    bind: SocketAddr,
    device: &str,
    broadcast: bool,
) -> Result<UdpSocket, Error> {
    ns.run(|| udp_socket(bind, device, broadcast))?
}

/// [`udp_socket_in`] for the calling thread's namespace.
pub fn udp_socket(bind: SocketAddr, device: &str, broadcast: bool) -> Result<UdpSocket, Error> {
    let op = format!("open udp socket {bind} on {device}");
    let fail = |errno: nix::errno::Errno| Error::Kernel {
        op: op.clone(),
        source: errno.into(),
    };
    let family = match bind {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd =
        socket::socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(fail)?;
    socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(device)).map_err(fail)?;
    if broadcast {
        socket::setsockopt(&fd, sockopt::Broadcast, &true).map_err(fail)?;
    }
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(bind),
    )
    .map_err(fail)?;
    Ok(UdpSocket::from(fd))
}
