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
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// `IFLA_LINK`: the parent's index for macvlan/ipvlan/vlan (in the link's netns or the
    /// netns it was created from).
    pub parent: Option<u32>,
    /// For macvlan links: the mode.
    pub macvlan_mode: Option<MacvlanMode>,
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

/// What `create_macvlan` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanSpec {
    pub name: String,
    /// Index of the parent link in the namespace of the socket that creates the link.
    pub parent: u32,
    pub mode: MacvlanMode,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
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
