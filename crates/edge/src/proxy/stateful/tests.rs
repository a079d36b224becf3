//! The transactional edge driven by a simulated caller and servers (the
//! shape of quinn-proto's tests): datagrams and time go in, datagrams come
//! out, every timer fires at an instant the test chooses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config;
use crate::proxy::{Edge, Outcome, Worker};
use crate::stats::Event;
use sip::{HeaderIndex, HeaderName, Method, NameAddr};

const EDGE: &str = "127.0.0.1:5060";
const A: &str = "127.0.0.1:5070";
const B: &str = "127.0.0.1:5071";
const C: &str = "127.0.0.1:5072";
const CALLER: &str = "127.0.0.1:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One datagram the edge sent.
#[derive(Clone, Debug)]
struct Out {
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    fn first_line(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_owned()
    }
    fn status(&self) -> Option<u16> {
        let mut idx = HeaderIndex::new();
        sip::parse(&self.bytes, &mut idx).ok()?.status()
    }
    fn method(&self) -> Option<Method> {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(&self.bytes, &mut idx).ok()?;
        m.is_request().then(|| m.method())
    }
    fn header(&self, name: HeaderName) -> Option<String> {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(&self.bytes, &mut idx).ok()?;
        m.first_value(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
    fn top_branch(&self) -> String {
        let via = self.header(HeaderName::Via).unwrap_or_default();
        via.split(";branch=")
            .nth(1)
            .unwrap_or_default()
            .split([';', ','])
            .next()
            .unwrap_or_default()
            .to_owned()
    }
    /// What a server at `self.to` answers to this request: every Via,
    /// From, To (with a tag for anything but 100), Call-ID and CSeq.
    fn answer(&self, code: u16) -> Vec<u8> {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(&self.bytes, &mut idx).expect("a request");
        let mut out = format!("SIP/2.0 {code} Whatever\r\n");
        for h in m.headers() {
            let line = String::from_utf8_lossy(&m.buf()[h.line.range()]).into_owned();
            match h.name {
                HeaderName::To if code > 100 => {
                    let v = String::from_utf8_lossy(m.value(h));
                    let tagged = NameAddr::parse(m.value(h)).is_ok_and(|n| n.tag().is_some());
                    if tagged {
                        out += &line;
                    } else {
                        out += &format!("To: {v};tag=srv{}\r\n", self.to.port());
                    }
                }
                HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq => out += &line,
                _ => {}
            }
        }
        out += "Content-Length: 0\r\n\r\n";
        out.into_bytes()
    }
}

/// The edge, one worker, the timer worker and the simulated clock.
struct Sim {
    edge: Edge,
    worker: Worker,
    timers: Worker,
    now: Instant,
}

impl Sim {
    /// A transactional edge over A, B and C (weighted round-robin, so the
    /// order is A, B, C), with `extra` lines in its `[edge.transaction]`.
    fn new(extra: &str) -> Sim {
        Sim::with("first", "", extra)
    }

    fn with(algorithm: &str, edge_extra: &str, tx_extra: &str) -> Sim {
        let text = format!(
            r#"
[node]
id = "t"
secret = "unit-test-secret-0123456789"
[[edge]]
listen = ["udp:{EDGE}"]
algorithm = "{algorithm}"
insertion = "transactional"
{edge_extra}
[edge.transaction]
{tx_extra}
[[edge.destination]]
uri = "sip:{A}"
priority = 1
[[edge.destination]]
uri = "sip:{B}"
priority = 2
[[edge.destination]]
uri = "sip:{C}"
priority = 3
"#
        );
        let cfg = config::parse(&text, "test.toml").expect("config");
        let edge = Edge::new(
            &cfg.edges[0],
            &cfg.node,
            &crate::keyring::KeyRing::single(b"unit-test-secret-0123456789"),
        );
        let (worker, timers) = (edge.worker(), edge.worker());
        let now = edge.epoch() + Duration::from_secs(1);
        Sim {
            edge,
            worker,
            timers,
            now,
        }
    }

    /// Reloads the edge with `dests` (in priority order) under `ring`, as
    /// the daemon does: the next snapshot from this one, both workers
    /// moved onto it.
    fn reload(&mut self, extra: &str, dests: &[&str], ring: &crate::keyring::KeyRing) {
        let mut text = format!(
            "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:{EDGE}\"]\nalgorithm = \"first\"\n\
             insertion = \"transactional\"\n{extra}\n"
        );
        for (i, d) in dests.iter().enumerate() {
            text += &format!(
                "[[edge.destination]]\nuri = \"sip:{d}\"\npriority = {}\n",
                i + 1
            );
        }
        let cfg = config::parse(&text, "reload.toml").expect("config");
        self.edge = self.edge.reloaded(&cfg.edges[0], &cfg.node, ring, self.now);
        self.worker.renew(&self.edge);
        self.timers.renew(&self.edge);
    }

    /// Delivers a datagram from `from`; returns what the edge sent.
    fn recv(&mut self, bytes: &[u8], from: &str) -> Vec<Out> {
        let o = self.worker.handle(
            &self.edge,
            bytes,
            crate::flow::Flow::udp(0, addr(from)),
            self.now,
        );
        match o {
            Outcome::Send(crate::flow::Flow { remote: to, .. }) => vec![Out {
                to,
                bytes: self.worker.output().to_vec(),
            }],
            Outcome::Queued => self
                .worker
                .sends()
                .iter()
                .map(|(b, to)| Out {
                    to: to.remote,
                    bytes: b.to_vec(),
                })
                .collect(),
            Outcome::Drop(_) | Outcome::Resolve => Vec::new(),
        }
    }

    /// Moves the clock on by `d` in 10 ms steps, running the timers at
    /// each; returns everything they sent.
    fn advance(&mut self, d: Duration) -> Vec<Out> {
        let end = self.now + d;
        let mut out = Vec::new();
        while self.now < end {
            self.now = (self.now + ms(10)).min(end);
            self.timers.poll(&self.edge, self.now);
            out.extend(self.timers.sends().iter().map(|(b, to)| Out {
                to: to.remote,
                bytes: b.to_vec(),
            }));
        }
        out
    }

    fn held(&self) -> usize {
        self.edge.stateful().map_or(0, |s| s.len())
    }

    fn event(&self, e: Event) -> u64 {
        self.worker.stats.get(e) + self.timers.stats.get(e)
    }
}

fn invite(call: &str) -> Vec<u8> {
    request("INVITE", call, "z9hG4bKcaller1", "")
}

fn request(method: &str, call: &str, branch: &str, to_tag: &str) -> Vec<u8> {
    format!(
        "{method} sip:service@{EDGE} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:service@example.com>{to_tag}\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@{CALLER}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The ACK a caller sends for a non-2xx final of `invite` (same branch).
fn caller_ack(call: &str, to_tag: &str) -> Vec<u8> {
    request("ACK", call, "z9hG4bKcaller1", &format!(";tag={to_tag}"))
}

fn to(out: &[Out], dest: &str) -> Vec<Out> {
    out.iter().filter(|o| o.to == addr(dest)).cloned().collect()
}

fn only(out: &[Out], dest: &str) -> Out {
    let v = to(out, dest);
    assert_eq!(v.len(), 1, "one datagram to {dest} expected, got {out:#?}");
    v[0].clone()
}

#[test]
fn a_503_fails_over_to_the_next_destination_with_a_new_branch() {
    let mut sim = Sim::new("");
    let out = sim.recv(&invite("c1"), CALLER);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(only(&out, CALLER).status(), Some(100));
    let inv_a = only(&out, A);
    assert_eq!(inv_a.method(), Some(Method::Invite));

    let out = sim.recv(&inv_a.answer(503), A);
    // The 503 is acknowledged hop by hop, the INVITE goes to B, the caller
    // hears nothing yet.
    let ack = only(&out, A);
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.top_branch(), inv_a.top_branch());
    assert!(ack.header(HeaderName::To).unwrap().contains("tag=srv5070"));
    assert_eq!(ack.header(HeaderName::CSeq).as_deref(), Some("1 ACK"));
    let inv_b = only(&out, B);
    assert_eq!(inv_b.method(), Some(Method::Invite));
    assert_attempt(&inv_b.top_branch(), &inv_a.top_branch(), 1);
    assert!(to(&out, CALLER).is_empty());

    // The second attempt's branch is authenticated whole: with its
    // attempt digit or a loop-hash digit changed, its answer matches no
    // transaction and fails the stateless check too.
    let ringing = inv_b.answer(180);
    let branch = inv_b.top_branch();
    let at = memchr::memmem::find(&ringing, branch.as_bytes()).unwrap();
    for (i, digit) in [(branch.len() - 1, b'2'), (branch.len() - 4, b'x')] {
        let mut forged = ringing.clone();
        let d = &mut forged[at + i];
        *d = if digit == b'x' {
            if *d == b'0' {
                b'1'
            } else {
                b'0'
            }
        } else {
            digit
        };
        assert!(
            sim.recv(&forged, B).is_empty(),
            "{}",
            String::from_utf8_lossy(&forged)
        );
    }
    let out = sim.recv(&ringing, B);
    assert_eq!(only(&out, CALLER).status(), Some(180));
    let out = sim.recv(&inv_b.answer(200), B);
    let ok = only(&out, CALLER);
    assert_eq!(ok.status(), Some(200));
    // Our Via is gone; the caller's is on top.
    assert!(ok.header(HeaderName::Via).unwrap().contains(CALLER));
    assert_eq!(sim.event(Event::Failover), 1);
}

#[test]
fn a_server_that_never_answers_is_left_after_the_failover_timer() {
    let mut sim = Sim::new("failover_timeout = 2");
    let out = sim.recv(&invite("c2"), CALLER);
    let inv_a = only(&out, A);
    // Timer A retransmits to A at 0.5 s and 1.5 s; at 2 s B gets the INVITE.
    let out = sim.advance(ms(1990));
    let again: Vec<_> = to(&out, A);
    assert_eq!(again.len(), 2, "{out:#?}");
    assert!(again.iter().all(|o| o.bytes == inv_a.bytes));
    let out = sim.advance(ms(20));
    let inv_b = only(&out, B);
    assert_eq!(inv_b.method(), Some(Method::Invite));
    // A is not retransmitted to any more.
    let out = sim.advance(ms(3000));
    assert!(to(&out, A).is_empty(), "{out:#?}");
    let out = sim.recv(&inv_b.answer(200), B);
    assert_eq!(only(&out, CALLER).status(), Some(200));
}

#[test]
fn a_late_ringing_from_a_server_given_up_on_is_cancelled_not_relayed() {
    let mut sim = Sim::new("failover_timeout = 1");
    let inv_a = only(&sim.recv(&invite("c3"), CALLER), A);
    let inv_b = only(&sim.advance(ms(1010)), B);
    let out = sim.recv(&inv_a.answer(180), A);
    let cancel = only(&out, A);
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(cancel.top_branch(), inv_a.top_branch());
    assert!(to(&out, CALLER).is_empty());
    // Its 487 is acknowledged and kept out of the caller's way.
    let out = sim.recv(&inv_a.answer(487), A);
    assert_eq!(only(&out, A).method(), Some(Method::Ack));
    assert!(to(&out, CALLER).is_empty());
    let out = sim.recv(&inv_b.answer(200), B);
    assert_eq!(only(&out, CALLER).status(), Some(200));
}

#[test]
fn when_every_destination_fails_the_caller_gets_the_best_response() {
    // All 503: the caller gets a 500 (§16.7 step 6).
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c4"), CALLER), A);
    let inv_b = only(&sim.recv(&inv_a.answer(503), A), B);
    let inv_c = only(&sim.recv(&inv_b.answer(503), B), C);
    let out = sim.recv(&inv_c.answer(503), C);
    let fin = only(&out, CALLER);
    assert_eq!(fin.status(), Some(500));
    assert!(fin.header(HeaderName::To).unwrap().contains("tag=srv5070"));
    // The caller's ACK is absorbed; a retransmitted INVITE gets the 500.
    assert!(sim.recv(&caller_ack("c4", "srv5070"), CALLER).is_empty());
    assert_eq!(sim.event(Event::Absorbed), 1);

    // A 480 beats 5xx (lowest class), and is what the caller gets.
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c5"), CALLER), A);
    let inv_b = only(&sim.recv(&inv_a.answer(500), A), B);
    let inv_c = only(&sim.recv(&inv_b.answer(480), B), C);
    let out = sim.recv(&inv_c.answer(502), C);
    let fin = only(&out, CALLER);
    assert_eq!(fin.status(), Some(480));
    assert!(fin.header(HeaderName::To).unwrap().contains("tag=srv5071"));

    // Nobody answers at all: 408.
    let mut sim = Sim::new("failover_timeout = 1");
    sim.recv(&invite("c6"), CALLER);
    let out = sim.advance(ms(3100));
    let fin = only(&out, CALLER);
    assert_eq!(fin.status(), Some(408));
    // The final is retransmitted (Timer G) until the caller's ACK.
    let out = sim.advance(ms(600));
    assert_eq!(only(&out, CALLER).status(), Some(408));
}

#[test]
fn a_non_failover_code_or_a_6xx_goes_straight_to_the_caller() {
    for code in [486, 404, 603, 302] {
        let mut sim = Sim::new("");
        let inv_a = only(&sim.recv(&invite("c7"), CALLER), A);
        let out = sim.recv(&inv_a.answer(code), A);
        assert_eq!(only(&out, CALLER).status(), Some(code));
        assert_eq!(only(&out, A).method(), Some(Method::Ack));
        assert!(to(&out, B).is_empty(), "{code}: {out:#?}");
    }
    // failover_codes chooses: 486 fails over when listed.
    let mut sim = Sim::new("failover_codes = [486]");
    let inv_a = only(&sim.recv(&invite("c8"), CALLER), A);
    let out = sim.recv(&inv_a.answer(486), A);
    assert_eq!(only(&out, B).method(), Some(Method::Invite));
    assert!(to(&out, CALLER).is_empty());
}

#[test]
fn cancel_after_ringing_is_answered_forwarded_and_the_487_relayed() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c9"), CALLER), A);
    assert_eq!(
        only(&sim.recv(&inv_a.answer(180), A), CALLER).status(),
        Some(180)
    );
    let out = sim.recv(&request("CANCEL", "c9", "z9hG4bKcaller1", ""), CALLER);
    let ok = only(&out, CALLER);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header(HeaderName::CSeq).as_deref(), Some("1 CANCEL"));
    let cancel = only(&out, A);
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(cancel.top_branch(), inv_a.top_branch());
    assert_eq!(
        cancel.header(HeaderName::CallId),
        inv_a.header(HeaderName::CallId)
    );
    assert!(!cancel.header(HeaderName::To).unwrap().contains("tag="));
    // The server's 200 for the CANCEL stays here; its 487 goes up.
    assert!(sim.recv(&cancel.answer(200), A).is_empty());
    let out = sim.recv(&inv_a.answer(487), A);
    assert_eq!(only(&out, CALLER).status(), Some(487));
    assert_eq!(only(&out, A).method(), Some(Method::Ack));
    // No more destinations after a CANCEL.
    assert!(to(&out, B).is_empty());
    assert!(sim.recv(&caller_ack("c9", "srv5070"), CALLER).is_empty());
    // And the CANCEL is not retransmitted once answered.
    assert!(to(&sim.advance(ms(5000)), A).is_empty());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c10"), CALLER), A);
    let out = sim.recv(&request("CANCEL", "c10", "z9hG4bKcaller1", ""), CALLER);
    assert_eq!(only(&out, CALLER).status(), Some(200));
    // §9.1: no CANCEL before a provisional.
    assert!(to(&out, A).is_empty());
    let out = sim.recv(&inv_a.answer(180), A);
    assert_eq!(only(&out, A).method(), Some(Method::Cancel));
    assert!(
        to(&out, CALLER).is_empty(),
        "ringing after CANCEL is not relayed"
    );
    let out = sim.recv(&inv_a.answer(487), A);
    assert_eq!(only(&out, CALLER).status(), Some(487));
}

#[test]
fn cancel_of_a_silent_server_ends_with_487_not_the_next_destination() {
    let mut sim = Sim::new("failover_timeout = 1");
    sim.recv(&invite("c11"), CALLER);
    sim.recv(&request("CANCEL", "c11", "z9hG4bKcaller1", ""), CALLER);
    let out = sim.advance(ms(1010));
    assert_eq!(only(&out, CALLER).status(), Some(487));
    assert!(to(&out, B).is_empty());
}

#[test]
fn a_cancel_without_a_transaction_here_is_forwarded_statelessly() {
    let mut sim = Sim::new("");
    let out = sim.recv(&request("CANCEL", "c12", "z9hG4bKelsewhere", ""), CALLER);
    let fwd = only(&out, A);
    assert_eq!(fwd.method(), Some(Method::Cancel));
    assert_eq!(sim.held(), 0);
}

#[test]
fn invite_retransmissions_are_absorbed_and_answered_from_the_transaction() {
    let mut sim = Sim::new("");
    let out = sim.recv(&invite("c13"), CALLER);
    let inv_a = only(&out, A);
    // The same INVITE again: the 100 again, nothing to A.
    let out = sim.recv(&invite("c13"), CALLER);
    assert_eq!(only(&out, CALLER).status(), Some(100));
    assert!(to(&out, A).is_empty());
    sim.recv(&inv_a.answer(180), A);
    let out = sim.recv(&invite("c13"), CALLER);
    assert_eq!(only(&out, CALLER).status(), Some(180));
    assert_eq!(sim.event(Event::Retransmission), 2);
    // After the 2xx, retransmissions are absorbed silently (RFC 6026).
    sim.recv(&inv_a.answer(200), A);
    assert!(sim.recv(&invite("c13"), CALLER).is_empty());
    // A retransmitted 200 from the server still reaches the caller.
    let out = sim.recv(&inv_a.answer(200), A);
    assert_eq!(only(&out, CALLER).status(), Some(200));
}

#[test]
fn a_retransmitted_final_is_acked_again_and_starts_nothing_new() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c14"), CALLER), A);
    let out = sim.recv(&inv_a.answer(503), A);
    assert_eq!(to(&out, B).len(), 1);
    let out = sim.recv(&inv_a.answer(503), A);
    assert_eq!(only(&out, A).method(), Some(Method::Ack));
    assert!(to(&out, B).is_empty() && to(&out, C).is_empty());
}

#[test]
fn timer_c_cancels_a_ringing_branch_and_moves_on() {
    let mut sim = Sim::new("invite_timeout = 5");
    let inv_a = only(&sim.recv(&invite("c15"), CALLER), A);
    sim.recv(&inv_a.answer(180), A);
    assert!(sim.advance(ms(4990)).is_empty());
    let out = sim.advance(ms(20));
    assert_eq!(only(&out, A).method(), Some(Method::Cancel));
    assert_eq!(only(&out, B).method(), Some(Method::Invite));
}

#[test]
fn non_invite_requests_fail_over_and_retransmit_with_timer_e() {
    let mut sim = Sim::new("failover_timeout = 2");
    let msg = request("MESSAGE", "c16", "z9hG4bKmsg1", "");
    let out = sim.recv(&msg, CALLER);
    // No 100 Trying for non-INVITE.
    assert!(to(&out, CALLER).is_empty());
    let m_a = only(&out, A);
    let out = sim.advance(ms(1990));
    assert_eq!(to(&out, A).len(), 2, "Timer E at 0.5 and 1.5 s");
    let m_b = only(&sim.advance(ms(20)), B);
    let out = sim.recv(&m_b.answer(503), B);
    let m_c = only(&out, C);
    assert_eq!(m_c.method(), Some(Method::Message));
    assert!(to(&out, B).is_empty(), "no ACK for non-INVITE");
    let out = sim.recv(&m_c.answer(202), C);
    assert_eq!(only(&out, CALLER).status(), Some(202));
    // A retransmission of the MESSAGE gets the 202 again (Timer J).
    let out = sim.recv(&msg, CALLER);
    assert_eq!(only(&out, CALLER).status(), Some(202));
    // A late answer from A is for a branch given up on: nothing more.
    assert!(to(&sim.recv(&m_a.answer(200), A), CALLER).is_empty());
}

#[test]
fn every_context_is_forgotten_once_its_timers_ran() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c17"), CALLER), A);
    let inv_b = only(&sim.recv(&inv_a.answer(503), A), B);
    sim.recv(&inv_b.answer(200), B);
    let inv = only(
        &sim.recv(&request("INVITE", "c18", "z9hG4bKother", ""), CALLER),
        A,
    );
    sim.recv(&inv.answer(486), A);
    sim.recv(&request("MESSAGE", "c19", "z9hG4bKm", ""), CALLER);
    assert_eq!(sim.held(), 3);
    sim.advance(Duration::from_secs(70));
    assert_eq!(sim.held(), 0);
}

#[test]
fn a_response_no_transaction_holds_is_relayed_statelessly() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c20"), CALLER), A);
    sim.recv(&inv_a.answer(200), A);
    sim.advance(Duration::from_secs(70));
    assert_eq!(sim.held(), 0);
    // The 2xx retransmitted long after: signed branch, so still relayed.
    let out = sim.recv(&inv_a.answer(200), A);
    assert_eq!(only(&out, CALLER).status(), Some(200));
}

#[test]
fn a_full_table_forwards_statelessly() {
    let mut sim = Sim::new("max_transactions = 1");
    // One context fits each shard; two INVITEs whose keys land in one shard
    // are unlikely, so fill with many and count what was not kept.
    for i in 0..200 {
        let out = sim.recv(
            &request("INVITE", &format!("f{i}"), &format!("z9hG4bKf{i}"), ""),
            CALLER,
        );
        assert!(!to(&out, A).is_empty());
    }
    assert!(sim.held() <= 64, "{}", sim.held());
    assert!(sim.event(Event::Untracked) >= 200 - 64);
    let untracked = sim.edge.stateful().map_or(0, |s| s.untracked());
    assert_eq!(untracked, sim.event(Event::Untracked));
}

#[test]
fn a_destination_gone_down_meanwhile_is_skipped() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c21"), CALLER), A);
    sim.edge.health().set_usable(1, false);
    let out = sim.recv(&inv_a.answer(503), A);
    assert!(to(&out, B).is_empty());
    assert_eq!(only(&out, C).method(), Some(Method::Invite));
}

#[test]
fn failures_count_against_the_destination_for_passive_health() {
    let mut sim = Sim::new("failover_timeout = 1");
    sim.recv(&invite("c22"), CALLER);
    sim.advance(ms(1010));
    let totals = sim.edge.health().totals();
    assert_eq!(totals[0].bad, 1, "{totals:?}");
    assert_eq!(totals[0].replies, 0);
    assert_eq!(totals[1].calls, 1);
}

#[test]
fn attempts_follow_the_zone_tiers_and_their_limits() {
    // A and B in zone a (tier 1), C in zone b backing up a (tier 2):
    // primary_attempts = 1 tries A, then C, then the held-back B.
    let text = format!(
        r#"
[node]
id = "t"
zone = "a"
secret = "unit-test-secret-0123456789"
[[edge]]
listen = ["udp:{EDGE}"]
algorithm = "first"
insertion = "transactional"
primary_attempts = 1
[[edge.destination]]
uri = "sip:{A}"
zone = "a"
[[edge.destination]]
uri = "sip:{B}"
zone = "a"
[[edge.destination]]
uri = "sip:{C}"
zone = "b"
backup_zones = ["a"]
"#
    );
    let cfg = config::parse(&text, "t.toml").unwrap();
    let edge = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(b"unit-test-secret-0123456789"),
    );
    let mut sim = Sim {
        worker: edge.worker(),
        timers: edge.worker(),
        now: edge.epoch(),
        edge,
    };
    let inv_a = only(&sim.recv(&invite("c23"), CALLER), A);
    let inv_c = only(&sim.recv(&inv_a.answer(503), A), C);
    let inv_b = only(&sim.recv(&inv_c.answer(503), C), B);
    assert_attempt(&inv_b.top_branch(), &inv_a.top_branch(), 2);
}

/// `branch` is attempt `k` of the request whose first branch is `first`:
/// the same loop hash, the attempt digit, and a MAC of its own (the digit
/// is authenticated).
#[track_caller]
fn assert_attempt(branch: &str, first: &str, k: u8) {
    let (b, f) = (
        crate::branch::parse_branch(branch.as_bytes()).expect("our branch"),
        crate::branch::parse_branch(first.as_bytes()).expect("our branch"),
    );
    assert_eq!((b.loop_hash, b.attempt, f.attempt), (f.loop_hash, k, 0));
    assert_ne!(b.mac, f.mac, "{branch} against {first}");
}

#[test]
fn the_first_attempt_carries_the_stateless_branch() {
    // Another instance that never saw the INVITE forwards its CANCEL with
    // the branch of attempt 0: that must be the branch this one used.
    let mut t = Sim::new("");
    let inv_a = only(&t.recv(&invite("c24"), CALLER), A);
    let text = format!(
        "[node]\nid = \"s\"\nsecret = \"unit-test-secret-0123456789\"\n[[edge]]\n\
         listen = [\"udp:{EDGE}\"]\nalgorithm = \"first\"\n\
         [[edge.destination]]\nuri = \"sip:{A}\"\npriority = 1\n"
    );
    let cfg = config::parse(&text, "s.toml").unwrap();
    let stateless = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(b"unit-test-secret-0123456789"),
    );
    let mut w = stateless.worker();
    let cancel = request("CANCEL", "c24", "z9hG4bKcaller1", "");
    let o = w.handle(
        &stateless,
        &cancel,
        crate::flow::Flow::udp(0, addr(CALLER)),
        stateless.epoch(),
    );
    assert!(matches!(o, Outcome::Send(crate::flow::Flow { remote: to, .. }) if to == addr(A)));
    let fwd = Out {
        to: addr(A),
        bytes: w.output().to_vec(),
    };
    assert_eq!(fwd.top_branch(), inv_a.top_branch());
    assert!(inv_a.first_line().starts_with("INVITE "));
}

#[test]
fn a_retransmitted_invite_is_one_call_for_the_cps_limit() {
    let mut sim = Sim::with("first", "cps = 1", "");
    let out = sim.recv(&invite("c25"), CALLER);
    assert_eq!(to(&out, A).len(), 1);
    // The same INVITE again is absorbed, not refused for capacity.
    let out = sim.recv(&invite("c25"), CALLER);
    assert_eq!(only(&out, CALLER).status(), Some(100));
    // A second call in the same second is refused with Retry-After.
    let out = sim.recv(&request("INVITE", "c26", "z9hG4bKc26", ""), CALLER);
    let refused = only(&out, CALLER);
    assert_eq!(refused.status(), Some(503));
    assert_eq!(refused.header(HeaderName::RetryAfter).as_deref(), Some("1"));
    assert_eq!(sim.event(Event::CapacityRefused), 1);
}

#[test]
fn failover_skips_a_destination_at_its_capacity() {
    // B takes one call per second; A answers 503, so the second call that
    // fails over in the same second skips B for C.
    let text = format!(
        "[node]\nid = \"t\"\nsecret = \"unit-test-secret-0123456789\"\n[[edge]]\n\
         listen = [\"udp:{EDGE}\"]\nalgorithm = \"first\"\ninsertion = \"transactional\"\n\
         [[edge.destination]]\nuri = \"sip:{A}\"\npriority = 1\n\
         [[edge.destination]]\nuri = \"sip:{B}\"\npriority = 2\ncps = 1\n\
         [[edge.destination]]\nuri = \"sip:{C}\"\npriority = 3\n"
    );
    let cfg = config::parse(&text, "t.toml").unwrap();
    let edge = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(b"unit-test-secret-0123456789"),
    );
    let mut sim = Sim {
        worker: edge.worker(),
        timers: edge.worker(),
        now: edge.epoch() + Duration::from_secs(1),
        edge,
    };
    let inv_a = only(&sim.recv(&invite("c27"), CALLER), A);
    assert_eq!(to(&sim.recv(&inv_a.answer(503), A), B).len(), 1);
    let inv_a = only(
        &sim.recv(&request("INVITE", "c28", "z9hG4bKc28", ""), CALLER),
        A,
    );
    let out = sim.recv(&inv_a.answer(503), A);
    assert!(to(&out, B).is_empty(), "{out:#?}");
    assert_eq!(only(&out, C).method(), Some(Method::Invite));
}

#[test]
fn an_in_dialog_request_waits_for_timer_f_not_the_failover_timer() {
    let mut sim = Sim::new("failover_timeout = 1");
    let bye = format!(
        "BYE sip:bob@{A} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag=b1\r\nCall-ID: c29\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let fwd = only(&sim.recv(bye.as_bytes(), CALLER), A);
    // Nothing to fail over to: no 408 after the failover timer, only
    // Timer E retransmissions to the one next hop.
    let out = sim.advance(ms(5000));
    assert!(to(&out, CALLER).is_empty(), "{out:#?}");
    assert!(to(&out, A).iter().all(|o| o.bytes == fwd.bytes));
    assert!(to(&out, B).is_empty());
    // Timer F (32 s) ends it with a 408.
    let out = sim.advance(Duration::from_secs(28));
    assert_eq!(only(&out, CALLER).status(), Some(408));
}

#[test]
fn a_response_from_another_port_of_the_server_still_matches() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("c30"), CALLER), A);
    let out = sim.recv(&inv_a.answer(503), "127.0.0.1:5999");
    assert_eq!(only(&out, B).method(), Some(Method::Invite));
}

#[test]
fn the_hop_by_hop_ack_keeps_a_long_route_set_in_one_line() {
    let mut sim = Sim::new("");
    // One Route line of 302 entries, sipedge's own first, then
    // destination A (a route from outside through the edge to a foreign
    // host would be refused): the INVITE is well within the header
    // limit, and so must its ACK be.
    let others: Vec<String> = (0..300)
        .map(|i| format!("<sip:p{i}.example.com;lr>"))
        .collect();
    let route = format!(
        "Route: <sip:{EDGE};lr>, <sip:{A};lr>, {}\r\n",
        others.join(", ")
    );
    let text = String::from_utf8(invite("c-routes")).expect("utf-8");
    let inv = text.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{route}"),
        1,
    );
    let inv_a = only(&sim.recv(inv.as_bytes(), CALLER), A);
    let out = sim.recv(&inv_a.answer(486), A);
    let ack = only(&out, A);
    assert_eq!(ack.method(), Some(Method::Ack), "{}", ack.text());
    let routes = ack.header(HeaderName::Route).unwrap_or_default();
    assert!(
        routes.starts_with(&format!("<sip:{A};lr>, <sip:p0.example.com;lr>, <sip:p1.")),
        "{routes}"
    );
    assert!(routes.ends_with("<sip:p299.example.com;lr>"), "{routes}");
}

#[test]
fn a_transaction_in_flight_at_a_reload_finishes_and_fails_over_only_to_what_is_left() {
    let mut sim = Sim::new("");
    let inv_a = only(&sim.recv(&invite("r1"), CALLER), A);
    // B is removed, C moves to the front, D is new; the secret rotates.
    const D: &str = "127.0.0.1:5073";
    let old = b"unit-test-secret-0123456789";
    let ring = crate::keyring::KeyRing::new([&b"a-new-secret-for-the-cluster"[..], &old[..]]);
    sim.reload("", &[C, A, D], &ring);
    assert_eq!(sim.held(), 1, "the transaction outlives its snapshot");
    // A's 503 (signed under the old secret) still finds the transaction;
    // the failover skips B, gone with the reload, for C.
    let out = sim.recv(&inv_a.answer(503), A);
    assert_eq!(only(&out, A).method(), Some(Method::Ack));
    assert!(to(&out, B).is_empty(), "{out:#?}");
    let inv_c = only(&out, C);
    assert_eq!(inv_c.method(), Some(Method::Invite));
    // C's 200 — to an attempt signed after the rotation — reaches the caller.
    let out = sim.recv(&inv_c.answer(200), C);
    assert_eq!(only(&out, CALLER).status(), Some(200));
    assert_eq!(sim.event(Event::Failover), 1);
    // A new call goes by the new order.
    let out = sim.recv(&request("INVITE", "r2", "z9hG4bKcaller2", ""), CALLER);
    assert_eq!(only(&out, C).method(), Some(Method::Invite));
}

#[test]
fn a_reload_keeps_health_and_calls_in_progress_by_uri() {
    let mut sim = Sim::with("first", "channels = 10", "");
    sim.edge.health().set_usable(1, false); // B down
    let inv_a = only(&sim.recv(&invite("r3"), CALLER), A);
    let out = sim.recv(&inv_a.answer(200), A);
    assert_eq!(only(&out, CALLER).status(), Some(200));
    assert_eq!(sim.edge.limits().channels_in_use(), (1, vec![1, 0, 0]));
    let ring = crate::keyring::KeyRing::single(b"unit-test-secret-0123456789");
    sim.reload("channels = 5", &[B, C, A], &ring);
    // B is still down, A still has its call: the state moved with the URIs.
    assert!(!sim.edge.health().usable(0));
    assert!(sim.edge.health().usable(1) && sim.edge.health().usable(2));
    let (_, per_dest) = sim.edge.limits().channels_in_use();
    assert_eq!(per_dest, vec![0, 0, 1]);
    // The call's BYE releases it under the new snapshot.
    let bye = request("BYE", "r3", "z9hG4bKcallerbye", ";tag=srv5070");
    assert!(!sim.recv(&bye, CALLER).is_empty());
    assert_eq!(sim.edge.limits().channels_in_use(), (0, vec![0, 0, 0]));
}
