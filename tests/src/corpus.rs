//! The conformance corpus (RFC 4475, RFC 5118 and real-world
//! samples) and how to tell what a running proxy did with each message:
//! forwarded it to the pool, answered it, rejected it, or dropped it.
//!
//! Used by the corpus test (sipedge must handle all of them as
//! MANIFEST.tsv says) and by `bench/corpus`, which drives the same
//! messages through Kamailio for comparison.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::expect::{ANSWER, SILENCE};
use crate::{sip, FakePool};

/// One corpus message and what MANIFEST.tsv says a proxy must do with it.
pub struct Case {
    /// File name, e.g. `wsinv.sip`.
    pub file: String,
    /// The message as sent.
    pub bytes: Vec<u8>,
    /// `forward`, `reject`, `answer` or `absorb`.
    pub expect: String,
    /// A second acceptable outcome, or `-`.
    pub also: String,
    /// The preferred response code of a rejection, where the RFC names one.
    pub code: Option<u16>,
}

impl Case {
    /// Whether `got` (from [`outcome`]) is what the manifest asks for.
    pub fn handled_right(&self, got: &str) -> bool {
        let meets = |want: &str| match want {
            "forward" => got == "forward",
            // Rejected with the preferred code where the manifest names one.
            "reject" => match self.code {
                Some(code) => got == format!("reject {code}"),
                None => got.starts_with("reject") || got == "drop",
            },
            "answer" => got.starts_with("answer"),
            "absorb" => got == "drop",
            _ => false,
        };
        meets(&self.expect) || (self.also != "-" && meets(&self.also))
    }

    /// The port the message's top Via names (5060 when none or
    /// unreadable): the proxy answers there, so the message is sent from
    /// it.
    pub fn via_port(&self) -> u16 {
        let text = String::from_utf8_lossy(&self.bytes);
        let via = text
            .lines()
            .find(|l| {
                let name = l.split(':').next().unwrap_or("").trim();
                name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")
            })
            .unwrap_or("");
        let sent_by = via
            .split_once(':')
            .map(|(_, v)| v.trim())
            .and_then(|v| v.split_whitespace().nth(1))
            .unwrap_or("")
            .split([';', ','])
            .next()
            .unwrap_or("");
        let port = match sent_by.rfind(']') {
            Some(close) => sent_by[close + 1..].strip_prefix(':'),
            None => sent_by.rsplit_once(':').map(|(_, p)| p),
        };
        port.and_then(|p| p.parse().ok()).unwrap_or(5060)
    }
}

/// Every message of the corpus (`SIPEDGE_CONFORMANCE`, else
/// `tests/conformance` of the repository), in manifest order.
pub fn load() -> Vec<Case> {
    let root = std::env::var_os("SIPEDGE_CONFORMANCE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance"),
        PathBuf::from,
    );
    let mut out = Vec::new();
    for set in ["torture", "realworld"] {
        let dir = root.join(set);
        let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = line.split('\t').collect();
            let field = |i: usize| c.get(i).copied().unwrap_or("-").to_owned();
            out.push(Case {
                file: field(0),
                bytes: std::fs::read(dir.join(c[0])).expect("corpus file"),
                expect: field(5),
                also: field(6),
                code: field(7).parse().ok(),
            });
        }
    }
    out
}

/// Sends `bytes` from `sock` to the proxy at `proxy` and says what came of
/// it: `forward` (the pool got it), `answer CODE` / `reject CODE` (the
/// proxy answered itself: its `Server` header starts with `server`), or
/// `drop` (nothing within [`SILENCE`]).
pub fn outcome(
    sock: &UdpSocket,
    pool: &FakePool,
    proxy: SocketAddr,
    server: &str,
    bytes: &[u8],
) -> String {
    sock.send_to(bytes, proxy).expect("send");
    let mut buf = vec![0u8; 65_536];
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    // Whichever comes first: the pool's arrival or an answer.
    let start = Instant::now();
    let deadline = start + ANSWER;
    while Instant::now() < deadline {
        if pool.recv(Duration::from_millis(10)).is_some() {
            return "forward".into();
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let code = sip::status_code(&text).unwrap_or(0);
            // The pool's servers answer OPTIONS themselves (FakePool does
            // not report them): an answer the proxy did not write came from
            // the pool, so the request was forwarded.
            if !sip::header(&text, "Server").is_some_and(|s| s.starts_with(server)) {
                return "forward".into();
            }
            if code < 200 {
                continue;
            }
            return if (200..300).contains(&code) {
                format!("answer {code}")
            } else {
                format!("reject {code}")
            };
        }
        // Nothing at all for SILENCE: dropped or absorbed.
        if start.elapsed() >= SILENCE {
            return "drop".into();
        }
    }
    "drop".into()
}

/// Drives every case through the proxy at `proxy` (whose own answers carry
/// a `Server` header starting with `server`), each from a socket on its
/// Via port, and returns what came of each, in order.
pub fn drive(cases: &[Case], pool: &FakePool, proxy: SocketAddr, server: &str) -> Vec<String> {
    let mut sockets: BTreeMap<u16, UdpSocket> = BTreeMap::new();
    cases
        .iter()
        .map(|c| {
            let port = c.via_port();
            let sock = sockets.entry(port).or_insert_with(|| {
                UdpSocket::bind(("127.0.0.1", port))
                    .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port} for {}: {e}", c.file))
            });
            let got = outcome(sock, pool, proxy, server, &c.bytes);
            // Whatever else it caused (a retransmission, a late answer) is
            // drained before the next message.
            while pool.recv(Duration::from_millis(1)).is_some() {}
            got
        })
        .collect()
}
