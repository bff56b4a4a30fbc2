//! Our `vlan` key on macvlan and ipvlan: the container's link hangs off the 802.1Q
//! sub-interface `<master>.<vid>` of the master (named like the engine names it, see
//! [`underlay_core::vlan_link_name`]), with the engine's ownership rules:
//!
//! - a sub-interface that exists must be VLAN `vid` of the master; it is then used as it is and
//!   never deleted (the user made it);
//! - a missing one is created (and brought up) and then *owned*: recorded before it is created,
//!   so a crash can leave a record without a link (harmless: the next ADD creates it, the next
//!   DEL or GC drops the record) but never a link without a record;
//! - an owned one is deleted when the last attachment using it is deleted or collected.
//!
//! The record of an owned parent is `<dir>/<parent>.json` (`dir` is [`DEFAULT_PARENTS_DIR`], or
//! [`PARENTS_DIR_ENV`]): the boot it was made in, its trunk, VLAN ID and interface index, and
//! its users, the attachments (network, container ID, ifname) hanging off it. It is written to a
//! temporary file and renamed into place, and only read or written under the flock of
//! `<dir>/<parent>.lock`, which also serialises creating and deleting the link, so parallel
//! ADDs and DELs on one VLAN neither create it twice nor delete it under a user.
//!
//! Ownership proofs that a record alone cannot give: a record of another boot is void (the
//! link it describes died with that boot, and an interface of that name now is somebody
//! else's), and so is a record whose interface index is not the link's (the user deleted ours
//! and made their own). A link we create is also marked with the alias `underlay:cni:parent`,
//! which proves it ours in the moment between its creation and the record learning its index.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use underlay_cni::CniError;
use underlay_core::{vlan_link_name, IfName};
use underlay_linux::{Link, Netlink, RtNetlink, VlanSpec};

use crate::errors::from_kernel;

/// Where the records of owned parents live by default.
pub const DEFAULT_PARENTS_DIR: &str = "/var/lib/underlay/cni/parents";
/// Overrides [`DEFAULT_PARENTS_DIR`] (tests, or a host whose /var/lib is read-only).
pub const PARENTS_DIR_ENV: &str = "UNDERLAY_CNI_PARENTS_DIR";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The alias (`IFLA_IFALIAS`) a parent gets when we create it: what proves a link is ours
/// while its record does not know its interface index yet.
const PARENT_ALIAS: &str = "underlay:cni:parent";

/// One attachment hanging off a parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

/// `<dir>/<parent>.json`: a parent we created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    boot_id: String,
    trunk: String,
    vlan: u16,
    /// `None` between writing the record and the kernel creating the link.
    ifindex: Option<u32>,
    users: Vec<User>,
}

/// The directory of parent records.
pub struct Registry {
    dir: PathBuf,
    boot_id: String,
}

/// One parent's record, under its lock.
struct Entry {
    _lock: Flock<File>,
    name: String,
    path: PathBuf,
    record: Option<Record>,
}

impl Registry {
    /// The registry at [`PARENTS_DIR_ENV`] or [`DEFAULT_PARENTS_DIR`].
    pub fn open() -> Result<Registry, CniError> {
        let dir = std::env::var_os(PARENTS_DIR_ENV)
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_PARENTS_DIR), PathBuf::from);
        let boot_id = fs::read_to_string(BOOT_ID)
            .map_err(|e| CniError::io(format!("reading {BOOT_ID}: {e}")))?
            .trim()
            .to_string();
        Ok(Registry { dir, boot_id })
    }

    /// Takes parent `name`'s lock and reads its record (a void one reads as none).
    fn lock(&self, name: &str) -> Result<Entry, CniError> {
        fs::create_dir_all(&self.dir).map_err(io_error("creating", &self.dir))?;
        let lock_path = self.dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error("opening", &lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error("locking", &lock_path)(errno.into()))?;
        let path = self.dir.join(format!("{name}.json"));
        let record = read_record(&path)?.filter(|r| r.boot_id == self.boot_id);
        Ok(Entry {
            _lock: lock,
            name: name.to_string(),
            path,
            record,
        })
    }

    /// The names of the parents that have a record.
    fn recorded(&self) -> Result<Vec<String>, CniError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("listing", &self.dir)(e)),
        };
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".json").map(String::from))
            .collect())
    }

    /// The parent for `user`: VLAN `vid` of `trunk`, created (and owned) if missing.
    pub fn attach(
        &self,
        host: &mut RtNetlink,
        trunk: &Link,
        vid: u16,
        user: User,
    ) -> Result<Link, CniError> {
        let name = parent_name(&trunk.name, vid)?;
        let mut entry = self.lock(&name)?;
        match lookup(host, &name)? {
            Some(link) => {
                check_vlan(host, &link, &trunk.name, vid)?;
                entry.forget_unless_owner_of(&link);
                if let Some(record) = &mut entry.record {
                    record.ifindex = Some(link.index);
                    record.add(user);
                    entry.save()?;
                }
                Ok(link)
            }
            None => self.create(host, &mut entry, trunk, vid, user),
        }
    }

    /// Records the parent (with `user`) before creating it, then creates it, up.
    fn create(
        &self,
        host: &mut RtNetlink,
        entry: &mut Entry,
        trunk: &Link,
        vid: u16,
        user: User,
    ) -> Result<Link, CniError> {
        let mut record = entry.record.take().unwrap_or_else(|| Record {
            boot_id: self.boot_id.clone(),
            trunk: trunk.name.clone(),
            vlan: vid,
            ifindex: None,
            users: Vec::new(),
        });
        record.ifindex = None;
        record.add(user.clone());
        entry.record = Some(record);
        entry.save()?;
        crash_point("cni-parent-recorded");
        match create_vlan(host, &entry.name, trunk, vid) {
            Ok(link) => {
                crash_point("cni-parent-created");
                if let Some(record) = &mut entry.record {
                    record.ifindex = Some(link.index);
                }
                entry.save()?;
                Ok(link)
            }
            Err(err) => {
                let _ = entry.remove_user(&user);
                let _ = entry.release_if_unused(host);
                Err(err)
            }
        }
    }

    /// `user` no longer hangs off parent `name` (the one its configuration names, when it
    /// could be worked out, else whichever lists it): the parent goes with its last user if we
    /// own it. A recorded parent without users goes too, whoever the user was: that is what a
    /// crash between creating a parent and its user's link leaves.
    pub fn detach(
        &self,
        host: &mut RtNetlink,
        name: Option<&str>,
        user: &User,
    ) -> Result<(), CniError> {
        let names = match name {
            Some(name) => vec![name.to_string()],
            None => self.recorded()?,
        };
        for name in names {
            let mut entry = self.lock(&name)?;
            entry.remove_user(user)?;
            entry.release_if_unused(host)?;
        }
        Ok(())
    }

    /// CNI GC for `network`: its users that are not in `valid` (container ID, ifname) are
    /// dropped from every parent, and owned parents left without users are deleted.
    pub fn gc(
        &self,
        host: &mut RtNetlink,
        network: &str,
        valid: &[(&str, &str)],
    ) -> Result<(), CniError> {
        for name in self.recorded()? {
            let mut entry = self.lock(&name)?;
            if let Some(record) = &mut entry.record {
                let before = record.users.len();
                record.users.retain(|u| {
                    u.network != network
                        || valid.contains(&(u.container_id.as_str(), u.ifname.as_str()))
                });
                if record.users.len() != before {
                    entry.save()?;
                }
            }
            entry.release_if_unused(host)?;
        }
        Ok(())
    }
}

impl Record {
    fn add(&mut self, user: User) {
        if !self.users.contains(&user) {
            self.users.push(user);
        }
    }
}

impl Entry {
    /// A record whose link has another interface index is not about this link (nor is one
    /// that does not know the index yet, when the link lacks our alias).
    fn forget_unless_owner_of(&mut self, link: &Link) {
        let ours = self.record.as_ref().is_some_and(|r| match r.ifindex {
            Some(index) => index == link.index,
            None => link.alias.as_deref() == Some(PARENT_ALIAS),
        });
        if !ours {
            self.record = None;
        }
    }

    fn remove_user(&mut self, user: &User) -> Result<(), CniError> {
        let Some(record) = &mut self.record else {
            return Ok(());
        };
        let before = record.users.len();
        record.users.retain(|u| u != user);
        if record.users.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Deletes the parent and its record when we own it and nobody uses it.
    fn release_if_unused(&mut self, host: &mut RtNetlink) -> Result<(), CniError> {
        let Some(record) = &self.record else {
            // A void record (another boot) is dropped too.
            return self.save();
        };
        if !record.users.is_empty() {
            return Ok(());
        }
        if let Some(link) = lookup(host, &self.name)? {
            self.forget_unless_owner_of(&link);
            if self.record.is_some() {
                host.delete_link(link.index)
                    .map_err(|e| from_kernel(&format!("deleting parent {}", self.name), e))?;
            }
        }
        self.record = None;
        self.save()
    }

    /// Writes the record atomically (temporary file, rename), or removes it when there is
    /// none. No fsync: what it records, a link, does not outlive a crash of the machine
    /// either, and a record of another boot is void.
    fn save(&self) -> Result<(), CniError> {
        let Some(record) = &self.record else {
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    Err(io_error("removing", &self.path)(e))
                }
                _ => Ok(()),
            };
        };
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec(record)
            .map_err(|e| CniError::internal(format!("encoding {}: {e}", self.path.display())))?;
        File::create(&tmp)
            .and_then(|mut f| f.write_all(&text))
            .map_err(io_error("writing", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_error("renaming", &tmp))
    }
}

/// `<master>.<vid>`, cut to the kernel's 15 bytes like the engine does.
pub fn parent_name(master: &str, vid: u16) -> Result<String, CniError> {
    let trunk: IfName = master
        .parse()
        .map_err(|e| CniError::invalid_config(format!("invalid master {master:?}: {e}")))?;
    Ok(vlan_link_name(&trunk, vid).to_string())
}

/// CHECK: VLAN parent `vid` of `master` exists and is what its name says.
pub fn check(host: &mut RtNetlink, master: &str, vid: u16) -> Result<(), CniError> {
    let name = parent_name(master, vid)?;
    let link = lookup(host, &name)?
        .ok_or_else(|| CniError::link_not_found(format!("parent {name} is missing")))?;
    check_vlan(host, &link, master, vid)
}

fn read_record(path: &Path) -> Result<Option<Record>, CniError> {
    match fs::read(path) {
        // A record that does not parse cannot prove ownership: it is not one.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("reading", path)(e)),
    }
}

fn lookup(host: &mut RtNetlink, name: &str) -> Result<Option<Link>, CniError> {
    host.link_by_name(name)
        .map_err(|e| from_kernel(&format!("looking up parent {name}"), e))
}

/// An existing `<master>.<vid>` must really be VLAN `vid` of the master.
fn check_vlan(host: &mut RtNetlink, link: &Link, master: &str, vid: u16) -> Result<(), CniError> {
    let trunk = lookup(host, master)?.map(|t| t.index);
    let is_it = link.kind.as_deref() == Some("vlan")
        && link.vlan_id == Some(vid)
        && trunk.is_some()
        && link.parent == trunk;
    if !is_it {
        return Err(CniError::link_exists(format!(
            "interface {} exists but is not VLAN {vid} of {master}",
            link.name
        )));
    }
    Ok(())
}

fn create_vlan(host: &mut RtNetlink, name: &str, trunk: &Link, vid: u16) -> Result<Link, CniError> {
    let spec = VlanSpec {
        name: name.to_string(),
        parent: trunk.index,
        id: vid,
        mtu: None,
    };
    let what = format!("creating VLAN {vid} parent {name} on {}", trunk.name);
    host.create_vlan(&spec).map_err(|e| from_kernel(&what, e))?;
    let link = lookup(host, name)?
        .ok_or_else(|| CniError::kernel(format!("parent {name} vanished after creation")))?;
    let marked = host
        .set_alias(link.index, PARENT_ALIAS)
        .map_err(|e| from_kernel(&format!("marking parent {name}"), e))
        .and_then(|()| {
            host.set_up(link.index)
                .map_err(|e| from_kernel(&format!("bringing parent {name} up"), e))
        });
    if let Err(e) = marked {
        let _ = host.delete_link(link.index);
        return Err(e);
    }
    Ok(link)
}

/// For the crash tests: when `UNDERLAY_CRASH_AT` names this point, the process kills itself
/// here (no rollback, no unlock but the kernel's), as `kill -9` would.
fn crash_point(name: &str) {
    if std::env::var("UNDERLAY_CRASH_AT").is_ok_and(|at| at == name) {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}

fn io_error<'a>(action: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CniError + 'a {
    move |e| CniError::io(format!("{action} {}: {e}", path.display()))
}
