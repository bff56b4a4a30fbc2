//! Link events: a netlink socket subscribed to `RTNLGRP_LINK` and `RTNLGRP_NSID`, for the
//! supervisor that watches parents go down, disappear and come back, and containers' network
//! namespaces go away.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::netlink::link_from_message;
use crate::{Error, Link, Netns};

/// `RTMGRP_LINK`: the multicast group of link announcements (RTM_NEWLINK/DELLINK).
const RTMGRP_LINK: u32 = 1;
/// `RTNLGRP_NSID` (28) as a bind mask: announcements of namespace ids (RTM_NEWNSID/DELNSID).
const RTMGRP_NSID: u32 = 1 << (28 - 1);
const RECV_BUF_LEN: usize = 256 * 1024;

/// What happened to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Created, or changed (flags, carrier, name...): the link as it is now.
    Changed(Link),
    /// Deleted.
    Removed(Link),
    /// A network namespace that had an id here died (see [`crate::RtNetlink::ensure_netns_id`]
    /// for how it gets one). The kernel announces the id's removal (RTM_DELNSID) from the dying
    /// namespace's cleanup: its links are gone by then, and the removal of a link in another
    /// namespace is never announced here.
    NetnsGone,
    /// The kernel dropped announcements (the socket's buffer overflowed, `ENOBUFS`): whoever
    /// keeps a picture of the links must read them all again.
    Lost,
}

/// Receives the link announcements of one network namespace.
pub struct LinkMonitor {
    socket: Socket,
    buf: Vec<u8>,
}

impl LinkMonitor {
    /// Subscribes in the calling thread's namespace.
    pub fn open() -> Result<LinkMonitor, Error> {
        let fail = |source| Error::Kernel {
            op: "subscribe to link events".to_string(),
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket
            .bind(&SocketAddr::new(0, RTMGRP_LINK | RTMGRP_NSID))
            .map_err(fail)?;
        socket.set_non_blocking(true).map_err(fail)?;
        Ok(LinkMonitor {
            socket,
            buf: Vec::with_capacity(RECV_BUF_LEN),
        })
    }

    /// Subscribes in `ns`.
    pub fn open_in(ns: &Netns) -> Result<LinkMonitor, Error> {
        ns.run(LinkMonitor::open)?
    }

    /// The events that arrived, waiting up to `timeout` for the first; empty on timeout.
    pub fn next(&mut self, timeout: Duration) -> Result<Vec<LinkEvent>, Error> {
        let op = "receive link events";
        let fail = |source| Error::Kernel {
            op: op.to_string(),
            source,
        };
        let mut events = self.drain().map_err(fail)?;
        if events.is_empty() && self.wait(timeout).map_err(fail)? {
            events = self.drain().map_err(fail)?;
        }
        Ok(events)
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        let millis = timeout.as_micros().div_ceil(1000).max(1);
        let ready = poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        )?;
        Ok(ready > 0)
    }

    /// Everything queued now.
    fn drain(&mut self) -> io::Result<Vec<LinkEvent>> {
        let mut events = Vec::new();
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => return Ok(events),
                Ok(len) => events.extend(parse_datagram(&self.buf[..len])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(events),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                    events.push(LinkEvent::Lost)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

/// The link events in one datagram; parts that do not parse are skipped.
fn parse_datagram(datagram: &[u8]) -> Vec<LinkEvent> {
    let mut events = Vec::new();
    let mut offset = 0;
    while offset < datagram.len() {
        let rest = &datagram[offset..];
        let Ok(buffer) = NetlinkBuffer::new_checked(rest) else {
            break;
        };
        let len = buffer.length() as usize;
        if len == 0 || len > rest.len() {
            break;
        }
        if let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]) {
            events.extend(link_event(message));
        }
        offset += (len + 3) & !3;
    }
    events
}

fn link_event(message: NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match message.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            link_from_message(link).map(LinkEvent::Changed)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
            link_from_message(link).map(LinkEvent::Removed)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNsId(_)) => Some(LinkEvent::NetnsGone),
        _ => None,
    }
}
