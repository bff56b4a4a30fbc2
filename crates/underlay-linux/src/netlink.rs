//! A synchronous `NETLINK_ROUTE` socket and the typed verbs of [`Netlink`] on top of it.
//!
//! One request is in flight at a time: every verb sends one message and reads the answer
//! before returning, so a verb costs one `sendto` plus one or a few `recv`s.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVlan, IpVlanFlags, IpVlanMode, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::{
    Error, IpNet, IpvlanFlag, IpvlanMode, IpvlanSpec, Link, MacvlanMode, MacvlanSpec, Netlink,
    Netns, Route, VlanSpec,
};

/// Large enough for any single rtnetlink message we ask for (stats are skipped) and for the
/// 32 KiB chunks the kernel fills during dumps.
const RECV_BUF_LEN: usize = 64 * 1024;
/// How often a dump that the kernel flagged `NLM_F_DUMP_INTR` is started again.
const DUMP_ATTEMPTS: usize = 4;
/// `IFNAMSIZ - 1`: no link name is longer.
const MAX_IFNAME_LEN: usize = 15;
const NLMSG_HDRLEN: usize = 16;
/// Set by the kernel on an `NLMSG_ERROR` that carries extended-ack TLVs.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// Set by the kernel on an `NLMSG_ERROR` whose copy of the request is only its header.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLMSGERR_ATTR_MSG`: the kernel's human-readable reason for an error.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A `NETLINK_ROUTE` socket bound to the network namespace it was opened in.
///
/// A netlink socket belongs to the namespace of the thread that created it, for its whole
/// life, whichever thread uses it later; see [`RtNetlink::open_in`].
pub struct RtNetlink {
    socket: Socket,
    sequence: u32,
    recv_buf: Vec<u8>,
}

impl std::fmt::Debug for RtNetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtNetlink")
            .field("fd", &self.socket.as_raw_fd())
            .finish()
    }
}

/// When the answer to a request is complete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The `NLMSG_ERROR` with code 0 that `NLM_F_ACK` asks for.
    Ack,
    /// `NLMSG_DONE`, the end of a dump.
    Done,
    /// The first message that is not part of a multi-part answer (a `doit` "get").
    Reply,
}

/// What a request brought back.
struct Answer {
    messages: Vec<RouteNetlinkMessage>,
    /// Some part carried `NLM_F_DUMP_INTR`: the dumped table changed under the dump.
    interrupted: bool,
}

impl RtNetlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> Result<Self, Error> {
        let fail = |source| Error::Kernel {
            op: "open rtnetlink socket".to_string(),
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        // Strict checking lets the kernel filter dumps (addresses by index, routes by table,
        // type and output interface) instead of sending everything to be filtered here.
        socket.set_netlink_get_strict_chk(true).map_err(fail)?;
        // Errors then carry the kernel's reason ("Invalid MTU ...") but not the whole request.
        socket.set_ext_ack(true).map_err(fail)?;
        socket.set_cap_ack(true).map_err(fail)?;
        Ok(RtNetlink {
            socket,
            sequence: 0,
            recv_buf: Vec::with_capacity(RECV_BUF_LEN),
        })
    }

    /// Opens a socket that lives in `ns`.
    ///
    /// The socket is created on a short-lived thread that joined `ns`; it stays in `ns` after
    /// that thread is gone, so the caller's threads never change namespace.
    pub fn open_in(ns: &Netns) -> Result<Self, Error> {
        ns.run(Self::open)?
    }

    /// Creates a macvlan on parent `spec.parent` of this socket's namespace directly inside
    /// `ns` (`IFLA_NET_NS_FD`), so it never shows up in this namespace.
    pub fn create_macvlan_in(&mut self, spec: &MacvlanSpec, ns: &Netns) -> Result<(), Error> {
        let op = format!("create macvlan {} on parent {}", spec.name, spec.parent);
        self.create_link(&op, macvlan_message(spec, Some(ns.as_fd())))
    }

    /// Creates an ipvlan slave of parent `spec.parent` of this socket's namespace directly
    /// inside `ns`.
    pub fn create_ipvlan_in(&mut self, spec: &IpvlanSpec, ns: &Netns) -> Result<(), Error> {
        let op = format!("create ipvlan {} on parent {}", spec.name, spec.parent);
        self.create_link(&op, ipvlan_message(spec, Some(ns.as_fd())))
    }

    /// Creates an 802.1Q sub-interface of parent `spec.parent` of this socket's namespace
    /// directly inside `ns` (the CNI `vlan` plugin's container interface).
    pub fn create_vlan_in(&mut self, spec: &VlanSpec, ns: &Netns) -> Result<(), Error> {
        let op = format!(
            "create vlan {} (id {}) on parent {}",
            spec.name, spec.id, spec.parent
        );
        let mut message = vlan_message(spec);
        message
            .attributes
            .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        self.create_link(&op, message)
    }

    /// Gives `ns` an id in this socket's namespace (`RTM_NEWNSID`, as `ip netns set NAME auto`)
    /// unless it has one. With an id, its death is announced here (`RTM_DELNSID`, see
    /// [`crate::LinkEvent::NetnsGone`]). The kernel makes such an id by itself only when a link
    /// moves out of this namespace, not for one created straight inside the other.
    pub fn ensure_netns_id(&mut self, ns: &Netns) -> Result<(), Error> {
        let mut message = NsidMessage::default();
        message.attributes.extend([
            NsidAttribute::Fd(ns.as_fd().as_raw_fd() as u32),
            NsidAttribute::Id(-1), // any free id
        ]);
        match self.request(
            "give a netns an id",
            RouteNetlinkMessage::NewNsId(message),
            0,
        ) {
            Err(e) if e.errno() == Some(nix::libc::EEXIST) => Ok(()), // it has one
            other => other,
        }
    }

    /// `RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL`: an existing name is `EEXIST`.
    fn create_link(&mut self, op: &str, message: LinkMessage) -> Result<(), Error> {
        self.request(
            op,
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Sends `message` and waits for the kernel's acknowledgement.
    fn request(&mut self, op: &str, message: RouteNetlinkMessage, flags: u16) -> Result<(), Error> {
        self.exchange(op, message, NLM_F_REQUEST | NLM_F_ACK | flags, Until::Ack)
            .map(drop)
    }

    /// Sends a "get" for one object and returns the kernel's answer, `None` when the kernel
    /// answered `ENODEV` (no such link).
    fn get_one(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
    ) -> Result<Option<RouteNetlinkMessage>, Error> {
        match self.exchange(op, message, NLM_F_REQUEST, Until::Reply) {
            Ok(answer) => Ok(answer.messages.into_iter().next()),
            Err(error) if error.errno() == Some(nix::libc::ENODEV) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Dumps a table, starting again when the kernel says the table changed during the dump.
    fn dump(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let answer =
                self.exchange(op, message.clone(), NLM_F_REQUEST | NLM_F_DUMP, Until::Done)?;
            if !answer.interrupted {
                return Ok(answer.messages);
            }
            tracing::debug!(op, attempt, "netlink dump interrupted, starting again");
        }
        Err(Error::Kernel {
            op: format!("{op} (interrupted {DUMP_ATTEMPTS} times)"),
            source: io::Error::from_raw_os_error(nix::libc::EINTR),
        })
    }

    fn exchange(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
        flags: u16,
        until: Until,
    ) -> Result<Answer, Error> {
        let sequence = self.send(op, message, flags)?;
        let mut answer = Answer {
            messages: Vec::new(),
            interrupted: false,
        };
        loop {
            let len = self.receive(op)?;
            if read_parts(op, &self.recv_buf[..len], sequence, until, &mut answer)? {
                return Ok(answer);
            }
        }
    }

    fn send(&mut self, op: &str, message: RouteNetlinkMessage, flags: u16) -> Result<u32, Error> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(|source| Error::Kernel {
            op: op.to_string(),
            source,
        })?;
        Ok(self.sequence)
    }

    /// Reads one datagram into `recv_buf` and returns its length.
    fn receive(&mut self, op: &str) -> Result<usize, Error> {
        loop {
            self.recv_buf.clear();
            // MSG_TRUNC makes recv report the datagram's real length, so truncation is seen.
            match self.socket.recv(&mut self.recv_buf, nix::libc::MSG_TRUNC) {
                Ok(len) if len > self.recv_buf.len() => {
                    return Err(Error::Protocol {
                        op: op.to_string(),
                        detail: format!("a {len} byte datagram did not fit the receive buffer"),
                    })
                }
                Ok(len) => return Ok(len),
                Err(source) if source.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::Kernel {
                        op: op.to_string(),
                        source,
                    })
                }
            }
        }
    }
}

/// Adds the parts of one datagram that answer request `sequence` to `answer`; true once the
/// answer is complete.
fn read_parts(
    op: &str,
    datagram: &[u8],
    sequence: u32,
    until: Until,
    answer: &mut Answer,
) -> Result<bool, Error> {
    let mut offset = 0;
    while offset + NLMSG_HDRLEN <= datagram.len() {
        let rest = &datagram[offset..];
        let (len, flags, part_sequence) = part_header(op, rest)?;
        offset += align4(len);
        if part_sequence != sequence {
            // A late answer to an earlier request that was given up on (an error mid-dump).
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            answer.interrupted = true;
        }
        if read_part(op, &rest[..len], flags, until, answer)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Length, flags and sequence number of the netlink message at the start of `bytes`.
fn part_header(op: &str, bytes: &[u8]) -> Result<(usize, u16, u32), Error> {
    let protocol = |detail: String| Error::Protocol {
        op: op.to_string(),
        detail,
    };
    let buffer = NetlinkBuffer::new_checked(bytes)
        .map_err(|error| protocol(format!("bad netlink header: {error}")))?;
    let len = buffer.length() as usize;
    if len < NLMSG_HDRLEN {
        return Err(protocol(format!("netlink message of length {len}")));
    }
    Ok((len, buffer.flags(), buffer.sequence_number()))
}

/// Handles one message of the answer; true once the answer is complete.
fn read_part(
    op: &str,
    bytes: &[u8],
    flags: u16,
    until: Until,
    answer: &mut Answer,
) -> Result<bool, Error> {
    let message = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
        Ok(message) => message,
        // One object the parser does not understand must not hide all the others of a dump.
        Err(error) if until == Until::Done => {
            tracing::warn!(op, %error, "skipping an rtnetlink message that does not parse");
            return Ok(false);
        }
        Err(error) => {
            return Err(Error::Protocol {
                op: op.to_string(),
                detail: error.to_string(),
            })
        }
    };
    match message.payload {
        NetlinkPayload::Error(error) => match error.code {
            Some(code) => Err(kernel_error(op, code.get(), flags, &error.header)),
            None => Ok(until == Until::Ack),
        },
        // A dump that fails half-way ends with NLMSG_DONE carrying the negative errno.
        NetlinkPayload::Done(done) if done.code < 0 => Err(kernel_error(op, done.code, 0, &[])),
        NetlinkPayload::Done(_) => Ok(true),
        NetlinkPayload::InnerMessage(inner) => {
            answer.messages.push(inner);
            Ok(until == Until::Reply && flags & NLM_F_MULTIPART == 0)
        }
        NetlinkPayload::Noop => Ok(false),
        NetlinkPayload::Overrun(_) => Err(Error::Protocol {
            op: op.to_string(),
            detail: "receive buffer overrun".to_string(),
        }),
        _ => Ok(false),
    }
}

/// An `NLMSG_ERROR`'s negative errno as an error, with the kernel's extended-ack message
/// appended to `op` when there is one.
fn kernel_error(op: &str, code: i32, flags: u16, payload: &[u8]) -> Error {
    let op = match extended_ack_message(flags, payload) {
        Some(reason) => format!("{op} (kernel says: {reason})"),
        None => op.to_string(),
    };
    Error::Kernel {
        op,
        source: io::Error::from_raw_os_error(code.saturating_neg()),
    }
}

/// `NLMSGERR_ATTR_MSG` from the TLVs that follow the copy of the request in an `NLMSG_ERROR`.
fn extended_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < NLMSG_HDRLEN {
        return None;
    }
    let copied_request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(payload[..4].try_into().ok()?) as usize;
        align4(len)
    };
    let tlvs = payload.get(copied_request_len..)?;
    NlasIterator::new(tlvs)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value();
            let text = text.split(|byte| *byte == 0).next().unwrap_or(text);
            String::from_utf8_lossy(text).into_owned()
        })
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

// ---------------------------------------------------------------------------------------------
// Links

/// `IFLA_EXT_MASK` asking the kernel to leave out the link statistics (about 500 bytes per link
/// we never read).
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

fn link_by_index_message(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message
}

/// A new link named `name` of `kind` on `parent`, optionally created inside another netns.
fn child_link_message(
    name: &str,
    parent: u32,
    info: Vec<LinkInfo>,
    target_ns: Option<BorrowedFd<'_>>,
) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.attributes = vec![
        LinkAttribute::IfName(name.to_string()),
        LinkAttribute::Link(parent),
        LinkAttribute::LinkInfo(info),
    ];
    if let Some(fd) = target_ns {
        // The kernel resolves IFLA_LINK (the parent) in the socket's namespace but creates
        // the new link in the namespace of this fd: the link is born in the container and
        // never appears on the host, so nothing on the host can race with it.
        message
            .attributes
            .push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
    }
    message
}

fn macvlan_message(spec: &MacvlanSpec, target_ns: Option<BorrowedFd<'_>>) -> LinkMessage {
    let info = vec![
        LinkInfo::Kind(InfoKind::MacVlan),
        LinkInfo::Data(InfoData::MacVlan(
            std::iter::once(InfoMacVlan::Mode(to_packet_mode(spec.mode)))
                .chain(spec.bc_queue_len.map(InfoMacVlan::BcQueueLen))
                .collect(),
        )),
    ];
    let mut message = child_link_message(&spec.name, spec.parent, info, target_ns);
    if let Some(mac) = spec.mac {
        message
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(mtu) = spec.mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    message
}

fn ipvlan_message(spec: &IpvlanSpec, target_ns: Option<BorrowedFd<'_>>) -> LinkMessage {
    let info = vec![
        LinkInfo::Kind(InfoKind::IpVlan),
        LinkInfo::Data(InfoData::IpVlan(vec![
            InfoIpVlan::Mode(to_ipvlan_mode(spec.mode)),
            InfoIpVlan::Flags(to_ipvlan_flags(spec.flag)),
        ])),
    ];
    let mut message = child_link_message(&spec.name, spec.parent, info, target_ns);
    if let Some(mtu) = spec.mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    message
}

fn vlan_message(spec: &VlanSpec) -> LinkMessage {
    let info = vec![
        LinkInfo::Kind(InfoKind::Vlan),
        LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(spec.id)])),
    ];
    let mut message = child_link_message(&spec.name, spec.parent, info, None);
    if let Some(mtu) = spec.mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    message
}

fn dummy_message(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.attributes = vec![
        LinkAttribute::IfName(name.to_string()),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Dummy)]),
    ];
    message
}

fn to_ipvlan_mode(mode: IpvlanMode) -> IpVlanMode {
    match mode {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
        IpvlanMode::L3s => IpVlanMode::L3S,
    }
}

fn from_ipvlan_mode(mode: IpVlanMode) -> Option<IpvlanMode> {
    match mode {
        IpVlanMode::L2 => Some(IpvlanMode::L2),
        IpVlanMode::L3 => Some(IpvlanMode::L3),
        IpVlanMode::L3S => Some(IpvlanMode::L3s),
        _ => None,
    }
}

/// `IPVLAN_F_PRIVATE` and `IPVLAN_F_VEPA` are exclusive; no flag is "bridge".
fn to_ipvlan_flags(flag: IpvlanFlag) -> IpVlanFlags {
    match flag {
        IpvlanFlag::Bridge => IpVlanFlags::empty(),
        IpvlanFlag::Private => IpVlanFlags::Private,
        IpvlanFlag::Vepa => IpVlanFlags::Vepa,
    }
}

fn from_ipvlan_flags(flags: IpVlanFlags) -> IpvlanFlag {
    if flags.contains(IpVlanFlags::Private) {
        IpvlanFlag::Private
    } else if flags.contains(IpVlanFlags::Vepa) {
        IpvlanFlag::Vepa
    } else {
        IpvlanFlag::Bridge
    }
}

fn to_packet_mode(mode: MacvlanMode) -> MacVlanMode {
    match mode {
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

fn from_packet_mode(mode: MacVlanMode) -> Option<MacvlanMode> {
    match mode {
        MacVlanMode::Private => Some(MacvlanMode::Private),
        MacVlanMode::Vepa => Some(MacvlanMode::Vepa),
        MacVlanMode::Bridge => Some(MacvlanMode::Bridge),
        MacVlanMode::Passthrough => Some(MacvlanMode::Passthru),
        MacVlanMode::Source => Some(MacvlanMode::Source),
        _ => None,
    }
}

/// The [`Link`] a `RTM_NEWLINK` message describes; `None` when it has no name.
pub(crate) fn link_from_message(message: LinkMessage) -> Option<Link> {
    let flags = message.header.flags;
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        loopback: flags.contains(LinkFlags::Loopback),
        parent: None,
        macvlan_mode: None,
        ipvlan: None,
        vlan_id: None,
        alias: None,
    };
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Address(bytes) => link.mac = bytes.as_slice().try_into().ok(),
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Link(parent) => link.parent = Some(parent),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias).filter(|a| !a.is_empty()),
            LinkAttribute::LinkInfo(infos) => read_link_info(infos, &mut link),
            _ => {}
        }
    }
    (!link.name.is_empty()).then_some(link)
}

fn read_link_info(infos: Vec<LinkInfo>, link: &mut Link) {
    for info in infos {
        match info {
            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
            LinkInfo::Data(InfoData::MacVlan(data)) => {
                link.macvlan_mode = data.into_iter().find_map(|item| match item {
                    InfoMacVlan::Mode(mode) => from_packet_mode(mode),
                    _ => None,
                });
            }
            LinkInfo::Data(InfoData::IpVlan(data)) => link.ipvlan = read_ipvlan(data),
            LinkInfo::Data(InfoData::Vlan(data)) => {
                link.vlan_id = data.into_iter().find_map(|item| match item {
                    InfoVlan::Id(id) => Some(id),
                    _ => None,
                });
            }
            _ => {}
        }
    }
}

fn read_ipvlan(data: Vec<InfoIpVlan>) -> Option<(IpvlanMode, IpvlanFlag)> {
    let mut mode = None;
    let mut flag = IpvlanFlag::Bridge;
    for item in data {
        match item {
            InfoIpVlan::Mode(m) => mode = from_ipvlan_mode(m),
            InfoIpVlan::Flags(f) => flag = from_ipvlan_flags(f),
            _ => {}
        }
    }
    mode.map(|m| (m, flag))
}

fn links_from_messages(messages: Vec<RouteNetlinkMessage>) -> Vec<Link> {
    messages
        .into_iter()
        .filter_map(|message| match message {
            RouteNetlinkMessage::NewLink(link) => link_from_message(link),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Addresses

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address_message(index: u32, net: IpNet) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family_of(net.addr);
    message.header.prefix_len = net.prefix;
    message.header.scope = AddressScope::Universe;
    message.header.index = index;
    match net.addr {
        IpAddr::V4(v4) => {
            // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer, which for a
            // non-point-to-point link is the same address.
            message.attributes.push(AddressAttribute::Local(net.addr));
            message.attributes.push(AddressAttribute::Address(net.addr));
            if let Some(broadcast) = ipv4_broadcast(v4, net.prefix) {
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(broadcast));
            }
        }
        IpAddr::V6(_) => {
            // No duplicate address detection: the address is usable at once instead of
            // staying "tentative" for a second or more.
            message.header.flags = AddressHeaderFlags::Nodad;
            message.attributes.push(AddressAttribute::Address(net.addr));
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    message
}

/// The broadcast address of `addr/prefix`; none for /31 and /32, which have no broadcast.
fn ipv4_broadcast(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(addr) | host_bits))
}

fn address_from_message(message: AddressMessage, index: u32) -> Option<IpNet> {
    if message.header.index != index {
        return None;
    }
    let mut local = None;
    let mut address = None;
    for attribute in message.attributes {
        match attribute {
            AddressAttribute::Local(addr) => local = Some(addr),
            AddressAttribute::Address(addr) => address = Some(addr),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is our address (IFA_ADDRESS may be a peer); IPv6 only has IFA_ADDRESS
    // unless a peer was configured.
    local.or(address).map(|addr| IpNet {
        addr,
        prefix: message.header.prefix_len,
    })
}

// ---------------------------------------------------------------------------------------------
// Routes

fn route_message(route: &Route) -> RouteMessage {
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = family_of(route.dst.addr);
    header.destination_prefix_length = route.dst.prefix;
    header.table = RouteHeader::RT_TABLE_MAIN;
    header.protocol = RouteProtocol::Static;
    header.scope = match route.gateway {
        Some(_) => RouteScope::Universe,
        None => RouteScope::Link,
    };
    header.kind = RouteType::Unicast;
    if route.dst.prefix > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(route.dst.addr.into()));
    }
    if let Some(gateway) = route.gateway {
        message
            .attributes
            .push(RouteAttribute::Gateway(gateway.into()));
    }
    message.attributes.push(RouteAttribute::Oif(route.oif));
    message
        .attributes
        .push(RouteAttribute::Priority(route.metric));
    message
}

/// A dump request for the unicast routes of the main table through link `index`; with strict
/// checking the kernel does the filtering.
/// A dump of the main table's unicast routes of one family, of link `oif` or of all links.
fn route_dump_request(family: AddressFamily, oif: Option<u32>) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family;
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.kind = RouteType::Unicast;
    if let Some(index) = oif {
        message.attributes.push(RouteAttribute::Oif(index));
    }
    message
}

fn unspecified(family: AddressFamily) -> Option<IpAddr> {
    match family {
        AddressFamily::Inet => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        AddressFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    }
}

fn ip_of(address: RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

/// The [`Route`] a `RTM_NEWROUTE` message describes, when it is a unicast route of the main
/// table of `family` through link `index`.
/// The route a message describes, if it is a main-table unicast route of `family` (through link
/// `wanted_oif` when given).
fn route_from_message(
    message: RouteMessage,
    family: AddressFamily,
    wanted_oif: Option<u32>,
) -> Option<Route> {
    let header = &message.header;
    if header.address_family != family || header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(header.table);
    let mut dst = unspecified(family)?;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    for attribute in message.attributes {
        match attribute {
            RouteAttribute::Table(id) => table = id,
            RouteAttribute::Destination(address) => dst = ip_of(address)?,
            RouteAttribute::Gateway(address) => gateway = ip_of(address),
            RouteAttribute::Oif(link) => oif = Some(link),
            RouteAttribute::Priority(priority) => metric = priority,
            _ => {}
        }
    }
    let main_table = u32::from(RouteHeader::RT_TABLE_MAIN);
    let oif = oif?;
    (table == main_table && wanted_oif.is_none_or(|w| w == oif)).then_some(Route {
        dst: IpNet {
            addr: dst,
            prefix: message.header.destination_prefix_length,
        },
        gateway,
        oif,
        metric,
    })
}

// ---------------------------------------------------------------------------------------------
// The verbs

impl Netlink for RtNetlink {
    fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, Error> {
        if name.is_empty() || name.len() > MAX_IFNAME_LEN {
            return Ok(None); // the kernel cannot hold such a name, so no such link exists
        }
        let mut message = LinkMessage::default();
        message.attributes = vec![LinkAttribute::IfName(name.to_string()), skip_stats()];
        let op = format!("get link {name}");
        let answer = self.get_one(&op, RouteNetlinkMessage::GetLink(message))?;
        Ok(answer.and_then(|message| links_from_messages(vec![message]).pop()))
    }

    fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, Error> {
        let mut message = link_by_index_message(index);
        message.attributes.push(skip_stats());
        let op = format!("get link {index}");
        let answer = self.get_one(&op, RouteNetlinkMessage::GetLink(message))?;
        Ok(answer.and_then(|message| links_from_messages(vec![message]).pop()))
    }

    fn links(&mut self) -> Result<Vec<Link>, Error> {
        let mut message = LinkMessage::default();
        message.attributes.push(skip_stats());
        let messages = self.dump("list links", RouteNetlinkMessage::GetLink(message))?;
        Ok(links_from_messages(messages))
    }

    fn create_macvlan(&mut self, spec: &MacvlanSpec) -> Result<(), Error> {
        let op = format!("create macvlan {} on parent {}", spec.name, spec.parent);
        self.create_link(&op, macvlan_message(spec, None))
    }

    fn create_ipvlan(&mut self, spec: &IpvlanSpec) -> Result<(), Error> {
        let op = format!("create ipvlan {} on parent {}", spec.name, spec.parent);
        self.create_link(&op, ipvlan_message(spec, None))
    }

    fn create_vlan(&mut self, spec: &VlanSpec) -> Result<(), Error> {
        let op = format!(
            "create vlan {} (id {}) on parent {}",
            spec.name, spec.id, spec.parent
        );
        self.create_link(&op, vlan_message(spec))
    }

    fn create_dummy(&mut self, name: &str) -> Result<(), Error> {
        self.create_link(&format!("create dummy {name}"), dummy_message(name))
    }

    fn set_alias(&mut self, index: u32, alias: &str) -> Result<(), Error> {
        let mut message = link_by_index_message(index);
        message
            .attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        let op = format!("set alias of link {index}");
        self.request(&op, RouteNetlinkMessage::SetLink(message), 0)
    }

    fn rename_link(&mut self, index: u32, name: &str) -> Result<(), Error> {
        let mut message = link_by_index_message(index);
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        let op = format!("rename link {index} to {name}");
        self.request(&op, RouteNetlinkMessage::SetLink(message), 0)
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), Error> {
        let mut message = link_by_index_message(index);
        message.attributes.push(LinkAttribute::Mtu(mtu));
        let op = format!("set mtu of link {index} to {mtu}");
        self.request(&op, RouteNetlinkMessage::SetLink(message), 0)
    }

    fn set_up(&mut self, index: u32) -> Result<(), Error> {
        let mut message = link_by_index_message(index);
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        let op = format!("set link {index} up");
        self.request(&op, RouteNetlinkMessage::SetLink(message), 0)
    }

    fn delete_link(&mut self, index: u32) -> Result<bool, Error> {
        let message = link_by_index_message(index);
        let op = format!("delete link {index}");
        match self.request(&op, RouteNetlinkMessage::DelLink(message), 0) {
            Ok(()) => Ok(true),
            Err(error) if error.errno() == Some(nix::libc::ENODEV) => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn add_address(&mut self, index: u32, addr: IpNet) -> Result<(), Error> {
        let message = address_message(index, addr);
        let op = format!("add address {addr} to link {index}");
        self.request(
            &op,
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    fn delete_address(&mut self, index: u32, addr: IpNet) -> Result<bool, Error> {
        let message = address_message(index, addr);
        let op = format!("delete address {addr} from link {index}");
        absent_is_false(self.request(&op, RouteNetlinkMessage::DelAddress(message), 0))
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<IpNet>, Error> {
        // One dump for both families; with strict checking the kernel only sends the
        // addresses of `index` (ifa_index is a filter), and ENODEV when there is no such link.
        let mut request = AddressMessage::default();
        request.header.index = index;
        let op = format!("list addresses of link {index}");
        let messages = match self.dump(&op, RouteNetlinkMessage::GetAddress(request)) {
            Err(error) if error.errno() == Some(nix::libc::ENODEV) => return Ok(Vec::new()),
            other => other?,
        };
        Ok(messages
            .into_iter()
            .filter_map(|message| match message {
                RouteNetlinkMessage::NewAddress(address) => address_from_message(address, index),
                _ => None,
            })
            .collect())
    }

    fn add_route(&mut self, route: &Route) -> Result<(), Error> {
        let message = route_message(route);
        let via = route
            .gateway
            .map(|gateway| format!(" via {gateway}"))
            .unwrap_or_default();
        let op = format!(
            "add route {}{via} dev {} metric {}",
            route.dst, route.oif, route.metric
        );
        self.request(
            &op,
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    fn delete_route(&mut self, route: &Route) -> Result<bool, Error> {
        let op = format!("delete route {} dev {}", route.dst, route.oif);
        absent_is_false(self.request(&op, RouteNetlinkMessage::DelRoute(route_message(route)), 0))
    }

    fn routes(&mut self, index: u32) -> Result<Vec<Route>, Error> {
        self.dump_routes(Some(index))
    }

    fn default_route_link(&mut self) -> Result<Option<u32>, Error> {
        let routes = self.dump_routes(None)?;
        Ok(routes
            .iter()
            .filter(|r| r.dst.prefix == 0 && r.dst.addr.is_ipv4())
            .min_by_key(|r| r.metric)
            .map(|r| r.oif))
    }
}

/// Deleting what is already gone succeeds: the kernel says EADDRNOTAVAIL for an address,
/// ESRCH for a route and ENODEV when the whole link went.
fn absent_is_false(result: Result<(), Error>) -> Result<bool, Error> {
    match result {
        Ok(()) => Ok(true),
        Err(error)
            if matches!(
                error.errno(),
                Some(nix::libc::EADDRNOTAVAIL | nix::libc::ESRCH | nix::libc::ENODEV)
            ) =>
        {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

impl RtNetlink {
    /// The main table's unicast routes, both families, of link `oif` or of all links.
    fn dump_routes(&mut self, oif: Option<u32>) -> Result<Vec<Route>, Error> {
        // One dump per family: an AF_UNSPEC route dump would also ask every other family
        // (MPLS, multicast routing) that may reject the filters.
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let op = format!("list {family:?} routes");
            let request = RouteNetlinkMessage::GetRoute(route_dump_request(family, oif));
            let messages = match self.dump(&op, request) {
                Err(error) if error.errno() == Some(nix::libc::ENODEV) => return Ok(Vec::new()),
                // IPv6 disabled on this host (ipv6.disable=1): there are no IPv6 routes.
                Err(error)
                    if family == AddressFamily::Inet6
                        && error.errno() == Some(nix::libc::EAFNOSUPPORT) =>
                {
                    continue
                }
                other => other?,
            };
            routes.extend(messages.into_iter().filter_map(|message| match message {
                RouteNetlinkMessage::NewRoute(route) => route_from_message(route, family, oif),
                _ => None,
            }));
        }
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_of_a_slash_24() {
        let addr = Ipv4Addr::new(192, 0, 2, 5);
        assert_eq!(
            ipv4_broadcast(addr, 24),
            Some(Ipv4Addr::new(192, 0, 2, 255))
        );
        assert_eq!(ipv4_broadcast(addr, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(ipv4_broadcast(addr, 31), None);
        assert_eq!(ipv4_broadcast(addr, 32), None);
    }

    #[test]
    fn modes_round_trip() {
        for mode in [
            MacvlanMode::Private,
            MacvlanMode::Vepa,
            MacvlanMode::Bridge,
            MacvlanMode::Passthru,
            MacvlanMode::Source,
        ] {
            assert_eq!(from_packet_mode(to_packet_mode(mode)), Some(mode));
            assert_eq!(to_packet_mode(mode).to_string(), mode.as_str());
        }
    }

    #[test]
    fn macvlan_message_carries_everything_asked() {
        let spec = MacvlanSpec {
            name: "ul1".to_string(),
            parent: 7,
            mode: MacvlanMode::Vepa,
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: Some(1400),
            bc_queue_len: None,
        };
        let attributes = macvlan_message(&spec, None).attributes;
        assert!(attributes.contains(&LinkAttribute::IfName("ul1".to_string())));
        assert!(attributes.contains(&LinkAttribute::Link(7)));
        assert!(attributes.contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1])));
        assert!(attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(!attributes
            .iter()
            .any(|attribute| matches!(attribute, LinkAttribute::NetNsFd(_))));
    }

    #[test]
    fn ipvlan_messages_round_trip_every_mode_and_flag() {
        for mode in [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s] {
            for flag in [IpvlanFlag::Bridge, IpvlanFlag::Private, IpvlanFlag::Vepa] {
                let spec = IpvlanSpec {
                    name: "ul2".to_string(),
                    parent: 3,
                    mode,
                    flag,
                    mtu: None,
                };
                let message = ipvlan_message(&spec, None);
                assert!(message.attributes.contains(&LinkAttribute::Link(3)));
                let link = link_from_message(message).unwrap();
                assert_eq!(link.kind.as_deref(), Some("ipvlan"));
                assert_eq!(link.ipvlan, Some((mode, flag)), "{mode:?} {flag:?}");
            }
        }
    }

    #[test]
    fn vlan_and_dummy_messages() {
        let spec = VlanSpec {
            name: "eth0.100".to_string(),
            parent: 2,
            id: 100,
            mtu: None,
        };
        let link = link_from_message(vlan_message(&spec)).unwrap();
        assert_eq!(
            (link.kind.as_deref(), link.vlan_id, link.parent),
            (Some("vlan"), Some(100), Some(2))
        );
        let dummy = link_from_message(dummy_message("dm-0123")).unwrap();
        assert_eq!((dummy.kind.as_deref(), dummy.parent), (Some("dummy"), None));
    }

    #[test]
    fn an_empty_alias_is_no_alias() {
        let mut message = dummy_message("d0");
        message
            .attributes
            .push(LinkAttribute::IfAlias(String::new()));
        assert_eq!(link_from_message(message).unwrap().alias, None);
        let mut message = dummy_message("d0");
        message
            .attributes
            .push(LinkAttribute::IfAlias("underlay:ab".to_string()));
        assert_eq!(
            link_from_message(message).unwrap().alias.as_deref(),
            Some("underlay:ab")
        );
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let route = Route {
            dst: IpNet {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                prefix: 0,
            },
            gateway: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            oif: 3,
            metric: u32::MAX,
        };
        let message = route_message(&route);
        assert_eq!(message.header.scope, RouteScope::Universe);
        assert!(!message
            .attributes
            .iter()
            .any(|attribute| matches!(attribute, RouteAttribute::Destination(_))));
        assert!(message
            .attributes
            .contains(&RouteAttribute::Priority(u32::MAX)));
    }

    #[test]
    fn parsed_route_defaults_metric_to_zero() {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet6;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.kind = RouteType::Unicast;
        message.header.destination_prefix_length = 0;
        message.attributes.push(RouteAttribute::Oif(4));
        let route = route_from_message(message.clone(), AddressFamily::Inet6, Some(4));
        assert_eq!(
            route,
            Some(Route {
                dst: IpNet {
                    addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    prefix: 0
                },
                gateway: None,
                oif: 4,
                metric: 0,
            })
        );
        assert_eq!(
            route_from_message(message.clone(), AddressFamily::Inet6, Some(5)),
            None
        );
        message.header.kind = RouteType::Local;
        assert_eq!(
            route_from_message(message, AddressFamily::Inet6, Some(4)),
            None
        );
    }

    #[test]
    fn extended_ack_message_is_found_after_a_capped_request() {
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        let text = b"Invalid MTU\0";
        let nla_len = 4 + text.len();
        payload.extend_from_slice(&(nla_len as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        payload.resize(align4(payload.len()), 0);
        let message = extended_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload);
        assert_eq!(message.as_deref(), Some("Invalid MTU"));
        assert_eq!(extended_ack_message(NLM_F_CAPPED, &payload), None);
    }

    fn part(sequence: u32, flags: u16, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = sequence;
        header.flags = flags;
        let mut message = NetlinkMessage::new(header, payload);
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn link_part(sequence: u32, flags: u16, name: &str) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.attributes
            .push(LinkAttribute::IfName(name.to_string()));
        part(
            sequence,
            flags,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)),
        )
    }

    fn error_part(sequence: u32, code: i32) -> Vec<u8> {
        let mut error = netlink_packet_core::ErrorMessage::default();
        error.code = std::num::NonZeroI32::new(code);
        part(sequence, 0, NetlinkPayload::Error(error))
    }

    fn empty_answer() -> Answer {
        Answer {
            messages: Vec::new(),
            interrupted: false,
        }
    }

    #[test]
    fn dump_parts_are_collected_until_done_skipping_stale_answers() {
        let mut datagram = link_part(6, NLM_F_MULTIPART, "stale");
        datagram.extend(link_part(7, NLM_F_MULTIPART, "a"));
        datagram.extend(link_part(7, NLM_F_MULTIPART | NLM_F_DUMP_INTR, "b"));
        let mut answer = empty_answer();
        let done = read_parts("dump", &datagram, 7, Until::Done, &mut answer).expect("parts");
        assert!(!done, "no NLMSG_DONE yet");
        assert!(answer.interrupted);
        let names: Vec<String> = links_from_messages(answer.messages.clone())
            .into_iter()
            .map(|link| link.name)
            .collect();
        assert_eq!(names, ["a", "b"]);

        let done_part = part(
            7,
            NLM_F_MULTIPART,
            NetlinkPayload::Done(netlink_packet_core::DoneMessage::default()),
        );
        assert!(read_parts("dump", &done_part, 7, Until::Done, &mut answer).expect("done"));
    }

    #[test]
    fn negative_error_code_becomes_the_errno() {
        let mut answer = empty_answer();
        let error = read_parts(
            "get link x",
            &error_part(3, -19),
            3,
            Until::Reply,
            &mut answer,
        )
        .expect_err("ENODEV");
        assert_eq!(error.errno(), Some(nix::libc::ENODEV));
        assert!(error.to_string().starts_with("get link x: "), "{error}");
    }

    #[test]
    fn ack_completes_a_request_and_a_single_reply_completes_a_get() {
        let mut answer = empty_answer();
        let ack = error_part(4, 0);
        assert!(read_parts("set up", &ack, 4, Until::Ack, &mut answer).expect("ack"));
        let reply = link_part(5, 0, "eth0");
        assert!(read_parts("get", &reply, 5, Until::Reply, &mut answer).expect("reply"));
        assert_eq!(answer.messages.len(), 1);
    }
}
