//! The sliver of HTTP/1.1 (RFC 9112) the plugin protocol needs: a request
//! head, a `Content-Length` or chunked body, and a response with a fixed
//! length. Every limit is checked before memory is committed.

use std::io::{self, BufRead, Read};

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
}

mod body;
mod write;

pub(crate) use body::read_body;
pub(crate) use write::{write_continue, write_response};

#[cfg(test)]
mod tests;
