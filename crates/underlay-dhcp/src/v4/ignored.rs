//! Why a received DHCPv4 message changed nothing: for logs, never fatal.

use std::net::Ipv4Addr;

use thiserror::Error;

use super::State4;

/// A received message the client dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Ignored {
    #[error("malformed dhcpv4 message: {0}")]
    Malformed(String),
    #[error("message is not a BOOTREPLY")]
    NotAReply,
    #[error("transaction id {got:#010x} is not ours ({expected:#010x})")]
    WrongXid { expected: u32, got: u32 },
    #[error("chaddr {0} is not ours")]
    WrongClient(String),
    #[error("client identifier {0} is not ours")]
    WrongClientId(String),
    #[error("server {0} is not in the allowed server list")]
    ServerNotAllowed(Ipv4Addr),
    #[error("reply from server {got} while talking to {expected}")]
    WrongServer { expected: Ipv4Addr, got: Ipv4Addr },
    #[error("{message} is not expected in state {state:?}")]
    UnexpectedInState {
        message: &'static str,
        state: State4,
    },
    #[error("{message} lacks option {code}")]
    MissingOption { message: &'static str, code: u8 },
    #[error("offered address {0} is not a usable unicast address")]
    BadAddress(Ipv4Addr),
    #[error("subnet mask {0} is not a contiguous mask")]
    BadSubnetMask(Ipv4Addr),
}

/// The name of a DHCP message type (option 53) for logs.
pub(crate) fn message_name(code: u8) -> &'static str {
    match code {
        1 => "DHCPDISCOVER",
        2 => "DHCPOFFER",
        3 => "DHCPREQUEST",
        4 => "DHCPDECLINE",
        5 => "DHCPACK",
        6 => "DHCPNAK",
        7 => "DHCPRELEASE",
        8 => "DHCPINFORM",
        _ => "an unknown message type",
    }
}
