//! `dhcp`: addresses from the LAN's own DHCP server, through underlay's lease keeper (started
//! as `dhcp daemon`, or as `underlay dhcp-daemon`/`underlay daemon` on the same socket). The
//! keeper runs the exchange inside the container's netns, keeps renewing the lease, and keeps
//! it across its own restarts; this plugin only asks and answers.

use std::net::IpAddr;
use std::time::Duration;

use underlay_cni::conf::dhcp::{DhcpConf, ProvideOption};
use underlay_cni::error::code;
use underlay_cni::result::IpConfig;
use underlay_cni::{CmdArgs, CniError, CniResult, Dns, IpNet, Plugin, Route};
use underlay_core::leases::{
    ApplyPolicy, KeeperClient, KeeperErrorKind, KeeperRequest, KeeperResponse, Lease4Info,
    LeaseReply, LeaseRequest, LeaseSummary, RawOption,
};
use underlay_dhcp::identity::derive_identity;

/// Option codes `provide` fills into the request's own fields.
const CLIENT_ID: u8 = 61;
const HOST_NAME: u8 = 12;
const VENDOR_CLASS: u8 = 60;
/// How long an answer may take beyond the keeper's own exchange timeout (which the plugin
/// leaves to the daemon: `-timeout`, at most 300 s).
const ACQUIRE_WAIT: Duration = Duration::from_secs(330);
const SHORT_WAIT: Duration = Duration::from_secs(10);

pub struct DhcpPlugin;

impl Plugin for DhcpPlugin {
    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = parse(args)?;
        let request = lease_request(&conf, args)?;
        let answer = call(
            &conf,
            &KeeperRequest::Acquire(Box::new(request)),
            ACQUIRE_WAIT,
        )?;
        match answer {
            KeeperResponse::Lease(reply) => Ok(result(&reply, &conf)),
            other => Err(unexpected(other)),
        }
    }

    /// Gives the lease back (the keeper sends RELEASE when the link is still there). A keeper
    /// that cannot be reached is "try again later": the lease must not be forgotten silently.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        let key = lease_key(&conf, args);
        match call(&conf, &KeeperRequest::Release { key }, SHORT_WAIT) {
            Ok(KeeperResponse::Released { .. }) => Ok(()),
            Ok(other) => Err(unexpected(other)),
            Err(err) if err.code == code::IO => Err(CniError::try_again(err.msg)),
            Err(err) => Err(err),
        }
    }

    /// The keeper holds a lease for this attachment, with the addresses of prevResult.
    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        let key = lease_key(&conf, args);
        let kept = leases(&conf)?.into_iter().find(|l| l.key == key);
        let Some(kept) = kept else {
            return Err(CniError::address_unavailable(format!(
                "the DHCP lease keeper holds no lease for {key}"
            )));
        };
        let held: Vec<IpAddr> = held_addresses(&kept.lease);
        let expected = conf.net.prev_result.iter().flat_map(|r| r.ips.iter());
        if let Some(lost) = expected
            .map(|ip| ip.address.addr())
            .find(|a| !held.contains(a))
        {
            return Err(CniError::address_unavailable(format!(
                "the DHCP lease of {key} no longer holds {lost}"
            )));
        }
        Ok(())
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        match call(&conf, &KeeperRequest::Ping, SHORT_WAIT) {
            Ok(KeeperResponse::Pong { .. }) => Ok(()),
            Ok(other) => Err(CniError::not_available(unexpected(other).msg)),
            Err(err) => Err(CniError::not_available(err.msg)),
        }
    }

    /// Releases this network's leases whose attachment the runtime no longer lists.
    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = parse(args)?;
        // No attachment list means "keep everything", never "delete everything".
        if conf.net.gc_attachments.is_none() {
            return Ok(());
        }
        let prefix = network_prefix(&conf);
        for lease in leases(&conf)? {
            let Some((id, ifname)) = lease.key.strip_prefix(&prefix).and_then(split_attachment)
            else {
                continue;
            };
            if !conf.net.gc_keeps(id, ifname) {
                let release = KeeperRequest::Release {
                    key: lease.key.clone(),
                };
                call(&conf, &release, SHORT_WAIT)?;
            }
        }
        Ok(())
    }
}

fn parse(args: &CmdArgs) -> Result<DhcpConf, CniError> {
    DhcpConf::parse(&args.stdin).map_err(CniError::from)
}

/// `cni/<network>/<container id>/<ifname>`: container ids and interface names hold no `/`.
fn lease_key(conf: &DhcpConf, args: &CmdArgs) -> String {
    format!(
        "{}{}/{}",
        network_prefix(conf),
        args.env.container_id,
        args.env.ifname
    )
}

fn network_prefix(conf: &DhcpConf) -> String {
    format!("cni/{}/", conf.net.name)
}

fn split_attachment(rest: &str) -> Option<(&str, &str)> {
    rest.rsplit_once('/')
}

fn lease_request(conf: &DhcpConf, args: &CmdArgs) -> Result<LeaseRequest, CniError> {
    let netns = args
        .env
        .netns
        .as_ref()
        .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD"))?;
    // The same network, container and interface always present the same identity (RFC 4361
    // client id over a DUID), so a retried ADD gets its address back.
    let identity = derive_identity(
        &format!("cni/{}", conf.net.name),
        &format!("{}/{}", args.env.container_id, args.env.ifname),
    );
    let mut request = LeaseRequest {
        key: lease_key(conf, args),
        netns: netns.display().to_string(),
        ifname: args.env.ifname.clone(),
        alias: None,
        client_id: identity.client_id,
        duid: identity.duid,
        iaid: identity.iaid,
        hostname: None,
        v4: true,
        v6: conf.ipv6,
        // ipvlan endpoints share their parent's MAC: a unicast reply would reach the parent.
        broadcast: conf.net.plugin_type == "ipvlan",
        servers: Vec::new(),
        timeout_ms: 0,
        probe_ms: None,
        apply: ApplyPolicy {
            metric: conf.priority.unwrap_or(0),
            default_route: true,
        },
        vendor_class: None,
        params: conf.request.iter().map(|r| r.option.code).collect(),
        options: Vec::new(),
        resend_max_ms: None,
    };
    for (index, provided) in conf.provide.iter().enumerate() {
        let value = provided_value(provided, index, args)?;
        match provided.option.code {
            CLIENT_ID => request.client_id = value.into_bytes(),
            HOST_NAME => request.hostname = Some(value),
            VENDOR_CLASS => request.vendor_class = Some(value),
            code => request.options.push(RawOption {
                code,
                value: value.into_bytes(),
            }),
        }
    }
    Ok(request)
}

/// `value`, or the value of the `CNI_ARGS` key `fromArg` names.
fn provided_value(
    provided: &ProvideOption,
    index: usize,
    args: &CmdArgs,
) -> Result<String, CniError> {
    let key = format!("ipam.provide[{index}]");
    let value = match (&provided.value, &provided.from_arg) {
        (Some(value), None) => value.clone(),
        (None, Some(arg)) => args.env.args.get(arg).map(str::to_string).ok_or_else(|| {
            CniError::invalid_env(format!(
                "{key}.fromArg names CNI_ARGS key {arg:?}, which CNI_ARGS does not have"
            ))
        })?,
        _ => {
            return Err(CniError::invalid_config(format!(
                "{key} needs exactly one of value and fromArg"
            )))
        }
    };
    if value.is_empty() || value.len() > 255 {
        return Err(CniError::invalid_config(format!(
            "{key} gives option {} a value of {} bytes; it takes 1 to 255",
            provided.option.code,
            value.len()
        )));
    }
    Ok(value)
}

fn call(
    conf: &DhcpConf,
    request: &KeeperRequest,
    wait: Duration,
) -> Result<KeeperResponse, CniError> {
    let client = KeeperClient::new(&conf.daemon_socket_path);
    let answer = client.call(request, wait).map_err(|e| {
        CniError::io(format!(
            "{e} (the dhcp plugin needs `dhcp daemon` listening on {})",
            conf.daemon_socket_path.display()
        ))
    })?;
    match answer {
        KeeperResponse::Error(err) => {
            let code = match err.kind {
                KeeperErrorKind::Invalid => code::INVALID_CONFIG,
                KeeperErrorKind::NotFound => code::LINK_NOT_FOUND,
                KeeperErrorKind::Conflict => code::ADDRESS_UNAVAILABLE,
                KeeperErrorKind::Timeout => code::TRY_AGAIN,
                KeeperErrorKind::Failed => code::IO,
            };
            Err(CniError::new(code, err.message))
        }
        answer => Ok(answer),
    }
}

fn leases(conf: &DhcpConf) -> Result<Vec<LeaseSummary>, CniError> {
    match call(conf, &KeeperRequest::List, SHORT_WAIT)? {
        KeeperResponse::Leases { leases } => Ok(leases),
        other => Err(unexpected(other)),
    }
}

fn unexpected(answer: KeeperResponse) -> CniError {
    CniError::io(format!(
        "the DHCP lease keeper gave an answer that does not fit the question: {answer:?}"
    ))
}

fn held_addresses(lease: &LeaseReply) -> Vec<IpAddr> {
    let v4 = lease.v4.iter().map(|l| IpAddr::V4(l.address));
    let v6 = lease.v6.iter().map(|l| IpAddr::V6(l.address));
    v4.chain(v6).collect()
}

/// The lease as a CNI IPAM result: the address with the first router as its gateway; the
/// classless routes (option 121) when the server sent them, else a default route via the
/// router; DNS servers, domain and search list.
fn result(reply: &LeaseReply, conf: &DhcpConf) -> CniResult {
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    let mut dns = Dns::default();
    if let Some(v4) = &reply.v4 {
        ips.push(IpConfig {
            address: net(IpAddr::V4(v4.address), v4.prefix),
            gateway: v4.routers.first().copied().map(IpAddr::V4),
            interface: None,
        });
        routes.extend(routes4(v4, conf.priority));
        dns.nameservers
            .extend(v4.dns.iter().map(ToString::to_string));
        dns.domain.clone_from(&v4.domain);
        dns.search.extend(v4.search.iter().cloned());
    }
    if let Some(v6) = &reply.v6 {
        ips.push(IpConfig {
            address: net(IpAddr::V6(v6.address), v6.prefix),
            gateway: None,
            interface: None,
        });
        dns.nameservers
            .extend(v6.dns.iter().map(ToString::to_string));
        for domain in &v6.search {
            if !dns.search.contains(domain) {
                dns.search.push(domain.clone());
            }
        }
    }
    CniResult {
        ips,
        routes,
        dns,
        ..CniResult::default()
    }
}

fn routes4(lease: &Lease4Info, priority: Option<u32>) -> Vec<Route> {
    let mut routes: Vec<Route> = if lease.routes.is_empty() {
        lease
            .routers
            .first()
            .map(|router| Route::new(net(IpAddr::V4(0.into()), 0), Some((*router).into())))
            .into_iter()
            .collect()
    } else {
        lease
            .routes
            .iter()
            .map(|r| {
                let gw = (!r.gateway.is_unspecified()).then_some(IpAddr::V4(r.gateway));
                Route::new(net(IpAddr::V4(r.dst), r.prefix), gw)
            })
            .collect()
    };
    for route in &mut routes {
        route.priority = priority;
    }
    routes
}

fn net(addr: IpAddr, prefix: u8) -> IpNet {
    IpNet::new(addr, prefix).unwrap_or_else(|| {
        let full = if addr.is_ipv4() { 32 } else { 128 };
        IpNet::new(addr, full).expect("a full-length prefix is valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use underlay_core::leases::Route4Info;

    fn conf(ipam: &str) -> DhcpConf {
        let json = format!(
            r#"{{"cniVersion":"1.1.0","name":"lan","type":"macvlan","ipam":{{"type":"dhcp"{ipam}}}}}"#
        );
        DhcpConf::parse(json.as_bytes()).unwrap()
    }

    fn lease(routes: Vec<Route4Info>) -> LeaseReply {
        LeaseReply {
            v4: Some(Lease4Info {
                address: Ipv4Addr::new(192, 0, 2, 10),
                prefix: 24,
                server: Ipv4Addr::new(192, 0, 2, 1),
                routers: vec![Ipv4Addr::new(192, 0, 2, 1)],
                routes,
                dns: vec![Ipv4Addr::new(192, 0, 2, 53)],
                domain: Some("lan.example".into()),
                search: vec!["lan.example".into()],
                mtu: None,
                lease_secs: 3600,
                t1_secs: 1800,
                t2_secs: 3150,
                acquired_ms: 0,
            }),
            v6: None,
        }
    }

    #[test]
    fn a_lease_without_classless_routes_gives_a_default_route_via_the_router() {
        let result = result(&lease(Vec::new()), &conf(r#","priority":77"#));
        assert_eq!(result.ips[0].address.to_string(), "192.0.2.10/24");
        assert_eq!(result.ips[0].gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(result.routes.len(), 1);
        assert_eq!(result.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(result.routes[0].gw, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(result.routes[0].priority, Some(77));
        assert_eq!(result.dns.nameservers, ["192.0.2.53"]);
        assert_eq!(result.dns.domain.as_deref(), Some("lan.example"));
    }

    #[test]
    fn classless_routes_replace_the_router_default() {
        let routes = vec![
            Route4Info {
                dst: Ipv4Addr::new(10, 0, 0, 0),
                prefix: 8,
                gateway: Ipv4Addr::new(192, 0, 2, 254),
            },
            Route4Info {
                dst: Ipv4Addr::new(198, 51, 100, 0),
                prefix: 24,
                gateway: Ipv4Addr::UNSPECIFIED,
            },
        ];
        let result = result(&lease(routes), &conf(""));
        let shown: Vec<String> = result
            .routes
            .iter()
            .map(|r| format!("{} {:?} {:?}", r.dst, r.gw, r.priority))
            .collect();
        assert_eq!(
            shown,
            [
                "10.0.0.0/8 Some(192.0.2.254) None",
                "198.51.100.0/24 None None"
            ]
        );
    }

    #[test]
    fn attachments_split_at_the_last_slash() {
        assert_eq!(split_attachment("abc/eth0"), Some(("abc", "eth0")));
        assert_eq!(split_attachment("noslash"), None);
    }
}
