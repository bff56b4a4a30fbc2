//! What a DHCPv4 client asks for and how patiently.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Options every request asks for (option 55): subnet mask, router, DNS servers, domain name,
/// interface MTU, broadcast address, classless static routes, lease/T1/T2 times, domain search.
pub const DEFAULT_PARAMS: [u8; 11] = [1, 3, 6, 15, 26, 28, 121, 51, 58, 59, 119];

/// DHCPv4 client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config4 {
    /// Hardware address put in `chaddr` (and the Ethernet source of the driver's frames).
    pub chaddr: [u8; 6],
    /// Option 61; empty = none sent (then the server tells clients apart by `chaddr` only).
    pub client_id: Vec<u8>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Sets the BROADCAST flag so servers broadcast their replies: needed for ipvlan, where the
    /// endpoint shares its parent's MAC and a unicast reply to `yiaddr` would reach the wrong
    /// stack before the address is configured.
    pub broadcast: bool,
    /// Allow-list of server identifiers (option 54); empty = any server.
    pub servers: Vec<Ipv4Addr>,
    /// Option codes requested on top of [`DEFAULT_PARAMS`].
    pub extra_params: Vec<u8>,
    /// Retransmission and timeout policy.
    pub retry: Retry4,
    /// Option 60.
    pub vendor_class: Option<String>,
    /// Further options sent in DISCOVER and REQUEST as they are (code, bytes): what a user
    /// asked to provide, such as a user class (77). Codes the protocol itself uses are the
    /// caller's to refuse.
    pub extra_options: Vec<(u8, Vec<u8>)>,
}

impl Config4 {
    /// A configuration with the default retry policy, no hostname and any server allowed.
    pub fn new(chaddr: [u8; 6], client_id: Vec<u8>) -> Config4 {
        Config4 {
            chaddr,
            client_id,
            hostname: None,
            broadcast: false,
            servers: Vec::new(),
            extra_params: Vec::new(),
            retry: Retry4::default(),
            vendor_class: None,
            extra_options: Vec::new(),
        }
    }

    /// The parameter request list: the defaults, then the extra codes, without repeats.
    pub(crate) fn params(&self) -> Vec<u8> {
        let mut params = DEFAULT_PARAMS.to_vec();
        for code in &self.extra_params {
            if !params.contains(code) && !matches!(code, 0 | 255) {
                params.push(*code);
            }
        }
        params
    }

    pub(crate) fn allows(&self, server: Ipv4Addr) -> bool {
        self.servers.is_empty() || self.servers.contains(&server)
    }
}

/// Retransmission policy.
///
/// RFC 2131 section 4.1 waits 4 s before the first retransmission, doubling to 64 s, each
/// randomised by ±1 s: minutes before a lost DISCOVER is noticed. A container connect needs an
/// answer within seconds, so the defaults here are 500 ms doubling to 4 s with ±100 ms jitter,
/// and the acquisition gives up after 10 s (the CNI dhcp daemon's default timeout). With these
/// defaults DISCOVERs leave at about 0, 0.5, 1.5, 3.5, 7.5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry4 {
    /// Delay before the first retransmission (500 ms).
    pub initial: Duration,
    /// Ceiling of the doubling delay (4 s).
    pub max: Duration,
    /// INIT/SELECTING/REQUESTING give up (event `GaveUp`) this long after the first DISCOVER (10 s).
    pub timeout: Duration,
    /// Each delay moves by a uniform amount in ±`jitter` (100 ms), drawn from the seeded generator.
    pub jitter: Duration,
    /// REQUESTs sent in REQUESTING without an answer before going back to DISCOVER (4).
    pub request_attempts: u32,
    /// REQUESTs sent in REBOOTING without an answer before falling back to DISCOVER (2): a server
    /// that does not know the client stays silent (RFC 2131 section 4.3.2), so do not wait long.
    pub reboot_attempts: u32,
    /// Floor of the renew/rebind retransmission delay, which is otherwise half the time left
    /// until T2 (renewing) or lease end (rebinding). RFC 2131 section 4.4.5 says 60 s, the
    /// default; tests with leases of seconds lower it.
    pub min_renew_interval: Duration,
    /// Wait between a DECLINE and the next DISCOVER. RFC 2131 section 3.1 asks for 10 s to stop
    /// a broken network from looping fast; a container connect cannot wait that long, and the
    /// caller bounds how many declines it tolerates, so the default is 1 s.
    pub decline_wait: Duration,
}

impl Default for Retry4 {
    fn default() -> Retry4 {
        Retry4 {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(4),
            timeout: Duration::from_secs(10),
            jitter: Duration::from_millis(100),
            request_attempts: 4,
            reboot_attempts: 2,
            min_renew_interval: Duration::from_secs(60),
            decline_wait: Duration::from_secs(1),
        }
    }
}
