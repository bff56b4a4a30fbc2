//! The container link a lease belongs to, seen from the keeper: found by netns and name, brought
//! up for DHCP, and changed when a lease changes under a running container.

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant as Clock};

use underlay_linux::{IpNet, Netlink, Netns, Route, RtNetlink};

use super::KeeperResult;
use crate::leases::{
    ApplyPolicy, KeeperError, KeeperErrorKind, Lease4Info, Lease6Info, LeaseRequest,
};
use crate::plumbing::{lease4_address, lease4_routes, lease6_address};

/// How long the kernel may take to give an interface its IPv6 link-local address.
const LINK_LOCAL_WAIT: Duration = Duration::from_secs(3);

pub(crate) struct LeaseLink {
    pub ns: Netns,
    pub netns_id: (u64, u64),
    pub index: u32,
    pub mac: [u8; 6],
    pub ifname: String,
    nl: RtNetlink,
}

fn failed(what: impl std::fmt::Display) -> KeeperError {
    KeeperError::new(KeeperErrorKind::Failed, what.to_string())
}

fn not_found(what: impl Into<String>) -> KeeperError {
    KeeperError::new(KeeperErrorKind::NotFound, what)
}

impl LeaseLink {
    /// The link of `request`: by name, or by alias when a runtime renamed it. With `expected`,
    /// the netns must be that one still (a container that went away and another netns at the
    /// same path are not the same link).
    pub fn of(request: &LeaseRequest, expected: Option<(u64, u64)>) -> KeeperResult<LeaseLink> {
        LeaseLink::open(
            &request.netns,
            &request.ifname,
            request.alias.as_deref(),
            expected,
        )
    }

    /// Finds `ifname` (or the link carrying `alias`) in the netns at `path`.
    pub fn open(
        path: &str,
        ifname: &str,
        alias: Option<&str>,
        expected: Option<(u64, u64)>,
    ) -> KeeperResult<LeaseLink> {
        let ns = Netns::open(Path::new(path))
            .map_err(|e| KeeperError::new(KeeperErrorKind::Invalid, format!("netns {path}: {e}")))?
            .ok_or_else(|| not_found(format!("netns {path} does not exist")))?;
        let netns_id = ns.id().map_err(failed)?;
        if expected.is_some_and(|id| id != netns_id) {
            return Err(not_found(format!(
                "netns {path} is not the one the lease was taken in"
            )));
        }
        let mut nl = RtNetlink::open_in(&ns).map_err(failed)?;
        let link = find_link(&mut nl, ifname, alias)?.ok_or_else(|| {
            not_found(format!("interface {ifname} does not exist in netns {path}"))
        })?;
        let mac = link.mac.ok_or_else(|| {
            KeeperError::new(
                KeeperErrorKind::Invalid,
                format!("interface {ifname} in netns {path} has no MAC address"),
            )
        })?;
        Ok(LeaseLink {
            ns,
            netns_id,
            index: link.index,
            mac,
            ifname: link.name.clone(),
            nl,
        })
    }

    /// DHCP needs the link up before the first packet: the reference client opens its socket on
    /// a down link, fails its first attempt and sleeps.
    pub fn bring_up(&mut self) -> KeeperResult<()> {
        self.nl.set_up(self.index).map_err(failed)
    }

    /// Whether the link carries `address` now.
    pub fn has_address(&mut self, address: IpAddr) -> bool {
        self.nl
            .addresses(self.index)
            .is_ok_and(|all| all.iter().any(|a| a.addr == address))
    }

    /// The link-local address DHCPv6 speaks from, once the kernel has made it.
    pub fn link_local(&mut self) -> KeeperResult<Ipv6Addr> {
        let start = Clock::now();
        loop {
            let found = self
                .nl
                .addresses(self.index)
                .map_err(failed)?
                .into_iter()
                .find_map(|a| match a.addr {
                    IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(v6),
                    _ => None,
                });
            if let Some(v6) = found {
                return Ok(v6);
            }
            if start.elapsed() > LINK_LOCAL_WAIT {
                return Err(failed(format!(
                    "interface {} has no IPv6 link-local address to run DHCPv6 from (is IPv6 disabled on it?)",
                    self.ifname
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces what `old` configured with what `new` gives (either may be absent).
    pub fn apply4(
        &mut self,
        old: Option<&Lease4Info>,
        new: Option<&Lease4Info>,
        policy: ApplyPolicy,
    ) -> KeeperResult<()> {
        let plan = |l: &Lease4Info| {
            (
                lease4_address(l),
                lease4_routes(l, policy.metric, policy.default_route),
            )
        };
        self.replace(old.map(plan), new.map(plan))
    }

    pub fn apply6(
        &mut self,
        old: Option<&Lease6Info>,
        new: Option<&Lease6Info>,
    ) -> KeeperResult<()> {
        let plan = |l: &Lease6Info| (lease6_address(l), Vec::new());
        self.replace(old.map(plan), new.map(plan))
    }

    fn replace(
        &mut self,
        old: Option<(IpNet, Vec<Route>)>,
        new: Option<(IpNet, Vec<Route>)>,
    ) -> KeeperResult<()> {
        if old == new {
            return Ok(());
        }
        let index = self.index;
        if let Some((address, routes)) = &old {
            for route in routes.iter().rev() {
                let route = Route {
                    oif: index,
                    ..route.clone()
                };
                self.nl.delete_route(&route).map_err(failed)?;
            }
            self.nl.delete_address(index, *address).map_err(failed)?;
        }
        if let Some((address, routes)) = &new {
            self.nl.add_address(index, *address).map_err(failed)?;
            for route in routes {
                let route = Route {
                    oif: index,
                    ..route.clone()
                };
                self.nl.add_route(&route).map_err(failed)?;
            }
        }
        Ok(())
    }
}

/// The link named `ifname`, or, when `alias` is given, the one carrying it (under any name: a
/// runtime may have renamed it).
fn find_link(
    nl: &mut RtNetlink,
    ifname: &str,
    alias: Option<&str>,
) -> KeeperResult<Option<underlay_linux::Link>> {
    let named = nl.link_by_name(ifname).map_err(failed)?;
    let Some(alias) = alias else {
        return Ok(named);
    };
    if let Some(link) = named.filter(|l| l.alias.as_deref() == Some(alias)) {
        return Ok(Some(link));
    }
    let links = nl.links().map_err(failed)?;
    Ok(links
        .into_iter()
        .find(|l| l.alias.as_deref() == Some(alias)))
}
