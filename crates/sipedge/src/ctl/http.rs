//! A minimal HTTP/1.1 client over a std `TcpStream`, enough for the admin
//! API: one request per connection (`Connection: close`), a response body
//! delimited by `Content-Length`, chunked encoding or the end of the stream.
//! A client crate would bring a runtime and TLS for three local calls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long to try to connect to one address of the admin server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one read or write may stall.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a response may be; the admin API's answers are far smaller.
const MAX_RESPONSE: u64 = 64 << 20;

/// An HTTP response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy: a status line for humans, not a parser's
    /// input).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub enum Error {
    /// Nothing answers at the address (refused, no route, timeout...).
    Unreachable(String),
    /// Something answered, but not with HTTP we understand.
    Protocol(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable(m) | Error::Protocol(m) => f.write_str(m),
        }
    }
}

/// Sends `method path` to `host_port` with an optional JSON body and reads
/// the whole response.
pub fn request(
    host_port: &str,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> Result<Response, Error> {
    let mut stream = connect(host_port)?;
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nUser-Agent: sipedge-ctl\r\n\
         Accept: application/json\r\nConnection: close\r\n"
    );
    if let Some(a) = authorization {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if let Some(body) = json {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(json.unwrap_or(""));
    stream
        .write_all(head.as_bytes())
        .map_err(|e| Error::Unreachable(format!("{host_port}: {e}")))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| Error::Protocol(format!("{host_port}: reading the response: {e}")))?;
    parse_response(&raw).map_err(|e| Error::Protocol(format!("{host_port}: {e}")))
}

/// Connects to the first address of `host_port` that accepts.
fn connect(host_port: &str) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| Error::Unreachable(format!("{host_port}: {e}")))?
        .collect();
    let mut last = format!("{host_port}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(Error::Unreachable(last))
}

/// Parses a whole HTTP/1.x response (status line, headers, body).
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("the response ends before its headers do")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the response headers are not text")?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let (status, reason) = status_line_parts(status_line)
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line: {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| format!("bad Content-Length: {value:?}"))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| format!("the body ends after {} of {n} bytes", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        reason: reason.to_owned(),
        body,
    })
}

/// `HTTP/1.1 200 OK` → (200, "OK").
fn status_line_parts(line: &str) -> Option<(u16, &str)> {
    let rest = line.strip_prefix("HTTP/1.")?;
    let (_minor, rest) = rest.split_once(' ')?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok()?;
    (100..=999).contains(&code).then_some((code, reason))
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are ignored.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(raw, b"\r\n").ok_or("a chunk size line does not end")?;
        let line = std::str::from_utf8(&raw[..eol]).map_err(|_| "a chunk size is not text")?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size: {size:?}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = raw.get(..size).ok_or("the body ends inside a chunk")?;
        out.extend_from_slice(chunk);
        raw = raw
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or("a chunk does not end with CRLF")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved
/// characters, so a destination URI (`sip:a@b;transport=tcp`) stays one
/// segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Response {
        match parse_response(raw.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("{raw:?}: {e}"),
        }
    }

    #[test]
    fn content_length_body() {
        let r = ok("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"a\":\"bc\"}\nextra");
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, "OK");
        assert_eq!(r.body, b"{\"a\":\"bc\"}\n");
    }

    #[test]
    fn chunked_body() {
        let r = ok("HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nTrailer: t\r\n\r\n");
        assert_eq!(r.status, 503);
        assert_eq!(r.reason, "Service Unavailable");
        assert_eq!(r.body, b"abcdefg");
    }

    #[test]
    fn body_to_the_end_of_the_stream() {
        let r = ok("HTTP/1.0 404 Not Found\r\n\r\nno such thing");
        assert_eq!(r.status, 404);
        assert_eq!(r.text(), "no such thing");
    }

    #[test]
    fn status_line_without_reason() {
        let r = ok("HTTP/1.1 204\r\n\r\n");
        assert_eq!((r.status, r.reason.as_str()), (204, ""));
    }

    #[test]
    fn broken_responses_are_errors_not_panics() {
        for raw in [
            "",
            "HTTP/1.1 200 OK\r\n",
            "SIP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 42 Low\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab",
        ] {
            assert!(parse_response(raw.as_bytes()).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("3"), "3");
        assert_eq!(
            encode_segment("sip:a@127.0.0.1:5070;transport=tcp"),
            "sip%3Aa%40127.0.0.1%3A5070%3Btransport%3Dtcp"
        );
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}
