//! The reference host-local on-disk format, read and written; round-robin, static requests,
//! release, GC, concurrency, dual stack, and the flat cost of an ADD.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Barrier};

use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;
use underlay_ipam::{
    allocate, reserve_static, HostLocal, HostLocalError, HostLocalReservation, HostLocalStore,
    IpamError, Pool, Range, Store,
};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn range(subnet: &str) -> Range {
    Range::new(subnet.parse().unwrap())
}

fn open(data: &TempDir) -> HostLocal {
    HostLocal::open(data.path(), "net1").unwrap()
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Names of the files in the directory, but our sidecar index.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".underlay-hostlocal"))
        .collect();
    names.sort();
    names
}

/// Does what the reference's `Reserve` does: under the flock, `O_EXCL` create, write.
fn reference_reserve(dir: &Path, ip: &str, content: &str) {
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("lock"))
        .unwrap();
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).unwrap();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(ip))
        .unwrap();
    file.write_all(content.as_bytes()).unwrap();
    fs::write(dir.join("last_reserved_ip.0"), ip).unwrap();
}

/// Does what the reference's `ReleaseByID` does for one file: under the flock, delete.
fn reference_remove(dir: &Path, ip: &str) {
    let lock = File::options()
        .read(true)
        .write(true)
        .open(dir.join("lock"))
        .unwrap();
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).unwrap();
    fs::remove_file(dir.join(ip)).unwrap();
}

fn held(ip_text: &str, id: &str, ifname: Option<&str>) -> HostLocalReservation {
    HostLocalReservation {
        ip: ip(ip_text),
        container_id: id.into(),
        ifname: ifname.map(Into::into),
    }
}

#[test]
fn writes_the_reference_format() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = data.path().join("net1");
    assert_eq!(net.dir(), dir);
    let got = net
        .allocate(0, &[range("10.0.0.0/24")], "ctr1", "eth0", None)
        .unwrap();
    assert_eq!(got, ip("10.0.0.2"), "the default gateway .1 is skipped");
    assert_eq!(read(&dir, "10.0.0.2"), b"ctr1\r\neth0");
    assert_eq!(read(&dir, "last_reserved_ip.0"), b"10.0.0.2");
    assert_eq!(names(&dir), ["10.0.0.2", "last_reserved_ip.0", "lock"]);
    // The container ID is trimmed, as the reference does.
    net.allocate(0, &[range("10.0.0.0/24")], " ctr2\n", "eth0", None)
        .unwrap();
    assert_eq!(read(&dir, "10.0.0.3"), b"ctr2\r\neth0");
}

#[test]
fn reads_a_directory_the_reference_populated() {
    let data = TempDir::new().unwrap();
    let dir = data.path().join("net1");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("lock"), "").unwrap();
    fs::write(dir.join("10.0.0.2"), "old\r\neth0").unwrap();
    fs::write(dir.join("10.0.0.3"), "legacy").unwrap();
    fs::write(dir.join("10.0.0.4"), "legacy2\n").unwrap();
    fs::write(dir.join("last_reserved_ip.0"), "10.0.0.1").unwrap();
    // Not reservations: a non-canonical name and a stray file.
    fs::write(dir.join("2001:DB8::7"), "x\r\neth0").unwrap();
    fs::write(dir.join("README"), "x\r\neth0").unwrap();

    let net = open(&data);
    assert_eq!(
        net.reservations().unwrap(),
        [
            held("10.0.0.2", "old", Some("eth0")),
            held("10.0.0.3", "legacy", None),
            held("10.0.0.4", "legacy2", None),
        ]
    );
    let r = [range("10.0.0.0/24")];
    assert_eq!(
        net.allocate(0, &r, "new", "eth0", None).unwrap(),
        ip("10.0.0.5")
    );
    // DEL by the legacy container's ID (any ifname) removes its ID-only file.
    assert_eq!(net.release("legacy", "eth0").unwrap(), [ip("10.0.0.3")]);
    assert!(!dir.join("10.0.0.3").exists());
    assert_eq!(net.release("old", "eth0").unwrap(), [ip("10.0.0.2")]);
    assert_eq!(net.release("legacy2", "net1").unwrap(), [ip("10.0.0.4")]);
    assert!(dir.join("README").exists() && dir.join("2001:DB8::7").exists());
    assert_eq!(
        net.reservations().unwrap(),
        [held("10.0.0.5", "new", Some("eth0"))]
    );
}

#[test]
fn sees_what_the_reference_writes_between_our_operations() {
    // Each reference write lands right after one of ours (same clock tick most of the time):
    // the index must still notice it. A reference DEL of our file must be noticed too.
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let r = [range("10.1.0.0/16")];
    for i in 0..100 {
        let ours = net
            .allocate(0, &r, &format!("ours{i}"), "eth0", None)
            .unwrap();
        let IpAddr::V4(v4) = ours else { panic!() };
        let theirs = IpAddr::V4((u32::from(v4) + 1).into()).to_string();
        reference_reserve(&dir, &theirs, &format!("ref{i}\r\neth0"));
        assert_eq!(
            net.release(&format!("ref{i}"), "eth0").unwrap(),
            [ip(&theirs)],
            "round {i}"
        );
        reference_remove(&dir, &ours.to_string());
        assert!(
            !net.reservations().unwrap().iter().any(|r| r.ip == ours),
            "round {i}"
        );
    }
    // Round-robin continued from the reference's last_reserved_ip.0 each time.
    assert_eq!(read(&dir, "last_reserved_ip.0"), b"10.1.0.201");
}

#[test]
fn the_index_survives_deletion_and_damage() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let r = [range("10.0.0.0/24")];
    net.allocate(0, &r, "a", "eth0", None).unwrap();
    net.allocate(0, &r, "b", "eth0", None).unwrap();
    // The reference's GC deletes every file that is not the lock or last_reserved_ip.*.
    fs::remove_file(dir.join(".underlay-hostlocal.index")).unwrap();
    assert_eq!(net.reservations().unwrap().len(), 2);
    assert!(net.last_op_stats().index_rebuilt);
    // A torn index (crash while writing) is not trusted.
    let index = dir.join(".underlay-hostlocal.index");
    let text = fs::read(&index).unwrap();
    fs::write(&index, &text[..text.len() / 2]).unwrap();
    assert_eq!(
        net.allocate(0, &r, "c", "eth0", None).unwrap(),
        ip("10.0.0.4")
    );
    assert!(net.last_op_stats().index_rebuilt);
    assert_eq!(net.reservations().unwrap().len(), 3);
    assert!(!net.last_op_stats().index_rebuilt);
    // An index without the proof that the clock ticked past its stamp (a crash right after
    // writing it, or a file system whose clock did not tick in time) is not trusted either.
    File::options()
        .write(true)
        .open(&index)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
        .unwrap();
    assert_eq!(net.reservations().unwrap().len(), 3);
    assert!(net.last_op_stats().index_rebuilt);
    assert_eq!(net.reservations().unwrap().len(), 3);
    assert!(!net.last_op_stats().index_rebuilt);
}

#[test]
fn round_robin_after_last_reserved_and_wrap_around() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    // 10.0.0.0/29: .1 (gateway) to .6 usable.
    let r = [range("10.0.0.0/29")];
    let add = |id: &str| net.allocate(0, &r, id, "eth0", None);
    assert_eq!(add("a").unwrap(), ip("10.0.0.2"));
    assert_eq!(add("b").unwrap(), ip("10.0.0.3"));
    assert_eq!(add("c").unwrap(), ip("10.0.0.4"));
    net.release("b", "eth0").unwrap();
    assert_eq!(add("d").unwrap(), ip("10.0.0.5"), "not the released .3");
    assert_eq!(add("e").unwrap(), ip("10.0.0.6"));
    assert_eq!(add("f").unwrap(), ip("10.0.0.3"), "wrapped around");
    assert_eq!(read(&dir, "last_reserved_ip.0"), b"10.0.0.3");
    let err = add("g").unwrap_err();
    assert!(matches!(err, HostLocalError::Exhausted { index: 0, .. }));
    assert_eq!(
        err.to_string(),
        "no free address left in range set 0 (10.0.0.0/29 [10.0.0.1-10.0.0.6])"
    );
    assert_eq!(names(&dir).len(), 5 + 2, "no file left by the failed ADD");
}

#[test]
fn round_robin_resumes_from_a_cursor_the_reference_wrote() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let r = [range("10.0.0.0/29")];
    fs::write(dir.join("last_reserved_ip.0"), "10.0.0.5").unwrap();
    let add = |id: &str| net.allocate(0, &r, id, "eth0", None).unwrap();
    assert_eq!(add("a"), ip("10.0.0.6"));
    assert_eq!(add("b"), ip("10.0.0.2"), "wraps, skipping the gateway");
    // A cursor outside the ranges (the configuration changed) restarts at rangeStart.
    fs::write(dir.join("last_reserved_ip.0"), "192.168.0.9").unwrap();
    assert_eq!(add("c"), ip("10.0.0.3"));
}

#[test]
fn round_robin_across_the_ranges_of_a_set() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let mut a = range("10.0.0.0/24");
    a.range_start = Some(ip("10.0.0.10"));
    a.range_end = Some(ip("10.0.0.11"));
    let mut b = range("10.0.1.0/24");
    b.range_start = Some(ip("10.0.1.10"));
    b.range_end = Some(ip("10.0.1.11"));
    let r = [a, b];
    let got: Vec<IpAddr> = (0..4)
        .map(|i| net.allocate(0, &r, &format!("c{i}"), "eth0", None).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            ip("10.0.0.10"),
            ip("10.0.0.11"),
            ip("10.0.1.10"),
            ip("10.0.1.11")
        ]
    );
    net.release("c1", "eth0").unwrap();
    assert_eq!(
        net.allocate(0, &r, "c9", "eth0", None).unwrap(),
        ip("10.0.0.11")
    );
}

#[test]
fn the_gateway_is_never_handed_out() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let mut r = range("10.0.0.0/29");
    r.gateway = Some(ip("10.0.0.3"));
    let r = [r];
    let mut got: Vec<IpAddr> = (0..5)
        .map(|i| net.allocate(0, &r, &format!("c{i}"), "eth0", None).unwrap())
        .collect();
    got.sort();
    let want: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        .map(ip)
        .to_vec();
    assert_eq!(got, want);
    assert!(net.allocate(0, &r, "x", "eth0", None).is_err());
    let err = net
        .allocate(0, &r, "x", "eth0", Some(ip("10.0.0.3")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested address 10.0.0.3 is the gateway of 10.0.0.0/29"
    );
}

#[test]
fn static_requests() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let mut r = range("10.0.0.0/24");
    r.range_start = Some(ip("10.0.0.100"));
    r.range_end = Some(ip("10.0.0.200"));
    let r = [r];
    let want = ip("10.0.0.150");
    assert_eq!(net.allocate(0, &r, "a", "eth0", Some(want)).unwrap(), want);
    assert_eq!(read(&dir, "10.0.0.150"), b"a\r\neth0");
    assert_eq!(read(&dir, "last_reserved_ip.0"), b"10.0.0.150");
    // Asking again for the same attachment is idempotent.
    assert_eq!(net.allocate(0, &r, "a", "eth0", Some(want)).unwrap(), want);
    // Somebody else holds it: the error names the holder.
    let err = net.allocate(0, &r, "b", "eth0", Some(want)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.0.0.150 is already in use by container a interface eth0"
    );
    // Outside the range, or outside the subnet.
    for outside in ["10.0.0.50", "10.0.1.150", "2001:db8::1"] {
        let err = net
            .allocate(0, &r, "b", "eth0", Some(ip(outside)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "requested address {outside} is not in range set 0 \
                 (10.0.0.0/24 [10.0.0.100-10.0.0.200])"
            )
        );
    }
    // The attachment already holds another address of the set.
    let err = net
        .allocate(0, &r, "a", "eth0", Some(ip("10.0.0.151")))
        .unwrap_err();
    assert!(
        matches!(err, HostLocalError::AlreadyAllocated { .. }),
        "{err}"
    );
    assert_eq!(names(&dir).len(), 3, "no stray file");
}

#[test]
fn add_twice_returns_the_same_address() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let r = [range("10.0.0.0/24")];
    let first = net.allocate(0, &r, "a", "eth0", None).unwrap();
    assert_eq!(net.allocate(0, &r, "a", "eth0", None).unwrap(), first);
    assert_ne!(net.allocate(0, &r, "a", "eth1", None).unwrap(), first);
    assert_eq!(net.reservations().unwrap().len(), 2);
    // A legacy ID-only file says nothing about the interface: it is not returned by ADD.
    fs::write(net.dir().join("10.0.0.50"), "old").unwrap();
    assert_ne!(
        net.allocate(0, &r, "old", "eth0", None).unwrap(),
        ip("10.0.0.50")
    );
}

#[test]
fn release_is_idempotent() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let r = [range("10.0.0.0/24")];
    let got = net.allocate(0, &r, "a", "eth0", None).unwrap();
    net.allocate(0, &r, "a", "eth1", None).unwrap();
    assert_eq!(net.release("a", "eth0").unwrap(), [got]);
    assert!(net.release("a", "eth0").unwrap().is_empty());
    assert!(net.release("never", "eth0").unwrap().is_empty());
    assert_eq!(
        net.reservations().unwrap()[0].ifname.as_deref(),
        Some("eth1")
    );
}

#[test]
fn gc_keeps_valid_attachments_only() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let r = [range("10.0.0.0/24")];
    let a0 = net.allocate(0, &r, "a", "eth0", None).unwrap();
    let a1 = net.allocate(0, &r, "a", "eth1", None).unwrap();
    let b0 = net.allocate(0, &r, "b", "eth0", None).unwrap();
    fs::write(dir.join("10.0.0.100"), "c").unwrap();
    fs::write(dir.join("10.0.0.101"), "d").unwrap();
    let mut released = net.gc(&[("a", "eth0"), ("c", "eth9")]).unwrap();
    released.sort();
    assert_eq!(released, [a1, b0, ip("10.0.0.101")]);
    let left: Vec<IpAddr> = net.reservations().unwrap().iter().map(|r| r.ip).collect();
    assert_eq!(left, [a0, ip("10.0.0.100")]);
    assert_eq!(
        names(&dir),
        ["10.0.0.100", "10.0.0.2", "last_reserved_ip.0", "lock"]
    );
    let none: [(String, String); 0] = [];
    assert_eq!(net.gc(&none).unwrap().len(), 2);
    assert!(dir.join("lock").exists() && dir.join("last_reserved_ip.0").exists());
}

#[test]
fn names_that_escape_the_data_dir_are_refused() {
    let root = TempDir::new().unwrap();
    let data = root.path().join("data");
    fs::create_dir(&data).unwrap();
    for name in ["", ".", "..", "../evil", "a/b", "/abs", ".hidden"] {
        let err = HostLocal::open(&data, name).unwrap_err();
        assert!(
            matches!(err, HostLocalError::InvalidNetworkName { .. }),
            "{name:?}: {err}"
        );
        assert!(err.to_string().starts_with("invalid network name"), "{err}");
    }
    assert_eq!(fs::read_dir(&data).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
}

#[test]
fn invalid_ranges_and_attachments_are_refused() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let mut r = range("10.0.0.0/24");
    r.range_start = Some(ip("10.0.0.0"));
    let err = net.allocate(0, &[r], "a", "eth0", None).unwrap_err();
    assert!(err.to_string().contains("is the network address"), "{err}");
    let mut r = range("10.0.0.0/24");
    r.gateway = Some(ip("10.0.1.1"));
    assert!(net.allocate(0, &[r], "a", "eth0", None).is_err());
    assert!(net
        .allocate(0, &[range("10.0.0.0/31")], "a", "eth0", None)
        .is_err());
    assert!(net
        .allocate(
            0,
            &[range("10.0.0.0/24"), range("10.0.0.0/25")],
            "a",
            "eth0",
            None
        )
        .unwrap_err()
        .to_string()
        .contains("overlap"));
    assert!(net
        .allocate(
            0,
            &[range("10.0.0.0/24"), range("2001:db8::/64")],
            "a",
            "eth0",
            None
        )
        .is_err());
    let r = [range("10.0.0.0/24")];
    for (id, ifname) in [("", "eth0"), ("a\r\nb", "eth0"), ("a", ""), ("a", "eth 0")] {
        let err = net.allocate(0, &r, id, ifname, None).unwrap_err();
        assert!(
            matches!(err, HostLocalError::InvalidAttachment { .. }),
            "{err}"
        );
    }
    assert_eq!(names(net.dir()), ["lock"]);
}

#[test]
fn thirty_two_allocators_get_thirty_two_addresses() {
    let data = Arc::new(TempDir::new().unwrap());
    let start = Arc::new(Barrier::new(32));
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let data = Arc::clone(&data);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                // One HostLocal per thread: each takes the flock itself.
                let net = HostLocal::open(data.path(), "net1").unwrap();
                start.wait();
                net.allocate(0, &[range("10.0.0.0/24")], &format!("c{i}"), "eth0", None)
                    .unwrap()
            })
        })
        .collect();
    let got: HashSet<IpAddr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(got.len(), 32);
    assert!(!got.contains(&ip("10.0.0.1")));
    let net = open(&data);
    let listed = net.reservations().unwrap();
    assert_eq!(listed.len(), 32);
    for r in &listed {
        let content = read(net.dir(), &r.ip.to_string());
        assert_eq!(
            content,
            format!("{}\r\neth0", r.container_id).as_bytes(),
            "{}",
            r.ip
        );
    }
}

#[test]
fn ipv6_range() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let r = [range("fd00:0:0:1::/64")];
    let got = net.allocate(0, &r, "a", "eth0", None).unwrap();
    assert_eq!(got, ip("fd00:0:0:1::2"));
    assert_eq!(read(&dir, "fd00:0:0:1::2"), b"a\r\neth0");
    assert_eq!(read(&dir, "last_reserved_ip.0"), b"fd00:0:0:1::2");
    // The last address of an IPv6 subnet is usable (no broadcast).
    let mut tail = range("2001:db8::/126");
    tail.range_start = Some(ip("2001:db8::3"));
    let got = net.allocate(0, &[tail], "b", "eth0", None).unwrap();
    assert_eq!(got, ip("2001:db8::3"));
    assert!(dir.join("2001:db8::3").exists());
}

#[test]
fn dual_stack_uses_one_cursor_per_range_set() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let v4 = [range("10.0.0.0/24")];
    let v6 = [range("2001:db8:0:1::/64")];
    assert_eq!(
        net.allocate(0, &v4, "a", "eth0", None).unwrap(),
        ip("10.0.0.2")
    );
    assert_eq!(
        net.allocate(1, &v6, "a", "eth0", None).unwrap(),
        ip("2001:db8:0:1::2")
    );
    // Idempotent per range set.
    assert_eq!(
        net.allocate(1, &v6, "a", "eth0", None).unwrap(),
        ip("2001:db8:0:1::2")
    );
    assert_eq!(
        net.allocate(0, &v4, "b", "eth0", None).unwrap(),
        ip("10.0.0.3")
    );
    assert_eq!(read(&dir, "last_reserved_ip.0"), b"10.0.0.3");
    assert_eq!(read(&dir, "last_reserved_ip.1"), b"2001:db8:0:1::2");
    assert_eq!(read(&dir, "2001:db8:0:1::2"), b"a\r\neth0");
    let mut released = net.release("a", "eth0").unwrap();
    released.sort();
    assert_eq!(released, [ip("10.0.0.2"), ip("2001:db8:0:1::2")]);
}

#[test]
fn the_crate_allocator_works_on_the_directory() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let pool = Pool::new(
        "net1/v4",
        "10.0.0.0/24".parse().unwrap(),
        Some("10.0.0.128/25".parse().unwrap()),
    )
    .unwrap();
    let pools = [pool.clone()];
    let owner = HostLocalStore::owner("s1", "eth0");
    let got = net
        .with_store(&pools, |store| allocate(store, &pool, &owner))
        .unwrap()
        .unwrap();
    assert_eq!(got, ip("10.0.0.128"));
    assert_eq!(read(&dir, "10.0.0.128"), b"s1\r\neth0");
    let next = net
        .with_store(&pools, |store| {
            reserve_static(store, &pool, ip("10.0.0.130"), "s2\r\neth0")?;
            let err = reserve_static(store, &pool, ip("10.0.0.128"), "s3\r\neth0").unwrap_err();
            assert!(matches!(err, IpamError::InUse { .. }), "{err}");
            allocate(store, &pool, "s4\r\neth0")
        })
        .unwrap()
        .unwrap();
    assert_eq!(next, ip("10.0.0.129"));
    // What the store wrote is what HostLocal (and the reference) reads.
    assert_eq!(
        net.reservations().unwrap(),
        [
            held("10.0.0.128", "s1", Some("eth0")),
            held("10.0.0.129", "s4", Some("eth0")),
            held("10.0.0.130", "s2", Some("eth0")),
        ]
    );
    let released = net
        .with_store(&pools, |store| {
            let ips = store.release_owner(&pool.id, &owner)?;
            let left = store.reservations(&pool.id)?;
            Ok::<_, underlay_ipam::StoreError>((ips, left.len()))
        })
        .unwrap()
        .unwrap();
    assert_eq!(released, (vec![ip("10.0.0.128")], 2));
    assert!(!dir.join("10.0.0.128").exists());
}

/// Fills the network with `n` attachments, then measures one more ADD.
fn cost_of_an_add_at(n: usize) -> underlay_ipam::OpStats {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let r = [range("10.0.0.0/22")];
    for i in 0..n {
        net.allocate(0, &r, &format!("c{i}"), "eth0", None).unwrap();
    }
    net.allocate(0, &r, "measured", "eth0", None).unwrap();
    let stats = net.last_op_stats();
    eprintln!("ADD at N={n}: {stats:?}");
    stats
}

#[test]
fn an_add_costs_the_same_at_50_and_500_reservations() {
    let small = cost_of_an_add_at(50);
    let large = cost_of_an_add_at(500);
    for stats in [small, large] {
        assert!(!stats.index_rebuilt && stats.dir_scans == 0, "{stats:?}");
        assert_eq!(stats.excl_creates, 1, "{stats:?}");
    }
    assert_eq!(small.files_opened, large.files_opened);
    assert_eq!(small.files_read, large.files_read);
    assert_eq!(small.files_written, large.files_written);
    // lock, index, last_reserved_ip (read), the new file, last_reserved_ip (write), the index.
    assert_eq!(large.files_opened, 6, "{large:?}");
}

#[test]
fn a_change_by_the_reference_costs_one_scan() {
    let data = TempDir::new().unwrap();
    let net = open(&data);
    let dir = net.dir().to_path_buf();
    let r = [range("10.0.0.0/22")];
    for i in 0..200 {
        net.allocate(0, &r, &format!("c{i}"), "eth0", None).unwrap();
    }
    reference_reserve(&dir, "10.0.3.200", "ref\r\neth0");
    net.allocate(0, &r, "after", "eth0", None).unwrap();
    let rebuilt = net.last_op_stats();
    eprintln!("ADD after a reference write, N=201: {rebuilt:?}");
    assert!(rebuilt.index_rebuilt && rebuilt.dir_scans == 1);
    assert_eq!(
        rebuilt.files_read,
        201 + 2,
        "every reservation, index, cursor"
    );
    net.allocate(0, &r, "then", "eth0", None).unwrap();
    let flat = net.last_op_stats();
    assert!(!flat.index_rebuilt && flat.files_opened == 6, "{flat:?}");
    assert_eq!(net.release("ref", "eth0").unwrap(), [ip("10.0.3.200")]);
}
