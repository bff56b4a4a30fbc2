//! Moving the DHCP clients' datagrams: DHCPv4 as raw frames while the link has no address
//! (from 0.0.0.0, and a unicast OFFER to an address we do not hold yet still reaches us), as
//! UDP from the leased address afterwards (renewals, release); DHCPv6 as UDP from the link-local
//! address. Every socket is created inside the container's netns.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use underlay_dhcp::frame::{parse_udp4, parse_udp4_offloaded, udp4_frame};
use underlay_dhcp::v4::{Transmit4, CLIENT_PORT, SERVER_PORT};
use underlay_dhcp::v6::{self, Transmit6};
use underlay_linux::{udp_socket_in, FrameSocket, PacketSocket};

use super::link::LeaseLink;
use super::KeeperResult;
use crate::leases::{KeeperError, KeeperErrorKind};

const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const MAX_DATAGRAM: usize = 65_536;

fn failed(e: impl std::fmt::Display) -> KeeperError {
    KeeperError::new(KeeperErrorKind::Failed, e.to_string())
}

/// A received DHCPv4 payload, or nothing before the timeout.
pub(crate) type Received = Option<Vec<u8>>;

#[derive(Default)]
pub(crate) struct Transport4 {
    raw: Option<PacketSocket>,
    udp: Option<UdpSocket>,
}

impl Transport4 {
    pub fn send(&mut self, link: &LeaseLink, tx: &Transmit4) -> KeeperResult<()> {
        if tx.src.is_unspecified() {
            return self.send_raw(link, tx);
        }
        let to = SocketAddr::from((tx.dst, SERVER_PORT));
        self.udp(link)?.send_to(&tx.payload, to).map_err(failed)?;
        Ok(())
    }

    /// Sends from `tx.src` to `tx.dst` in a broadcast frame, without the IP stack: for a
    /// RELEASE from a link that never got (or already lost) the leased address. A server takes
    /// a unicast IP packet in a broadcast frame (`drop_unicast_in_l2_multicast` is off by
    /// default), and no ARP is needed for it.
    pub fn send_raw(&mut self, link: &LeaseLink, tx: &Transmit4) -> KeeperResult<()> {
        let frame = udp4_frame(
            link.mac,
            BROADCAST_MAC,
            tx.src,
            tx.dst,
            CLIENT_PORT,
            SERVER_PORT,
            &tx.payload,
        );
        self.raw(link)?.send_frame(&frame).map_err(failed)
    }

    /// The next DHCP reply on the socket that fits the client's state: raw while it holds no
    /// address, UDP after.
    pub fn recv(
        &mut self,
        link: &LeaseLink,
        addressed: bool,
        wait: Duration,
    ) -> KeeperResult<Received> {
        if addressed {
            return recv_udp(self.udp(link)?, wait).map(|r| r.map(|(payload, _)| payload));
        }
        let raw = self.raw(link)?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some((frame, offloaded)) = raw.recv_frame_offload(left).map_err(failed)? else {
                return Ok(None);
            };
            let parsed = match offloaded {
                true => parse_udp4_offloaded(&frame),
                false => parse_udp4(&frame),
            };
            if let Ok(udp) = parsed {
                if udp.dst_port == CLIENT_PORT && udp.src_port == SERVER_PORT {
                    return Ok(Some(udp.payload.to_vec()));
                }
            }
        }
    }

    /// The packet socket, for conflict probes and raw DHCP.
    pub fn raw(&mut self, link: &LeaseLink) -> KeeperResult<&mut PacketSocket> {
        if self.raw.is_none() {
            self.raw = Some(PacketSocket::open_in(&link.ns, link.index).map_err(failed)?);
        }
        Ok(self.raw.as_mut().expect("just opened"))
    }

    /// Stops copying every frame of the link to us once the client holds an address.
    pub fn close_raw(&mut self) {
        // close() of a packet socket waits for an RCU grace period (~15 ms); the caller is
        // on the way to answering a connect, so the socket is closed off its path.
        if let Some(raw) = self.raw.take() {
            std::thread::spawn(move || drop(raw));
        }
    }

    fn udp(&mut self, link: &LeaseLink) -> KeeperResult<&UdpSocket> {
        if self.udp.is_none() {
            let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, CLIENT_PORT));
            self.udp = Some(udp_socket_in(&link.ns, any, &link.ifname, true).map_err(failed)?);
        }
        Ok(self.udp.as_ref().expect("just opened"))
    }
}

/// How long a tentative link-local address is waited for (DAD takes `dad_transmits` x
/// `retrans_time`, 1 s by default, plus a random delay of up to 1 s first).
const TENTATIVE_WAIT: Duration = Duration::from_secs(3);

fn is_tentative(e: &underlay_linux::Error) -> bool {
    e.errno() == Some(nix::errno::Errno::EADDRNOTAVAIL as i32)
}

pub(crate) struct Transport6 {
    udp: UdpSocket,
    index: u32,
}

impl Transport6 {
    /// Binds port 546 on the link-local address. Optimistic DAD makes it usable at once; on a
    /// link made by someone else (a CNI main plugin), it stays tentative until duplicate
    /// address detection is over (about a second), and bind() refuses it meanwhile.
    pub fn open(link: &mut LeaseLink) -> KeeperResult<Transport6> {
        let local = link.link_local()?;
        let bind = SocketAddr::V6(SocketAddrV6::new(local, v6::CLIENT_PORT, 0, link.index));
        let give_up = std::time::Instant::now() + TENTATIVE_WAIT;
        let udp = loop {
            match udp_socket_in(&link.ns, bind, &link.ifname, false) {
                Ok(udp) => break udp,
                Err(e) if is_tentative(&e) && std::time::Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(failed(e)),
            }
        };
        Ok(Transport6 {
            udp,
            index: link.index,
        })
    }

    pub fn send(&mut self, tx: &Transmit6) -> KeeperResult<()> {
        let to = SocketAddrV6::new(tx.dst, v6::SERVER_PORT, 0, self.index);
        self.udp.send_to(&tx.payload, to).map_err(failed)?;
        Ok(())
    }

    pub fn recv(&mut self, wait: Duration) -> KeeperResult<Option<(Vec<u8>, Ipv6Addr)>> {
        Ok(
            recv_udp(&self.udp, wait)?.and_then(|(payload, from)| match from {
                SocketAddr::V6(v6) => Some((payload, *v6.ip())),
                SocketAddr::V4(_) => None,
            }),
        )
    }
}

fn recv_udp(udp: &UdpSocket, wait: Duration) -> KeeperResult<Option<(Vec<u8>, SocketAddr)>> {
    // A zero timeout would mean "block forever" to the socket.
    udp.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .map_err(failed)?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    match udp.recv_from(&mut buf) {
        Ok((n, from)) => {
            buf.truncate(n);
            Ok(Some((buf, from)))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(failed(e)),
    }
}
