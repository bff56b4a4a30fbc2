//! Raw Ethernet frames on one link (`AF_PACKET`), for what the IP stack cannot do for us:
//! ARP probes from 0.0.0.0 and IPv6 duplicate address detection before an address is
//! committed (RFC 5227, RFC 4862), and DHCPv4 while the link has no address yet (a server's
//! unicast OFFER to an address we do not hold yet would be dropped by the IP layer).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::{Error, Netns};

/// `ETH_P_ALL` in network byte order: every protocol, as the socket's protocol and filter.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// Ethernet frames are at most this long without jumbo frames; larger ones are cut.
const MAX_FRAME: usize = 65_536;

/// Sends and receives whole Ethernet frames on the link it was bound to. [`FrameSocket`] is the
/// seam the core's conflict detection is written against.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

/// Whole Ethernet frames on one link: what conflict detection and the DHCPv4 driver need.
pub trait FrameSocket {
    /// Sends one frame (destination MAC first).
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), Error>;
    /// The next frame that arrived from the wire (our own transmissions are skipped), or
    /// `None` once `timeout` has passed.
    fn recv_frame(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, Error>;
}

impl PacketSocket {
    /// Opens a packet socket on link `ifindex` of the calling thread's network namespace.
    pub fn open(ifindex: u32) -> Result<PacketSocket, Error> {
        let fd = packet_fd().map_err(|e| kernel("open packet socket", e))?;
        enable_auxdata(&fd).map_err(|e| kernel("ask for packet auxdata", e))?;
        let socket = PacketSocket { fd, ifindex };
        socket
            .bind()
            .map_err(|e| kernel(&format!("bind packet socket to link {ifindex}"), e))?;
        Ok(socket)
    }

    /// Opens a packet socket on link `ifindex` of `ns`. Like netlink sockets, a packet socket
    /// belongs to the namespace it was created in, whichever thread uses it later.
    pub fn open_in(ns: &Netns, ifindex: u32) -> Result<PacketSocket, Error> {
        ns.run(|| PacketSocket::open(ifindex))?
    }

    /// The link the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn bind(&self) -> io::Result<()> {
        let addr = link_address(self.ifindex);
        // SAFETY: `addr` is a fully initialised sockaddr_ll that outlives the call, its size is
        // passed alongside, and `fd` is an open socket owned by `self`.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                sockaddr_ll_len(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        // Rounded up: a sub-millisecond wait must not become a busy loop of zero timeouts.
        let millis = timeout.as_micros().div_ceil(1000);
        let ready = poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        )?;
        Ok(ready > 0)
    }

    /// One frame from the socket's queue, or `None` when the queue is empty (the socket is
    /// non-blocking).
    fn read_one(&self, buf: &mut [u8]) -> io::Result<Option<Arrival>> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value for it.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 8]; // 64 bytes, 8-aligned: room for one tpacket_auxdata cmsg
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid value, filled in below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = sockaddr_ll_len();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in `msg` points at a live, writable buffer of the stated size
        // for the duration of the call, and `fd` is an open socket owned by `self`.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(error),
            };
        }
        Ok(Some(Arrival {
            len: (n as usize).min(buf.len()),
            outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
            ifindex: from.sll_ifindex,
            checksum_offloaded: checksum_not_ready(&msg),
        }))
    }

    /// Like [`FrameSocket::recv_frame`], also telling whether the frame's transport checksum was
    /// left to offload by a sender on this host (`TP_STATUS_CSUMNOTREADY`): such a checksum
    /// field was never filled in and must not be verified.
    pub fn recv_frame_offload(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Vec<u8>, bool)>, Error> {
        let op = format!("receive frame on link {}", self.ifindex);
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            while let Some(arrival) = self.read_one(&mut buf).map_err(|e| kernel(&op, e))? {
                // A packet socket also sees what this host sends (PACKET_OUTGOING); the link
                // check is belt and braces, as bind() is what first hooks the socket up.
                if !arrival.outgoing && arrival.ifindex == self.ifindex as i32 {
                    buf.truncate(arrival.len);
                    return Ok(Some((buf, arrival.checksum_offloaded)));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.wait_readable(left).map_err(|e| kernel(&op, e))? {
                return Ok(None);
            }
        }
    }
}

struct Arrival {
    len: usize,
    outgoing: bool,
    ifindex: i32,
    checksum_offloaded: bool,
}

/// Asks for a `tpacket_auxdata` control message with every frame.
fn enable_auxdata(fd: &OwnedFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int whose size is passed alongside; `fd` is an open socket.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the auxdata of a received frame says its checksum is not filled in yet.
fn checksum_not_ready(msg: &libc::msghdr) -> bool {
    // SAFETY: `msg` was filled in by a successful recvmsg; the CMSG_* macros walk its control
    // buffer within `msg_controllen`, and the auxdata is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0;
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    false
}

impl FrameSocket for PacketSocket {
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        // SAFETY: `frame` is a readable buffer of `frame.len()` bytes and `fd` is an open
        // packet socket bound to one link, so `send` needs no address.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            let op = format!("send frame on link {}", self.ifindex);
            return Err(kernel(&op, io::Error::last_os_error()));
        }
        Ok(())
    }

    fn recv_frame(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.recv_frame_offload(timeout)?.map(|(frame, _)| frame))
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn packet_fd() -> io::Result<OwnedFd> {
    let kind = libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // Protocol 0: the socket hears nothing until bind() names the protocol and the link.
    // Created with ETH_P_ALL instead, bind() would first unhook the socket from every link,
    // which waits for an RCU grace period (~15 ms here), on every open.
    // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, kind, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn link_address(ifindex: u32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value for it.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ALL_BE;
    addr.sll_ifindex = ifindex as i32;
    addr
}

fn sockaddr_ll_len() -> libc::socklen_t {
    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t
}

fn kernel(op: &str, source: io::Error) -> Error {
    Error::Kernel {
        op: op.to_string(),
        source,
    }
}
