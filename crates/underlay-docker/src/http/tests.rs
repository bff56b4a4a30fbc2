use super::*;
use std::io::Cursor;

const LIMITS: Limits = Limits {
    max_header_bytes: 1024,
    max_body_bytes: 64,
};

/// Head, framing and body of one request.
fn read(input: &[u8]) -> Result<(Head, Vec<u8>), HttpError> {
    let mut reader = Cursor::new(input);
    let head = read_head(&mut reader, &LIMITS)?;
    let framing = head.framing(&LIMITS)?;
    let body = read_body(&mut reader, framing, &LIMITS)?;
    Ok((head, body))
}

fn status(input: &[u8]) -> Option<u16> {
    read(input).err().and_then(|e| e.status())
}

#[test]
fn parses_what_the_go_plugin_client_sends() {
    let input = b"POST /NetworkDriver.Leave HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 5\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nAccept-Encoding: gzip\r\n\r\nhello";
    let (head, body) = read(input).unwrap();
    assert_eq!(
        (
            head.method.as_str(),
            head.target.as_str(),
            head.minor_version
        ),
        ("POST", "/NetworkDriver.Leave", 1)
    );
    assert_eq!(body, b"hello");
    assert!(head.keep_alive());
    assert!(!head.expects_continue());
}

#[test]
fn header_names_are_case_insensitive_and_lf_endings_accepted() {
    let (head, body) =
        read(b"POST /x HTTP/1.1\nCONTENT-length:  3 \nConnection: Close\n\nabc").unwrap();
    assert_eq!(body, b"abc");
    assert!(!head.keep_alive());
}

#[test]
fn leading_empty_lines_are_skipped_and_no_length_means_no_body() {
    let (head, body) = read(b"\r\n\r\nPOST /Plugin.Activate HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(head.target, "/Plugin.Activate");
    assert!(body.is_empty());
}

#[test]
fn keep_alive_follows_version_and_connection_tokens() {
    let keep = |input: &[u8]| read(input).unwrap().0.keep_alive();
    assert!(keep(b"POST / HTTP/1.1\r\n\r\n"));
    assert!(!keep(
        b"POST / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n"
    ));
    assert!(!keep(b"POST / HTTP/1.0\r\n\r\n"));
    assert!(keep(b"POST / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    let head = read(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
        .unwrap()
        .0;
    assert!(head.expects_continue());
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let input = b"POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n6;name=value\r\n world\r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
    assert_eq!(read(input).unwrap().1, b"hello world0123456789");
    assert_eq!(
        read(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .unwrap()
            .1,
        b""
    );
}

#[test]
fn bad_chunked_bodies() {
    let chunked = |rest: &[u8]| {
        [
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            rest,
        ]
        .concat()
    };
    assert_eq!(status(&chunked(b"zz\r\n")), Some(400));
    assert_eq!(status(&chunked(b"\r\n")), Some(400));
    assert_eq!(status(&chunked(b"5 x\r\nhello\r\n0\r\n\r\n")), Some(400));
    assert_eq!(status(&chunked(b"5\r\nhelloXX0\r\n\r\n")), Some(400));
    assert_eq!(status(&chunked(b"41\r\n")), Some(413));
    assert_eq!(status(&chunked(b"ffffffffffffffffffff\r\n")), Some(400));
    assert_eq!(
        status(&chunked(
            b"20\r\n0123456789abcdef0123456789abcdef\r\n21\r\n"
        )),
        Some(413)
    );
    assert!(matches!(read(&chunked(b"5\r\nhel")), Err(HttpError::Io(_))));
}

#[test]
fn transfer_coding_rules() {
    assert_eq!(
        status(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
        Some(400)
    );
    assert_eq!(
        status(b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        Some(501)
    );
    assert_eq!(
        status(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        Some(400)
    );
    assert_eq!(
        status(b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Some(400)
    );
}

#[test]
fn content_length_rules() {
    for bad in ["-1", "1e3", "+3", "0x10", "3 4", "99999999999999999999"] {
        let input = format!("POST /x HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(status(input.as_bytes()), Some(400), "{bad}");
    }
    assert_eq!(
        status(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        Some(400)
    );
    assert_eq!(
        read(b"POST /x HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc")
            .unwrap()
            .1,
        b"abc"
    );
    assert_eq!(
        status(b"POST /x HTTP/1.1\r\nContent-Length: 65\r\n\r\n"),
        Some(413)
    );
    assert_eq!(
        status(b"POST /x HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n"),
        Some(413)
    );
    assert!(matches!(
        read(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
        Err(HttpError::Io(_))
    ));
}

#[test]
fn header_section_limits() {
    let long = format!("POST /x HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(1024));
    assert_eq!(status(long.as_bytes()), Some(431));
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
    assert_eq!(
        status(format!("POST /x HTTP/1.1\r\n{many}\r\n").as_bytes()),
        Some(431)
    );
    // Exactly at the limit is fine.
    let line = "POST /x HTTP/1.1\r\n";
    let filler = "a".repeat(1024 - line.len() - "X: \r\n\r\n".len());
    assert!(read(format!("{line}X: {filler}\r\n\r\n").as_bytes()).is_ok());
    assert_eq!(
        status(format!("{line}X: {filler}a\r\n\r\n").as_bytes()),
        Some(431)
    );
}

#[test]
fn malformed_request_lines_and_headers() {
    let cases: [(&[u8], u16); 11] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /x HTTP/2.0\r\n\r\n", 505),
        (b"POST /x FTP/1.0\r\n\r\n", 400),
        (b"POST x HTTP/1.1\r\n\r\n", 400),
        (b"POST  /x HTTP/1.1\r\n\r\n", 400),
        (b"PO(ST /x HTTP/1.1\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nX : 1\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
        (b"POST /\xff HTTP/1.1\r\n\r\n", 400),
    ];
    for (input, expected) in cases {
        assert_eq!(
            status(input),
            Some(expected),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn eof_before_a_request_is_a_clean_close() {
    assert!(matches!(read(b""), Err(HttpError::Closed)));
    assert!(matches!(read(b"\r\n"), Err(HttpError::Closed)));
    assert!(matches!(
        read(b"POST /x HTTP/1.1\r\nHost"),
        Err(HttpError::Io(_))
    ));
}

#[test]
fn response_format() {
    let mut out = Vec::new();
    write_response(
        &mut out,
        405,
        &[("Allow", "POST")],
        b"{\"Err\":\"x\"}",
        true,
    )
    .unwrap();
    let expected = "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: 11\r\nAllow: POST\r\nConnection: close\r\n\r\n{\"Err\":\"x\"}";
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    let mut out = Vec::new();
    write_response(&mut out, 200, &[], b"{}", false).unwrap();
    assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: 2\r\n\r\n{}");
}
