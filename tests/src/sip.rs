//! Just enough SIP text handling to write and read test messages.
//!
//! Deliberately independent of the project's `sip` crate: the tests must
//! judge sipedge's output with code that does not share its bugs. String
//! operations only; header folding (obsolete, RFC 3261 7.3.1) is not
//! understood.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The start line (first line, without CRLF).
pub fn start_line(msg: &str) -> &str {
    msg.split(['\r', '\n']).next().unwrap_or("")
}

/// The status code of a response (`SIP/2.0 403 Forbidden` → 403).
pub fn status_code(msg: &str) -> Option<u16> {
    let mut parts = start_line(msg).split_whitespace();
    if parts.next()? != "SIP/2.0" {
        return None;
    }
    parts.next()?.parse().ok()
}

/// The method of a request (`BYE sip:… SIP/2.0` → `BYE`).
pub fn method(msg: &str) -> Option<&str> {
    let mut parts = start_line(msg).split_whitespace();
    let method = parts.next()?;
    let _uri = parts.next()?;
    (parts.next()? == "SIP/2.0").then_some(method)
}

/// The Request-URI of a request.
pub fn request_uri(msg: &str) -> Option<&str> {
    method(msg)?;
    start_line(msg).split_whitespace().nth(1)
}

/// Long name of a compact header form (RFC 3261 7.3.3 and extensions).
fn long_name(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "v" => "via",
        "i" => "call-id",
        "f" => "from",
        "t" => "to",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "e" => "content-encoding",
        "k" => "supported",
        "s" => "subject",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "u" => "allow-events",
        "x" => "session-expires",
        "a" => "accept-contact",
        "j" => "reject-contact",
        "d" => "request-disposition",
        "y" => "identity",
        _ => name,
    }
}

fn same_header(a: &str, b: &str) -> bool {
    long_name(a.trim()).eq_ignore_ascii_case(long_name(b.trim()))
}

/// The header lines (between the start line and the blank line).
fn header_lines(msg: &str) -> impl Iterator<Item = &str> {
    msg.split('\n')
        .skip(1)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty())
}

/// Every value of header `name`, in order, one per header line.
///
/// Matching is case-insensitive and treats compact forms as their long
/// names (`v` is `Via`). A line holding several comma-separated values
/// (`Via: a, b`) is returned whole.
pub fn headers<'m>(msg: &'m str, name: &str) -> Vec<&'m str> {
    header_lines(msg)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| same_header(n, name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// The first value of header `name`.
pub fn header<'m>(msg: &'m str, name: &str) -> Option<&'m str> {
    headers(msg, name).into_iter().next()
}

/// The CSeq number and method.
pub fn cseq(msg: &str) -> Option<(u32, &str)> {
    let mut parts = header(msg, "CSeq")?.split_whitespace();
    let n = parts.next()?.parse().ok()?;
    Some((n, parts.next()?))
}

/// The body (after the first blank line).
pub fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n")
        .or_else(|| msg.split_once("\n\n"))
        .map(|(_, b)| b)
        .unwrap_or("")
}

/// The `branch` parameter of the topmost Via.
pub fn top_via_branch(msg: &str) -> Option<&str> {
    let via = header(msg, "Via")?;
    let first = via.split(',').next()?;
    first
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
        .map(|(_, v)| v.trim())
}

/// A response to `request` with `code` and `reason`, as a UAS builds it
/// (RFC 3261 8.2.6.2): every Via, From, To (with a tag added if it has
/// none, except for 100), Call-ID and CSeq copied, no body.
pub fn response_to(request: &str, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in headers(request, "Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    if let Some(from) = header(request, "From") {
        out.push_str(&format!("From: {from}\r\n"));
    }
    if let Some(to) = header(request, "To") {
        let tagged = code == 100 || to.to_ascii_lowercase().contains(";tag=");
        if tagged {
            out.push_str(&format!("To: {to}\r\n"));
        } else {
            out.push_str(&format!("To: {to};tag={}\r\n", unique("e2e")));
        }
    }
    for name in ["Call-ID", "CSeq"] {
        if let Some(value) = header(request, name) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// A server's 200 OK to an INVITE that sets up a dialog through the edge:
/// [`response_to`] with the INVITE's Record-Route `rr` copied back and
/// the server's `contact`.
pub fn accepted(invite: &str, rr: &str, contact: &str) -> String {
    response_to(invite, 200, "OK").replace(
        "Content-Length: 0\r\n",
        &format!("Record-Route: {rr}\r\nContact: <{contact}>\r\nContent-Length: 0\r\n"),
    )
}

/// Route or Record-Route text with the edge's flow tokens taken out: every
/// `<sip:TOKEN@` (a user part of 40 or more base64url characters, which
/// no test peer writes) becomes `<sip:`.
pub fn untokened(entries: &str) -> String {
    let mut out = String::with_capacity(entries.len());
    let mut rest = entries;
    while let Some(i) = rest.find("<sip:") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let user = rest.find('@').map(|at| &rest[..at]);
        if let Some(token) = user.filter(|u| is_token(u)) {
            rest = &rest[token.len() + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// How many flow tokens `entries` carry.
pub fn tokens(entries: &str) -> usize {
    entries
        .split("<sip:")
        .skip(1)
        .filter(|e| e.split_once('@').is_some_and(|(u, _)| is_token(u)))
        .count()
}

fn is_token(user: &str) -> bool {
    user.len() >= 40
        && user
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Alice's REGISTER over TCP from `local`, a phone behind NAT: its Via
/// and Contact name its private address `private`.
pub fn natted_register(local: SocketAddr, private: &str) -> Request {
    Request::new("REGISTER", "sip:example.com", local)
        .set(
            "Via",
            &format!(
                "SIP/2.0/TCP {private};branch={};rport",
                unique("z9hG4bK-reg")
            ),
        )
        .set("To", "<sip:alice@example.com>")
        .set("Contact", &format!("<sip:alice@{private};transport=tcp>"))
}

/// The registrar's MESSAGE number `cseq` to Alice's private Contact
/// `private`, along the `path` her REGISTER carried, sent from
/// `registrar`.
pub fn message_along_path(
    registrar: SocketAddr,
    private: &str,
    path: &str,
    call_id: &str,
    cseq: u32,
) -> String {
    format!(
        "MESSAGE sip:alice@{private};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP {registrar};branch=z9hG4bK-path{cseq}\r\nRoute: {path}\r\nMax-Forwards: 70\r\n\
         From: <sip:registrar@example.com>;tag=r\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: {call_id}-m\r\nCSeq: {cseq} MESSAGE\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A value unique within this test process, for Call-IDs, tags, branches.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// A hand-made SIP request over UDP.
///
/// Starts with everything RFC 3261 8.1.1 requires, filled with values
/// derived from `local` (the address the test sends from): Via with a fresh
/// `z9hG4bK` branch and `rport`, Max-Forwards 70, From with a tag, To,
/// Call-ID, CSeq 1. Headers can be replaced or added before building, and
/// Content-Length is computed.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    /// The Request-URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// A request `method uri` sent from `local`.
    pub fn new(method: &str, uri: &str, local: SocketAddr) -> Request {
        let headers = vec![
            (
                "Via".to_string(),
                format!(
                    "SIP/2.0/UDP {local};branch={};rport",
                    unique("z9hG4bK-e2e-")
                ),
            ),
            ("Max-Forwards".to_string(), "70".to_string()),
            (
                "From".to_string(),
                format!("<sip:e2e@{local}>;tag={}", unique("t")),
            ),
            ("To".to_string(), format!("<{uri}>")),
            ("Call-ID".to_string(), unique("e2e-")),
            ("CSeq".to_string(), format!("1 {method}")),
            ("Contact".to_string(), format!("<sip:e2e@{local}>")),
        ];
        Request {
            method: method.to_string(),
            uri: uri.to_string(),
            headers,
            body: String::new(),
        }
    }

    /// Replaces every `name` header with one `name: value` (or adds it).
    pub fn set(mut self, name: &str, value: &str) -> Request {
        match self.headers.iter().position(|(n, _)| same_header(n, name)) {
            Some(i) => {
                self.headers[i].1 = value.to_string();
                let mut k = 0;
                self.headers.retain(|(n, _)| {
                    k += 1;
                    k - 1 == i || !same_header(n, name)
                });
            }
            None => self.headers.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// Adds a `name: value` line after the existing headers (e.g. a second
    /// Route).
    pub fn add(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Removes every `name` header.
    pub fn remove(mut self, name: &str) -> Request {
        self.headers.retain(|(n, _)| !same_header(n, name));
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(self, content_type: &str, body: &str) -> Request {
        let mut req = self.set("Content-Type", content_type);
        req.body = body.to_string();
        req
    }

    /// The value of header `name` as it will be sent (e.g. the Call-ID, to
    /// match the answer).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| same_header(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// The message text, with Content-Length.
    pub fn build(&self) -> String {
        let mut out = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        for (name, value) in &self.headers {
            if !same_header(name, "Content-Length") {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        out.push_str(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYE: &str = "BYE sip:127.0.0.1:5070;transport=UDP SIP/2.0\r\n\
        v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.1\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKdef\r\n\
        Route: <sip:127.0.0.1:5060;lr>\r\n\
        i: abc@x\r\n\
        CSeq:   2 BYE\r\n\
        Content-Length: 4\r\n\r\nbody";

    #[test]
    fn reads_requests() {
        assert_eq!(method(BYE), Some("BYE"));
        assert_eq!(request_uri(BYE), Some("sip:127.0.0.1:5070;transport=UDP"));
        assert_eq!(status_code(BYE), None);
        assert_eq!(header(BYE, "call-id"), Some("abc@x"));
        assert_eq!(headers(BYE, "Via").len(), 2);
        assert_eq!(top_via_branch(BYE), Some("z9hG4bKabc"));
        assert_eq!(cseq(BYE), Some((2, "BYE")));
        assert_eq!(body(BYE), "body");
        assert_eq!(header(BYE, "Record-Route"), None);
    }

    #[test]
    fn reads_responses() {
        let resp = "SIP/2.0 403 Forbidden\r\nCall-ID: q\r\n\r\n";
        assert_eq!(status_code(resp), Some(403));
        assert_eq!(method(resp), None);
        assert_eq!(header(resp, "i"), Some("q"));
    }

    #[test]
    fn answers_requests() {
        let ok = response_to(BYE, 200, "OK");
        assert_eq!(status_code(&ok), Some(200));
        assert_eq!(headers(&ok, "Via"), headers(BYE, "Via"));
        assert_eq!(header(&ok, "Call-ID"), Some("abc@x"));
        assert_eq!(cseq(&ok), Some((2, "BYE")));
    }

    #[test]
    fn builds_requests() {
        let local: SocketAddr = "127.0.0.1:20001".parse().unwrap();
        let req = Request::new("OPTIONS", "sip:127.0.0.1:5060", local)
            .set("Max-Forwards", "0")
            .add("Route", "<sip:a;lr>")
            .add("Route", "<sip:b;lr>")
            .body("text/plain", "hi");
        let text = req.build();
        assert_eq!(method(&text), Some("OPTIONS"));
        assert_eq!(header(&text, "Max-Forwards"), Some("0"));
        assert_eq!(headers(&text, "Route"), vec!["<sip:a;lr>", "<sip:b;lr>"]);
        assert_eq!(header(&text, "Content-Length"), Some("2"));
        assert_eq!(body(&text), "hi");
        assert!(top_via_branch(&text).unwrap().starts_with("z9hG4bK"));
        assert_eq!(cseq(&text), Some((1, "OPTIONS")));
        assert_eq!(req.get("call-id"), header(&text, "Call-ID"));
        let other = Request::new("OPTIONS", "sip:127.0.0.1:5060", local).build();
        assert_ne!(header(&text, "Call-ID"), header(&other, "Call-ID"));
    }
}
