//! What a DHCPv6 client presents and how patiently it retransmits.

use std::time::Duration;

/// DHCPv6 client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config6 {
    /// Client Identifier option value.
    pub duid: Vec<u8>,
    /// IAID of the one IA_NA.
    pub iaid: u32,
    /// Sent as a Client FQDN option (39, RFC 4704); a name with a dot is sent fully qualified.
    /// A name that is not a valid DNS name is not sent.
    pub hostname: Option<String>,
    /// Offer Rapid Commit (two-message exchange) in SOLICIT.
    pub rapid_commit: bool,
    /// Allow-list of server DUIDs; empty = any server.
    pub servers: Vec<Vec<u8>>,
    pub retry: Retry6,
}

impl Config6 {
    pub fn new(duid: Vec<u8>, iaid: u32) -> Config6 {
        Config6 {
            duid,
            iaid,
            hostname: None,
            rapid_commit: false,
            servers: Vec::new(),
            retry: Retry6::default(),
        }
    }

    pub(crate) fn allows(&self, server: &[u8]) -> bool {
        self.servers.is_empty() || self.servers.iter().any(|s| s == server)
    }
}

/// Retransmission policy (RFC 8415 section 15: each retransmission time doubles, every time
/// is moved by RAND in ±10 %, the first SOLICIT's only upwards).
///
/// RFC 8415 section 7.6 uses SOL_TIMEOUT 1 s and SOL_MAX_RT 3600 s and REQ_MAX_RC 10; the
/// defaults here are 500 ms doubling to 4 s, giving up after 10 s like [`crate::v4::Retry4`].
/// Renewal keeps the RFC's REN_TIMEOUT 10 s and REN_MAX_RT 600 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry6 {
    /// First retransmission time of SOLICIT, REQUEST, DECLINE and RELEASE (500 ms).
    pub initial: Duration,
    /// Ceiling of those (4 s).
    pub max: Duration,
    /// SOLICITING/REQUESTING give up (event `GaveUp`) this long after the first SOLICIT (10 s).
    pub timeout: Duration,
    /// REQUESTs without an answer before soliciting again (4).
    pub request_attempts: u32,
    /// DECLINEs, and RELEASEs, without a REPLY before moving on (4: DEC_MAX_RC, REL_MAX_RC).
    pub decline_attempts: u32,
    /// First retransmission time of RENEW and REBIND (10 s).
    pub renew_initial: Duration,
    /// Ceiling of those (600 s).
    pub renew_max: Duration,
    /// Apply RFC 8415's RAND (true); false gives exact doubling, for tests.
    pub randomize: bool,
}

impl Default for Retry6 {
    fn default() -> Retry6 {
        Retry6 {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(4),
            timeout: Duration::from_secs(10),
            request_attempts: 4,
            decline_attempts: 4,
            renew_initial: Duration::from_secs(10),
            renew_max: Duration::from_secs(600),
            randomize: true,
        }
    }
}
