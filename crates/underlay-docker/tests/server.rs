//! The server over real unix sockets: a recording handler, a tiny HTTP
//! client, and the socket file rules of `bind`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use underlay_docker::*;

/// Records every request and answers with canned replies.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Request>>,
}

impl Recorder {
    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    fn handle(&self, request: Request) -> Result<Response, PluginError> {
        self.seen.lock().unwrap().push(request.clone());
        answer(request)
    }
}

fn answer(request: Request) -> Result<Response, PluginError> {
    Ok(match request {
        Request::NetworkGetCapabilities => Response::NetworkCapabilities(NetworkCapabilities {
            scope: Scope::Local,
            connectivity_scope: None,
            gw_alloc_checker: false,
        }),
        Request::DeleteNetwork(r) => {
            return Err(PluginError::new(format!(
                "network {} has endpoints",
                r.network_id
            )))
        }
        Request::Join(_) => Response::Join(JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: "ul0a1b".into(),
                dst_prefix: "eth".into(),
                dst_name: None,
            }),
            gateway: Some("10.0.0.1".parse().unwrap()),
            ..Default::default()
        }),
        Request::GetDefaultAddressSpaces => Response::DefaultAddressSpaces(DefaultAddressSpaces {
            local: "L".into(),
            global: "G".into(),
        }),
        Request::RequestPool(_) => Response::RequestPool(RequestPoolResponse::new(
            "L/10.0.0.0/24",
            "10.0.0.0/24".parse().unwrap(),
        )),
        Request::RequestAddress(_) => {
            Response::RequestAddress(RequestAddressResponse::new("10.0.0.5/24".parse().unwrap()))
        }
        Request::Leave(r) if r.endpoint_id == "slow" => {
            std::thread::sleep(Duration::from_millis(300));
            Response::Empty
        }
        _ => Response::Empty,
    })
}

/// Fields drop in order: the server stops before its directory goes.
struct Fixture {
    server: Option<Server>,
    recorder: Arc<Recorder>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(ServerConfig::default())
    }

    fn with_config(config: ServerConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugins/underlay.sock");
        let recorder = Arc::new(Recorder::default());
        let server = Server::start(bind(&path).unwrap(), recorder.clone(), config).unwrap();
        Fixture {
            _dir: dir,
            path,
            recorder,
            server: Some(server),
        }
    }

    fn client(&self) -> Client {
        Client::connect(&self.path)
    }

    fn shutdown(&mut self) {
        self.server.take().unwrap().shutdown().unwrap();
    }
}

struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn err(&self) -> String {
        self.json()["Err"]
            .as_str()
            .unwrap_or_else(|| panic!("no Err in {}", self.body))
            .to_owned()
    }
}

/// Just enough of an HTTP client: requests with Content-Length, replies with Content-Length.
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn post(&mut self, path: &str, body: &str) -> Reply {
        self.send(post(path, body, "").as_bytes());
        self.read_reply().expect("a reply")
    }

    /// The next reply, or `None` if the server closed the connection.
    fn read_reply(&mut self) -> Option<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = BTreeMap::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let Some((name, value)) = line.trim_end().split_once(": ") else {
                break;
            };
            headers.insert(name.to_ascii_lowercase(), value.to_owned());
        }
        let length: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        Some(Reply {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        })
    }

    fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

fn post(path: &str, body: &str, extra_headers: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

const CREATE_NETWORK: &str = r#"{"NetworkID":"n1","Options":{"com.docker.network.generic":{"parent":"eth0"}},"IPv4Data":[{"AddressSpace":"L","Pool":"10.0.0.0/24","Gateway":"10.0.0.1/24"}],"IPv6Data":null}"#;
const JOIN: &str =
    r#"{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/abc","Options":{}}"#;

#[test]
fn activate_is_answered_by_the_server() {
    let fixture = Fixture::new();
    let reply = fixture.client().post("/Plugin.Activate", "");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        r#"{"Implements":["NetworkDriver","IpamDriver"]}"#
    );
    assert_eq!(
        reply.headers["content-type"],
        "application/vnd.docker.plugins.v1.2+json"
    );
    assert!(fixture.recorder.seen().is_empty());
}

#[test]
fn network_driver_calls() {
    let fixture = Fixture::new();
    let mut client = fixture.client();
    let caps = client.post("/NetworkDriver.GetCapabilities", "");
    assert_eq!(
        (caps.status, caps.body.as_str()),
        (200, r#"{"Scope":"local","GwAllocChecker":false}"#)
    );
    let created = client.post("/NetworkDriver.CreateNetwork", CREATE_NETWORK);
    assert_eq!((created.status, created.body.as_str()), (200, "{}"));
    let joined = client.post("/NetworkDriver.Join", JOIN);
    assert_eq!(
        joined.body,
        r#"{"InterfaceName":{"SrcName":"ul0a1b","DstPrefix":"eth"},"Gateway":"10.0.0.1"}"#
    );
    let seen = fixture.recorder.seen();
    assert_eq!(seen.len(), 3);
    let Request::CreateNetwork(create) = &seen[1] else {
        panic!("{seen:?}")
    };
    assert_eq!(create.options.generic_options().unwrap()["parent"], "eth0");
    assert_eq!(
        create.ipv4_data[0].gateway,
        Some("10.0.0.1/24".parse().unwrap())
    );
    let Request::Join(join) = &seen[2] else {
        panic!("{seen:?}")
    };
    assert_eq!(join.sandbox_key, "/var/run/docker/netns/abc");
}

#[test]
fn ipam_driver_calls() {
    let fixture = Fixture::new();
    let mut client = fixture.client();
    let spaces = client.post("/IpamDriver.GetDefaultAddressSpaces", "");
    assert_eq!(
        spaces.body,
        r#"{"LocalDefaultAddressSpace":"L","GlobalDefaultAddressSpace":"G"}"#
    );
    let pool = client.post(
        "/IpamDriver.RequestPool",
        r#"{"AddressSpace":"L","Pool":"10.0.0.0/24","SubPool":"","Options":null,"V6":false}"#,
    );
    assert_eq!(
        pool.body,
        r#"{"PoolID":"L/10.0.0.0/24","Pool":"10.0.0.0/24","Data":{}}"#
    );
    let address = client.post("/IpamDriver.RequestAddress", r#"{"PoolID":"L/10.0.0.0/24","Address":"","Options":{"com.docker.network.endpoint.name":"web"}}"#);
    assert_eq!(address.body, r#"{"Address":"10.0.0.5/24","Data":{}}"#);
    let released = client.post(
        "/IpamDriver.ReleaseAddress",
        r#"{"PoolID":"L/10.0.0.0/24","Address":"10.0.0.5"}"#,
    );
    assert_eq!((released.status, released.body.as_str()), (200, "{}"));
    let Request::RequestAddress(request) = &fixture.recorder.seen()[2] else {
        panic!()
    };
    assert_eq!(request.endpoint_name(), Some("web"));
}

#[test]
fn keep_alive_then_connection_close() {
    let fixture = Fixture::new();
    let mut client = fixture.client();
    assert_eq!(
        client
            .post("/NetworkDriver.CreateNetwork", CREATE_NETWORK)
            .status,
        200
    );
    assert_eq!(client.post("/NetworkDriver.Join", JOIN).status, 200);
    client.send(post("/NetworkDriver.Join", JOIN, "Connection: close\r\n").as_bytes());
    let last = client.read_reply().unwrap();
    assert_eq!(
        (last.status, last.headers["connection"].as_str()),
        (200, "close")
    );
    assert!(client.is_closed_by_server());
    assert_eq!(fixture.recorder.seen().len(), 3);
}

#[test]
fn chunked_request_body() {
    let fixture = Fixture::new();
    let mut client = fixture.client();
    let (first, second) = JOIN.split_at(20);
    let chunked = format!(
        "POST /NetworkDriver.Join HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    client.send(chunked.as_bytes());
    assert_eq!(client.read_reply().unwrap().status, 200);
    let Request::Join(join) = &fixture.recorder.seen()[0] else {
        panic!()
    };
    assert_eq!(join.endpoint_id, "e1");
}

#[test]
fn unknown_method_get_bad_json_and_handler_errors() {
    let fixture = Fixture::new();
    let mut client = fixture.client();
    let unknown = client.post("/NetworkDriver.Teleport", "{}");
    assert_eq!(
        (unknown.status, unknown.err()),
        (
            404,
            "unknown plugin method \"/NetworkDriver.Teleport\"".to_owned()
        )
    );
    client.send(b"GET /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\n\r\n");
    let get = client.read_reply().unwrap();
    assert_eq!((get.status, get.headers["allow"].as_str()), (405, "POST"));
    assert_eq!(
        get.err(),
        "method GET is not allowed, plugin calls are POST"
    );
    let bad = client.post(
        "/NetworkDriver.CreateNetwork",
        r#"{"NetworkID":"n1","IPv4Data":[{"Pool":"10.0.0.0/33"}]}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.err().starts_with("invalid NetworkDriver.CreateNetwork body: IPv4Data[0].Pool: invalid CIDR \"10.0.0.0/33\""), "{}", bad.err());
    let not_json = client.post("/NetworkDriver.Leave", "{oops");
    assert_eq!(not_json.status, 400);
    let failed = client.post("/NetworkDriver.DeleteNetwork", r#"{"NetworkID":"n1"}"#);
    assert_eq!(
        (failed.status, failed.body.as_str()),
        (500, r#"{"Err":"network n1 has endpoints"}"#)
    );
    // All of these were answered on the same connection.
    assert_eq!(client.post("/Plugin.Activate", "").status, 200);
}

#[test]
fn oversized_body_is_413_and_closes() {
    let fixture = Fixture::with_config(ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    });
    let mut client = fixture.client();
    client.send(b"POST /NetworkDriver.Join HTTP/1.1\r\nContent-Length: 1025\r\n\r\n");
    let reply = client.read_reply().unwrap();
    assert_eq!(
        (reply.status, reply.err()),
        (413, "request body exceeds 1024 bytes".to_owned())
    );
    assert!(client.is_closed_by_server());
    let mut chunked = fixture.client();
    chunked.send(format!("POST /NetworkDriver.Join HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n{}\r\n1\r\n", "x".repeat(1024)).as_bytes());
    assert_eq!(chunked.read_reply().unwrap().status, 413);
}

#[test]
fn oversized_headers_are_431() {
    let fixture = Fixture::new();
    let mut client = fixture.client();
    client.send(
        format!(
            "POST /Plugin.Activate HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "y".repeat(70 * 1024)
        )
        .as_bytes(),
    );
    assert_eq!(client.read_reply().unwrap().status, 431);
    assert!(client.is_closed_by_server());
}

#[test]
fn garbage_is_400_and_the_server_carries_on() {
    let fixture = Fixture::new();
    let mut client = fixture.client();
    client.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
    let reply = client.read_reply().unwrap();
    assert_eq!(reply.status, 400);
    assert!(
        reply.err().starts_with("malformed request"),
        "{}",
        reply.err()
    );
    assert!(client.is_closed_by_server());
    assert_eq!(fixture.client().post("/Plugin.Activate", "").status, 200);
}

#[test]
fn sixteen_concurrent_connections() {
    let fixture = Fixture::new();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let path = fixture.path.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&path);
                for i in 0..25 {
                    let body = format!(r#"{{"NetworkID":"n{t}","EndpointID":"e{i}"}}"#);
                    let reply = client.post("/NetworkDriver.Leave", &body);
                    assert_eq!((reply.status, reply.body.as_str()), (200, "{}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let seen = fixture.recorder.seen();
    assert_eq!(seen.len(), 16 * 25);
    for t in 0..16 {
        let per_network = seen
            .iter()
            .filter(|r| matches!(r, Request::Leave(e) if e.network_id == format!("n{t}")))
            .count();
        assert_eq!(per_network, 25);
    }
}

#[test]
fn connections_over_the_limit_get_503() {
    let fixture = Fixture::with_config(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    });
    let mut first = fixture.client();
    let mut second = fixture.client();
    // Make sure both are registered before the third arrives.
    assert_eq!(first.post("/Plugin.Activate", "").status, 200);
    assert_eq!(second.post("/Plugin.Activate", "").status, 200);
    let mut third = fixture.client();
    let reply = third.read_reply().unwrap();
    assert_eq!(
        (reply.status, reply.err()),
        (
            503,
            "too many connections to the plugin, try again".to_owned()
        )
    );
    drop(first);
    // The slot frees once the server sees the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = fixture.client();
        // A refused connection may be closed before the request is written.
        let _ = again
            .writer
            .write_all(post("/Plugin.Activate", "", "").as_bytes());
        if again.read_reply().unwrap().status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_stalled_request_gets_408_and_an_idle_connection_is_closed() {
    let config = ServerConfig {
        request_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let fixture = Fixture::with_config(config);
    let mut stalled = fixture.client();
    let started = Instant::now();
    stalled.send(b"POST /NetworkDriver.Join HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"Netw");
    let reply = stalled.read_reply().unwrap();
    assert_eq!(
        (reply.status, reply.err()),
        (408, "request not received in time".to_owned())
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert!(stalled.is_closed_by_server());
    // Trickling bytes does not extend the deadline.
    let mut trickle = fixture.client();
    let started = Instant::now();
    for byte in b"POST /Plugin.Activate HTTP/1.1\r\nX: " {
        if trickle.writer.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(trickle.read_reply().map(|r| r.status), Some(408));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let mut idle = fixture.client();
    let started = Instant::now();
    assert!(idle.is_closed_by_server());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    let mut fixture = Fixture::new();
    let mut idle = fixture.client();
    assert_eq!(idle.post("/Plugin.Activate", "").status, 200);
    let path = fixture.path.clone();
    let in_flight = std::thread::spawn(move || {
        let mut client = Client::connect(&path);
        client.send(
            post(
                "/NetworkDriver.Leave",
                r#"{"NetworkID":"n","EndpointID":"slow"}"#,
                "",
            )
            .as_bytes(),
        );
        let reply = client.read_reply().unwrap();
        (
            reply.status,
            reply.headers.get("connection").cloned(),
            client.is_closed_by_server(),
        )
    });
    // Let the slow request reach the handler.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fixture.recorder.seen().is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    fixture.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(
        in_flight.join().unwrap(),
        (200, Some("close".to_owned()), true)
    );
    assert!(idle.is_closed_by_server());
    let refused = UnixStream::connect(&fixture.path).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn bind_creates_the_directory_and_a_root_only_socket() {
    let fixture = Fixture::new();
    let metadata = std::fs::metadata(&fixture.path).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert!(fixture.path.parent().unwrap().is_dir());
}

#[test]
fn bind_replaces_a_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    drop(UnixListener::bind(&path).unwrap());
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_socket());
    let listener = bind(&path).unwrap();
    let server = Server::start(
        listener,
        Arc::new(Recorder::default()),
        ServerConfig::default(),
    )
    .unwrap();
    assert_eq!(
        Client::connect(&path).post("/Plugin.Activate", "").status,
        200
    );
    server.shutdown().unwrap();
}

#[test]
fn bind_refuses_to_steal_a_live_socket_or_clobber_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let live = UnixListener::bind(&path).unwrap();
    let err = bind(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(
        err.to_string(),
        format!("socket {} is in use by a running server", path.display())
    );
    // The live server still has its socket.
    let _client = UnixStream::connect(&path).unwrap();
    assert!(live.accept().is_ok());

    let file = dir.path().join("plain");
    std::fs::write(&file, "keep me").unwrap();
    let err = bind(&file).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        err.to_string(),
        format!("{} exists and is not a socket", file.display())
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn shutdown_returns_even_when_the_socket_file_is_gone_or_replaced() {
    for replace in [false, true] {
        let mut fixture = Fixture::new();
        let mut open = fixture.client();
        assert_eq!(open.post("/Plugin.Activate", "").status, 200);
        std::fs::remove_file(&fixture.path).unwrap();
        let _other = replace.then(|| UnixListener::bind(&fixture.path).unwrap());
        let started = Instant::now();
        fixture.shutdown();
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "replace={replace}: {:?}",
            started.elapsed()
        );
        assert!(open.is_closed_by_server());
    }
}
