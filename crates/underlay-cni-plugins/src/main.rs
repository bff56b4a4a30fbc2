//! `underlay-cni`: underlay's CNI plugins in one binary. Installed (linked) under the reference
//! plugins' type names, it answers as the plugin it is called: `macvlan`, `ipvlan`, `vlan`,
//! `host-local`, `static`, `dhcp`. `underlay-cni TYPE` does the same for a given type, and
//! `dhcp daemon [flags]` runs underlay's DHCP lease keeper.

mod dhcp;
mod dhcp_daemon;
mod errors;
mod hostlocal;
mod ipam;
mod link;
mod parents;
mod static_ipam;

use std::path::Path;
use std::process::ExitCode;

use underlay_cni::run_main;

/// The plugin types this binary answers as.
pub const TYPES: &[&str] = &["macvlan", "ipvlan", "vlan", "host-local", "static", "dhcp"];

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let called = Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let kind = if TYPES.contains(&called.as_str()) {
        Some(called.clone())
    } else {
        args.next()
    };
    let rest: Vec<String> = args.collect();
    if kind.as_deref() == Some("dhcp") && rest.first().map(String::as_str) == Some("daemon") {
        return ExitCode::from(u8::try_from(dhcp_daemon::main(&rest[1..])).unwrap_or(1));
    }
    let code = match kind.as_deref() {
        Some("macvlan") => run_main(&link::LinkPlugin::Macvlan),
        Some("ipvlan") => run_main(&link::LinkPlugin::Ipvlan),
        Some("vlan") => run_main(&link::LinkPlugin::Vlan),
        Some("host-local") => run_main(&hostlocal::HostLocalPlugin),
        Some("static") => run_main(&static_ipam::StaticPlugin),
        Some("dhcp") => run_main(&dhcp::DhcpPlugin),
        other => {
            eprintln!(
                "underlay-cni: call me as one of {} (a link named so, or `underlay-cni TYPE`), not {:?}",
                TYPES.join(", "),
                other.unwrap_or(&called)
            );
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
