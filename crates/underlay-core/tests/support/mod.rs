//! A recording fake of the kernel: namespaces are paths, links live in maps, and any verb can
//! be made to fail once. Shared by the engine tests.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use underlay_core::{Engine, State};
use underlay_dhcp::acd::announcements;
use underlay_linux::{
    Error, FrameSocket, IpNet, IpvlanSpec, Kernel, Link, MacvlanSpec, Netlink, Route, VlanSpec,
};

pub const HOST: &str = "host";

#[derive(Default, Debug)]
pub struct Namespace {
    pub id: (u64, u64),
    pub links: BTreeMap<u32, Link>,
    pub addresses: Vec<(u32, IpNet)>,
    pub routes: Vec<Route>,
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Default, Debug)]
pub struct World {
    pub namespaces: BTreeMap<String, Namespace>,
    pub next_index: u32,
    pub next_ns_id: u64,
    /// Verbs that fail, once each, in order ("create_macvlan", "rename_link", "sysctls",
    /// "add_address", "set_up", "add_route", "delete_link"), with EPERM.
    pub fail: Vec<&'static str>,
    pub calls: Vec<String>,
    /// Hosts on the LAN that answer probes for their address: (address, MAC).
    pub lan: Vec<(IpAddr, [u8; 6])>,
    /// Every frame sent on a frame socket, with the netns it was sent in.
    pub frames: Vec<(String, Vec<u8>)>,
}

impl World {
    fn check(&mut self, verb: &'static str, detail: String) -> Result<(), Error> {
        self.calls.push(format!("{verb} {detail}"));
        if let Some(pos) = self.fail.iter().position(|v| *v == verb) {
            self.fail.remove(pos);
            return Err(Error::from_errno(verb, 1));
        }
        Ok(())
    }

    pub fn ns(&mut self, path: &str) -> &mut Namespace {
        self.namespaces.get_mut(path).expect("namespace exists")
    }

    pub fn add_namespace(&mut self, path: &str) {
        self.next_ns_id += 1;
        let id = (7, self.next_ns_id);
        self.namespaces.insert(
            path.to_string(),
            Namespace {
                id,
                ..Default::default()
            },
        );
    }

    pub fn add_link(&mut self, ns: &str, name: &str, mac: [u8; 6], loopback: bool) -> u32 {
        let mut link = plain_link(name, Some(mac));
        link.up = true;
        link.loopback = loopback;
        self.insert_link(ns, link)
    }

    pub fn insert_link(&mut self, ns: &str, mut link: Link) -> u32 {
        self.next_index += 1;
        link.index = self.next_index;
        self.ns(ns).links.insert(link.index, link);
        self.next_index
    }

    pub fn link(&self, ns: &str, name: &str) -> Option<Link> {
        self.namespaces[ns]
            .links
            .values()
            .find(|l| l.name == name)
            .cloned()
    }

    /// What a container runtime does with a handed-off link: moves it from `from` into `to`
    /// under `name`.
    pub fn move_link(&mut self, from: &str, to: &str, old: &str, name: &str) {
        let index = self.link(from, old).expect("link to move").index;
        let mut link = self.ns(from).links.remove(&index).unwrap();
        link.name = name.to_string();
        self.insert_link(to, link);
    }

    pub fn remove_link(&mut self, ns: &str, name: &str) {
        self.ns(ns).links.retain(|_, l| l.name != name);
    }

    pub fn link_names(&self, ns: &str) -> Vec<String> {
        self.namespaces[ns]
            .links
            .values()
            .map(|l| l.name.clone())
            .collect()
    }
}

pub fn plain_link(name: &str, mac: Option<[u8; 6]>) -> Link {
    Link {
        index: 0,
        name: name.to_string(),
        kind: None,
        mac,
        mtu: 1500,
        up: false,
        carrier: true,
        loopback: false,
        parent: None,
        macvlan_mode: None,
        ipvlan: None,
        vlan_id: None,
        alias: None,
    }
}

pub type Shared = Rc<RefCell<World>>;

/// A world with a host namespace holding `lo` and `eth0`, and container namespaces.
pub fn world(containers: &[&str]) -> Shared {
    let world = Shared::default();
    {
        let mut w = world.borrow_mut();
        w.add_namespace(HOST);
        w.add_link(HOST, "lo", [0; 6], true);
        w.add_link(HOST, "eth0", [0x52, 0x54, 0, 0, 0, 1], false);
        for c in containers {
            w.add_namespace(c);
        }
    }
    world
}

pub struct FakeNl {
    world: Shared,
    ns: String,
}

pub struct FakeKernel {
    world: Shared,
    host: FakeNl,
}

impl FakeKernel {
    pub fn new(world: &Shared) -> Self {
        FakeKernel {
            world: world.clone(),
            host: FakeNl {
                world: world.clone(),
                ns: HOST.to_string(),
            },
        }
    }
}

impl FakeNl {
    fn with<T>(&self, f: impl FnOnce(&mut Namespace) -> T) -> T {
        let mut w = self.world.borrow_mut();
        f(w.ns(&self.ns))
    }
}

impl FakeNl {
    fn add(&mut self, link: Link) -> Result<(), Error> {
        let mut w = self.world.borrow_mut();
        if w.ns(&self.ns).links.values().any(|l| l.name == link.name) {
            return Err(Error::from_errno("create", 17));
        }
        w.insert_link(&self.ns.clone(), link);
        Ok(())
    }
}

impl FakeNl {
    /// A child link of `parent`, made in this socket's own namespace.
    fn create_here(&mut self, mut link: Link, parent: u32, mtu: Option<u32>) -> Result<(), Error> {
        let mut w = self.world.borrow_mut();
        w.check("create_child", format!("{} in {}", link.name, self.ns))?;
        if !w.ns(&self.ns).links.contains_key(&parent) {
            return Err(Error::from_errno("create", 19));
        }
        link.parent = Some(parent);
        link.mtu = mtu.unwrap_or(1500);
        let ns = self.ns.clone();
        w.insert_link(&ns, link);
        Ok(())
    }
}

impl Netlink for FakeNl {
    fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, Error> {
        Ok(self.with(|ns| ns.links.values().find(|l| l.name == name).cloned()))
    }
    fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, Error> {
        Ok(self.with(|ns| ns.links.get(&index).cloned()))
    }
    fn links(&mut self) -> Result<Vec<Link>, Error> {
        Ok(self.with(|ns| ns.links.values().cloned().collect()))
    }
    fn create_macvlan(&mut self, spec: &MacvlanSpec) -> Result<(), Error> {
        let mut link = plain_link(&spec.name, spec.mac);
        link.kind = Some("macvlan".into());
        link.macvlan_mode = Some(spec.mode);
        self.create_here(link, spec.parent, spec.mtu)
    }
    fn create_ipvlan(&mut self, spec: &IpvlanSpec) -> Result<(), Error> {
        let parent_mac = self.with(|ns| ns.links.get(&spec.parent).and_then(|l| l.mac));
        let mut link = plain_link(&spec.name, parent_mac);
        link.kind = Some("ipvlan".into());
        link.ipvlan = Some((spec.mode, spec.flag));
        self.create_here(link, spec.parent, spec.mtu)
    }
    fn create_vlan(&mut self, spec: &VlanSpec) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("create_vlan", spec.name.clone())?;
        let mut link = plain_link(&spec.name, Some([2, 0, 0, 0, 1, 1]));
        link.kind = Some("vlan".into());
        link.vlan_id = Some(spec.id);
        link.parent = Some(spec.parent);
        self.add(link)
    }
    fn create_dummy(&mut self, name: &str) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("create_dummy", name.to_string())?;
        let mut link = plain_link(name, Some([2, 0, 0, 0, 2, 2]));
        link.kind = Some("dummy".into());
        self.add(link)
    }
    fn set_alias(&mut self, index: u32, alias: &str) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("set_alias", index.to_string())?;
        self.with(|ns| {
            ns.links
                .get_mut(&index)
                .map(|l| l.alias = Some(alias.to_string()))
                .ok_or(Error::from_errno("alias", 19))
        })
    }
    fn rename_link(&mut self, index: u32, name: &str) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("rename_link", format!("{index} {name}"))?;
        self.with(|ns| {
            if ns
                .links
                .values()
                .any(|l| l.name == name && l.index != index)
            {
                return Err(Error::from_errno("rename", 17));
            }
            ns.links
                .get_mut(&index)
                .ok_or(Error::from_errno("rename", 19))?
                .name = name.to_string();
            Ok(())
        })
    }
    fn set_up(&mut self, index: u32) -> Result<(), Error> {
        self.world.borrow_mut().check("set_up", index.to_string())?;
        self.with(|ns| {
            ns.links
                .get_mut(&index)
                .map(|l| l.up = true)
                .ok_or(Error::from_errno("up", 19))
        })
    }
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("set_mtu", format!("{index} {mtu}"))?;
        self.with(|ns| {
            if let Some(link) = ns.links.get_mut(&index) {
                link.mtu = mtu;
            }
        });
        Ok(())
    }
    fn delete_link(&mut self, index: u32) -> Result<bool, Error> {
        self.world
            .borrow_mut()
            .check("delete_link", index.to_string())?;
        Ok(self.with(|ns| {
            ns.addresses.retain(|(i, _)| *i != index);
            ns.routes.retain(|r| r.oif != index);
            ns.links.remove(&index).is_some()
        }))
    }
    fn add_address(&mut self, index: u32, addr: IpNet) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("add_address", format!("{index} {addr}"))?;
        self.with(|ns| ns.addresses.push((index, addr)));
        Ok(())
    }
    fn delete_address(&mut self, index: u32, addr: IpNet) -> Result<bool, Error> {
        self.world
            .borrow_mut()
            .check("delete_address", format!("{index} {addr}"))?;
        Ok(self.with(|ns| {
            let before = ns.addresses.len();
            ns.addresses.retain(|a| *a != (index, addr));
            ns.addresses.len() != before
        }))
    }
    fn addresses(&mut self, index: u32) -> Result<Vec<IpNet>, Error> {
        Ok(self.with(|ns| {
            ns.addresses
                .iter()
                .filter(|(i, _)| *i == index)
                .map(|(_, a)| *a)
                .collect()
        }))
    }
    fn add_route(&mut self, route: &Route) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("add_route", format!("{route:?}"))?;
        self.with(|ns| ns.routes.push(route.clone()));
        Ok(())
    }
    fn delete_route(&mut self, route: &Route) -> Result<bool, Error> {
        self.world
            .borrow_mut()
            .check("delete_route", format!("{route:?}"))?;
        Ok(self.with(|ns| {
            let before = ns.routes.len();
            ns.routes.retain(|r| r != route);
            ns.routes.len() != before
        }))
    }
    fn default_route_link(&mut self) -> Result<Option<u32>, Error> {
        Ok(self.with(|ns| {
            ns.routes
                .iter()
                .filter(|r| r.dst.prefix == 0)
                .min_by_key(|r| r.metric)
                .map(|r| r.oif)
        }))
    }
    fn routes(&mut self, index: u32) -> Result<Vec<Route>, Error> {
        Ok(self.with(|ns| {
            ns.routes
                .iter()
                .filter(|r| r.oif == index)
                .cloned()
                .collect()
        }))
    }
}

/// A frame socket whose LAN is `World::lan`: a probe for a live address is answered with
/// that host's announcement.
pub struct FakeFrames {
    world: Shared,
    ns: String,
    inbox: Vec<Vec<u8>>,
}

impl FrameSocket for FakeFrames {
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let mut w = self.world.borrow_mut();
        w.check(
            "send_frame",
            format!("{} bytes in {}", frame.len(), self.ns),
        )?;
        w.frames.push((self.ns.clone(), frame.to_vec()));
        if let Some(target) = probed_address(frame) {
            for (ip, mac) in w.lan.iter().filter(|(ip, _)| *ip == target) {
                self.inbox.extend(announcements(*mac, &[*ip]));
            }
        }
        Ok(())
    }

    fn recv_frame(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, Error> {
        if self.inbox.is_empty() {
            std::thread::sleep(timeout.min(Duration::from_millis(5)));
            return Ok(None);
        }
        Ok(Some(self.inbox.remove(0)))
    }
}

/// The address an ARP probe (sender 0.0.0.0) or a DAD neighbour solicitation asks about.
pub fn probed_address(frame: &[u8]) -> Option<IpAddr> {
    match frame.get(12..14)? {
        [0x08, 0x06] if frame.get(28..32)? == [0, 0, 0, 0] => {
            let t: [u8; 4] = frame.get(38..42)?.try_into().ok()?;
            Some(IpAddr::from(t))
        }
        // IPv6, next header ICMPv6, type 135 (neighbour solicitation) from ::.
        [0x86, 0xdd] if frame.get(20) == Some(&58) && frame.get(54) == Some(&135) => {
            if frame.get(22..38)? != [0u8; 16] {
                return None;
            }
            let t: [u8; 16] = frame.get(62..78)?.try_into().ok()?;
            Some(IpAddr::from(t))
        }
        _ => None,
    }
}

impl Kernel for FakeKernel {
    type Nl = FakeNl;
    type Ns = String;
    type Frames = FakeFrames;

    fn host(&mut self) -> &mut FakeNl {
        &mut self.host
    }
    fn open_netns(&mut self, path: &Path) -> Result<Option<String>, Error> {
        let path = path.display().to_string();
        Ok(self
            .world
            .borrow()
            .namespaces
            .contains_key(&path)
            .then_some(path))
    }
    fn host_netns(&mut self) -> Result<(String, std::path::PathBuf), Error> {
        Ok((HOST.to_string(), HOST.into()))
    }
    fn netlink_in(&mut self, ns: &String) -> Result<FakeNl, Error> {
        Ok(FakeNl {
            world: self.world.clone(),
            ns: ns.clone(),
        })
    }
    fn create_macvlan_in(&mut self, spec: &MacvlanSpec, ns: &String) -> Result<(), Error> {
        let mut link = plain_link(&spec.name, spec.mac);
        link.kind = Some("macvlan".into());
        link.macvlan_mode = Some(spec.mode);
        self.create_child(link, spec.parent, spec.mtu, ns)
    }
    fn create_ipvlan_in(&mut self, spec: &IpvlanSpec, ns: &String) -> Result<(), Error> {
        let parent_mac = self
            .world
            .borrow_mut()
            .ns(HOST)
            .links
            .get(&spec.parent)
            .and_then(|l| l.mac);
        let mut link = plain_link(&spec.name, parent_mac);
        link.kind = Some("ipvlan".into());
        link.ipvlan = Some((spec.mode, spec.flag));
        self.create_child(link, spec.parent, spec.mtu, ns)
    }
    fn create_vlan_in(&mut self, spec: &VlanSpec, ns: &String) -> Result<(), Error> {
        let mut link = plain_link(&spec.name, Some([2, 0, 0, 0, 4, 4]));
        link.kind = Some("vlan".into());
        link.vlan_id = Some(spec.id);
        self.create_child(link, spec.parent, None, ns)
    }
    fn sysctls_in(&mut self, ns: &String, settings: &[(String, String)]) -> Result<(), Error> {
        let mut w = self.world.borrow_mut();
        w.check("sysctls", format!("{settings:?}"))?;
        for (k, v) in settings {
            w.ns(ns).sysctls.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn frame_socket_in(&mut self, ns: &String, _ifindex: u32) -> Result<FakeFrames, Error> {
        self.world.borrow_mut().check("frame_socket", ns.clone())?;
        Ok(FakeFrames {
            world: self.world.clone(),
            ns: ns.clone(),
            inbox: Vec::new(),
        })
    }
    fn netns_id(&mut self, ns: &String) -> Result<(u64, u64), Error> {
        Ok(self.world.borrow().namespaces[ns].id)
    }

    fn watch_netns(&mut self, _ns: &String) -> Result<(), Error> {
        Ok(())
    }
}

impl FakeKernel {
    fn create_child(
        &mut self,
        mut link: Link,
        parent: u32,
        mtu: Option<u32>,
        ns: &String,
    ) -> Result<(), Error> {
        let mut w = self.world.borrow_mut();
        w.check("create_child", format!("{} in {ns}", link.name))?;
        if !w.ns(HOST).links.contains_key(&parent) {
            return Err(Error::from_errno("create", 19));
        }
        link.parent = Some(parent);
        link.mtu = mtu.unwrap_or(1500);
        w.insert_link(ns, link);
        Ok(())
    }
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// An engine over a fake world and a throwaway state directory.
pub struct Fixture {
    pub world: Shared,
    pub engine: Engine<FakeKernel>,
    _dir: TempDir,
}

/// A fixture whose world has the host and these container namespaces.
pub fn fixture(containers: &[&str]) -> Fixture {
    let dir = TempDir::new().unwrap();
    let world = world(containers);
    let engine = Engine::new(FakeKernel::new(&world), State::open(dir.path()).unwrap());
    Fixture {
        world,
        engine,
        _dir: dir,
    }
}

/// A lease keeper that grants a fixed lease and records what it was asked.
#[derive(Clone, Default)]
pub struct FakeLeases {
    pub requests: Arc<Mutex<Vec<underlay_core::leases::LeaseRequest>>>,
    pub released: Arc<Mutex<Vec<String>>>,
    pub relocated: Arc<Mutex<Vec<String>>>,
    pub reply: Arc<Mutex<underlay_core::leases::LeaseReply>>,
    /// Refuse the next acquire with this conflict message.
    pub refuse: Arc<Mutex<Option<String>>>,
}

impl underlay_core::leases::Leases for FakeLeases {
    fn acquire(
        &mut self,
        request: &underlay_core::leases::LeaseRequest,
    ) -> Result<underlay_core::leases::LeaseReply, underlay_core::Error> {
        self.requests.lock().unwrap().push(request.clone());
        if let Some(why) = self.refuse.lock().unwrap().take() {
            return Err(underlay_core::Error::Conflict(why));
        }
        Ok(self.reply.lock().unwrap().clone())
    }

    fn release(&mut self, key: &str) -> Result<bool, underlay_core::Error> {
        self.released.lock().unwrap().push(key.to_string());
        Ok(true)
    }

    fn relocate(
        &mut self,
        key: &str,
        netns: &str,
        alias: &str,
    ) -> Result<(), underlay_core::Error> {
        self.relocated
            .lock()
            .unwrap()
            .push(format!("{key} {netns} {alias}"));
        Ok(())
    }
}

/// A fixture whose engine has a [`FakeLeases`] keeper.
pub fn fixture_with_leases(containers: &[&str]) -> (Fixture, FakeLeases) {
    let dir = TempDir::new().unwrap();
    let world = world(containers);
    let leases = FakeLeases::default();
    let engine = Engine::new(FakeKernel::new(&world), State::open(dir.path()).unwrap())
        .with_leases(Box::new(leases.clone()));
    (
        Fixture {
            world,
            engine,
            _dir: dir,
        },
        leases,
    )
}
