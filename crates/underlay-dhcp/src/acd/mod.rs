//! Address conflict detection before an address is configured: ARP probes (RFC 5227) for IPv4
//! and Duplicate Address Detection (RFC 4862 section 5.4, with the RFC 7527 nonce) for IPv6,
//! then announcements so neighbours and switches learn the new owner.
//!
//! [`Prober`] is sans-IO like the DHCP clients: the driver sends the frames [`Prober::poll`]
//! returns on a packet socket, feeds every frame it receives to [`Prober::handle`], and reads
//! [`Prober::conflicts`] once [`Prober::done`].
//!
//! # Timing trade-off
//!
//! RFC 5227 waits up to 1 s before probing, sends 3 probes 1-2 s apart and then waits 2 s: 6 to
//! 9 s per address, far too slow for a container connect. [`ProbeConfig::default`] sends 3
//! probes 50 ms apart and decides at 200 ms. A host that is up and answers ARP/ND within about
//! 100 ms of the last probe is detected; a host that is asleep, rate-limits ARP, or sits behind a
//! slow path may not be. DHCP servers probe too (ICMP echo before offering), and a DHCP lease is
//! authoritative, so this check is a second line: it catches statically configured hosts that
//! squat on pool addresses.
//!
//! # What the driver must do
//!
//! To hear another node's DAD NS, the interface must receive the target's solicited-node
//! multicast group (join it, or set ALLMULTI/PROMISC on the packet socket); NAs to ff02::1 and
//! ARP broadcasts arrive anyway. RFC 5227 sends two announcements 2 s apart: the driver sends
//! [`announcements`] right after configuring the address and again a little later.
//!
//! # Limits
//!
//! ipvlan endpoints share their parent's MAC. An ARP probe from another endpoint on the same
//! parent looks exactly like our own looped-back probe, so two siblings probing the same IPv4
//! address at the same moment are not detected (a sibling that *holds* the address answers with
//! its address as sender and is detected). IPv6 has no such gap: the DAD nonce tells our own NS
//! from a sibling's.

mod arp;
mod ndp;
mod prober;

use std::net::IpAddr;
use std::time::Duration;

pub use prober::Prober;

/// How hard to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Probe rounds (one probe per address per round) (3).
    pub probes: u32,
    /// Time between rounds (50 ms).
    pub interval: Duration,
    /// From the first probe to the verdict (200 ms).
    pub wait: Duration,
}

impl Default for ProbeConfig {
    fn default() -> ProbeConfig {
        ProbeConfig {
            probes: 3,
            interval: Duration::from_millis(50),
            wait: Duration::from_millis(200),
        }
    }
}

/// Another node uses (or is about to use) one of the probed addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conflict {
    pub address: IpAddr,
    /// Who: the ARP sender hardware address, the NA's target link-layer address, or else the
    /// Ethernet source of the frame.
    pub mac: [u8; 6],
}

/// Frames that tell the link `mac` now owns `addresses`: an ARP announcement (an ARP request
/// with sender = target = the address, broadcast; RFC 5227 section 2.3) per IPv4 address, and an
/// unsolicited NA to ff02::1 with the Override flag and a target link-layer address option
/// (RFC 4861 section 7.2.6) per IPv6 address.
pub fn announcements(mac: [u8; 6], addresses: &[IpAddr]) -> Vec<Vec<u8>> {
    addresses
        .iter()
        .map(|address| match address {
            IpAddr::V4(v4) => arp::announcement(mac, *v4),
            IpAddr::V6(v6) => ndp::unsolicited_na(mac, *v6),
        })
        .collect()
}
