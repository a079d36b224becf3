//! sipedge's admin interface, as an operator uses it: the HTTP API
//! (`[admin] listen`) and `sipedge ctl`.
//!
//! [`AdminApi`] speaks HTTP/1.1 over a plain `TcpStream` (one request per
//! connection, `Connection: close`), which is all a test needs and keeps
//! the harness free of an HTTP client crate. The `wait_*` helpers poll the
//! API until a condition holds or a deadline passes, so tests wait for the
//! state they expect instead of sleeping for a guessed time.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::netns::require_private_netns;
use crate::process::{self, Lines};

/// How long one HTTP exchange may take (connect, send, read to the end).
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the `wait_*` helpers ask again.
const POLL: Duration = Duration::from_millis(20);

/// How long one `sipedge ctl` may run.
const CTL_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer: status code and body.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body, decoded from chunked transfer coding if it was chunked.
    pub body: String,
    /// The Content-Type header's value, if any.
    pub content_type: Option<String>,
    /// The WWW-Authenticate header's value, if any.
    pub challenge: Option<String>,
}

impl HttpResponse {
    /// The body parsed as JSON; panics with the body when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Json {
        crate::json::parse(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}):\n{}",
                self.status, self.body
            )
        })
    }
}

/// The admin HTTP API of one sipedge, at `[admin] listen`.
#[derive(Clone, Copy, Debug)]
pub struct AdminApi {
    addr: SocketAddr,
    /// The `Authorization` every request carries, if any.
    authorization: Option<&'static str>,
}

impl AdminApi {
    /// The API at `addr` (the `[admin] listen` address).
    pub fn new(addr: SocketAddr) -> AdminApi {
        AdminApi {
            addr,
            authorization: None,
        }
    }

    /// The same API, every request carrying `Authorization: value`.
    pub fn authorized(self, value: &'static str) -> AdminApi {
        AdminApi {
            authorization: Some(value),
            ..self
        }
    }

    /// The API at 127.0.0.1:`port`.
    pub fn local(port: u16) -> AdminApi {
        AdminApi::new(SocketAddr::from((crate::LOCALHOST, port)))
    }

    /// The address, as `sipedge ctl --admin` takes it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path`; panics when the server cannot be reached or answers
    /// something that is not HTTP.
    #[track_caller]
    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, None)
            .unwrap_or_else(|e| panic!("GET http://{}{path}: {e}", self.addr))
    }

    /// `POST path` with a JSON body; panics like [`AdminApi::get`].
    #[track_caller]
    pub fn post_json(&self, path: &str, body: &str) -> HttpResponse {
        self.request("POST", path, Some(body))
            .unwrap_or_else(|e| panic!("POST http://{}{path}: {e}", self.addr))
    }

    /// One HTTP/1.1 exchange; `Err` when the server is unreachable or the
    /// answer is not HTTP.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<HttpResponse, String> {
        self.exchange(method, path, "application/json", json_body)
    }

    /// `GET path` asking for `accept`; panics when the server cannot be
    /// reached or answers something that is not HTTP.
    #[track_caller]
    pub fn get_accepting(&self, path: &str, accept: &str) -> HttpResponse {
        self.exchange("GET", path, accept, None)
            .unwrap_or_else(|e| panic!("GET http://{}{path}: {e}", self.addr))
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        accept: &str,
        json_body: Option<&str>,
    ) -> Result<HttpResponse, String> {
        require_private_netns();
        let mut stream = TcpStream::connect_timeout(&self.addr, HTTP_TIMEOUT)
            .map_err(|e| format!("cannot connect: {e}"))?;
        stream
            .set_read_timeout(Some(HTTP_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(HTTP_TIMEOUT)))
            .map_err(|e| format!("cannot set timeouts: {e}"))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: {accept}\r\n",
            self.addr
        );
        let body = json_body.unwrap_or("");
        if let Some(a) = self.authorization {
            let _ = write!(req, "Authorization: {a}\r\n");
        }
        if json_body.is_some() {
            req.push_str("Content-Type: application/json\r\n");
        }
        let _ = write!(req, "Content-Length: {}\r\n\r\n{body}", body.len());
        stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        parse_response(&raw)
    }

    /// `GET /api/destinations`, which must answer 200 with JSON.
    #[track_caller]
    pub fn destinations(&self) -> Json {
        let r = self.get("/api/destinations");
        assert_eq!(
            r.status, 200,
            "GET /api/destinations answered {}:\n{}",
            r.status, r.body
        );
        r.json()
    }

    /// `POST /api/destinations/{edge}/{dest}` with `{"state": state}`;
    /// `dest` is an index or a URI (percent-encoded here).
    #[track_caller]
    pub fn set_state(&self, edge: &str, dest: &str, state: &str) -> HttpResponse {
        self.post_json(
            &format!("/api/destinations/{}/{}", encode(edge), encode(dest)),
            &format!("{{\"state\":\"{state}\"}}"),
        )
    }

    /// Polls `/api/destinations` until `done` holds for the answer, at most
    /// `limit`; returns that answer and how long it took. Panics with the
    /// last answer (and `what`) when the time runs out.
    #[track_caller]
    pub fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Json) -> bool,
    ) -> (Json, Duration) {
        let start = Instant::now();
        loop {
            let v = self.destinations();
            if done(&v) {
                return (v, start.elapsed());
            }
            if start.elapsed() >= limit {
                panic!("not within {limit:?}: {what}\nlast /api/destinations answer:\n{v}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until destination `index` of edge `edge` is in `state`
    /// (`"active"`, `"inactive"`, `"probing"`); returns the destination's
    /// JSON and how long it took.
    #[track_caller]
    pub fn wait_for_state(
        &self,
        edge: &str,
        index: usize,
        state: &str,
        limit: Duration,
    ) -> (Json, Duration) {
        let (v, took) = self.wait_until(
            &format!("edge {edge} destination {index} {state}"),
            limit,
            |v| destination(v, edge, index)["state"].as_str() == Some(state),
        );
        (destination(&v, edge, index).clone(), took)
    }

    /// Waits until every destination of edge `edge` has a successful probe
    /// on record (`last_probe.ok`): the prober runs and reaches them.
    #[track_caller]
    pub fn wait_for_probed(&self, edge: &str, limit: Duration) -> Json {
        self.wait_until(
            &format!("every destination of edge {edge} answered a probe"),
            limit,
            |v| {
                edge_of(v, edge)["destinations"]
                    .as_array()
                    .is_some_and(|ds| ds.iter().all(|d| d["last_probe"]["ok"] == Json::Bool(true)))
            },
        )
        .0
    }

    /// Runs `sipedge ctl --admin ADDR ARGS…`.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        let addr = self.addr.to_string();
        let mut all = vec!["--admin", addr.as_str()];
        all.extend_from_slice(args);
        ctl(&all)
    }
}

/// The edge named `name` in an `/api/destinations` answer (`null` if
/// absent).
pub fn edge_of<'a>(api: &'a Json, name: &str) -> &'a Json {
    api["edges"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"].as_str() == Some(name)))
        .unwrap_or(&Json::Null)
}

/// Destination `index` of edge `edge` in an `/api/destinations` answer
/// (`null` if absent).
pub fn destination<'a>(api: &'a Json, edge: &str, index: usize) -> &'a Json {
    edge_of(api, edge)["destinations"]
        .as_array()
        .and_then(|ds| {
            ds.iter()
                .find(|d| d["index"].as_u64() == Some(index as u64))
        })
        .unwrap_or(&Json::Null)
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved
/// characters), as a URI such as `sip:127.0.0.1:5070` needs.
pub fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Parses a raw HTTP/1.1 response (read to the end of the connection).
fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
    });
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| (*v).to_owned())
    };
    let content_type = header("content-type");
    let challenge = header("www-authenticate");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        content_type,
        challenge,
    })
}

/// Decodes a chunked body.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("chunk longer than the body")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("chunk not terminated")?;
    }
}

/// What a `sipedge ctl` run printed and how it exited.
#[derive(Debug)]
pub struct CtlOutput {
    /// Exit code (`128 + signal` if a signal ended it).
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl CtlOutput {
    /// Stdout parsed as JSON (for `--json`); panics with the output when
    /// it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Json {
        crate::json::parse(&self.stdout)
            .unwrap_or_else(|e| panic!("`sipedge ctl` stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for CtlOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `sipedge ctl ARGS…` (the binary [`crate::sipedge::binary`] finds)
/// to its end, at most 10 s.
pub fn ctl(args: &[&str]) -> CtlOutput {
    require_private_netns();
    let bin = crate::sipedge::binary();
    let mut child = Command::new(&bin)
        .arg("ctl")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut stdout = Lines::collect(child.stdout.take().expect("piped stdout"), None);
    let mut stderr = Lines::collect(child.stderr.take().expect("piped stderr"), None);
    let Some(status) = process::wait_timeout(&mut child, CTL_TIMEOUT) else {
        process::stop(&mut child, libc::SIGKILL, Duration::from_secs(1));
        stdout.finish(Duration::from_secs(1));
        stderr.finish(Duration::from_secs(1));
        panic!(
            "`sipedge ctl {}` did not finish within {CTL_TIMEOUT:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            args.join(" "),
            stdout.text(),
            stderr.text()
        );
    };
    stdout.finish(Duration::from_secs(2));
    stderr.finish(Duration::from_secs(2));
    CtlOutput {
        code: process::exit_code(status),
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
        let r = parse_response(plain).expect("valid");
        assert_eq!((r.status, r.body.as_str()), (503, "{}"));

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        let r = parse_response(chunked).expect("valid");
        assert_eq!((r.status, r.body.as_str()), (200, "{\"a\":1}"));
        assert_eq!(r.json()["a"].as_u64(), Some(1));

        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SIP/2.0 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode("sip:127.0.0.1:5070"), "sip%3A127.0.0.1%3A5070");
        assert_eq!(encode("edge-1"), "edge-1");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn finds_edges_and_destinations_by_name_and_index() {
        let v = crate::json::parse(
            r#"{"edges":[{"name":"x","destinations":[]},
                {"name":"e","destinations":[{"index":1,"state":"inactive"},{"index":0,"state":"active"}]}]}"#,
        )
        .expect("valid");
        assert_eq!(destination(&v, "e", 0)["state"].as_str(), Some("active"));
        assert_eq!(destination(&v, "e", 1)["state"].as_str(), Some("inactive"));
        assert!(destination(&v, "e", 2).is_null());
        assert!(destination(&v, "y", 0).is_null());
        assert_eq!(edge_of(&v, "x")["name"].as_str(), Some("x"));
    }
}
