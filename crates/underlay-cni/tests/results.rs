//! Results are written in the exact shape of each version and parsed from any.

use serde_json::Value;
use std::path::PathBuf;
use underlay_cni::version::SUPPORTED_VERSIONS;
use underlay_cni::{CniResult, CniVersion};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(p).unwrap()
}

fn full() -> CniResult {
    CniResult::parse(&fixture("result-1.1.0.json")).unwrap()
}

#[test]
fn golden_shape_per_version() {
    let r = full();
    for v in SUPPORTED_VERSIONS {
        let want: Value = serde_json::from_slice(&fixture(&format!("result-{v}.json"))).unwrap();
        assert_eq!(r.to_value(v), want, "version {v}");
    }
}

#[test]
fn exact_text_keeps_field_order() {
    let r = CniResult::parse(
        br#"{"ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}],
             "interfaces":[{"name":"eth0","mac":"0a:00:00:00:00:01","sandbox":"/run/netns/x"}]}"#,
    )
    .unwrap();
    assert_eq!(
        r.to_json(CniVersion::V0_4_0),
        r#"{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","mac":"0a:00:00:00:00:01","sandbox":"/run/netns/x"}],"ips":[{"version":"4","interface":0,"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"dns":{}}"#
    );
    assert_eq!(
        r.to_json(CniVersion::V1_0_0),
        r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"0a:00:00:00:00:01","sandbox":"/run/netns/x"}],"ips":[{"interface":0,"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"dns":{}}"#
    );
}

#[test]
fn parse_any_version_then_convert() {
    for v in SUPPORTED_VERSIONS {
        let text = fixture(&format!("result-{v}.json"));
        let want: Value = serde_json::from_slice(&text).unwrap();
        let r = CniResult::parse(&text).unwrap();
        assert_eq!(r.to_value(v), want, "round trip {v}");
    }
    // Up-conversion 0.3.0 -> 1.1.0: `version` dropped, nothing invented.
    let r = CniResult::parse(&fixture("result-0.3.0.json")).unwrap();
    let up = r.to_value(CniVersion::V1_1_0);
    assert_eq!(up["cniVersion"], "1.1.0");
    assert!(up["ips"][0].get("version").is_none());
    assert_eq!(
        up["routes"][0],
        serde_json::json!({"dst": "0.0.0.0/0", "gw": "10.10.0.254"})
    );
    let down = full().to_json(CniVersion::V0_3_1);
    let back = CniResult::parse(down.as_bytes()).unwrap();
    assert_eq!(
        back.to_value(CniVersion::V0_3_1),
        full().to_value(CniVersion::V0_3_1)
    );
}

#[test]
fn ipam_form_omits_interfaces() {
    let r = full().into_ipam();
    let v = r.to_value(CniVersion::V1_1_0);
    assert!(v.get("interfaces").is_none());
    assert!(v["ips"]
        .as_array()
        .unwrap()
        .iter()
        .all(|ip| ip.get("interface").is_none()));
}

#[test]
fn legacy_and_invalid_results_rejected() {
    let e = CniResult::parse(br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#).unwrap_err();
    assert_eq!(e.code, 1);
    let e = CniResult::parse(b"nope").unwrap_err();
    assert_eq!(e.code, 6);
    let e = CniResult::parse(br#"{"routes":[{"dst":"10.0.0.0"}]}"#).unwrap_err();
    assert!(
        e.code == 7 && e.msg.contains("routes[0].dst") && e.msg.contains("10.0.0.0"),
        "{}",
        e.msg
    );
}

#[test]
fn empty_result_and_nulls() {
    let r = CniResult::parse(br#"{"cniVersion":"1.0.0","interfaces":null,"dns":null}"#).unwrap();
    assert_eq!(r, CniResult::default());
    assert_eq!(
        r.to_json(CniVersion::V1_1_0),
        r#"{"cniVersion":"1.1.0","dns":{}}"#
    );
}
