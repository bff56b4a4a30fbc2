//! One connection: requests read and answered in turn until the client
//! closes, asks to close, errs, or stays silent past the idle timeout.

use crate::dispatch::{dispatch, Reply};
use crate::http::{self, Framing, Head, HttpError, Limits};
use crate::response::error_body;
use crate::Handler;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// What the connection loop needs from the server.
pub(crate) struct Settings<'a> {
    pub handler: &'a dyn Handler,
    pub limits: Limits,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// A socket reader that fails once a deadline has passed, however slowly
/// the peer trickles bytes (a per-read timeout alone would not bound that).
struct DeadlineReader {
    stream: UnixStream,
    deadline: Instant,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Serves `stream` until it is done; `stopping` is polled between requests.
pub(crate) fn run(stream: UnixStream, settings: &Settings<'_>, stopping: &dyn Fn() -> bool) {
    if let Err(e) = stream.set_write_timeout(Some(settings.request_timeout)) {
        tracing::warn!("cannot set the write timeout of a plugin connection: {e}");
        return;
    }
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(DeadlineReader {
        stream: read_half,
        deadline: Instant::now(),
    });
    let mut writer = stream;
    tracing::debug!("plugin connection opened");
    let mut served = 0u64;
    loop {
        reader.get_mut().deadline = Instant::now() + settings.idle_timeout;
        match reader.fill_buf() {
            Ok([]) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("closing idle plugin connection: {e}");
                break;
            }
        }
        reader.get_mut().deadline = Instant::now() + settings.request_timeout;
        served += 1;
        if !exchange(&mut reader, &mut writer, settings, stopping) {
            break;
        }
    }
    tracing::debug!(requests = served, "plugin connection closed");
}

/// Reads one request and writes its answer; whether to keep the connection.
pub(crate) fn exchange<R: BufRead, W: Write>(
    reader: &mut R,
    writer: &mut W,
    settings: &Settings<'_>,
    stopping: &dyn Fn() -> bool,
) -> bool {
    let started = Instant::now();
    let (head, body) = match read_request(reader, writer, &settings.limits) {
        Ok(request) => request,
        Err(e) => {
            answer_http_error(writer, &e);
            return false;
        }
    };
    let (reply, extra): (Reply, &[(&str, &str)]) = if head.method == "POST" {
        (dispatch(settings.handler, &head.target, &body), &[])
    } else {
        (
            Reply::error(
                405,
                &format!(
                    "method {} is not allowed, plugin calls are POST",
                    head.method
                ),
            ),
            &[("Allow", "POST")],
        )
    };
    // Asked after the handler ran: a reply finished during shutdown says so.
    // A HEAD client would not read our body, so the stream ends with it.
    let keep_open = head.keep_alive() && head.method != "HEAD" && !stopping();
    let written = http::write_response(
        writer,
        reply.status,
        extra,
        reply.body.as_bytes(),
        !keep_open,
    );
    log_exchange(&head, &reply, started);
    if let Err(e) = &written {
        tracing::warn!(path = %head.target, "cannot write the plugin reply: {e}");
    }
    written.is_ok() && keep_open
}

fn read_request<R: BufRead, W: Write>(
    reader: &mut R,
    writer: &mut W,
    limits: &Limits,
) -> Result<(Head, Vec<u8>), HttpError> {
    let head = http::read_head(reader, limits)?;
    let framing = head.framing(limits)?;
    if framing != Framing::Length(0) && head.expects_continue() {
        http::write_continue(writer)?;
    }
    let body = http::read_body(reader, framing, limits)?;
    Ok((head, body))
}

/// Answers a request that could not be read, if anyone is listening; the
/// connection is closed after, since the stream position is unknown.
fn answer_http_error<W: Write>(writer: &mut W, error: &HttpError) {
    let Some(status) = error.status() else {
        if !matches!(error, HttpError::Closed) {
            tracing::debug!("plugin connection ended mid-request: {error}");
        }
        return;
    };
    tracing::warn!(status, "rejected a plugin request: {error}");
    let body = error_body(&error.to_string());
    if let Err(e) = http::write_response(writer, status, &[], body.as_bytes(), true) {
        tracing::debug!("cannot write the error reply: {e}");
    }
}

fn log_exchange(head: &Head, reply: &Reply, started: Instant) {
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if reply.status == 200 {
        tracing::debug!(method = %head.method, path = %head.target, status = reply.status, micros, "plugin call");
    } else {
        tracing::warn!(method = %head.method, path = %head.target, status = reply.status, micros, error = %reply.body, "plugin call failed");
    }
}

#[cfg(test)]
mod tests;
