//! `underlay lab`: a self-contained lab built from network namespaces (a bridge, a router, a
//! docker host and three containers), and the demo scenario replayed against it with this very
//! binary, then the VLAN-trunk scenario when the kernel has 802.1Q support (listed as skipped
//! when it has not). `run` checks everything and tears it down, `up` leaves it running to
//! explore, `down` removes it.

mod checks;
mod dhcp;
mod scenario;
mod sys;
mod topology;
mod underlay;
mod vlan;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use crate::cli::LabCommand;
use checks::{finish_line, print_phase, Runner, Summary};
use scenario::Lab;
use topology::{Topology, VlanSupport};
use underlay::Underlay;

/// Everything on disk that belongs to the lab lives under here.
const LAB_DIR: &str = "/run/underlay-lab";
/// The state directory `lab up` leaves behind for exploring.
const UP_STATE_DIR: &str = "/run/underlay-lab/state";

pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Run => lab_run(),
        LabCommand::Up => lab_up(),
        LabCommand::Down => lab_down(),
    }
}

/// Builds the lab, runs every check, and always tears it down.
fn lab_run() -> anyhow::Result<ExitCode> {
    check_prerequisites(&["ip", "ping"])?;
    remove_leftovers()?;
    let state_dir = Path::new(LAB_DIR).join(format!("run-{}", std::process::id()));
    let _cleanup = CleanupGuard::arm(state_dir.clone());
    println!(
        "underlay lab: macvlan network \"lab\" (198.51.100.0/24, 2001:db8:babe:cafe::/64) on \
         namespaces ul-lab-*; no packet leaves them"
    );
    let (mut lab, vlan_support) = build_lab(&state_dir)?;
    let total =
        scenario::SETUP.len() + scenario::CHECKS.len() + vlan::CHECKS.len() + dhcp::CHECKS.len();
    let mut runner = Runner::new(total);
    runner.run(&scenario::SETUP, &mut lab);
    runner.run(&scenario::CHECKS, &mut lab);
    match vlan_support {
        VlanSupport::Available => {
            println!(
                "VLAN trunk scenario: networks v10 (192.168.10.0/24) and v20 (192.168.20.0/24) on \
                 802.1Q sub-interfaces of the host's eth0; the router has eth0.10 and eth0.20"
            );
            runner.run(&vlan::CHECKS, &mut lab);
        }
        VlanSupport::Missing(why) => {
            println!("VLAN trunk scenario: skipped: {why}");
            runner.skip(&vlan::CHECKS);
        }
    }
    if sys::on_path("dnsmasq") {
        println!(
            "DHCP scenario: the router serves 198.51.100.150-199 and 2001:db8:babe:cafe::1:0/112 \
             (dnsmasq); network dhcp takes its addresses from it"
        );
        runner.run(&dhcp::CHECKS, &mut lab);
    } else {
        println!("DHCP scenario: skipped: dnsmasq is not installed (Debian: dnsmasq-base)");
        runner.skip(&dhcp::CHECKS);
    }
    let summary = runner.finish();
    print_summary(&summary);
    Ok(exit_code(&summary))
}

/// Builds the lab, creates the network and connects c1 and c2, and leaves it all running.
fn lab_up() -> anyhow::Result<ExitCode> {
    check_prerequisites(&["ip"])?;
    remove_leftovers()?;
    let state_dir = PathBuf::from(UP_STATE_DIR);
    let cleanup = CleanupGuard::arm(state_dir.clone());
    println!("underlay lab up: building the lab in namespaces ul-lab-*");
    let (mut lab, vlan_support) = build_lab(&state_dir)?;
    let mut runner = Runner::new(scenario::SETUP.len());
    runner.run(&scenario::SETUP, &mut lab);
    if !runner.finish().all_passed() {
        println!("the lab could not be set up; tearing it down");
        return Ok(ExitCode::FAILURE);
    }
    cleanup.disarm();
    print_exploring_hints(&vlan_support)?;
    Ok(ExitCode::SUCCESS)
}

/// Removes every `ul-lab-*` namespace and the lab's state; fine if there is nothing.
fn lab_down() -> anyhow::Result<ExitCode> {
    check_prerequisites(&["ip"])?;
    let removed = Topology::down()?;
    remove_lab_dir()?;
    if removed == 0 {
        println!("no lab namespaces were there");
    } else {
        println!("removed {removed} lab namespaces and {LAB_DIR}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The topology (timed, on its own line) and a fresh state directory; and whether the kernel
/// can do the VLAN-trunk scenario.
fn build_lab(state_dir: &Path) -> anyhow::Result<(Lab, VlanSupport)> {
    print_phase("building the topology");
    let started = std::time::Instant::now();
    let topology = match Topology::up() {
        Ok(topology) => topology,
        Err(err) => {
            finish_line("FAIL");
            return Err(err.context("the lab needs veth, bridge and macvlan support in the kernel"));
        }
    };
    finish_line(&format!("ok  ({} ms)", started.elapsed().as_millis()));
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state directory {}", state_dir.display()))?;
    Ok((Lab::new(Underlay::new(state_dir)?), topology.vlan))
}

/// One clear line (as the error) naming what is missing and how to get it.
fn check_prerequisites(programs: &[&str]) -> anyhow::Result<()> {
    if !sys::running_as_root()? {
        anyhow::bail!("the lab creates network namespaces and needs root: run it with sudo");
    }
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| !sys::on_path(program))
        .collect();
    if !missing.is_empty() {
        let packages: Vec<&str> = missing
            .iter()
            .map(|program| match *program {
                "ip" => "iproute2",
                "ping" => "iputils-ping",
                other => other,
            })
            .collect();
        anyhow::bail!(
            "missing {} on PATH: install with `apt-get install {}` (or your distribution's \
             equivalent)",
            missing.join(" and "),
            packages.join(" ")
        );
    }
    Ok(())
}

/// A lab left by an earlier `run` that was killed, or by `up`, would clash with the new one.
fn remove_leftovers() -> anyhow::Result<()> {
    let removed = Topology::down().context("removing the namespaces of an earlier lab")?;
    remove_lab_dir()?;
    if removed > 0 {
        println!("removed {removed} namespaces left over from an earlier lab");
    }
    Ok(())
}

fn remove_lab_dir() -> anyhow::Result<()> {
    match std::fs::remove_dir_all(LAB_DIR) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {LAB_DIR}"))
        }
        _ => Ok(()),
    }
}

/// "N passed, N failed" first, always (tools read it), then ", N skipped" when some were.
fn print_summary(summary: &Summary) {
    let mut line = format!("{} passed, {} failed", summary.passed, summary.failed);
    if summary.skipped > 0 {
        line.push_str(&format!(", {} skipped", summary.skipped));
    }
    println!("{line}");
}

fn exit_code(summary: &Summary) -> ExitCode {
    if summary.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_exploring_hints(vlan_support: &VlanSupport) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the underlay binary")?;
    let underlay = format!(
        "UNDERLAY_STATE_DIR={UP_STATE_DIR} ip netns exec {} {}",
        topology::HOST,
        exe.display()
    );
    println!(
        "\nThe lab is up: network \"lab\" with ul-lab-c1 (198.51.100.2) and ul-lab-c2 (198.51.100.3); \
         ul-lab-c3 is free.\nExplore it:\n  \
         ip netns exec ul-lab-c1 ping 198.51.100.3\n  \
         ip netns exec ul-lab-c1 ping -6 2001:db8:babe:cafe::1\n  \
         ip -n ul-lab-router neigh\n  \
         {underlay} network inspect lab\n  \
         {underlay} connect lab ul-lab-c3 --ip 198.51.100.200\n\
         Tear it down with: {} lab down",
        exe.display()
    );
    match vlan_support {
        VlanSupport::Available => println!(
            "The host's eth0 is also a VLAN trunk: the router answers on VLAN 10 (192.168.10.1) \
             and VLAN 20 (192.168.20.1), e.g.\n  \
             {underlay} network create --subnet 192.168.10.0/24 -o parent=eth0.10 --internal v10"
        ),
        VlanSupport::Missing(why) => println!("No VLAN trunk: {why}."),
    }
    Ok(())
}

/// Set while a lab must be torn down if this process ends early.
static ARMED: AtomicBool = AtomicBool::new(false);

/// Tears the lab down (namespaces and state directory) when dropped — on success, on an error
/// returned with `?`, and on a panic. The release profile builds with `panic = "abort"`, where
/// nothing is dropped, so a panic hook does the same; whichever runs first does the work.
struct CleanupGuard {
    state_dir: PathBuf,
}

impl CleanupGuard {
    fn arm(state_dir: PathBuf) -> Self {
        ARMED.store(true, Ordering::SeqCst);
        let hook_dir = state_dir.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            tear_down_if_armed(&hook_dir);
        }));
        CleanupGuard { state_dir }
    }

    /// Keeps the lab (for `lab up`).
    fn disarm(self) {
        ARMED.store(false, Ordering::SeqCst);
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        tear_down_if_armed(&self.state_dir);
    }
}

/// Best effort: a failure is printed, never raised (this runs in Drop and in a panic hook).
fn tear_down_if_armed(state_dir: &Path) {
    if !ARMED.swap(false, Ordering::SeqCst) {
        return;
    }
    if let Err(err) = Topology::down() {
        eprintln!("underlay lab: cleanup: {err:#}");
    }
    if let Err(err) = std::fs::remove_dir_all(state_dir) {
        if err.kind() != std::io::ErrorKind::NotFound {
            eprintln!(
                "underlay lab: cleanup: removing {}: {err}",
                state_dir.display()
            );
        }
    }
    // Only succeeds when empty: leaves nothing behind after `run`, touches nothing else.
    let _ = std::fs::remove_dir(LAB_DIR);
}
