//! The domain model: networks and their endpoints, as validated values.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use underlay_ipam::{Pool, Subnet};
use underlay_linux::{IpvlanFlag, IpvlanMode, MacvlanMode};

use crate::{Addressing, IfName, Ipv6Mode, MacAddr};

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn pool_suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// The link kind a network plumbs into containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Driver {
    Macvlan {
        #[serde(with = "macvlan_mode_name")]
        mode: MacvlanMode,
    },
    Ipvlan {
        #[serde(with = "ipvlan_names::mode")]
        mode: IpvlanMode,
        #[serde(with = "ipvlan_names::flag")]
        flag: IpvlanFlag,
    },
}

impl Driver {
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Macvlan { .. } => "macvlan",
            Driver::Ipvlan { .. } => "ipvlan",
        }
    }

    /// ipvlan L3 and L3S route through the device: no ARP, no gateway needed.
    pub fn routes_via_device(&self) -> bool {
        matches!(
            self,
            Driver::Ipvlan {
                mode: IpvlanMode::L3 | IpvlanMode::L3s,
                ..
            }
        )
    }
}

/// The host interface a network's links hang off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Parent {
    /// An existing interface, used as it is.
    Link { name: IfName },
    /// An 802.1Q sub-interface `name` of `trunk` tagged `id`, created when missing.
    Vlan {
        name: IfName,
        trunk: IfName,
        id: u16,
    },
    /// A dummy link owned by the network (`--internal` with no parent, as Docker does).
    Dummy,
}

/// Addressing of one family of a network (Docker's `IPAM.Config[]` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub subnet: Subnet,
    /// `None` on ipvlan L3/L3S networks given no `--gateway`: they route through the device.
    pub gateway: Option<IpAddr>,
    pub ip_range: Option<Subnet>,
    /// Named addresses that are reserved and never handed out (`--aux-address`).
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// A validated network definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    pub driver: Driver,
    pub parent: Parent,
    pub ipv4: Option<IpConfig>,
    pub ipv6: Option<IpConfig>,
    pub mtu: Option<u32>,
    /// Metric of the default routes in containers (`RTA_PRIORITY`).
    pub metric: u32,
    /// No default route in containers.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// The `-o` options as given, for `inspect`.
    pub options: BTreeMap<String, String>,
    /// Where addresses come from (absent in networks stored before DHCP existed: local).
    #[serde(default)]
    pub ipam: Addressing,
    /// The host reaches the network's containers (and they it) through a link of its own on
    /// the parent (`-o host_access=true`).
    #[serde(default)]
    pub host_access: Option<HostAccess>,
}

/// The host's own link into a network (macvlan children cannot talk to their parent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAccess {
    /// Addresses given with `-o host_access_ip=`/`host_access_ip6=`; otherwise the link gets
    /// one from each pool.
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
}

impl HostAccess {
    pub fn address(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }
}

impl NetworkSpec {
    pub fn ip_config(&self, family: Family) -> Option<&IpConfig> {
        match family {
            Family::V4 => self.ipv4.as_ref(),
            Family::V6 => self.ipv6.as_ref(),
        }
    }

    /// The network's IPv6 mode (see [`Addressing::ipv6_mode`]).
    pub fn ipv6_mode(&self) -> Ipv6Mode {
        self.ipam.ipv6_mode(self.ipv6.is_some())
    }

    /// Whether endpoints take addresses from the lease keeper.
    pub fn uses_dhcp(&self) -> bool {
        self.ipam.uses_dhcp(self.ipv6.is_some())
    }

    pub fn ip_configs(&self) -> impl Iterator<Item = (Family, &IpConfig)> {
        [
            (Family::V4, self.ipv4.as_ref()),
            (Family::V6, self.ipv6.as_ref()),
        ]
        .into_iter()
        .filter_map(|(f, c)| c.map(|c| (f, c)))
    }
}

/// A stored network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    pub spec: NetworkSpec,
}

impl Network {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The parent interface's name; a dummy parent is `dm-` + 12 characters of the ID, as
    /// Docker names it.
    pub fn parent_name(&self) -> IfName {
        match &self.spec.parent {
            Parent::Link { name } | Parent::Vlan { name, .. } => name.clone(),
            Parent::Dummy => IfName::new_unchecked(format!("dm-{}", &self.id[..12])),
        }
    }

    /// Whether endpoints take addresses from the lease keeper.
    pub fn uses_dhcp(&self) -> bool {
        self.spec.uses_dhcp()
    }

    /// The host-side link of a network with host access: `ulh` + 12 characters of the ID.
    pub fn shim_name(&self) -> IfName {
        IfName::new_unchecked(format!("ulh{}", &self.id[..12]))
    }

    /// The IPAM pool of one family (`<network id>/v4`).
    pub fn pool(&self, family: Family) -> Option<Pool> {
        let config = self.spec.ip_config(family)?;
        let id = format!("{}/{}", self.id, family.pool_suffix());
        Pool::new(id, config.subnet, config.ip_range).ok()
    }
}

/// Where an endpoint is in its life; anything but `Attached` is an intent left by a process
/// that may have died (see docs/state.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Attaching,
    Attached,
    Detaching,
    /// Handoff endpoints only: addresses (and a link in the host netns) ready for an endpoint
    /// the runtime has not created yet (Docker's IPAM asked first).
    Pending,
    /// Handoff endpoints only: the runtime created the endpoint; its link is not in a
    /// container (not joined yet, or left).
    Created,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Attaching => "attaching",
            Phase::Attached => "attached",
            Phase::Detaching => "detaching",
            Phase::Pending => "pending",
            Phase::Created => "created",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Phase> {
        [
            Phase::Attaching,
            Phase::Attached,
            Phase::Detaching,
            Phase::Pending,
            Phase::Created,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
}

/// A container's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    pub name: String,
    pub phase: Phase,
    /// The netns path as given (resolved), e.g. `/run/netns/c1` or `/proc/42/ns/net`.
    pub netns: String,
    /// Identity of the netns (device, inode) when it was attached.
    pub netns_id: (u64, u64),
    pub ifname: IfName,
    /// Name the link is created under before it is renamed inside the netns.
    pub tmp_ifname: IfName,
    /// The link's MAC (for ipvlan: the parent's, which all its slaves share).
    pub mac: MacAddr,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// The link is made in the host netns and handed to the container runtime, which moves it
    /// into the container itself (Docker's remote drivers); `false`: underlay creates it in the
    /// container's netns.
    pub handoff: bool,
    /// The runtime's own ID of the endpoint (Docker's EndpointID), when it has one.
    pub runtime_id: Option<String>,
    /// When the row was written, in Unix seconds (pending handoff endpoints expire).
    pub since: u64,
}

impl Endpoint {
    /// The alias (`IFLA_IFALIAS`) that marks the endpoint's link as underlay's: with the
    /// temporary name, the only thing teardown and recovery trust (ipvlan slaves share their
    /// parent's MAC, and a user may own an interface of the same name).
    pub fn link_alias(&self) -> String {
        format!("underlay:{}", self.id)
    }

    pub fn address(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }

    pub fn set_address(&mut self, family: Family, ip: Option<IpAddr>) {
        match family {
            Family::V4 => self.ipv4 = ip,
            Family::V6 => self.ipv6 = ip,
        }
    }
}

/// `MacvlanMode` is a kernel-boundary type; store it by its `ip link` name.
mod macvlan_mode_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use underlay_linux::MacvlanMode;

    pub fn serialize<S: Serializer>(mode: &MacvlanMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(mode.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacvlanMode, D::Error> {
        let name = String::deserialize(d)?;
        super::parse_macvlan_mode(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown macvlan mode {name:?}")))
    }
}

/// Docker's `macvlan_mode` values.
pub(crate) fn parse_macvlan_mode(name: &str) -> Option<MacvlanMode> {
    [
        MacvlanMode::Bridge,
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Passthru,
    ]
    .into_iter()
    .find(|m| m.as_str() == name)
}

/// `IpvlanMode` and `IpvlanFlag` are kernel-boundary types; store them by their `ip link` names.
mod ipvlan_names {
    pub mod mode {
        use serde::{Deserialize, Deserializer, Serializer};
        use underlay_linux::IpvlanMode;

        pub fn serialize<S: Serializer>(mode: &IpvlanMode, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(mode.as_str())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpvlanMode, D::Error> {
            let name = String::deserialize(d)?;
            crate::model::parse_ipvlan_mode(&name)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown ipvlan mode {name:?}")))
        }
    }

    pub mod flag {
        use serde::{Deserialize, Deserializer, Serializer};
        use underlay_linux::IpvlanFlag;

        pub fn serialize<S: Serializer>(flag: &IpvlanFlag, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(flag.as_str())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpvlanFlag, D::Error> {
            let name = String::deserialize(d)?;
            crate::model::parse_ipvlan_flag(&name)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown ipvlan flag {name:?}")))
        }
    }
}

/// Docker's `ipvlan_mode` values.
pub(crate) fn parse_ipvlan_mode(name: &str) -> Option<IpvlanMode> {
    [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s]
        .into_iter()
        .find(|m| m.as_str() == name)
}

/// Docker's `ipvlan_flag` values.
pub(crate) fn parse_ipvlan_flag(name: &str) -> Option<IpvlanFlag> {
    [IpvlanFlag::Bridge, IpvlanFlag::Private, IpvlanFlag::Vepa]
        .into_iter()
        .find(|f| f.as_str() == name)
}
