//! A plain loop over `Worker::handle`, for profilers (callgrind, perf) that
//! want one message kind and nothing else in the process.
//!
//! ```text
//! cargo bench -p edge --bench handle_loop                       # every kind, 200k each
//! cargo bench -p edge --bench handle_loop -- invite-wrr 1000000  # one kind, N messages
//! valgrind --tool=callgrind --toggle-collect='edge::proxy::Worker::handle' \
//!     target/release/deps/handle_loop-<hash> ok 100000
//! ```
//!
//! The set-up (config, rings, one warm-up pass of every message) also goes
//! through `Worker::handle`; for exact instructions per message, profile
//! the same kind with N = 0 too and divide the difference by N.
//!
//! Kinds: `invite-wrr`, `invite-hash` (INVITE with SDP, weighted-round-robin
//! or hash-call-id), `bye` (in-dialog BYE), `ok` (200 OK from the
//! destination). Prints nanoseconds per message (wall clock, no statistics:
//! use the `pipeline` bench for figures).

mod common;

use common::{setup, CALLER, RING};
use edge::proxy::Outcome;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

const KINDS: [&str; 4] = ["invite-wrr", "invite-hash", "bye", "ok"];

fn run(kind: &str, n: usize) {
    let caller: SocketAddr = CALLER.parse().unwrap();
    let alg = if kind == "invite-hash" {
        "hash-call-id"
    } else {
        "weighted-round-robin"
    };
    let mut s = setup(alg);
    let msgs: Vec<(&[u8], SocketAddr)> = match kind {
        "invite-wrr" | "invite-hash" => s.invites.iter().map(|m| (&m[..], caller)).collect(),
        "bye" => s.byes.iter().map(|m| (&m[..], caller)).collect(),
        "ok" => s.oks.iter().map(|(m, from)| (&m[..], *from)).collect(),
        _ => panic!("unknown kind {kind:?}; one of {KINDS:?}"),
    };
    let started = Instant::now();
    let mut sent = 0usize;
    for i in 0..n {
        let (msg, src) = msgs[i % RING];
        if let Outcome::Send(_) = s.worker.handle(
            &s.edge,
            black_box(msg),
            edge::flow::Flow::udp(0, src),
            s.edge.epoch() + std::time::Duration::from_secs(2),
        ) {
            sent += 1;
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(sent, n, "{kind}: every message is forwarded");
    println!("{kind:12} {n:9} messages  {ns:8.1} ns/message");
}

fn main() {
    // `cargo bench` passes `--bench` (and whatever follows `--`); without it
    // (`cargo test --all-targets`) this is a smoke run of 1,000 per kind.
    let all: Vec<String> = std::env::args().skip(1).collect();
    let default_n = if all.iter().any(|a| a == "--bench") {
        200_000
    } else {
        1_000
    };
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let n = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_n);
    match args.first() {
        Some(kind) => run(kind, n),
        None => KINDS.iter().for_each(|k| run(k, n)),
    }
}
