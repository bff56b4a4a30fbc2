//! Request bodies: `Content-Length` or chunked (RFC 9112 sections 6 and 7).

use super::{bad, expect_line, Budget, Framing, Head, HttpError, Limits};
use std::io::{self, BufRead, Read};

impl Head {
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
    if !codings
        .last()
        .is_some_and(|last| last.eq_ignore_ascii_case("chunked"))
    {
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
