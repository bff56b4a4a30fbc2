//! Responses: a status line, our fixed headers and a `Content-Length` body.

use std::io::{self, Write};

/// "100 Continue", sent before reading a body the client holds back.
pub(crate) fn write_continue<W: Write>(writer: &mut W) -> io::Result<()> {
    writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    writer.flush()
}

/// The media type of every plugin reply.
pub(crate) const PLUGIN_CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Writes a complete response in one `write_all`.
pub(crate) fn write_response<W: Write>(
    writer: &mut W,
    status: u16,
    extra: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(160 + body.len());
    write!(out, "HTTP/1.1 {status} {}\r\n", reason(status))?;
    write!(
        out,
        "Content-Type: {PLUGIN_CONTENT_TYPE}\r\nContent-Length: {}\r\n",
        body.len()
    )?;
    for (name, value) in extra {
        write!(out, "{name}: {value}\r\n")?;
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    writer.write_all(&out)?;
    writer.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
