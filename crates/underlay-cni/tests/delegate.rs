//! Delegation to a fake IPAM executable found through CNI_PATH.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use underlay_cni::{CniEnv, CniVersion, DelegateIpam};

const SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
cat > "$dir/stdin.$CNI_COMMAND"
env | grep '^CNI_' | sort > "$dir/env.$CNI_COMMAND"
case "$CNI_COMMAND" in
ADD) printf '%s' '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.2.3/24","gateway":"10.1.2.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}' ;;
CHECK) printf '%s' '{"cniVersion":"0.4.0","code":101,"msg":"lease for c1 missing","details":"x"}'; exit 1 ;;
STATUS) exit 3 ;;
esac
exit 0
"#;

fn write_exec(dir: &Path, name: &str, body: &str, mode: u32) {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn env(path: &str) -> CniEnv {
    let m: HashMap<String, String> = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
        ("CNI_PATH", path),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    CniEnv::from_map(&m).unwrap()
}

#[test]
fn runs_first_executable_in_cni_path() {
    let empty = tempfile::tempdir().unwrap();
    let shadow = tempfile::tempdir().unwrap();
    let real = tempfile::tempdir().unwrap();
    // Not executable: must be skipped.
    write_exec(shadow.path(), "fake-ipam", "#!/bin/sh\nexit 9\n", 0o644);
    write_exec(real.path(), "fake-ipam", SCRIPT, 0o755);
    let path = format!(
        "{}:{}:{}",
        empty.path().display(),
        shadow.path().display(),
        real.path().display()
    );
    let env = env(&path);
    let d = DelegateIpam::new(&env);
    assert_eq!(d.find("fake-ipam").unwrap(), real.path().join("fake-ipam"));

    let conf = br#"{"cniVersion":"0.4.0","name":"n","type":"macvlan","ipam":{"type":"fake-ipam"}}"#;
    let r = d.add("fake-ipam", conf).unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.1.2.3/24");
    assert_eq!(r.ips[0].interface, None, "IPAM form");
    assert_eq!(
        r.to_value(CniVersion::V1_0_0)["routes"][0]["dst"],
        "0.0.0.0/0"
    );
    assert_eq!(std::fs::read(real.path().join("stdin.ADD")).unwrap(), conf);
    let seen = std::fs::read_to_string(real.path().join("env.ADD")).unwrap();
    for line in [
        "CNI_COMMAND=ADD",
        "CNI_CONTAINERID=c1",
        "CNI_NETNS=/run/netns/x",
        "CNI_IFNAME=eth0",
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web",
        &format!("CNI_PATH={path}"),
    ] {
        assert!(seen.lines().any(|l| l == line), "{line} not in {seen}");
    }

    d.del("fake-ipam", conf).unwrap();
    let seen = std::fs::read_to_string(real.path().join("env.DEL")).unwrap();
    assert!(seen.contains("CNI_COMMAND=DEL"));
    d.gc("fake-ipam", conf).unwrap();
    assert!(real.path().join("stdin.GC").exists());

    let e = d.check("fake-ipam", conf).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str(), e.details.as_str()),
        (101, "lease for c1 missing", "x")
    );
    let e = d.status("fake-ipam", conf).unwrap_err();
    assert_eq!(e.code, 105);
}

#[test]
fn lookup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(&dir.path().display().to_string());
    let e = DelegateIpam::new(&env)
        .add("host-local", b"{}")
        .unwrap_err();
    assert!(e.code == 104 && e.msg.contains("host-local"), "{}", e.msg);
    let e = DelegateIpam::new(&env).find("../sh").unwrap_err();
    assert_eq!(e.code, 7);
    let mut no_path = env.clone();
    no_path.path.clear();
    let e = DelegateIpam::new(&no_path).find("host-local").unwrap_err();
    assert!(e.code == 4 && e.msg.contains("CNI_PATH"), "{}", e.msg);
}
