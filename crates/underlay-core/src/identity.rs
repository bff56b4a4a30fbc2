//! Stable DHCP identities: the MAC, client identifier and DUID of an endpoint follow from the
//! host, the network name and the endpoint name, so a container recreated under the same name
//! keeps its DHCP reservation. The host's machine id is part of the input: two hosts running
//! "web" on network "lan" must not present the same MAC and client identifier.

use underlay_dhcp::identity::{derive_identity, Identity};

use crate::build::DhcpIdentity;
use crate::{Connect, Error, MacAddr, Network};

const MACHINE_ID: &str = "/etc/machine-id";

/// The identity of endpoint `endpoint` on `net`, with the user's overrides.
pub(crate) fn endpoint_identity(net: &Network, endpoint: &str) -> Identity {
    derive_identity(&scope(net.name()), endpoint)
}

/// What the endpoint presents to DHCP servers.
pub(crate) fn dhcp_identity(
    net: &Network,
    endpoint: &str,
    req: &Connect,
) -> Result<DhcpIdentity, Error> {
    let overrides = req.dhcp_overrides()?;
    let derived =
        endpoint_identity(net, endpoint).with_overrides(None, overrides.client_id, overrides.duid);
    Ok(DhcpIdentity {
        client_id: derived.client_id,
        duid: derived.duid,
        iaid: derived.iaid,
        hostname: req.hostname.clone().unwrap_or_else(|| endpoint.to_string()),
    })
}

/// The MAC a DHCP endpoint of a macvlan network gets unless `--mac`.
pub(crate) fn derived_mac(net: &Network, endpoint: &str) -> MacAddr {
    MacAddr(endpoint_identity(net, endpoint).mac)
}

/// `<machine id>/<network>`; the network alone where the machine has no id.
fn scope(network: &str) -> String {
    let machine = std::fs::read_to_string(MACHINE_ID).unwrap_or_default();
    format!("{}/{network}", machine.trim())
}
