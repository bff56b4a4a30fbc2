//! The keeper's socket: one thread per connection, one JSON request per line, one JSON answer
//! per line. A line that is not a valid request gets an `invalid` error and nothing else.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use super::proto::{KeeperError, KeeperErrorKind, KeeperRequest, KeeperResponse};
use crate::events::EventBus;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 1 << 20;
/// A client that sends nothing for this long is dropped.
const IDLE: Duration = Duration::from_secs(60);

/// Answers requests on `listener` with `handle` until the listener fails; an `events`
/// request streams `events`.
pub fn serve(
    listener: &UnixListener,
    handle: Arc<dyn Fn(KeeperRequest) -> KeeperResponse + Send + Sync>,
    events: EventBus,
) -> std::io::Result<()> {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let handle = handle.clone();
        let events = events.clone();
        std::thread::Builder::new()
            .name("keeper-conn".into())
            .spawn(move || {
                if let Err(e) = converse(stream, &*handle, &events) {
                    tracing::debug!(error = %e, "keeper connection ended");
                }
            })?;
    }
    Ok(())
}

fn converse(
    stream: UnixStream,
    handle: &(dyn Fn(KeeperRequest) -> KeeperResponse + Send + Sync),
    events: &EventBus,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        let n = (&mut reader).take(MAX_REQUEST).read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        let response = match serde_json::from_str::<KeeperRequest>(&line) {
            Ok(KeeperRequest::Events) => return stream_events(writer, events),
            Ok(request) => handle(request),
            Err(e) => KeeperResponse::Error(KeeperError::new(
                KeeperErrorKind::Invalid,
                format!("not a lease keeper request: {e}"),
            )),
        };
        let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
        out.push(b'\n');
        writer.write_all(&out)?;
        if !line.ends_with('\n') {
            return Ok(()); // the line was cut at MAX_REQUEST, or the client half-closed
        }
    }
}

/// Writes each event as a JSON line until the client goes away.
fn stream_events(mut writer: UnixStream, events: &EventBus) -> std::io::Result<()> {
    let receiver = events.subscribe();
    // Said at once, so the client knows it is subscribed before anything happens.
    writer.write_all(b"{\"result\":\"subscribed\"}\n")?;
    for event in receiver {
        let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        writer.write_all(&line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_line_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            serve(
                &listener,
                Arc::new(|request| match request {
                    KeeperRequest::Ping => KeeperResponse::Pong {
                        version: "test".into(),
                    },
                    _ => KeeperResponse::Released { found: false },
                }),
                EventBus::default(),
            )
        });
        let mut stream = UnixStream::connect(&path).unwrap();
        stream
            .write_all(b"{\"op\":\"ping\"}\nnot json\n{\"op\":\"release\",\"key\":\"k\"}\n")
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answers = String::new();
        stream.read_to_string(&mut answers).unwrap();
        let lines: Vec<KeeperResponse> = answers
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{answers}");
        assert!(matches!(&lines[0], KeeperResponse::Pong { version } if version == "test"));
        assert!(
            matches!(&lines[1], KeeperResponse::Error(e) if e.kind == KeeperErrorKind::Invalid && e.message.contains("not a lease keeper request"))
        );
        assert_eq!(lines[2], KeeperResponse::Released { found: false });
    }
}
