//! `underlay daemon` in a test lan's docker host, and its event stream.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestLan;

/// The daemon in the docker host, and a subscription to its events; killed on drop.
pub struct Daemon {
    children: Vec<Child>,
    events: Receiver<Value>,
    log: std::path::PathBuf,
}

impl Daemon {
    /// With a look at every endpoint each second.
    pub fn start(lan: &TestLan) -> Daemon {
        Daemon::start_with(lan, 1)
    }

    pub fn start_with(lan: &TestLan, settle_every_s: u32) -> Daemon {
        let socket = lan.state.path().join("daemon.sock");
        let mut daemon = lan.cmd(&[
            "--dhcp-socket",
            socket.to_str().unwrap(),
            "daemon",
            "--settle-every",
            &settle_every_s.to_string(),
        ]);
        let log = std::fs::File::create(lan.state.path().join("daemon.log")).unwrap();
        let daemon = daemon
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Subscribed before the test does anything: the daemon acknowledges first.
        let mut stream = UnixStream::connect(&socket).expect("connect to the daemon");
        stream.write_all(b"{\"op\":\"events\"}\n").unwrap();
        let mut lines = BufReader::new(stream).lines();
        let ack = lines.next().expect("an acknowledgement").unwrap();
        assert!(ack.contains("subscribed"), "{ack}");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        // The daemon answers once its first look at the parents is done: what the test changes
        // from now on is news.
        Daemon {
            children: vec![daemon],
            events,
            log: lan.state.path().join("daemon.log"),
        }
    }

    /// The next event of `kind` (about `endpoint` when given), within 10 s.
    pub fn expect(&self, kind: &str, endpoint: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(event) = self.events.recv_timeout(left) else {
                break;
            };
            let fits = event["event"] == kind
                && endpoint.is_none_or(|e| event["endpoint"].as_str() == Some(e));
            if fits {
                return event;
            }
            seen.push(event);
        }
        let log = std::fs::read_to_string(self.log.clone()).unwrap_or_default();
        panic!("no {kind} event for {endpoint:?} within 10 s; saw {seen:?}\ndaemon log:\n{log}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
