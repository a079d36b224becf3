//! What each fuzz target does with its input, as plain functions: the
//! targets in fuzz_targets/ call them, and `crates/edge/tests/
//! fuzz_regressions.rs` replays every input in fuzz/regressions/ through
//! them under `cargo test`, so a crash once found stays fixed.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use edge::proxy::{Edge, Outcome, Worker};
use sip::{HeaderIndex, HeaderName, NameAddr, Uri, Via};

/// The parser and every accessor a proxy uses, on arbitrary bytes: no
/// panic, no unbounded work.
pub fn parse(data: &[u8]) {
    let mut index = HeaderIndex::new();
    let Ok(m) = sip::parse(data, &mut index) else {
        return;
    };
    let _ = (
        m.start_line(),
        m.method(),
        m.status(),
        m.body(),
        m.content_length(),
    );
    let _ = (m.call_id(), m.cseq(), m.max_forwards());
    if let Ok((_, via)) = m.top_via() {
        let _ = via.has_cookie();
    }
    let _ = Uri::parse(m.uri());
    for h in m.headers() {
        let _ = m.value(h);
        for e in m.elements_of(h) {
            match h.name {
                HeaderName::Via => {
                    let _ = Via::parse(e.text);
                }
                HeaderName::From
                | HeaderName::To
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute => {
                    if let Ok(n) = NameAddr::parse(e.text) {
                        let _ = (n.tag(), n.parse_uri());
                    }
                }
                HeaderName::Authorization | HeaderName::ProxyAuthorization => {
                    let _ = sip::auth::digest_username(e.text);
                }
                _ => {}
            }
        }
    }
}

/// The config parser on arbitrary text: an error with a line, never a
/// panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = edge::config::parse(text, "fuzz.toml") {
        assert!(e.line <= text.lines().count() + 1, "{e}");
    }
}

const CONFIG: &str = r#"
[node]
id = "fuzz"
secret = "fuzz-secret-0123456789abcdef"

[[edge]]
name = "stateless"
listen = ["udp:127.0.0.1:5060"]
algorithm = "hash-call-id"
flags = ["ping-replies"]
cps = 1000
capacity_failover = ["sip:127.0.0.1:5160"]
compress_in = ["compact", "deflate"]
compress_out = ["decompress"]
compact_keep = ["Call-ID"]
validate = ["basic", "sdp", "request-uri", "from", "to", "contact", "no-max-forwards"]
[[edge.destination]]
uri = "sip:127.0.0.1:5070"
channels = 10
[[edge.destination]]
uri = "sip:127.0.0.1:5071"

[[edge]]
name = "transactional"
listen = ["udp:127.0.0.1:5062"]
algorithm = "weighted-round-robin"
insertion = "transactional"
compress_out = ["compact", "gzip"]
validate = ["basic", "headers", "sdp"]
foreign_next_hop = "refuse"
on_invalid = "tag"
[edge.transaction]
t1 = 0.05
failover_timeout = 0.1
max_transactions = 1000
[[edge.destination]]
uri = "sip:127.0.0.1:5070"
[[edge.destination]]
uri = "sip:127.0.0.1:5071"
"#;

struct State {
    edges: Vec<Edge>,
    workers: Vec<Worker>,
    now: Instant,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        let cfg = edge::config::parse(CONFIG, "fuzz.toml").expect("fuzz config");
        let edges: Vec<Edge> = cfg
            .edges
            .iter()
            .map(|e| Edge::new(e, &cfg.node, b"fuzz-secret-0123456789abcdef"))
            .collect();
        let workers = edges.iter().map(Edge::worker).collect();
        Mutex::new(State {
            now: edges[0].epoch(),
            edges,
            workers,
        })
    })
}

/// Everything the proxy sends must parse and fit one UDP datagram: it
/// never forwards a message it could not read back, or not send at all.
fn check(bytes: &[u8]) {
    assert!(
        bytes.len() <= 65_507,
        "sent {} bytes, more than a UDP datagram holds",
        bytes.len()
    );
    let mut index = sip::HeaderIndex::new();
    if let Err(e) = sip::parse(bytes, &mut index) {
        panic!(
            "sent an unparseable message ({e:?}):\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// The whole proxy on arbitrary datagrams (see fuzz_targets/pipeline.rs):
/// the first byte picks the edge (stateless or transactional), the source
/// (either destination, a caller over IPv6, a caller over IPv4) and how far
/// the clock moves; the rest is the datagram.
pub fn pipeline(data: &[u8]) {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    let mut guard = state().lock().unwrap_or_else(|e| e.into_inner());
    let State {
        edges,
        workers,
        now,
    } = &mut *guard;
    let e = usize::from(selector & 1);
    let src: SocketAddr = match (selector >> 1) & 3 {
        0 => "127.0.0.1:5070".parse().unwrap(),
        1 => "127.0.0.1:5071".parse().unwrap(),
        2 => "[::1]:6000".parse().unwrap(),
        _ => "192.0.2.10:5060".parse().unwrap(),
    };
    *now += Duration::from_millis(u64::from(selector >> 3) * 7);
    let (edge, worker) = (&edges[e], &mut workers[e]);
    match worker.handle(edge, datagram, src, 0, *now) {
        Outcome::Send { .. } => check(worker.output()),
        Outcome::Queued => {
            for (bytes, _, _) in worker.sends().iter() {
                check(bytes);
            }
        }
        Outcome::Drop(_) => {}
    }
    worker.poll(edge, *now);
    for (bytes, _, _) in worker.sends().iter() {
        check(bytes);
    }
}
