//! The JSON bodies of both drivers, and the address and option types they use.

pub mod addr;
mod de;
pub mod ipam;
pub mod network;
pub mod network_response;
pub mod options;
