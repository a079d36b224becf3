//! Every message of the shared conformance corpus (RFC 4475, RFC 5118 and
//! real-world samples) sent to the running proxy, handled as its
//! MANIFEST.tsv says: forwarded to the pool, rejected with the preferred
//! code, answered, or absorbed.
//!
//! Each message is sent from a socket bound to the port its top Via names
//! (5060 when none), so sipedge's answer — which goes to the source address
//! and the Via port, RFC 3261 §18.2.2 — comes back to the test. The
//! messages name 192.0.2.x and other foreign hosts; inside the private
//! network namespace nothing can reach them.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use e2e::config::single_edge;
use e2e::expect::{ANSWER, SILENCE};
use e2e::sip;
use e2e::{free_port, require_private_netns, FakePool, Sipedge};

struct Case {
    file: String,
    bytes: Vec<u8>,
    expect: String,
    also: String,
    code: Option<u16>,
}

fn corpus() -> Vec<Case> {
    let root = std::env::var_os("SIPEDGE_CONFORMANCE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
        PathBuf::from,
    );
    let mut out = Vec::new();
    for set in ["torture", "realworld"] {
        let dir = root.join(set);
        let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = line.split('\t').collect();
            out.push(Case {
                file: c[0].to_owned(),
                bytes: std::fs::read(dir.join(c[0])).expect("corpus file"),
                expect: c[5].to_owned(),
                also: c[6].to_owned(),
                code: c[7].parse().ok(),
            });
        }
    }
    out
}

/// The port the message's top Via names (5060 when none or unreadable).
fn via_port(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
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

/// What happened to one message: `forward`, `reject CODE`, `answer CODE`
/// or `drop`.
fn outcome(sock: &UdpSocket, pool: &FakePool, edge: SocketAddr, bytes: &[u8]) -> String {
    sock.send_to(bytes, edge).expect("send");
    let mut buf = vec![0u8; 65_536];
    // Whichever comes first: the pool's arrival or an answer.
    let deadline = std::time::Instant::now() + ANSWER;
    let mut waited = Duration::ZERO;
    while std::time::Instant::now() < deadline {
        if pool.recv(Duration::from_millis(10)).is_some() {
            return "forward".into();
        }
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .expect("timeout");
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let code = sip::status_code(&text).unwrap_or(0);
            // The pool's servers answer OPTIONS themselves (FakePool does
            // not report them): an answer sipedge did not write came from
            // the pool, so the request was forwarded.
            if sip::header(&text, "Server") != Some("sipedge") {
                return "forward".into();
            }
            return if (200..300).contains(&code) {
                format!("answer {code}")
            } else {
                format!("reject {code}")
            };
        }
        waited += Duration::from_millis(20);
        // Nothing at all for SILENCE: dropped or absorbed.
        if waited >= SILENCE {
            return "drop".into();
        }
    }
    "drop".into()
}

/// Issue 6: all 69 corpus messages through the running proxy.
#[test]
fn corpus_every_message_handled_as_the_manifest_says() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let config =
        single_edge(listen, "first", &[(pool.ports()[0], 1)]) + "\n[edge.probe]\nenabled = false\n";
    let _edge = Sipedge::start(&config);
    let edge = SocketAddr::from((e2e::LOCALHOST, listen));
    let mut sockets: BTreeMap<u16, UdpSocket> = BTreeMap::new();
    let mut failures = Vec::new();
    let cases = corpus();
    for c in &cases {
        let port = via_port(&c.bytes);
        let sock = sockets.entry(port).or_insert_with(|| {
            UdpSocket::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port} for {}: {e}", c.file))
        });
        let got = outcome(sock, &pool, edge, &c.bytes);
        let meets = |want: &str| match want {
            "forward" => got == "forward",
            // Rejected with the preferred code where the manifest names one.
            "reject" => match c.code {
                Some(code) => got == format!("reject {code}"),
                None => got.starts_with("reject") || got == "drop",
            },
            "answer" => got.starts_with("answer"),
            "absorb" => got == "drop",
            _ => false,
        };
        if !(meets(&c.expect) || (c.also != "-" && meets(&c.also))) {
            failures.push(format!(
                "{}: expected {} ({:?}), got {got}",
                c.file, c.expect, c.code
            ));
        }
        // Whatever else it caused (a retransmission, a late answer) is
        // drained before the next message.
        while pool.recv(Duration::from_millis(1)).is_some() {}
    }
    assert_eq!(cases.len(), 69);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
