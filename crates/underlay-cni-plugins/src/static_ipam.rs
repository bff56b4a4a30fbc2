//! `static`: the addresses, routes and DNS the configuration names; nothing to reserve.

use underlay_cni::conf::static_ipam::StaticConf;
use underlay_cni::result::IpConfig;
use underlay_cni::{CmdArgs, CniError, CniResult, Plugin};

pub struct StaticPlugin;

impl Plugin for StaticPlugin {
    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = StaticConf::parse(&args.stdin, &args.env.args).map_err(CniError::from)?;
        let ips = conf
            .addresses
            .iter()
            .map(|a| IpConfig {
                address: a.address,
                gateway: a.gateway,
                interface: None,
            })
            .collect();
        Ok(CniResult {
            ips,
            routes: conf.routes,
            dns: conf.dns,
            ..CniResult::default()
        })
    }

    fn del(&self, _args: &CmdArgs) -> Result<(), CniError> {
        Ok(())
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        StaticConf::parse(&args.stdin, &args.env.args)
            .map(drop)
            .map_err(CniError::from)
    }
}
