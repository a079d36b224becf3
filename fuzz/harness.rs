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
    same_under_strict_reading(&m);
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

/// A header section read the strictest way RFC 3261 §7 allows, with
/// nothing of sipedge's parser: only CRLF ends a line, a line starting with
/// SP or HT continues the one before, a header is `name ":" value`. The
/// start line and each header's (name, value) as byte slices, and where
/// the body starts; `None` if there is no empty line ending the section.
type Strict<'a> = (&'a [u8], Vec<(&'a [u8], &'a [u8])>, usize);

fn strict_reading(buf: &[u8], start: usize) -> Option<Strict<'_>> {
    let is_ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let line_end = |from: usize| {
        buf.get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let sl_end = line_end(start)?;
    let mut headers: Vec<(&[u8], usize, usize)> = Vec::new();
    let mut at = sl_end + 2;
    loop {
        let end = line_end(at)?;
        if end == at {
            break;
        }
        let line = &buf[at..end];
        if matches!(line[0], b' ' | b'\t') {
            let (_, _, value_end) = headers.last_mut()?;
            if line.iter().any(|c| !is_ws(c)) {
                let content = line.len() - line.iter().rev().take_while(|c| is_ws(c)).count();
                *value_end = at + content;
            }
        } else {
            let colon = at + line.iter().position(|&c| c == b':')?;
            let name_len =
                buf[at..colon].len() - buf[at..colon].iter().rev().take_while(|c| is_ws(c)).count();
            let mut vs = colon + 1;
            while vs < end && matches!(buf[vs], b' ' | b'\t') {
                vs += 1;
            }
            let rest = &buf[vs..end];
            let ve = vs + rest.len() - rest.iter().rev().take_while(|c| is_ws(c)).count();
            headers.push((&buf[at..at + name_len], vs, ve));
        }
        at = end + 2;
    }
    let pairs = headers
        .into_iter()
        .map(|(name, vs, ve)| {
            let v = &buf[vs..ve.max(vs)];
            let lead = v.iter().take_while(|c| is_ws(c)).count();
            let v = &v[lead..];
            (
                name,
                &v[..v.len() - v.iter().rev().take_while(|c| is_ws(c)).count()],
            )
        })
        .collect();
    Some((&buf[start..sl_end], pairs, at + 2))
}

/// What sipedge's parser and a strict CRLF-only reading make of `m` agree
/// line for line: the same start line, the same headers with the same
/// values, the body in the same place. A message on which they differ
/// would mean one thing to sipedge and another to the server behind it.
fn same_under_strict_reading(m: &sip::Message<'_>) {
    let buf = m.buf();
    let start = m.start_line_span().start as usize;
    let shown = || String::from_utf8_lossy(buf).into_owned();
    let Some((start_line, strict, body)) = strict_reading(buf, start) else {
        panic!(
            "sipedge parsed what a strict reading cannot:\n{:?}",
            shown()
        );
    };
    assert_eq!(
        start_line,
        &buf[m.start_line_span().range()],
        "{:?}",
        shown()
    );
    let ours: Vec<(&[u8], &[u8])> = m
        .headers()
        .iter()
        .map(|h| (&buf[h.name_span.range()], m.value(h)))
        .collect();
    assert_eq!(ours, strict, "the header lists differ:\n{:?}", shown());
    assert_eq!(body, m.body_span().start as usize, "{:?}", shown());
}

/// Stream framing on arbitrary bytes, read whole and in three pieces
/// split where the first two bytes say: the same frames either way, each
/// message ending exactly where its header section's one Content-Length
/// says under a strict CRLF-only reading, and where sipedge's parser puts
/// the end of its body.
pub fn framing(data: &[u8]) {
    let [a, b, stream @ ..] = data else {
        return;
    };
    let max = 256 + usize::from(*a) * 64;
    let whole = frames(&[stream], max);
    let at1 = usize::from(*a) * stream.len() / 256;
    let at2 = (at1 + usize::from(*b)).min(stream.len());
    let pieces = [&stream[..at1], &stream[at1..at2], &stream[at2..]];
    assert_eq!(frames(&pieces, max), whole, "split at {at1} and {at2}");
    for (frame, bytes) in &whole {
        match *frame {
            sip::Frame::Message(n) => {
                assert_eq!(n, bytes.len());
                assert!(n <= max);
                let mut index = HeaderIndex::new();
                let parsed = sip::parse(bytes, &mut index);
                // A header line without a colon: no strict reading, and
                // no parse either (the request gets its 400).
                // What the parser skips before a start line, the framer
                // keeps in the message's bytes.
                let start = sip::message::start_of(bytes).unwrap_or(0);
                let Some((_, headers, body)) = strict_reading(bytes, start) else {
                    assert!(
                        parsed.is_err(),
                        "parsed what a strict reading cannot: {:?}",
                        String::from_utf8_lossy(bytes)
                    );
                    continue;
                };
                let lengths: Vec<&[u8]> = headers
                    .iter()
                    .filter(|(name, _)| {
                        name.eq_ignore_ascii_case(b"content-length")
                            || name.eq_ignore_ascii_case(b"l")
                    })
                    .map(|&(_, v)| v)
                    .collect();
                let [length] = lengths[..] else {
                    panic!(
                        "framed with {} Content-Lengths: {:?}",
                        lengths.len(),
                        String::from_utf8_lossy(bytes)
                    );
                };
                let length: usize = std::str::from_utf8(length)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .expect("a Content-Length of digits");
                assert_eq!(
                    body + length,
                    n,
                    "framed elsewhere than Content-Length says"
                );
                if let Ok(m) = parsed {
                    assert_eq!(m.body_span().end as usize, n);
                    assert_eq!(m.content_length(), Some(length));
                }
            }
            sip::Frame::Unframed { head: Some(h), .. } => {
                assert!(bytes[..h].ends_with(b"\r\n\r\n"));
            }
            _ => {}
        }
    }
}

/// What a connection makes of `chunks` arriving one after another: each
/// frame with the bytes it took, until the stream ends or cannot be
/// framed (whose frame comes with its header section, if complete).
fn frames(chunks: &[&[u8]], max: usize) -> Vec<(sip::Frame, Vec<u8>)> {
    let mut framer = sip::Framer::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match framer.next(&buf, max) {
                sip::Frame::NeedMore => break,
                f @ sip::Frame::Unframed { head, .. } => {
                    out.push((f, buf[..head.unwrap_or(0)].to_vec()));
                    return out;
                }
                f => out.push((f, buf.drain(..f.consumed()).collect())),
            }
        }
    }
    out
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

/// Flow tokens: arbitrary text never opens into a token but the one that
/// seals back to exactly that text (so a token has one spelling), and
/// never panics; a token built from the input seals and opens back, and
/// any one byte of it changed no longer opens.
pub fn token(data: &[u8]) {
    use edge::token::{open, Conn, Outside, Token, TokenKey};
    static KEYS: OnceLock<[TokenKey; 2]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [
            TokenKey::from_secret(b"fuzz-secret-0123456789abcdef"),
            TokenKey::from_secret(b"the previous fuzz secret"),
        ]
    });
    let edge = b"fuzz";
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Some(t) = open(keys, rest, edge) {
            let mut again = Vec::new();
            let by = keys
                .iter()
                .find(|k| open(std::slice::from_ref(*k), rest, edge).is_some());
            assert!(by.is_some_and(|k| k.seal(&t, edge, &mut again)));
            assert_eq!(again, rest, "one token, one spelling");
        }
        return;
    }
    // A token from the bytes: every transport, family and optional part.
    let mut b = rest.iter().copied().chain(std::iter::repeat(0));
    let mut next = || b.next().unwrap_or(0);
    let addr = |v6: bool, next: &mut dyn FnMut() -> u8| -> SocketAddr {
        let port = u16::from_be_bytes([next(), next()]);
        if v6 {
            let o: [u8; 16] = std::array::from_fn(|_| next());
            SocketAddr::from((o, port))
        } else {
            SocketAddr::from(([next(), next(), next(), next()], port))
        }
    };
    let transports = [
        edge::flow::Transport::Udp,
        edge::flow::Transport::Tcp,
        edge::flow::Transport::Tls,
        edge::flow::Transport::Ws,
        edge::flow::Transport::Wss,
    ];
    let shape = next();
    let transport = transports[usize::from(next()) % 5];
    let local = next();
    let remote = addr(shape & 1 != 0, &mut next);
    let conn = (shape & 2 != 0).then(|| Conn {
        id: edge::flow::ConnId(u64::from_be_bytes(std::array::from_fn(|_| next()))),
        owner: (shape & 4 != 0).then(|| addr(shape & 8 != 0, &mut next)),
    });
    let pool = (shape & 16 != 0).then(|| {
        (
            transports[usize::from(next()) % 5],
            addr(shape & 32 != 0, &mut next),
        )
    });
    let t = Token {
        outside: Outside {
            transport,
            local,
            remote,
            conn,
        },
        sticky: shape & 64 != 0,
        pool,
    };
    let mut text = Vec::new();
    assert!(keys[0].seal(&t, edge, &mut text));
    assert!(text.len() <= edge::token::MAX_TEXT);
    assert_eq!(open(keys, &text, edge), Some(t));
    let at = usize::from(next()) % text.len();
    let was = text[at];
    text[at] = if was == b'A' { b'B' } else { b'A' };
    assert_eq!(open(keys, &text, edge), None, "byte {at} changed");
}

/// A peer of each edge with number rules, both URI forms and a header
/// policy each way (the callers at 192.0.2.10 and ::1; the pool's requests
/// to them), put in [`CONFIG`] at `@PEER@`.
const PEER: &str = r#"
[[edge.peer]]
name = "callers"
sources = ["192.0.2.0/24", "::1"]
[edge.peer.in]
tel = "sip"
number = [{ e164 = "44" }, { match = '^(\d{6})$', replace = "+44207$1", fields = ["ruri"] }]
remove = ["X-*", "s"]
replace = ["User-Agent: fuzz"]
add = ["X-Carrier: callers"]
[edge.peer.out]
tel = "tel"
number = [{ match = '^\+44(\d+)$', replace = "0$1" }, { strip_prefix = "9" }]
allow = ["P-Asserted-Identity", "Diversion"]
"#;

const CONFIG: &str = r#"
[node]
id = "fuzz"
secret = "fuzz-secret-0123456789abcdef"

[[edge]]
name = "stateless"
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "ws:127.0.0.1:5066"]
algorithm = "hash-call-id"
flags = ["ping-replies"]
cps = 1000
capacity_failover = ["sip:127.0.0.1:5160"]
compress_in = ["compact", "deflate"]
compress_out = ["decompress"]
compact_keep = ["Call-ID"]
validate = ["basic", "sdp", "request-uri", "from", "to", "contact", "no-max-forwards"]
nat_test = 127
nat_sdp = true
topology_hiding = true
[[edge.destination]]
uri = "sip:127.0.0.1:5070"
channels = 10
transports = ["udp", "tcp"]
[[edge.destination]]
uri = "sip:127.0.0.1:5071"
@PEER@

[[edge]]
name = "transactional"
listen = ["udp:127.0.0.1:5062", "tcp:127.0.0.1:5062", "ws:127.0.0.1:5068"]
algorithm = "weighted-round-robin"
insertion = "transactional"
compress_out = ["compact", "gzip"]
validate = ["basic", "headers", "sdp"]
foreign_next_hop = "refuse"
topology_hiding = true
on_invalid = "tag"
outbound_from = ["127.0.0.0/30", "::1"]
[edge.transaction]
t1 = 0.05
failover_timeout = 0.1
max_transactions = 1000
[[edge.destination]]
uri = "sip:127.0.0.1:5070"
[[edge.destination]]
uri = "sip:127.0.0.1:5071;transport=tcp"
@PEER@
"#;

struct State {
    edges: Vec<Edge>,
    workers: Vec<Worker>,
    now: Instant,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        let text = CONFIG.replace("@PEER@\n", PEER);
        let cfg = edge::config::parse(&text, "fuzz.toml").expect("fuzz config");
        let edges: Vec<Edge> = cfg
            .edges
            .iter()
            .map(|e| {
                Edge::new(
                    e,
                    &cfg.node,
                    &edge::keyring::KeyRing::single(b"fuzz-secret-0123456789abcdef"),
                )
            })
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
/// never forwards a message it could not read back, or not send at all;
/// and a strict CRLF-only reading of it must find the same headers, so the
/// next hop reads what sipedge read.
fn check(bytes: &[u8]) {
    assert!(
        bytes.len() <= 65_507,
        "sent {} bytes, more than a UDP datagram holds",
        bytes.len()
    );
    let mut index = sip::HeaderIndex::new();
    match sip::parse(bytes, &mut index) {
        Ok(m) => same_under_strict_reading(&m),
        Err(e) => panic!(
            "sent an unparseable message ({e:?}):\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// The whole proxy on arbitrary datagrams (see fuzz_targets/pipeline.rs):
/// the first byte picks the edge (stateless or transactional), the source
/// (either destination, a caller over IPv6, a caller over IPv4), how far
/// the clock moves, and the transport (its top bit: a TCP stream, or with
/// the next bit too one WebSocket message); the rest is the datagram.
/// Checks what one step of the pipeline sends.
fn checked(worker: &Worker, outcome: Outcome) {
    match outcome {
        Outcome::Send(_) => check(worker.output()),
        Outcome::Queued => {
            for (bytes, _) in worker.sends().iter() {
                check(bytes);
            }
        }
        Outcome::Drop(_) => {}
        // A request to a host name: the query must read back as a SIP URI
        // of a name (what the daemon's resolver parses).
        Outcome::Resolve => {
            let key = worker.lookup();
            let uri = sip::Uri::parse(key.as_bytes())
                .unwrap_or_else(|e| panic!("query {key:?} does not parse: {e:?}"));
            assert!(matches!(uri.host, sip::Host::Name(_)), "{key:?}");
        }
    }
}

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
    *now += Duration::from_millis(u64::from((selector >> 3) & 15) * 7);
    let (edge, worker) = (&edges[e], &mut workers[e]);
    if selector & 0x80 == 0 {
        let outcome = worker.handle(edge, datagram, edge::flow::Flow::udp(0, src), *now);
        checked(worker, outcome);
    } else if selector & 0x40 != 0 {
        // One WebSocket message: framed by the WebSocket, not by
        // Content-Length (RFC 7118).
        let flow = edge::flow::Flow {
            transport: edge::flow::Transport::Ws,
            local: 2,
            remote: src,
            conn: Some(edge::flow::ConnId(2)),
            reconnect: None,
            pinned: false,
            owner: None,
        };
        let outcome = worker.handle(edge, datagram, flow, *now);
        checked(worker, outcome);
    } else {
        // The bytes as a TCP stream: framed as a connection frames them,
        // each message through the pipeline on a TCP flow.
        let flow = edge::flow::Flow {
            transport: edge::flow::Transport::Tcp,
            local: 1,
            remote: src,
            conn: Some(edge::flow::ConnId(1)),
            reconnect: None,
            pinned: false,
            owner: None,
        };
        let mut framer = sip::Framer::default();
        let mut at = 0;
        loop {
            let rest = &datagram[at..];
            match framer.next(rest, 65_535) {
                sip::Frame::Message(n) => {
                    let outcome = worker.handle(edge, &rest[..n], flow, *now);
                    checked(worker, outcome);
                    at += n;
                }
                sip::Frame::NeedMore => break,
                sip::Frame::Unframed { why, head } => {
                    if let Some(h) = head {
                        let outcome = worker.unframed(edge, &rest[..h], why, flow);
                        checked(worker, outcome);
                    }
                    break;
                }
                f => at += f.consumed(),
            }
        }
    }
    worker.poll(edge, *now);
    for (bytes, _) in worker.sends().iter() {
        check(bytes);
    }
}

/// STUN on the SIP port: arbitrary datagrams never panic; one the edge
/// answers is a STUN message the edge itself would not answer (two
/// edges never ping-pong), and says where it saw the sender.
pub fn stun(data: &[u8]) {
    use edge::stun::{answer, looks_like, mapped};
    let from: std::net::SocketAddr = ([198, 51, 100, 9], 5062).into();
    let _ = mapped(data, 0);
    if !looks_like(data) {
        return;
    }
    if let Some(a) = answer(data, from) {
        assert!(looks_like(&a));
        assert_eq!(answer(&a, from), None, "an answer is never answered");
        // The transaction id as the codec holds it: its 96 bits.
        let mut id = [0u8; 16];
        id[4..].copy_from_slice(&data[8..20]);
        assert_eq!(mapped(&a, u128::from_be_bytes(id)), Some(from));
    }
}
