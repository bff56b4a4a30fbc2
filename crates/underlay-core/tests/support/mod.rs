//! A recording fake of the kernel: namespaces are paths, links live in maps, and any verb can
//! be made to fail once. Shared by the engine tests.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::rc::Rc;

use underlay_linux::{Error, IpNet, Kernel, Link, MacvlanSpec, Netlink, Route};

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
        self.next_index += 1;
        let index = self.next_index;
        let link = Link {
            index,
            name: name.to_string(),
            kind: None,
            mac: Some(mac),
            mtu: 1500,
            up: true,
            loopback,
            parent: None,
            macvlan_mode: None,
        };
        self.ns(ns).links.insert(index, link);
        index
    }

    pub fn link_names(&self, ns: &str) -> Vec<String> {
        self.namespaces[ns]
            .links
            .values()
            .map(|l| l.name.clone())
            .collect()
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
    fn create_macvlan(&mut self, _spec: &MacvlanSpec) -> Result<(), Error> {
        unimplemented!("the engine creates macvlans with create_macvlan_in")
    }
    fn rename_link(&mut self, index: u32, name: &str) -> Result<(), Error> {
        self.world
            .borrow_mut()
            .check("rename_link", format!("{index} {name}"))?;
        self.with(|ns| {
            if ns.links.values().any(|l| l.name == name) {
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

impl Kernel for FakeKernel {
    type Nl = FakeNl;
    type Ns = String;

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
    fn netlink_in(&mut self, ns: &String) -> Result<FakeNl, Error> {
        Ok(FakeNl {
            world: self.world.clone(),
            ns: ns.clone(),
        })
    }
    fn create_macvlan_in(&mut self, spec: &MacvlanSpec, ns: &String) -> Result<(), Error> {
        let mut w = self.world.borrow_mut();
        w.check("create_macvlan", format!("{} in {ns}", spec.name))?;
        if !w.ns(HOST).links.contains_key(&spec.parent) {
            return Err(Error::from_errno("create", 19));
        }
        w.next_index += 1;
        let index = w.next_index;
        let link = Link {
            index,
            name: spec.name.clone(),
            kind: Some("macvlan".into()),
            mac: spec.mac,
            mtu: spec.mtu.unwrap_or(1500),
            up: false,
            loopback: false,
            parent: Some(spec.parent),
            macvlan_mode: Some(spec.mode),
        };
        w.ns(ns).links.insert(index, link);
        Ok(())
    }
    fn sysctls_in(&mut self, ns: &String, settings: &[(String, String)]) -> Result<(), Error> {
        let mut w = self.world.borrow_mut();
        w.check("sysctls", format!("{settings:?}"))?;
        for (k, v) in settings {
            w.ns(ns).sysctls.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn netns_id(&mut self, ns: &String) -> Result<(u64, u64), Error> {
        Ok(self.world.borrow().namespaces[ns].id)
    }
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}
