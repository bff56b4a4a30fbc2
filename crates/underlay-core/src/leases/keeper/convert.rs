//! The DHCP library's leases and the keeper's stored/wire views of them.

use std::time::Duration;

use underlay_dhcp::v4::{Lease4, Route4};
use underlay_dhcp::v6::Lease6;
use underlay_dhcp::{Instant, INFINITE};

use crate::leases::{Lease4Info, Lease6Info, Route4Info};

/// `u64::MAX` seconds stands for an infinite lease on the wire and on disk.
fn secs(d: Duration) -> u64 {
    if d == INFINITE {
        u64::MAX
    } else {
        d.as_secs()
    }
}

fn duration(secs: u64) -> Duration {
    if secs == u64::MAX {
        INFINITE
    } else {
        Duration::from_secs(secs)
    }
}

pub(crate) fn info4(lease: &Lease4) -> Lease4Info {
    Lease4Info {
        address: lease.address,
        prefix: lease.prefix,
        server: lease.server,
        routers: lease.routers.clone(),
        routes: lease
            .routes
            .iter()
            .map(|r| Route4Info {
                dst: r.dst,
                prefix: r.prefix,
                gateway: r.gateway,
            })
            .collect(),
        dns: lease.dns.clone(),
        domain: lease.domain.clone(),
        search: lease.search.clone(),
        mtu: lease.mtu,
        lease_secs: secs(lease.lease_time),
        t1_secs: secs(lease.t1),
        t2_secs: secs(lease.t2),
        acquired_ms: lease.acquired.0,
    }
}

pub(crate) fn lease4(info: &Lease4Info) -> Lease4 {
    Lease4 {
        address: info.address,
        prefix: info.prefix,
        server: info.server,
        routers: info.routers.clone(),
        routes: info
            .routes
            .iter()
            .map(|r| Route4 {
                dst: r.dst,
                prefix: r.prefix,
                gateway: r.gateway,
            })
            .collect(),
        dns: info.dns.clone(),
        domain: info.domain.clone(),
        search: info.search.clone(),
        mtu: info.mtu,
        acquired: Instant(info.acquired_ms),
        lease_time: duration(info.lease_secs),
        t1: duration(info.t1_secs),
        t2: duration(info.t2_secs),
    }
}

pub(crate) fn info6(lease: &Lease6) -> Lease6Info {
    Lease6Info {
        address: lease.address,
        prefix: 128,
        server_duid: lease.server_duid.clone(),
        server_addr: lease.server_addr,
        server_unicast: lease.server_unicast,
        dns: lease.dns.clone(),
        search: lease.search.clone(),
        preferred_secs: secs(lease.preferred),
        valid_secs: secs(lease.valid),
        t1_secs: secs(lease.t1),
        t2_secs: secs(lease.t2),
        acquired_ms: lease.acquired.0,
    }
}

pub(crate) fn lease6(info: &Lease6Info) -> Lease6 {
    Lease6 {
        address: info.address,
        preferred: duration(info.preferred_secs),
        valid: duration(info.valid_secs),
        t1: duration(info.t1_secs),
        t2: duration(info.t2_secs),
        server_duid: info.server_duid.clone(),
        server_addr: info.server_addr,
        server_unicast: info.server_unicast,
        dns: info.dns.clone(),
        search: info.search.clone(),
        acquired: Instant(info.acquired_ms),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn leases_survive_the_round_trip_infinite_included() {
        let v4 = Lease4 {
            address: Ipv4Addr::new(198, 51, 100, 9),
            prefix: 24,
            server: Ipv4Addr::new(198, 51, 100, 1),
            routers: vec![Ipv4Addr::new(198, 51, 100, 1)],
            routes: vec![Route4 {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Ipv4Addr::new(198, 51, 100, 1),
            }],
            dns: vec![Ipv4Addr::new(198, 51, 100, 53)],
            domain: Some("lan".into()),
            search: vec!["lan".into()],
            mtu: Some(1400),
            acquired: Instant(1_764_650_000_000),
            lease_time: INFINITE,
            t1: INFINITE,
            t2: INFINITE,
        };
        assert_eq!(lease4(&info4(&v4)), v4);
        let v6 = Lease6 {
            address: "2001:db8::9".parse::<Ipv6Addr>().unwrap(),
            preferred: Duration::from_secs(300),
            valid: Duration::from_secs(600),
            t1: Duration::from_secs(150),
            t2: Duration::from_secs(240),
            server_duid: vec![0, 1, 2],
            server_addr: "fe80::1".parse().unwrap(),
            server_unicast: None,
            dns: vec![],
            search: vec![],
            acquired: Instant(5),
        };
        assert_eq!(lease6(&info6(&v6)), v6);
    }
}
