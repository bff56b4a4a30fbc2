use std::net::IpAddr;

use crate::StoreError;

/// Why an address could not be parsed, reserved or allocated.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid CIDR {text:?}: {reason}")]
    InvalidCidr { text: String, reason: String },
    #[error("ip range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: String, subnet: String },
    #[error("address {ip} is not in subnet {subnet}")]
    OutsideSubnet { ip: IpAddr, subnet: String },
    #[error("address {ip} is not in ip range {range}")]
    OutsideRange { ip: IpAddr, range: String },
    #[error("address {ip} is the network address of {subnet}")]
    NetworkAddress { ip: IpAddr, subnet: String },
    #[error("address {ip} is the broadcast address of {subnet}")]
    BroadcastAddress { ip: IpAddr, subnet: String },
    #[error("address {ip} is already in use by {owner}")]
    InUse { ip: IpAddr, owner: String },
    #[error("no free address left in {window}")]
    Exhausted { window: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
