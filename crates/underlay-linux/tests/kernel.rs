//! Namespace handles and the `LinuxKernel` verbs that cross namespaces. Each test creates the
//! namespaces it uses; the test's own thread never changes namespace. Needs root.

mod common;

use std::fs;

use common::{index_of, require_root, spec, TestNetns};
use underlay_linux::{Error, Kernel, LinuxKernel, MacvlanMode, Netlink, Netns, RtNetlink};

#[test]
fn open_of_a_missing_path_is_none() {
    require_root();
    assert!(Netns::open("/run/netns/ul-test-does-not-exist")
        .expect("open")
        .is_none());
}

#[test]
fn open_of_a_regular_file_is_not_netns() {
    require_root();
    let path = std::env::temp_dir().join(format!("ul-test-not-a-netns-{}", std::process::id()));
    fs::write(&path, b"").expect("write temp file");
    let result = Netns::open(&path);
    fs::remove_file(&path).expect("remove temp file");
    match result {
        Err(Error::NotNetns { path: reported }) => assert_eq!(reported, path),
        other => panic!("expected NotNetns, got {other:?}"),
    }
    // A namespace file of another type is not a network namespace either.
    let mnt = Netns::open("/proc/self/ns/mnt").expect_err("mnt ns");
    assert!(matches!(mnt, Error::NotNetns { .. }), "{mnt:?}");
}

#[test]
fn ids_are_equal_for_the_same_namespace_only() {
    let one = TestNetns::new();
    let two = TestNetns::new();
    let mut kernel = LinuxKernel::open().expect("kernel");
    let one_a = kernel
        .open_netns(&one.path())
        .expect("open")
        .expect("exists");
    let one_b = kernel
        .open_netns(&one.path())
        .expect("open")
        .expect("exists");
    let two_a = kernel
        .open_netns(&two.path())
        .expect("open")
        .expect("exists");
    let one_id = kernel.netns_id(&one_a).expect("id");
    assert_eq!(one_id, kernel.netns_id(&one_b).expect("id"));
    assert_ne!(one_id, kernel.netns_id(&two_a).expect("id"));
    assert_eq!(one_a.path(), one.path());

    // Seen from inside, the namespace is the same one.
    let inside = one_a.run(|| Netns::current().expect("current").id().expect("id"));
    assert_eq!(inside.expect("run"), one_id);
    // And the caller's thread did not move.
    let here = Netns::current().expect("current").id().expect("id");
    assert_ne!(here, one_id);
}

#[test]
fn run_passes_a_panic_on() {
    let ns = TestNetns::new();
    let handle = ns.open();
    let result = std::panic::catch_unwind(|| handle.run(|| panic!("boom inside")));
    assert!(result.is_err(), "the panic reached the caller");
}

#[test]
fn netlink_in_lives_in_the_namespace() {
    let ns = TestNetns::new();
    ns.veth("ul-par0", "ul-peer0");
    let mut kernel = LinuxKernel::open().expect("kernel");
    let handle = kernel
        .open_netns(&ns.path())
        .expect("open")
        .expect("exists");
    let mut inside = kernel.netlink_in(&handle).expect("netlink in ns");
    assert!(inside.link_by_name("ul-par0").expect("get").is_some());
    let names: Vec<String> = inside
        .links()
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names.len(), 3, "only lo and the veth pair: {names:?}");
}

#[test]
fn creates_macvlan_directly_in_another_namespace() {
    let host = TestNetns::new();
    let container = TestNetns::new();
    let parent = host.veth("ul-par0", "ul-peer0");
    // The "host" of this kernel is the first test namespace, never the real host.
    let host_ns = host.open();
    let mut kernel = host_ns
        .run(LinuxKernel::open)
        .expect("run")
        .expect("kernel");
    let container_ns = kernel
        .open_netns(&container.path())
        .expect("open")
        .expect("exists");

    let mut wanted = spec("ul-mv0", parent, MacvlanMode::Bridge);
    wanted.mac = Some([0x02, 0, 0, 0, 0, 0x42]);
    wanted.mtu = Some(1280);
    kernel
        .create_macvlan_in(&wanted, &container_ns)
        .expect("create in");

    assert_eq!(kernel.host().link_by_name("ul-mv0").expect("get"), None);
    let mut inside = kernel.netlink_in(&container_ns).expect("netlink in");
    let link = inside
        .link_by_name("ul-mv0")
        .expect("get")
        .expect("created inside");
    assert_eq!(link.kind.as_deref(), Some("macvlan"));
    assert_eq!(link.macvlan_mode, Some(MacvlanMode::Bridge));
    assert_eq!(link.mac, wanted.mac);
    assert_eq!(link.mtu, 1280);
    let json = container.link_json("ul-mv0");
    assert_eq!(json["linkinfo"]["info_data"]["mode"], "bridge");
    assert!(
        json.get("link_netnsid").is_some(),
        "parent is in another namespace: {json}"
    );

    // A same-named link on the host side is independent of it.
    kernel
        .host()
        .create_macvlan(&spec("ul-mv0", parent, MacvlanMode::Bridge))
        .expect("same name on the host");
    // And the parent's name does not exist inside.
    let error = kernel
        .create_macvlan_in(&spec("ul-mv0", parent, MacvlanMode::Bridge), &container_ns)
        .expect_err("duplicate inside");
    assert_eq!(
        error.errno(),
        Some(nix::errno::Errno::EEXIST as i32),
        "{error}"
    );
}

#[test]
fn sysctls_are_written_inside_the_namespace() {
    let host = TestNetns::new();
    let container = TestNetns::new();
    let parent = host.veth("ul-par0", "ul-peer0");
    let host_ns = host.open();
    let mut kernel = host_ns
        .run(LinuxKernel::open)
        .expect("run")
        .expect("kernel");
    let container_ns = kernel
        .open_netns(&container.path())
        .expect("open")
        .expect("exists");
    kernel
        .create_macvlan_in(&spec("ul-mv0", parent, MacvlanMode::Bridge), &container_ns)
        .expect("create in");

    let key = "net/ipv4/conf/ul-mv0/arp_notify";
    let settings = vec![
        (key.to_string(), "1".to_string()),
        (
            "net/ipv6/conf/ul-mv0/accept_ra".to_string(),
            "0".to_string(),
        ),
    ];
    kernel
        .sysctls_in(&container_ns, &settings)
        .expect("sysctls");

    let read = |ns: &Netns, key: &'static str| {
        ns.run(move || fs::read_to_string(format!("/proc/sys/{key}")))
            .expect("run")
    };
    assert_eq!(read(&container_ns, key).expect("read inside"), "1\n");
    assert_eq!(
        read(&container_ns, "net/ipv6/conf/ul-mv0/accept_ra").expect("read inside"),
        "0\n"
    );
    // The link, and so its sysctl, does not exist in the other namespace.
    assert!(read(&host_ns, key).is_err());

    // A sysctl of a link that does not exist fails naming the path.
    let error = kernel
        .sysctls_in(
            &container_ns,
            &[("net/ipv4/conf/ul-none/arp_notify".into(), "1".into())],
        )
        .expect_err("missing link");
    assert!(
        error
            .to_string()
            .contains("/proc/sys/net/ipv4/conf/ul-none/arp_notify"),
        "{error}"
    );
}

#[test]
fn open_in_socket_outlives_its_thread() {
    let ns = TestNetns::new();
    ns.veth("ul-par0", "ul-peer0");
    let mut nl = RtNetlink::open_in(&ns.open()).expect("open in");
    // Many requests later, on the caller's thread, it still talks to the namespace.
    for _ in 0..50 {
        index_of(&mut nl, "ul-par0");
    }
}

/// A single-threaded kernel steps its own thread into the namespace and back: what it opens
/// there stays there, and the thread ends up where it started. (Run on a thread of its own, so
/// the test's thread never changes namespace even if an assertion fails half-way.)
#[test]
fn a_single_threaded_kernel_works_inside_on_its_own_thread_and_comes_back() {
    let container = TestNetns::new();
    std::thread::spawn(move || {
        let home = Netns::current().unwrap().id().unwrap();
        let container_ns = container.open();
        let seen = container_ns
            .run_here(|| Netns::current().unwrap().id().unwrap())
            .unwrap();
        assert_eq!(seen, container_ns.id().unwrap());
        assert_ne!(seen, home);
        assert_eq!(Netns::current().unwrap().id().unwrap(), home);

        let mut kernel = LinuxKernel::open_single_threaded().expect("kernel");
        let mut inside = kernel.netlink_in(&container_ns).expect("netlink in");
        let names: Vec<String> = inside
            .links()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(
            names,
            ["lo"],
            "the socket lives in the container's namespace"
        );
        assert_eq!(Netns::current().unwrap().id().unwrap(), home);
        drop(container);
    })
    .join()
    .unwrap();
}
