//! The sliver of HTTP/1.1 (RFC 9112) the plugin protocol needs: a request
//! head, a `Content-Length` or chunked body, and a response with a fixed
//! length. Every limit is checked before memory is committed.

use std::io::{self, BufRead, Read, Write};

/// Size limits for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Request line plus headers (and, for chunked bodies, chunk-size lines plus trailers).
    pub max_header_bytes: usize,
    /// The decoded body.
    pub max_body_bytes: usize,
}

const MAX_HEADERS: usize = 128;

/// A request line and headers.
#[derive(Debug)]
pub(crate) struct Head {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Names lowercased, values trimmed.
    headers: Vec<(String, String)>,
}

/// How the body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The peer closed the connection before sending a byte of a request.
    #[error("connection closed")]
    Closed,
    #[error("request not received in time")]
    Timeout,
    #[error(transparent)]
    Io(io::Error),
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("request header section exceeds {0} bytes")]
    HeadersTooLarge(usize),
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("transfer coding {0:?} is not supported")]
    UnsupportedCoding(String),
    #[error("HTTP version {0:?} is not supported")]
    UnsupportedVersion(String),
}

impl HttpError {
    /// The status to answer with, `None` when nobody is listening any more.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Closed | HttpError::Io(_) => None,
            HttpError::Timeout => Some(408),
            HttpError::BadRequest(_) => Some(400),
            HttpError::BodyTooLarge(_) => Some(413),
            HttpError::HeadersTooLarge(_) => Some(431),
            HttpError::UnsupportedCoding(_) => Some(501),
            HttpError::UnsupportedVersion(_) => Some(505),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> HttpError {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HttpError::Timeout,
            _ => HttpError::Io(e),
        }
    }
}

fn bad(message: impl Into<String>) -> HttpError {
    HttpError::BadRequest(message.into())
}

/// A byte allowance shared by a sequence of lines (the header section, or
/// all chunk-size lines and trailers of a body).
struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget { left: limit, limit }
    }
}

/// The next line without its LF or CRLF; `Ok(None)` at a clean EOF.
fn next_line<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<Option<()>, HttpError> {
    line.clear();
    // One byte past the budget distinguishes "too long" from "exactly fits".
    let n = reader
        .by_ref()
        .take(budget.left as u64 + 1)
        .read_until(b'\n', line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > budget.left {
        return Err(HttpError::HeadersTooLarge(budget.limit));
    }
    budget.left -= n;
    if line.pop() != Some(b'\n') {
        return Err(HttpError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(()))
}

/// Like [`next_line`], with EOF an error.
fn expect_line<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<(), HttpError> {
    next_line(reader, line, budget)?
        .ok_or_else(|| HttpError::Io(io::ErrorKind::UnexpectedEof.into()))
}

/// Reads a request line and the header section.
pub(crate) fn read_head<R: BufRead>(reader: &mut R, limits: &Limits) -> Result<Head, HttpError> {
    let mut budget = Budget::new(limits.max_header_bytes);
    let mut line = Vec::new();
    // RFC 9112 2.2: ignore empty lines before the request line.
    loop {
        if next_line(reader, &mut line, &mut budget)?.is_none() {
            return Err(HttpError::Closed);
        }
        if !line.is_empty() {
            break;
        }
    }
    let mut head = parse_request_line(&line)?;
    loop {
        expect_line(reader, &mut line, &mut budget)?;
        if line.is_empty() {
            return Ok(head);
        }
        if head.headers.len() == MAX_HEADERS {
            return Err(HttpError::HeadersTooLarge(limits.max_header_bytes));
        }
        head.headers.push(parse_header(&line)?);
    }
}

fn parse_request_line(line: &[u8]) -> Result<Head, HttpError> {
    let text = std::str::from_utf8(line).map_err(|_| bad("request line is not UTF-8"))?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!(
            "request line {text:?} is not METHOD TARGET VERSION"
        )));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(bad(format!("invalid method {method:?}")));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad(format!("invalid request target {target:?}")));
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => return Err(HttpError::UnsupportedVersion(v.to_owned())),
        v => return Err(bad(format!("invalid HTTP version {v:?}"))),
    };
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        minor_version,
        headers: Vec::new(),
    })
}

fn parse_header(line: &[u8]) -> Result<(String, String), HttpError> {
    let shown = || String::from_utf8_lossy(line).into_owned();
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| bad(format!("header line {:?} has no colon", shown())))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // Also rejects obsolete line folding (a line starting with whitespace)
    // and "Name : value", which RFC 9112 5.1 says must be rejected.
    if name.is_empty() || !name.iter().copied().all(is_token_byte) {
        return Err(bad(format!("invalid header name in {:?}", shown())));
    }
    let value = value.trim_ascii();
    if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(bad(format!("control character in header {:?}", shown())));
    }
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    Ok((name, String::from_utf8_lossy(value).into_owned()))
}

/// RFC 9110 5.6.2 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Head {
    /// Every value of a header, comma-separated lists split (RFC 9110 5.3).
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).any(|v| v.eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept open after the reply.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.minor_version == 1 || self.has_token("connection", "keep-alive")
    }

    /// Whether the client waits for "100 Continue" before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.minor_version == 1 && self.has_token("expect", "100-continue")
    }

    /// How the body is delimited, checked against the size limit.
    pub fn framing(&self, limits: &Limits) -> Result<Framing, HttpError> {
        let codings: Vec<&str> = self.values("transfer-encoding").collect();
        let lengths: Vec<&str> = self.values("content-length").collect();
        if !codings.is_empty() {
            // Both present is a request-smuggling vector (RFC 9112 6.3 item 3).
            if !lengths.is_empty() {
                return Err(bad("both Transfer-Encoding and Content-Length"));
            }
            return chunked_framing(&codings);
        }
        let Some(first) = lengths.first() else {
            return Ok(Framing::Length(0));
        };
        if lengths.iter().any(|l| l != first) {
            return Err(bad(format!(
                "conflicting Content-Length values {lengths:?}"
            )));
        }
        let length = parse_length(first)?;
        if length > limits.max_body_bytes {
            return Err(HttpError::BodyTooLarge(limits.max_body_bytes));
        }
        Ok(Framing::Length(length))
    }
}

fn chunked_framing(codings: &[&str]) -> Result<Framing, HttpError> {
    let last = codings[codings.len() - 1];
    if !last.eq_ignore_ascii_case("chunked") {
        // The length cannot be determined (RFC 9112 6.3 item 4).
        return Err(bad(format!(
            "Transfer-Encoding {codings:?} does not end with chunked"
        )));
    }
    if codings.len() > 1 {
        return Err(HttpError::UnsupportedCoding(codings.join(", ")));
    }
    Ok(Framing::Chunked)
}

fn parse_length(text: &str) -> Result<usize, HttpError> {
    let invalid = || bad(format!("invalid Content-Length {text:?}"));
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    // 19 digits fit in a u64; a length beyond usize is over any limit anyway.
    text.parse::<u64>()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .map_err(|_| invalid())
}

/// Reads the body the framing announces.
pub(crate) fn read_body<R: BufRead>(
    reader: &mut R,
    framing: Framing,
    limits: &Limits,
) -> Result<Vec<u8>, HttpError> {
    match framing {
        Framing::Length(length) => read_exact(reader, length),
        Framing::Chunked => read_chunked(reader, limits),
    }
}

fn read_exact<R: Read>(reader: &mut R, length: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::with_capacity(length);
    reader.take(length as u64).read_to_end(&mut body)?;
    if body.len() < length {
        return Err(HttpError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(body)
}

/// RFC 9112 section 7.1; chunk extensions and trailers are read and ignored.
fn read_chunked<R: BufRead>(reader: &mut R, limits: &Limits) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    let mut budget = Budget::new(limits.max_header_bytes);
    loop {
        expect_line(reader, &mut line, &mut budget)?;
        let size = parse_chunk_size(&line)?;
        if size == 0 {
            return skip_trailers(reader, &mut budget).map(|()| body);
        }
        if size > limits.max_body_bytes - body.len() {
            return Err(HttpError::BodyTooLarge(limits.max_body_bytes));
        }
        body.extend_from_slice(&read_exact(reader, size)?);
        match expect_line(reader, &mut line, &mut Budget::new(2)) {
            Ok(()) if line.is_empty() => {}
            Ok(()) | Err(HttpError::HeadersTooLarge(_)) => {
                return Err(bad("chunk data not followed by CRLF"))
            }
            Err(e) => return Err(e),
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 15 || !(rest.is_empty() || rest[0] == b';') {
        return Err(bad(format!(
            "invalid chunk size line {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    // At most 15 hex digits: fits in 60 bits.
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| bad("chunk size is not ASCII"))?;
    let size = u64::from_str_radix(text, 16).map_err(|_| bad("invalid chunk size"))?;
    Ok(usize::try_from(size).unwrap_or(usize::MAX))
}

fn skip_trailers<R: BufRead>(reader: &mut R, budget: &mut Budget) -> Result<(), HttpError> {
    let mut line = Vec::new();
    loop {
        expect_line(reader, &mut line, budget)?;
        if line.is_empty() {
            return Ok(());
        }
    }
}

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

#[cfg(test)]
mod tests;
