use super::*;
use crate::{PluginError, Request, Response};
use std::io::Cursor;

/// Answers every method with its simplest valid reply.
struct Canned;

impl Handler for Canned {
    fn handle(&self, request: Request) -> Result<Response, PluginError> {
        use crate::request::PluginMethod as M;
        let method = request.method();
        let answer = match method {
            M::Join => Response::Join(Default::default()),
            M::CreateEndpoint => Response::CreateEndpoint(Default::default()),
            M::RequestAddress => Response::RequestAddress(crate::RequestAddressResponse::new(
                "10.0.0.5/24".parse().unwrap(),
            )),
            M::DeleteNetwork => return Err(PluginError::new("network is busy")),
            _ if Response::Empty.answers(method) => Response::Empty,
            _ => Response::IpamCapabilities(Default::default()),
        };
        Ok(answer)
    }
}

fn settings(handler: &dyn Handler) -> Settings<'_> {
    Settings {
        handler,
        limits: Limits {
            max_header_bytes: 4096,
            max_body_bytes: 4096,
        },
        idle_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
    }
}

/// Runs exchanges until the connection would close; returns the output.
fn converse(input: &[u8]) -> Vec<u8> {
    let mut reader = Cursor::new(input);
    let mut output = Vec::new();
    let settings = settings(&Canned);
    for _ in 0..input.len() + 1 {
        if !exchange(&mut reader, &mut output, &settings, &|| false) {
            break;
        }
    }
    output
}

/// The status of each response in `output`, read response by response
/// (status line, headers, Content-Length body), so text echoed inside an
/// error body is never mistaken for a status line.
fn statuses(output: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut rest = output;
    while let Some(end) = find(rest, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|h| h.get(..3))
            .and_then(|s| s.parse().ok());
        let Some(status) = status else {
            panic!("not a response: {head:?}")
        };
        statuses.push(status);
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |l| l.parse().unwrap());
        rest = &rest[(end + 4 + length).min(rest.len())..];
    }
    assert!(
        rest.is_empty(),
        "trailing bytes after the responses: {:?}",
        String::from_utf8_lossy(rest)
    );
    statuses
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

const LEAVE: &str = "POST /NetworkDriver.Leave HTTP/1.1\r\nContent-Length: 36\r\n\r\n{\"NetworkID\":\"n1\",\"EndpointID\":\"e1\"}";

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = format!(
        "{LEAVE}{}{LEAVE}",
        post("/NetworkDriver.DeleteNetwork", r#"{"NetworkID":"n"}"#)
    );
    assert_eq!(statuses(&converse(input.as_bytes())), [200, 500, 200]);
}

#[test]
fn get_is_405_with_allow_and_the_connection_stays_usable() {
    let input = format!("GET /Plugin.Activate HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}{LEAVE}");
    let output = String::from_utf8(converse(input.as_bytes())).unwrap();
    assert_eq!(statuses(output.as_bytes()), [405, 200]);
    assert!(output.contains("Allow: POST\r\n"), "{output}");
    assert!(
        output.contains(r#"{"Err":"method GET is not allowed, plugin calls are POST"}"#),
        "{output}"
    );
}

#[test]
fn head_is_405_and_closes() {
    let input = format!("HEAD / HTTP/1.1\r\n\r\n{LEAVE}");
    let output = String::from_utf8(converse(input.as_bytes())).unwrap();
    assert_eq!(statuses(output.as_bytes()), [405]);
    assert!(output.contains("Connection: close\r\n"), "{output}");
}

#[test]
fn expect_continue_gets_100_before_the_reply() {
    let input = LEAVE.replace("Content-Length", "Expect: 100-continue\r\nContent-Length");
    let output = String::from_utf8(converse(input.as_bytes())).unwrap();
    assert!(
        output.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{output}"
    );
}

#[test]
fn a_stopping_server_closes_after_the_reply() {
    let mut reader = Cursor::new(format!("{LEAVE}{LEAVE}").into_bytes());
    let mut output = Vec::new();
    assert!(!exchange(
        &mut reader,
        &mut output,
        &settings(&Canned),
        &|| true
    ));
    let output = String::from_utf8(output).unwrap();
    assert!(output.contains("Connection: close\r\n"), "{output}");
    assert_eq!(statuses(output.as_bytes()), [200]);
}

#[test]
fn a_malformed_request_is_answered_once_and_closes() {
    let input = format!("POST /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n{LEAVE}");
    let output = String::from_utf8(converse(input.as_bytes())).unwrap();
    assert_eq!(statuses(output.as_bytes()), [400]);
    assert!(output.contains("Connection: close\r\n"));
    assert!(
        output.contains(r#"{"Err":"malformed request: invalid Content-Length \"nope\""}"#),
        "{output}"
    );
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn templates() -> Vec<Vec<u8>> {
    let chunked = "POST /IpamDriver.RequestAddress HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"PoolID\":\"p1\",\"\r\n19\r\nAddress\":\"\",\"Options\":{}}\r\n0\r\n\r\n";
    let join = post(
        "/NetworkDriver.Join",
        r#"{"NetworkID":"n","EndpointID":"e","SandboxKey":"/x","Options":{"a":[1]}}"#,
    );
    let activate = "POST /Plugin.Activate HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let create = post(
        "/NetworkDriver.CreateNetwork",
        r#"{"NetworkID":"n","IPv4Data":[{"AddressSpace":"s","Pool":"10.0.0.0/24","Gateway":"10.0.0.1/24"}]}"#,
    );
    [LEAVE, chunked, &join, activate, &create]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect()
}

#[test]
fn templates_are_valid_requests() {
    for template in templates() {
        assert_eq!(
            statuses(&converse(&template)),
            [200],
            "{}",
            String::from_utf8_lossy(&template)
        );
    }
    let all: Vec<u8> = templates().concat();
    assert_eq!(statuses(&converse(&all)), [200; 5]);
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    const INTERESTING: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b":",
        b" ",
        b"\x00",
        b"\xff",
        b"chunked",
        b"Content-Length: ",
        b"{",
        b"\"",
        b"0\r\n\r\n",
        b"ffffffff",
    ];
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(5) {
            0 if at < input.len() => input[at] = rng.next() as u8,
            1 if at < input.len() => {
                input.remove(at);
            }
            2 => input
                .splice(
                    at..at,
                    INTERESTING[rng.below(INTERESTING.len())].iter().copied(),
                )
                .for_each(drop),
            3 => input.truncate(at),
            _ => {
                let start = rng.below(input.len() + 1);
                let end = (start + rng.below(32)).min(input.len());
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy).for_each(drop);
            }
        }
    }
}

fn check_answers(input: &[u8], output: &[u8]) {
    let shown = || String::from_utf8_lossy(input).into_owned();
    assert!(
        output.is_empty() || output.starts_with(b"HTTP/1.1 "),
        "{}",
        shown()
    );
    for status in statuses(output) {
        assert!(
            [100, 200, 400, 404, 405, 408, 413, 431, 500, 501, 505].contains(&status),
            "status {status} for {}",
            shown()
        );
    }
}

#[test]
fn fuzz_random_and_mutated_streams_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let templates = templates();
    let mut answered = 0;
    let mut counts = std::collections::BTreeMap::new();
    for round in 0..30_000 {
        let input = if round % 3 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            let mut input = templates[rng.below(templates.len())].clone();
            if round % 3 == 2 {
                input.extend_from_slice(&templates[rng.below(templates.len())]);
            }
            mutate(&mut rng, &mut input);
            input
        };
        let output = converse(&input);
        check_answers(&input, &output);
        for status in statuses(&output) {
            *counts.entry(status).or_insert(0usize) += 1;
        }
        answered += usize::from(!output.is_empty());
    }
    // Most inputs get an answer rather than a silent close, and the
    // mutations reach the JSON decoder and the handler, not only the HTTP parser.
    assert!(
        answered > 15_000,
        "only {answered} of 30000 inputs got an answer"
    );
    for status in [200, 400, 404, 405] {
        assert!(
            counts.get(&status).is_some_and(|&n| n > 100),
            "status {status} seen too rarely: {counts:?}"
        );
    }
}

#[test]
fn fuzz_mutated_json_bodies_get_200_400_or_500() {
    let bodies = [
        r#"{"NetworkID":"n","Options":{"com.docker.network.generic":{"parent":"eth0"}},"IPv4Data":[{"AddressSpace":"s","Pool":"10.0.0.0/24","AuxAddresses":{"a":"10.0.0.2/24"}}],"IPv6Data":null}"#,
        r#"{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.0.0.5/24","AddressIPv6":"fd00::5/64","MacAddress":"02:42:0a:00:00:05"},"Options":{}}"#,
        r#"{"PoolID":"p","Address":"10.0.0.7","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#,
        r#"{"AddressSpace":"s","Pool":"fd00::/64","SubPool":"","Options":null,"V6":true}"#,
        r#"{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.1","Self":true}}"#,
    ];
    let paths = crate::request::PluginMethod::all()
        .map(|m| format!("/{}", m.name()))
        .collect::<Vec<_>>();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20_000 {
        let mut body = bodies[rng.below(bodies.len())].as_bytes().to_vec();
        mutate(&mut rng, &mut body);
        let body = String::from_utf8_lossy(&body);
        let path = &paths[rng.below(paths.len())];
        let output = converse(post(path, &body).as_bytes());
        let status = statuses(&output);
        assert_eq!(status.len(), 1, "{path} {body}");
        assert!(
            [200, 400, 500].contains(&status[0]),
            "{} for {path} {body}",
            status[0]
        );
        seen.insert(status[0]);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [200, 400, 500]);
}
