//! `host-local`: addresses from ranges, reserved in the reference plugin's on-disk format (so a
//! host can switch between the reference and underlay in both directions).

use std::net::IpAddr;

use underlay_cni::conf::host_local::{HostLocalConf, Range as RangeConf};
use underlay_cni::error::code;
use underlay_cni::result::{Dns, IpConfig};
use underlay_cni::{CmdArgs, CniError, CniResult, IpNet, Plugin};
use underlay_ipam::{HostLocal, Range, Subnet};

use crate::errors::from_hostlocal;

pub struct HostLocalPlugin;

impl Plugin for HostLocalPlugin {
    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = parse(args)?;
        let store = open(&conf)?;
        let (id, ifname) = (&args.env.container_id, &args.env.ifname);
        let mut ips = Vec::new();
        for (index, set) in conf.ranges.iter().enumerate() {
            let requested = conf
                .requested_ips
                .iter()
                .copied()
                .find(|ip| set.iter().any(|r| r.contains(*ip)));
            match allocate(&store, index, set, id, ifname, requested) {
                Ok(ip) => ips.push(ip),
                Err(err) => {
                    // All or nothing: what this ADD reserved in earlier range sets goes again.
                    let _ = store.release(id, ifname);
                    return Err(err);
                }
            }
        }
        if let Some(stray) = conf
            .requested_ips
            .iter()
            .find(|ip| !conf.ranges.iter().flatten().any(|r| r.contains(**ip)))
        {
            let _ = store.release(id, ifname);
            return Err(CniError::new(
                code::ADDRESS_UNAVAILABLE,
                format!("requested address {stray} is in no range"),
            ));
        }
        Ok(CniResult {
            ips,
            routes: conf.routes.clone(),
            dns: resolv_conf(&conf)?,
            ..CniResult::default()
        })
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        open(&conf)?
            .release(&args.env.container_id, &args.env.ifname)
            .map(drop)
            .map_err(from_hostlocal)
    }

    /// Like the reference: the attachment holds some address. prevResult's addresses are
    /// tried first, so a CHECK reads one file instead of the index.
    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        let (id, ifname) = (&args.env.container_id, &args.env.ifname);
        let expected: Vec<IpAddr> = conf
            .net
            .prev_result
            .iter()
            .flat_map(|r| r.ips.iter().map(|ip| ip.address.addr()))
            .collect();
        let held = open(&conf)?
            .holds(id, ifname, &expected)
            .map_err(from_hostlocal)?;
        if !held {
            return Err(CniError::new(
                code::ADDRESS_UNAVAILABLE,
                format!("host-local holds no address for container {id} interface {ifname}"),
            ));
        }
        Ok(())
    }

    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        // No attachment list means "keep everything", never "delete everything".
        let Some(valid) = &conf.net.gc_attachments else {
            return Ok(());
        };
        let valid: Vec<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        open(&conf)?.gc(&valid).map(drop).map_err(from_hostlocal)
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        open(&conf)
            .and_then(|store| store.status().map_err(from_hostlocal))
            .map_err(|e| CniError::not_available(e.msg))
    }
}

fn parse(args: &CmdArgs) -> Result<HostLocalConf, CniError> {
    HostLocalConf::parse(&args.stdin, &args.env.args).map_err(CniError::from)
}

fn open(conf: &HostLocalConf) -> Result<HostLocal, CniError> {
    HostLocal::open(conf.data_dir(), &conf.net.name).map_err(from_hostlocal)
}

fn allocate(
    store: &HostLocal,
    index: usize,
    set: &[RangeConf],
    id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> Result<IpConfig, CniError> {
    let ranges = set
        .iter()
        .map(to_store_range)
        .collect::<Result<Vec<_>, _>>()?;
    let ip = store
        .allocate(index, &ranges, id, ifname, requested)
        .map_err(from_hostlocal)?;
    let range = set.iter().find(|r| r.contains(ip)).unwrap_or(&set[0]);
    let address = IpNet::new(ip, range.subnet.prefix())
        .ok_or_else(|| CniError::new(code::INTERNAL, format!("bad prefix for {ip}")))?;
    Ok(IpConfig {
        address,
        gateway: Some(range.gateway),
        interface: None,
    })
}

fn to_store_range(r: &RangeConf) -> Result<Range, CniError> {
    let subnet = Subnet::new(r.subnet.addr(), r.subnet.prefix())
        .map_err(|e| CniError::invalid_config(e.to_string()))?;
    Ok(Range {
        subnet,
        range_start: Some(r.range_start),
        range_end: Some(r.range_end),
        gateway: Some(r.gateway),
    })
}

/// `resolvConf`: the DNS settings of a resolv.conf-style file, as the reference reads them.
fn resolv_conf(conf: &HostLocalConf) -> Result<Dns, CniError> {
    let Some(path) = &conf.resolv_conf else {
        return Ok(Dns::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CniError::io(format!("reading resolvConf {}: {e}", path.display())))?;
    let mut dns = Dns::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(String::from)),
            Some("domain") => dns.domain = words.next().map(String::from),
            Some("search") => dns.search.extend(words.map(String::from)),
            Some("options") => dns.options.extend(words.map(String::from)),
            _ => {}
        }
    }
    Ok(dns)
}
