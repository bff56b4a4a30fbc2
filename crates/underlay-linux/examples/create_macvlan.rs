//! Creates a macvlan and prints it, optionally directly inside another network namespace.
//!
//! ```text
//! create_macvlan PARENT NAME [MODE] [NETNS_PATH]
//! ip netns add demo && ip netns exec demo ip link add p0 type veth peer name p1
//! ip netns exec demo target/debug/examples/create_macvlan p0 mv0 bridge
//! ```

use std::process::ExitCode;

use underlay_linux::{
    Error, Kernel, LinuxKernel, MacvlanMode, MacvlanSpec, Netlink, Netns, RtNetlink,
};

fn parse_mode(mode: &str) -> Option<MacvlanMode> {
    [
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Bridge,
        MacvlanMode::Passthru,
        MacvlanMode::Source,
    ]
    .into_iter()
    .find(|candidate| candidate.as_str() == mode)
}

fn run(parent: &str, name: &str, mode: MacvlanMode, netns: Option<&str>) -> Result<(), Error> {
    let mut kernel = LinuxKernel::open()?;
    let Some(parent_link) = kernel.host().link_by_name(parent)? else {
        eprintln!("no link named {parent}");
        return Ok(());
    };
    let spec = MacvlanSpec {
        name: name.to_string(),
        parent: parent_link.index,
        mode,
        mac: None,
        mtu: None,
        bc_queue_len: None,
    };
    let mut netlink: RtNetlink = match netns {
        Some(path) => {
            let Some(ns) = Netns::open(path)? else {
                eprintln!("no network namespace at {path}");
                return Ok(());
            };
            kernel.create_macvlan_in(&spec, &ns)?;
            kernel.netlink_in(&ns)?
        }
        None => {
            kernel.host().create_macvlan(&spec)?;
            RtNetlink::open()?
        }
    };
    println!("{:?}", netlink.link_by_name(name)?);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(parent), Some(name)) = (args.first(), args.get(1)) else {
        eprintln!("usage: create_macvlan PARENT NAME [MODE] [NETNS_PATH]");
        return ExitCode::from(2);
    };
    let Some(mode) = parse_mode(args.get(2).map_or("bridge", String::as_str)) else {
        eprintln!("mode is one of private, vepa, bridge, passthru, source");
        return ExitCode::from(2);
    };
    match run(parent, name, mode, args.get(3).map(String::as_str)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
