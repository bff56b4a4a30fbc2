//! The command-line definition (clap). Nothing but argument types lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status: 0 success, 1 operational failure (the kernel or the state refused), 2 bad usage or
invalid input (nothing was changed).

Examples:
  underlay network create -d macvlan --subnet 192.0.2.0/24 --gateway 192.0.2.1 -o parent=eth0 lan
  underlay connect lan c1 --ip 192.0.2.50
  underlay network inspect lan
  underlay disconnect lan c1
  underlay network rm lan";

/// Put containers straight onto the physical network with macvlan, with addresses that never
/// collide.
#[derive(Debug, Parser)]
#[command(name = "underlay", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Directory of the state database.
    #[arg(long, global = true, env = "UNDERLAY_STATE_DIR", default_value = underlay_core::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// The DHCP lease keeper's socket (`underlay dhcp-daemon`), for networks that use DHCP.
    #[arg(long, global = true, env = "UNDERLAY_DHCP_SOCKET", default_value = underlay_core::leases::DEFAULT_KEEPER_SOCKET)]
    pub dhcp_socket: PathBuf,

    /// Log level on stderr (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, inspect and remove networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Attach a network namespace to a network.
    #[command(after_help = "\
TARGET is a named netns (/run/netns/NAME), a path to a netns file, or a PID (/proc/PID/ns/net).

Examples:
  underlay connect lan c1
  underlay connect lan 4242 --ip 192.0.2.50 --ifname eth1 --name web
  underlay connect lan /var/run/netns/c2 --mac 02:42:c0:00:02:32")]
    Connect(ConnectArgs),
    /// Detach a network namespace (or a named endpoint) from a network.
    #[command(
        after_help = "Examples:\n  underlay disconnect lan c1\n  underlay disconnect lan web"
    )]
    Disconnect(DisconnectArgs),
    /// Roll back interrupted operations and release endpoints whose namespace is gone.
    #[command(after_help = "Examples:\n  underlay gc")]
    Gc,
    /// At boot: recreate missing VLAN sub-interfaces and dummy parents, then do what gc does.
    #[command(after_help = "\
Run it before container runtimes start (contrib/systemd/underlay-restore.service does).
Exits 1 when a parent could not be recreated (its trunk or the interface itself is missing).

Examples:
  underlay restore")]
    Restore,
    /// Install the CNI plugins.
    #[command(subcommand)]
    Cni(CniCommand),
    /// Run the DHCP lease keeper: DHCP exchanges, renewals and releases for every endpoint of
    /// networks that use DHCP.
    #[command(after_help = "\
Listens on --dhcp-socket (default /run/underlay/dhcp.sock, mode 0600), or on the socket systemd
passes (LISTEN_FDS; see contrib/systemd/underlay-dhcp.socket). Leases are kept in the state
database: after a restart (or kill -9) every lease is renewed where it stands, and leases of
endpoints that are gone are released.

Examples:
  underlay dhcp-daemon
  underlay --dhcp-socket /tmp/dhcp.sock --log-level info dhcp-daemon")]
    DhcpDaemon(DhcpDaemonArgs),
    /// Run the lease keeper and the parent supervisor: what dhcp-daemon does, and it watches
    /// every network's parent.
    #[command(after_help = "\
The supervisor reports a parent that goes down (networks and endpoints show as degraded in
inspect, ls, CNI STATUS and Docker's endpoint info) and comes back up. When a parent is deleted
and made again (a NIC reset, a rebuilt bond), it recreates the VLAN sub-interface and host
access link, and each endpoint's link in its netns with the same name, MAC, addresses and
routes. It releases the addresses of endpoints whose netns is gone. Listens where dhcp-daemon
does (--dhcp-socket); `underlay events` streams what it does. Unit: contrib/systemd/underlay.service.

Examples:
  underlay daemon
  underlay events")]
    Daemon {
        /// Seconds between looks at every endpoint (dead netns, missing links); a parent that
        /// comes back, or the death of a netns holding an endpoint's link, triggers one at once.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        settle_every: u64,
    },
    /// Stream the daemon's events (parents, endpoints, leases), one JSON object per line.
    #[command(
        after_help = "Examples:\n  underlay events\n  underlay events | jq -c 'select(.event == \"parent_down\")'"
    )]
    Events,
    /// Serve Docker's network and IPAM plugin protocol (driver and IPAM driver "underlay").
    #[command(after_help = "\
Docker finds the plugin by its socket (legacy discovery). Networks it creates are engine networks
named docker-<12 characters of the Docker ID>: `underlay network ls` shows them. DHCP networks
(--ipam-opt dhcp=true) use the lease keeper at --dhcp-socket. See docs/docker.md.

Examples:
  underlay docker-plugin
  docker network create -d underlay --ipam-driver underlay --subnet 10.0.10.0/24 \\
      --gateway 10.0.10.1 -o parent=eth0.10 -o mode=macvlan lan10")]
    DockerPlugin {
        /// The plugin socket Docker looks for.
        #[arg(long, default_value = crate::docker::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Build a self-contained lab from namespaces and run the demo scenario.
    #[command(
        subcommand,
        after_help = "\
The lab builds namespaces named ul-lab-* (a switch, a router, a docker host, three containers),
uses only 198.51.100.0/24 and 2001:db8:babe:cafe::/64 inside them, and keeps its own state under
/run/underlay-lab (--state-dir does not apply). Any earlier lab is removed first.

Examples:
  sudo underlay lab run
  sudo underlay lab up && sudo ip netns exec ul-lab-c1 ping 198.51.100.3
  sudo underlay lab down"
    )]
    Lab(LabCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  underlay completions bash > /etc/bash_completion.d/underlay"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for every command into a directory.
    #[command(after_help = "Examples:\n  underlay man --dir /usr/local/share/man/man1")]
    Man {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    #[command(after_help = "\
Options (-o):
  parent=IFNAME          the host interface the network hangs off; IFNAME.VID is an 802.1Q
                         sub-interface, created when missing (and deleted with the last network
                         using it). Without a parent, an --internal network gets a dummy.
  vlan=VID               with parent=TRUNK: use the sub-interface TRUNK.VID (1..4094); a name
                         over 15 bytes is shortened by cutting TRUNK
  macvlan_mode=MODE      macvlan: bridge (default), private, vepa or passthru
  ipvlan_mode=MODE       ipvlan: l2 (default), l3 or l3s (routed: no gateway needed)
  ipvlan_flag=FLAG       ipvlan: bridge (default), private or vepa
  mtu=N                  MTU of container links (68..65535, at most the parent's)
  metric=N               metric of the containers' default routes (0..4294967295)
  host_access=true       the host gets a link of its own on the parent, so that it reaches its
                         containers and they reach it (see `network update --help`)
  host_access_ip=IP      its IPv4 address (default: one from the pool); host_access_ip6=IP6

IPAM options (--ipam-opt):
  ipv6_mode=MODE         static (an address from the IPv6 --subnet; default with one), dhcpv6,
                         slaac, or off (no IPv6 on the link; default without an IPv6 subnet)
  dhcpv6=true            short for ipv6_mode=dhcpv6
  conflict_detection=B   probe every address (ARP / IPv6 DAD) before using it (default true)
  probe_ms=N             how long a probe listens for an answer (10..10000, default 100)
  dhcp_servers=IP,...    accept DHCPv4 answers from these servers only
  dhcp_timeout=S         give up a DHCP exchange after S seconds (1..300, default 10)
  dhcp_broadcast=B       ask servers to broadcast answers (default: true on ipvlan)

Examples:
  underlay network create -d macvlan --subnet 192.0.2.0/24 --gateway 192.0.2.1 -o parent=eth0 lan
  underlay network create -d macvlan --subnet 192.0.2.0/24 -o parent=eth0.100 vlan100
  underlay network create -d ipvlan --subnet 192.0.2.0/24 -o parent=eth0 -o ipvlan_mode=l3 routed
  underlay network create --ipam-driver dhcp --ipam-opt dhcpv6=true -o parent=eth0 lan-dhcp
  underlay network create --subnet 192.0.2.0/24 --ip-range 192.0.2.128/25 \\
      --aux-address router2=192.0.2.2 --ipv6 --subnet 2001:db8:babe:cafe::/64 \\
      -o parent=eth0 -o metric=100 lan6")]
    Create(Box<CreateArgs>),
    /// List networks.
    #[command(
        alias = "list",
        after_help = "Examples:\n  underlay network ls\n  underlay network ls --format json"
    )]
    Ls {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show networks as JSON (like `docker network inspect`).
    #[command(after_help = "Examples:\n  underlay network inspect lan")]
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Change a network: turn host access on or off.
    #[command(after_help = "\
--host-access on gives the host a link of its own on the network's parent (ulh<12 of the ID>),
with an address from each pool (or -o host_access_ip= given at create), and a route to every
endpoint through it: the host reaches its containers, and they reach the host at that address.
off removes it.

Examples:
  underlay network update lan --host-access on
  underlay network update lan --host-access off")]
    Update {
        name: String,
        #[arg(long, value_enum)]
        host_access: Option<OnOff>,
    },
    /// Remove networks.
    #[command(
        alias = "remove",
        after_help = "Examples:\n  underlay network rm lan\n  underlay network rm --force lan lan6"
    )]
    Rm {
        /// Disconnect attached endpoints first.
        #[arg(long, short)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver: macvlan or ipvlan.
    #[arg(long, short = 'd', default_value = "macvlan")]
    pub driver: String,
    /// Subnet in CIDR form; one IPv4 and/or one IPv6.
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway of a subnet (default: its first address).
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container addresses from this sub-range of a subnet.
    #[arg(long)]
    pub ip_range: Vec<String>,
    /// NAME=IP addresses of the subnet never handed out.
    #[arg(long)]
    pub aux_address: Vec<String>,
    /// Enable IPv6 (needs an IPv6 --subnet).
    #[arg(long)]
    pub ipv6: bool,
    /// Driver option KEY=VALUE.
    #[arg(long = "opt", short = 'o')]
    pub opt: Vec<String>,
    /// No default route in containers.
    #[arg(long)]
    pub internal: bool,
    /// Label KEY=VALUE.
    #[arg(long)]
    pub label: Vec<String>,
    /// Where IPv4 addresses come from: default (the network's own pool) or dhcp (the LAN's
    /// DHCP server, through `underlay dhcp-daemon`).
    #[arg(long)]
    pub ipam_driver: Option<String>,
    /// IPAM option KEY=VALUE (see below).
    #[arg(long)]
    pub ipam_opt: Vec<String>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    pub network: String,
    pub target: String,
    /// Static IPv4 address.
    #[arg(long)]
    pub ip: Option<String>,
    /// Static IPv6 address.
    #[arg(long)]
    pub ip6: Option<String>,
    /// MAC address (default: random, locally administered).
    #[arg(long)]
    pub mac: Option<String>,
    /// Interface name inside the namespace.
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
    /// Endpoint name (default: the netns name, or pidPID).
    #[arg(long)]
    pub name: Option<String>,
    /// DHCP client identifier to present, in hex (default: derived from host, network and
    /// endpoint name, so that it is stable).
    #[arg(long)]
    pub dhcp_client_id: Option<String>,
    /// DHCPv6 DUID to present, in hex (default: derived like the client identifier).
    #[arg(long)]
    pub dhcp_duid: Option<String>,
    /// Host name sent to the DHCP server (default: the endpoint name).
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    pub network: String,
    /// Netns name, path or PID, or the endpoint name.
    pub target: String,
}

#[derive(Debug, Subcommand)]
pub enum CniCommand {
    /// Install underlay's CNI plugins under the reference plugins' type names.
    #[command(after_help = "\
Copies the multicall binary `underlay-cni` (found next to this binary unless --binary) into DIR
and links the plugin types it answers as (macvlan, ipvlan, vlan, host-local, static) to it. An
existing plugin of that name that is not underlay's is kept unless --force.

Examples:
  underlay cni install
  underlay cni install --dir /usr/lib/cni --force")]
    Install {
        /// Where the runtime looks for plugins.
        #[arg(long, default_value = "/opt/cni/bin")]
        dir: PathBuf,
        /// The `underlay-cni` binary to install.
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Replace plugins of the same names that are not underlay's.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab, run every check, tear it down; non-zero exit on any failure.
    Run,
    /// Build the lab and leave it up for exploring.
    Up,
    /// Tear the lab down.
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// What the lease keeper does for requests that leave it open (the CNI `dhcp` plugin's); the
/// reference daemon's flags, as `dhcp daemon` passes them.
#[derive(Debug, Args)]
pub struct DhcpDaemonArgs {
    /// Exchange timeout, in milliseconds, of requests that name none (1..300000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub default_timeout_ms: u64,
    /// Ask every server for broadcast answers.
    #[arg(long)]
    pub broadcast: bool,
    /// Ceiling of the DHCPv4 retransmission delay, in milliseconds (at least 100).
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..))]
    pub resend_max_ms: Option<u64>,
    /// Where the host's root is mounted when the keeper runs in a container: netns paths of
    /// requests are looked up under it.
    #[arg(long)]
    pub netns_prefix: Option<PathBuf>,
    /// Write the keeper's PID to this file once it listens.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
}
