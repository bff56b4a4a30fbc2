//! `macvlan`, `ipvlan` and `vlan`: a link on a host parent, born inside the container,
//! configured from the delegated IPAM plugin's result.
//!
//! Unlike the reference, a failed ADD leaves nothing: when the link cannot be built after IPAM
//! succeeded, the link (if any) is deleted and IPAM DEL is called before the error is returned.
//!
//! With our `vlan` key, macvlan and ipvlan links hang off the master's 802.1Q sub-interface,
//! which [`crate::parents`] creates and removes with the engine's ownership rules.

use std::path::Path;

use underlay_cni::conf::ipvlan::{IpvlanConf, IpvlanFlag as CniFlag, IpvlanMode as CniMode};
use underlay_cni::conf::macvlan::{MacvlanConf, MacvlanMode as CniMacvlanMode};
use underlay_cni::conf::vlan::VlanConf;
use underlay_cni::error::code;
use underlay_cni::result::{Interface, IpConfig, Route as CniRoute};
use underlay_cni::{CmdArgs, CniError, CniResult, NetConf, Plugin};
use underlay_core::{IfName, LinkKind, LinkPlan, MacAddr};
use underlay_linux::{
    IpNet, IpvlanFlag, IpvlanMode, Kernel, Link, LinuxKernel, MacvlanMode, Netlink, Netns, Route,
};

use crate::errors::{from_core, from_kernel};
use crate::ipam::Ipam;
use crate::parents::{parent_name, Registry, User};

/// Which link kind this invocation builds.
pub enum LinkPlugin {
    Macvlan,
    Ipvlan,
    /// The 802.1Q sub-interface itself is the container's interface.
    Vlan,
}

/// The parts of the two configurations the plumbing needs.
struct LinkConf {
    net: NetConf,
    master: Option<String>,
    /// `linkInContainer`: the master is in the container's netns.
    link_in_container: bool,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    /// Ours: hang the link off 802.1Q sub-interface `vlan` of the master.
    vlan: Option<u16>,
    kind: Kind,
}

enum Kind {
    Macvlan(MacvlanMode, Option<u32>),
    Ipvlan(IpvlanMode, IpvlanFlag),
    Vlan(u16),
}

impl LinkPlugin {
    fn conf(&self, args: &CmdArgs) -> Result<LinkConf, CniError> {
        match self {
            LinkPlugin::Macvlan => {
                let c = MacvlanConf::parse(&args.stdin, &args.env.args).map_err(CniError::from)?;
                refuse_vlan_in_container(c.vlan, c.link_in_container)?;
                Ok(LinkConf {
                    net: c.net,
                    master: c.master,
                    link_in_container: c.link_in_container,
                    mtu: c.mtu,
                    mac: c.mac.map(|m| m.0),
                    vlan: c.vlan,
                    kind: Kind::Macvlan(macvlan_mode(c.mode), c.bcqueuelen),
                })
            }
            LinkPlugin::Ipvlan => {
                let c = IpvlanConf::parse(&args.stdin).map_err(CniError::from)?;
                refuse_vlan_in_container(c.vlan, c.link_in_container)?;
                let master = match &c.master {
                    Some(m) => Some(m.clone()),
                    None => c
                        .chained_master()
                        .map_err(CniError::from)?
                        .map(String::from),
                };
                let kind = Kind::Ipvlan(ipvlan_mode(c.mode), ipvlan_flag(c.flag));
                Ok(LinkConf {
                    net: c.net,
                    master,
                    link_in_container: c.link_in_container,
                    mtu: c.mtu,
                    mac: None,
                    vlan: c.vlan,
                    kind,
                })
            }
            LinkPlugin::Vlan => {
                let c = VlanConf::parse(&args.stdin).map_err(CniError::from)?;
                Ok(LinkConf {
                    net: c.net,
                    master: Some(c.master),
                    link_in_container: c.link_in_container,
                    mtu: c.mtu,
                    mac: None,
                    vlan: None,
                    kind: Kind::Vlan(c.vlan_id),
                })
            }
        }
    }
}

/// With `linkInContainer` the sub-interface would live in the container's netns, shared by
/// nobody else: not supported, and said so rather than ignored.
fn refuse_vlan_in_container(vlan: Option<u16>, link_in_container: bool) -> Result<(), CniError> {
    match vlan {
        Some(id) if link_in_container => Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!(
                "unsupported field vlan ({id}) together with linkInContainer (true): the 802.1Q \
                 parent is made in the host netns only"
            ),
        )),
        _ => Ok(()),
    }
}

impl LinkConf {
    /// This attachment, as a user of a VLAN parent.
    fn user(&self, args: &CmdArgs) -> User {
        User {
            network: self.net.name.clone(),
            container_id: args.env.container_id.clone(),
            ifname: args.env.ifname.clone(),
        }
    }
}

impl Plugin for LinkPlugin {
    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = self.conf(args)?;
        let mut kernel =
            LinuxKernel::open_single_threaded().map_err(|e| from_kernel("opening netlink", e))?;
        let netns_path = args
            .env
            .netns
            .clone()
            .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD"))?;
        let ns = open_netns(&netns_path)?;
        let mut nl = kernel
            .netlink_in(&ns)
            .map_err(|e| from_kernel("opening netlink in the container", e))?;
        let master = if conf.link_in_container {
            find_master(&mut nl, conf.master.as_deref())?
        } else {
            find_master(kernel.host(), conf.master.as_deref())?
        };
        refuse_taken_ifname(&mut nl, args, &netns_path)?;
        let Some(vid) = conf.vlan else {
            return ipam_then_link(&mut kernel, &ns, &mut nl, &conf, args, &master, &netns_path);
        };
        let registry = Registry::open()?;
        let user = conf.user(args);
        let parent = registry.attach(kernel.host(), &master, vid, user.clone())?;
        let done = ipam_then_link(&mut kernel, &ns, &mut nl, &conf, args, &parent, &netns_path);
        if done.is_err() {
            let _ = registry.detach(kernel.host(), Some(&parent.name), &user);
        }
        done
    }

    /// IPAM DEL, then the link if the netns and the link are still there (both gone is
    /// success), then the VLAN parent if this was its last user.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = self.conf(args)?;
        let ipam = match conf.net.ipam_type() {
            Some(kind) => Ipam::new(kind, args).del(),
            None => Ok(()),
        };
        delete_container_link(args)?;
        if let Some(vid) = conf.vlan {
            release_parent(&conf, args, vid)?;
        }
        ipam
    }

    /// The link exists with the right kind and mode and carries the addresses of prevResult;
    /// IPAM CHECK is delegated.
    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = self.conf(args)?;
        let prev = conf
            .net
            .prev_result
            .clone()
            .ok_or_else(|| CniError::invalid_config("CHECK needs prevResult"))?;
        if let Some(kind) = conf.net.ipam_type() {
            Ipam::new(kind, args).check()?;
        }
        let netns_path = args
            .env
            .netns
            .clone()
            .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for CHECK"))?;
        let ns = open_netns(&netns_path)?;
        let mut nl = container_netlink(&ns)
            .map_err(|e| from_kernel("opening netlink in the container", e))?;
        let link = nl
            .link_by_name(&args.env.ifname)
            .map_err(|e| from_kernel("looking up CNI_IFNAME", e))?
            .ok_or_else(|| {
                CniError::new(
                    code::LINK_NOT_FOUND,
                    format!("interface {} is missing", args.env.ifname),
                )
            })?;
        check_kind(&link, &conf.kind)?;
        if let Some(vid) = conf.vlan {
            check_parent(&conf, vid)?;
        }
        let present = nl
            .addresses(link.index)
            .map_err(|e| from_kernel("listing addresses", e))?;
        for ip in &prev.ips {
            let want = IpNet {
                addr: ip.address.addr(),
                prefix: ip.address.prefix(),
            };
            if !present.contains(&want) {
                return Err(CniError::new(
                    code::LINK_NOT_FOUND,
                    format!("address {want} is missing from {}", args.env.ifname),
                ));
            }
        }
        Ok(())
    }

    /// 50 when the master is missing (no ADD can work), 51 when it is down or has no carrier
    /// (existing containers are cut off), then the IPAM plugin's answer. A master inside the
    /// container (`linkInContainer`) cannot be seen without a container: not checked.
    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = self.conf(args)?;
        if !conf.link_in_container {
            let master = find_master(&mut host_netlink()?, conf.master.as_deref())
                .map_err(|e| CniError::not_available(e.msg))?;
            if !master.up || !master.carrier {
                let why = if master.up {
                    "has no carrier"
                } else {
                    "is down"
                };
                return Err(CniError::not_available_degraded(format!(
                    "master {} {why}: existing containers on it have no connectivity",
                    master.name
                )));
            }
        }
        match conf.net.ipam_type() {
            Some(kind) => Ipam::new(kind, args).status(),
            None => Ok(()),
        }
    }

    /// IPAM GC, and the users of VLAN parents missing from the attachment list (with the
    /// parents they leave unused).
    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = self.conf(args)?;
        if conf.vlan.is_some() {
            if let Some(valid) = &conf.net.gc_attachments {
                let valid: Vec<(&str, &str)> = valid
                    .iter()
                    .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
                    .collect();
                let mut host = host_netlink()?;
                Registry::open()?.gc(&mut host, &conf.net.name, &valid)?;
            }
        }
        match conf.net.ipam_type() {
            Some(kind) => Ipam::new(kind, args).gc(),
            None => Ok(()),
        }
    }
}

/// IPAM ADD, then the link on `parent`; a failure of the link deletes it and calls IPAM DEL.
fn ipam_then_link(
    kernel: &mut LinuxKernel,
    ns: &Netns,
    nl: &mut underlay_linux::RtNetlink,
    conf: &LinkConf,
    args: &CmdArgs,
    parent: &Link,
    netns_path: &Path,
) -> Result<CniResult, CniError> {
    if let Some(kind @ "dhcp") = conf.net.ipam_type() {
        return link_then_ipam(kernel, ns, nl, conf, args, parent, netns_path, kind);
    }
    let ipam = match conf.net.ipam_type() {
        Some(kind) => Ipam::new(kind, args).add()?,
        None => CniResult::default(),
    };
    let plan = plan(conf, args, parent, &ipam, netns_path)?;
    match underlay_core::plumb_link(kernel, ns, nl, &plan) {
        Ok(index) => result(nl, index, &plan, conf, args, ipam),
        Err(err) => {
            delete_named(nl, &plan.tmp_ifname.to_string());
            delete_named(nl, &args.env.ifname);
            if let Some(kind) = conf.net.ipam_type() {
                let _ = Ipam::new(kind, args).del();
            }
            Err(from_core(err))
        }
    }
}

/// For IPAM that needs the link itself (DHCP speaks on it): the link is created first, down
/// and bare, IPAM runs, then the addresses and routes it gave are configured. Any failure
/// removes the link and gives back what IPAM handed out.
#[allow(clippy::too_many_arguments)]
fn link_then_ipam(
    kernel: &mut LinuxKernel,
    ns: &Netns,
    nl: &mut underlay_linux::RtNetlink,
    conf: &LinkConf,
    args: &CmdArgs,
    parent: &Link,
    netns_path: &Path,
    kind: &str,
) -> Result<CniResult, CniError> {
    let mut plan = plan(conf, args, parent, &CniResult::default(), netns_path)?;
    let dhcpv6 = underlay_cni::conf::dhcp::DhcpConf::parse(&args.stdin).is_ok_and(|c| c.ipv6);
    if dhcpv6 {
        // Optimistic DAD: the DHCPv6 client can speak from the link-local address at once.
        plan.ipv6_mode = Some(underlay_core::Ipv6Mode::Dhcpv6);
    }
    let index = match underlay_core::create_link(kernel, ns, nl, &plan) {
        Ok(index) => index,
        Err(err) => {
            delete_named(nl, &plan.tmp_ifname.to_string());
            delete_named(nl, &args.env.ifname);
            return Err(from_core(err));
        }
    };
    let ipam = Ipam::new(kind, args);
    let configured = ipam.add().and_then(|lease| {
        address_plan(&mut plan, &lease);
        underlay_core::configure_link(nl, index, &plan).map_err(from_core)?;
        Ok(lease)
    });
    match configured {
        Ok(lease) => result(nl, index, &plan, conf, args, lease),
        Err(err) => {
            delete_named(nl, &args.env.ifname);
            // Also after a failed ADD: the keeper may have finished an exchange the plugin
            // stopped waiting for.
            let _ = ipam.del();
            Err(err)
        }
    }
}

/// ADD refuses to take over an interface of the container that is already there.
fn refuse_taken_ifname(
    nl: &mut underlay_linux::RtNetlink,
    args: &CmdArgs,
    netns_path: &Path,
) -> Result<(), CniError> {
    let taken = nl
        .link_by_name(&args.env.ifname)
        .map_err(|e| from_kernel("looking up CNI_IFNAME", e))?
        .is_some();
    if taken {
        return Err(CniError::new(
            code::LINK_EXISTS,
            format!(
                "interface {} already exists in {}",
                args.env.ifname,
                netns_path.display()
            ),
        ));
    }
    Ok(())
}

/// Deletes CNI_IFNAME in CNI_NETNS; the netns or the link being gone already is success.
fn delete_container_link(args: &CmdArgs) -> Result<(), CniError> {
    let Some(path) = &args.env.netns else {
        return Ok(());
    };
    let Ok(Some(ns)) = Netns::open(path) else {
        return Ok(());
    };
    let mut nl =
        container_netlink(&ns).map_err(|e| from_kernel("opening netlink in the container", e))?;
    if let Some(link) = nl
        .link_by_name(&args.env.ifname)
        .map_err(|e| from_kernel("looking up CNI_IFNAME", e))?
    {
        nl.delete_link(link.index)
            .map_err(|e| from_kernel("deleting CNI_IFNAME", e))?;
    }
    Ok(())
}

/// This attachment no longer uses its VLAN parent. The parent is found from the master (the
/// default-route interface when none is named); when even that is gone, every recorded parent
/// is searched for the attachment.
fn release_parent(conf: &LinkConf, args: &CmdArgs, vid: u16) -> Result<(), CniError> {
    let mut host = host_netlink()?;
    let master = match &conf.master {
        Some(m) => Some(m.clone()),
        None => find_master(&mut host, None).ok().map(|l| l.name),
    };
    let name = master.map(|m| parent_name(&m, vid)).transpose()?;
    Registry::open()?.detach(&mut host, name.as_deref(), &conf.user(args))
}

/// CHECK with `vlan`: the parent is still there and still VLAN `vid` of the master.
fn check_parent(conf: &LinkConf, vid: u16) -> Result<(), CniError> {
    let mut host = host_netlink()?;
    let master = find_master(&mut host, conf.master.as_deref())?;
    crate::parents::check(&mut host, &master.name, vid)
}

fn host_netlink() -> Result<underlay_linux::RtNetlink, CniError> {
    underlay_linux::RtNetlink::open().map_err(|e| from_kernel("opening netlink", e))
}

/// `master`, or the interface of the default route (the reference's default), in the
/// namespace of `host` (the container's, with `linkInContainer`).
fn find_master(host: &mut impl Netlink, master: Option<&str>) -> Result<Link, CniError> {
    let link = match master {
        Some(name) => host
            .link_by_name(name)
            .map_err(|e| from_kernel("looking up master", e))?,
        None => match host
            .default_route_link()
            .map_err(|e| from_kernel("finding the default route", e))?
        {
            Some(index) => host
                .link_by_index(index)
                .map_err(|e| from_kernel("looking up master", e))?,
            None => None,
        },
    };
    link.ok_or_else(|| {
        let what = master.map_or("the default-route interface".to_string(), |m| {
            format!("master {m}")
        });
        CniError::new(code::LINK_NOT_FOUND, format!("{what} does not exist"))
    })
}

fn open_netns(path: &Path) -> Result<Netns, CniError> {
    match Netns::open(path) {
        Ok(Some(ns)) => Ok(ns),
        Ok(None) => Err(CniError::new(
            code::INVALID_NETNS,
            format!("netns {} does not exist", path.display()),
        )),
        Err(e) => Err(CniError::new(code::INVALID_NETNS, e.to_string())),
    }
}

/// The IPAM result as a link plan: its addresses, and its routes with the gateway of the
/// route's family when the route names none (as the reference's ConfigureIface does).
fn plan(
    conf: &LinkConf,
    args: &CmdArgs,
    master: &Link,
    ipam: &CniResult,
    netns: &Path,
) -> Result<LinkPlan, CniError> {
    let kind = match conf.kind {
        Kind::Macvlan(mode, bc_queue_len) => {
            let mac = match conf.mac {
                Some(mac) => MacAddr(mac),
                None => MacAddr::random().map_err(from_core)?,
            };
            LinkKind::Macvlan {
                mode,
                mac,
                bc_queue_len,
            }
        }
        Kind::Ipvlan(mode, flag) => LinkKind::Ipvlan { mode, flag },
        Kind::Vlan(id) => LinkKind::Vlan { id },
    };
    let mut plan = LinkPlan {
        kind,
        parent_index: master.index,
        parent_name: master.name.clone(),
        parent_in_container: conf.link_in_container,
        tmp_ifname: IfName::temporary().map_err(from_core)?,
        ifname: args.env.ifname.parse().map_err(from_core)?,
        alias: format!("underlay:cni:{}:{}", args.env.container_id, args.env.ifname),
        mtu: conf.mtu.filter(|m| *m > 0),
        addresses: Vec::new(),
        routes: Vec::new(),
        netns: netns.display().to_string(),
        route_conflict_hint: "give the route another priority".to_string(),
        ipv6_mode: None,
    };
    address_plan(&mut plan, ipam);
    Ok(plan)
}

/// The addresses and routes IPAM gave, as the link's.
fn address_plan(plan: &mut LinkPlan, ipam: &CniResult) {
    plan.addresses = ipam
        .ips
        .iter()
        .map(|ip| IpNet {
            addr: ip.address.addr(),
            prefix: ip.address.prefix(),
        })
        .collect();
    plan.routes = ipam.routes.iter().map(|r| route(r, &ipam.ips)).collect();
}

fn route(r: &CniRoute, ips: &[IpConfig]) -> Route {
    let dst = IpNet {
        addr: r.dst.addr(),
        prefix: r.dst.prefix(),
    };
    let gateway = r.gw.or_else(|| {
        ips.iter()
            .filter(|ip| ip.address.is_ipv4() == dst.addr.is_ipv4())
            .find_map(|ip| ip.gateway)
    });
    Route {
        dst,
        gateway,
        oif: 0,
        metric: r.priority.unwrap_or(0),
    }
}

fn result(
    nl: &mut underlay_linux::RtNetlink,
    index: u32,
    plan: &LinkPlan,
    conf: &LinkConf,
    args: &CmdArgs,
    ipam: CniResult,
) -> Result<CniResult, CniError> {
    let mac = match plan.kind {
        // The kernel takes the address it is given: no need to ask it back.
        LinkKind::Macvlan { mac, .. } => Some(mac.to_string()),
        // ipvlan and vlan links carry their parent's address.
        _ => nl
            .link_by_index(index)
            .map_err(|e| from_kernel("reading the new link", e))?
            .and_then(|l| l.mac)
            .map(|m| MacAddr(m).to_string()),
    };
    let ips = ipam
        .ips
        .into_iter()
        .map(|ip| IpConfig {
            interface: Some(0),
            ..ip
        })
        .collect();
    let dns = if ipam.dns.is_empty() {
        conf.net.dns.clone()
    } else {
        ipam.dns
    };
    Ok(CniResult {
        interfaces: vec![Interface {
            name: args.env.ifname.clone(),
            mac,
            sandbox: Some(plan.netns.clone()),
            ..Interface::default()
        }],
        ips,
        routes: ipam.routes,
        dns,
    })
}

fn check_kind(link: &Link, kind: &Kind) -> Result<(), CniError> {
    let ok = match kind {
        Kind::Macvlan(mode, _) => {
            link.kind.as_deref() == Some("macvlan") && link.macvlan_mode == Some(*mode)
        }
        Kind::Ipvlan(mode, flag) => {
            link.kind.as_deref() == Some("ipvlan") && link.ipvlan == Some((*mode, *flag))
        }
        Kind::Vlan(id) => link.kind.as_deref() == Some("vlan") && link.vlan_id == Some(*id),
    };
    if !ok {
        return Err(CniError::new(
            code::LINK_NOT_FOUND,
            format!(
                "interface {} is not the configured kind and mode",
                link.name
            ),
        ));
    }
    Ok(())
}

/// A netlink socket in a container's netns, opened by this (single) thread stepping in.
fn container_netlink(ns: &Netns) -> Result<underlay_linux::RtNetlink, underlay_linux::Error> {
    ns.run_here(underlay_linux::RtNetlink::open)?
}

fn delete_named(nl: &mut underlay_linux::RtNetlink, name: &str) {
    if let Ok(Some(link)) = nl.link_by_name(name) {
        let _ = nl.delete_link(link.index);
    }
}

fn macvlan_mode(mode: CniMacvlanMode) -> MacvlanMode {
    match mode {
        CniMacvlanMode::Bridge => MacvlanMode::Bridge,
        CniMacvlanMode::Private => MacvlanMode::Private,
        CniMacvlanMode::Vepa => MacvlanMode::Vepa,
        CniMacvlanMode::Passthru => MacvlanMode::Passthru,
    }
}

fn ipvlan_mode(mode: CniMode) -> IpvlanMode {
    match mode {
        CniMode::L2 => IpvlanMode::L2,
        CniMode::L3 => IpvlanMode::L3,
        CniMode::L3s => IpvlanMode::L3s,
    }
}

fn ipvlan_flag(flag: CniFlag) -> IpvlanFlag {
    match flag {
        CniFlag::Bridge => IpvlanFlag::Bridge,
        CniFlag::Private => IpvlanFlag::Private,
        CniFlag::Vepa => IpvlanFlag::Vepa,
    }
}
