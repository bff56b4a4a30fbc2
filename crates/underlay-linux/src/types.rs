use std::fmt;
use std::net::IpAddr;

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` ("macvlan", "veth", "bridge"...), `None` for plain devices.
    pub kind: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The link has carrier (`IFF_LOWER_UP`): a macvlan/ipvlan child of a parent without it
    /// passes no traffic.
    pub carrier: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// `IFLA_LINK`: the parent's index for macvlan/ipvlan/vlan (in the link's netns or the
    /// netns it was created from).
    pub parent: Option<u32>,
    /// For macvlan links: the mode.
    pub macvlan_mode: Option<MacvlanMode>,
    /// For ipvlan links: the mode and flag.
    pub ipvlan: Option<(IpvlanMode, IpvlanFlag)>,
    /// For 802.1Q links: the VLAN ID.
    pub vlan_id: Option<u16>,
    /// `IFLA_IFALIAS`, the free-form description (`ip link set DEV alias TEXT`).
    pub alias: Option<String>,
}

/// `MACVLAN_MODE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    Private,
    Vepa,
    Bridge,
    Passthru,
    Source,
}

impl MacvlanMode {
    /// The name used by `ip -d link` and Docker's `macvlan_mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Passthru => "passthru",
            MacvlanMode::Source => "source",
        }
    }
}

/// `IPVLAN_MODE_*`: where the ipvlan slave's traffic is switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    /// Layer 2: ARP and broadcast are shared with the parent's segment.
    L2,
    /// Layer 3: the parent routes; no ARP, no broadcast, no multicast.
    L3,
    /// Layer 3 with netfilter (conntrack) on the slave's traffic in the default namespace.
    L3s,
}

impl IpvlanMode {
    /// The name used by `ip -d link` and Docker's `ipvlan_mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        }
    }
}

/// `IPVLAN_F_*`: whether slaves of one parent may talk to each other directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanFlag {
    /// Slaves talk to each other inside the host (the default).
    Bridge,
    /// Slaves cannot talk to each other.
    Private,
    /// Traffic between slaves goes out through the parent to the switch (reflective relay).
    Vepa,
}

impl IpvlanFlag {
    /// The name used by `ip -d link` and Docker's `ipvlan_flag`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanFlag::Bridge => "bridge",
            IpvlanFlag::Private => "private",
            IpvlanFlag::Vepa => "vepa",
        }
    }
}

/// What `create_ipvlan_in` needs. An ipvlan slave always has its parent's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvlanSpec {
    pub name: String,
    /// Index of the parent link in the namespace of the socket that creates the link.
    pub parent: u32,
    pub mode: IpvlanMode,
    pub flag: IpvlanFlag,
    pub mtu: Option<u32>,
}

/// What `create_vlan` needs: an 802.1Q sub-interface of `parent` tagged `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanSpec {
    pub name: String,
    pub parent: u32,
    /// VLAN ID, 1..=4094.
    pub id: u16,
    /// `None` follows the parent's.
    pub mtu: Option<u32>,
}

/// What `create_macvlan` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanSpec {
    pub name: String,
    /// Index of the parent link in the namespace of the socket that creates the link.
    pub parent: u32,
    pub mode: MacvlanMode,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// Length of the queue of broadcast frames for the parent's macvlans
    /// (`IFLA_MACVLAN_BC_QUEUE_LEN`, the CNI plugin's `bcqueuelen`).
    pub bc_queue_len: Option<u32>,
}

/// An address with its prefix length, e.g. `10.0.0.5/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A unicast route in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    /// Next hop; `None` for a device (scope link) route.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: u32,
    /// `RTA_PRIORITY`, the full u32 range.
    pub metric: u32,
}
