//! Why a received DHCPv6 message changed nothing.

use thiserror::Error;

use super::{State6, Status6};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Ignored6 {
    #[error("malformed dhcpv6 message: {0}")]
    Malformed(String),
    #[error("message type {0} is not one a client handles")]
    NotForClient(u8),
    #[error("transaction id {got:#08x} is not ours ({expected:#08x})")]
    WrongXid { expected: u32, got: u32 },
    #[error("message has no client identifier")]
    MissingClientId,
    #[error("client identifier {0} is not ours")]
    WrongClientId(String),
    #[error("message has no server identifier")]
    MissingServerId,
    #[error("server {0} is not in the allowed server list")]
    ServerNotAllowed(String),
    #[error("reply from server {got} while talking to {expected}")]
    WrongServer { expected: String, got: String },
    #[error("{message} is not expected in state {state:?}")]
    UnexpectedInState {
        message: &'static str,
        state: State6,
    },
    #[error("no usable address offered: {0}")]
    NoAddrsAvail(Status6),
    #[error("server answered {0}; retransmitting")]
    Status(Status6),
}
