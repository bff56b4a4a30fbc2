//! The dispatcher: env and config errors, version rules, VERSION, output per command, GC.

use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use underlay_cni::conf::macvlan::MacvlanConf;
use underlay_cni::{run, CmdArgs, CniError, CniResult, Plugin};

#[derive(Default)]
struct Fake {
    calls: RefCell<Vec<String>>,
    gc_kept: RefCell<Vec<bool>>,
    fail_with: Option<CniError>,
}

impl Fake {
    fn record(&self, what: &str) -> Result<(), CniError> {
        self.calls.borrow_mut().push(what.into());
        self.fail_with.clone().map_or(Ok(()), Err)
    }
}

impl Plugin for Fake {
    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        self.record("add")?;
        MacvlanConf::parse(&args.stdin, &args.env.args)?;
        Ok(CniResult::parse(
            br#"{"interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],
                 "ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}]}"#,
        )
        .unwrap())
    }
    fn del(&self, _: &CmdArgs) -> Result<(), CniError> {
        self.record("del")
    }
    fn check(&self, _: &CmdArgs) -> Result<(), CniError> {
        self.record("check")
    }
    fn status(&self, _: &CmdArgs) -> Result<(), CniError> {
        self.record("status")
    }
    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        self.gc_kept
            .borrow_mut()
            .push(args.conf.gc_keeps("c1", "eth0"));
        self.record("gc")
    }
}

fn env_for(cmd: &str) -> HashMap<String, String> {
    let mut m = HashMap::from([("CNI_COMMAND".to_string(), cmd.to_string())]);
    if ["ADD", "DEL", "CHECK"].contains(&cmd) {
        m.insert("CNI_CONTAINERID".into(), "c1".into());
        m.insert("CNI_NETNS".into(), "/run/netns/x".into());
        m.insert("CNI_IFNAME".into(), "eth0".into());
        m.insert("CNI_PATH".into(), "/opt/cni/bin".into());
    } else {
        for k in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"] {
            m.insert(k.into(), String::new());
        }
    }
    m
}

fn conf(version: &str) -> Vec<u8> {
    json!({"cniVersion": version, "name": "mynet", "type": "macvlan", "master": "eth0"})
        .to_string()
        .into_bytes()
}

fn call(p: &Fake, env: &HashMap<String, String>, stdin: &[u8]) -> (i32, String) {
    let mut out = Vec::new();
    let code = run(p, &|k: &str| env.get(k).cloned(), stdin, &mut out);
    (code, String::from_utf8(out).unwrap())
}

fn error_of(out: &str) -> (u64, String, String) {
    let v: Value = serde_json::from_str(out).unwrap();
    (
        v["code"].as_u64().unwrap(),
        v["msg"].as_str().unwrap().to_string(),
        v["cniVersion"].as_str().unwrap().to_string(),
    )
}

#[test]
fn add_writes_result_in_input_version() {
    for (v, has_version) in [("0.3.1", true), ("1.0.0", false), ("1.1.0", false)] {
        let p = Fake::default();
        let (code, out) = call(&p, &env_for("ADD"), &conf(v));
        assert_eq!(code, 0, "{out}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["cniVersion"], v);
        assert_eq!(r["ips"][0].get("version").is_some(), has_version, "{out}");
    }
}

#[test]
fn del_check_status_gc_write_nothing() {
    for (cmd, v) in [
        ("DEL", "0.3.1"),
        ("CHECK", "0.4.0"),
        ("STATUS", "1.1.0"),
        ("GC", "1.1.0"),
    ] {
        let p = Fake::default();
        let (code, out) = call(&p, &env_for(cmd), &conf(v));
        assert_eq!((code, out.as_str()), (0, ""), "{cmd}");
        assert_eq!(p.calls.borrow().len(), 1);
    }
}

#[test]
fn version_rules() {
    for (cmd, v) in [
        ("CHECK", "0.3.1"),
        ("GC", "1.0.0"),
        ("STATUS", "0.4.0"),
        ("ADD", "0.2.0"),
        ("DEL", "0.1.0"),
        ("ADD", "2.0.0"),
    ] {
        let p = Fake::default();
        let (code, out) = call(&p, &env_for(cmd), &conf(v));
        assert_eq!(code, 1);
        assert_eq!(error_of(&out).0, 1, "{cmd} {v}: {out}");
        assert!(p.calls.borrow().is_empty());
    }
    let p = Fake::default();
    let (_, out) = call(&p, &env_for("ADD"), br#"{"name":"mynet","type":"macvlan"}"#);
    assert_eq!(error_of(&out).0, 1, "absent cniVersion means 0.1.0");
}

#[test]
fn version_command() {
    let p = Fake::default();
    for (stdin, want) in [
        (&br#"{"cniVersion":"0.4.0"}"#[..], "0.4.0"),
        (br#"{"cniVersion":"0.2.0"}"#, "0.2.0"),
        (b"", "1.1.0"),
        (br#"{"cniVersion":"5.0.0"}"#, "1.1.0"),
    ] {
        let (code, out) = call(&p, &env_for("VERSION"), stdin);
        assert_eq!(code, 0);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion": want, "supportedVersions": ["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})
        );
    }
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn env_errors_are_code_4_naming_variables() {
    let p = Fake::default();
    let mut env = env_for("ADD");
    env.remove("CNI_NETNS");
    env.remove("CNI_IFNAME");
    let (code, out) = call(&p, &env, &conf("1.0.0"));
    assert_eq!(code, 1);
    let (c, msg, version) = error_of(&out);
    assert_eq!((c, version.as_str()), (4, "1.0.0"));
    assert_eq!(msg, "required env variables [CNI_NETNS,CNI_IFNAME] missing");

    let mut env = env_for("ADD");
    env.insert("CNI_IFNAME".into(), "bad/name".into());
    let (_, out) = call(&p, &env, &conf("1.0.0"));
    let (c, msg, _) = error_of(&out);
    assert!(
        c == 4 && msg.contains("CNI_IFNAME") && msg.contains("bad/name"),
        "{msg}"
    );

    let (_, out) = call(&p, &HashMap::new(), &conf("1.0.0"));
    assert_eq!(
        error_of(&out).1,
        "required env variables [CNI_COMMAND] missing"
    );

    let mut env = env_for("ADD");
    env.insert("CNI_ARGS".into(), "FOO=bar".into());
    let (_, out) = call(&p, &env, &conf("1.0.0"));
    let (c, msg, _) = error_of(&out);
    assert!(c == 4 && msg.contains("FOO"), "{msg}");
}

#[test]
fn config_errors_2_6_7() {
    let p = Fake::default();
    let env = env_for("ADD");
    let (_, out) = call(&p, &env, b"{\"cniVersion\": ");
    assert_eq!(error_of(&out).0, 6);
    let (_, out) = call(&p, &env, br#"{"cniVersion":"1.0.0","type":"macvlan"}"#);
    let (c, msg, _) = error_of(&out);
    assert!(c == 7 && msg.contains("name"), "{msg}");
    let (_, out) = call(
        &p,
        &env,
        br#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","mode":"bogus"}"#,
    );
    let (c, msg, _) = error_of(&out);
    assert!(
        c == 2 && msg.contains("mode") && msg.contains("bogus"),
        "{msg}"
    );
    let (_, out) = call(
        &p,
        &env,
        br#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","mtu":"big"}"#,
    );
    let (c, msg, _) = error_of(&out);
    assert!(
        c == 7 && msg.contains("mtu") && msg.contains("big"),
        "{msg}"
    );
}

#[test]
fn plugin_error_passed_through() {
    let p = Fake {
        fail_with: Some(CniError::address_unavailable(
            "no free address in 10.0.0.0/24",
        )),
        ..Fake::default()
    };
    let (code, out) = call(&p, &env_for("DEL"), &conf("0.4.0"));
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"cniVersion":"0.4.0","code":101,"msg":"no free address in 10.0.0.0/24","details":""})
    );
}

#[test]
fn gc_attachments_spellings_and_absent() {
    let base = json!({"cniVersion":"1.1.0","name":"mynet","type":"macvlan"});
    let cases = [
        (
            "cni.dev/valid-attachments",
            json!([{"containerID":"c1","ifname":"eth0"}]),
            true,
        ),
        (
            "cni.dev/attachments",
            json!([{"containerID":"c1","ifname":"eth0"}]),
            true,
        ),
        (
            "cni.dev/valid-attachments",
            json!([{"containerID":"c2","ifname":"eth0"}]),
            false,
        ),
        ("cni.dev/attachments", json!([]), false),
        ("unrelated", json!(1), true),
    ];
    for (key, list, kept) in cases {
        let mut c = base.clone();
        c[key] = list;
        let p = Fake::default();
        let (code, out) = call(&p, &env_for("GC"), c.to_string().as_bytes());
        assert_eq!(code, 0, "{out}");
        assert_eq!(*p.gc_kept.borrow(), [kept], "{key}");
    }
}
