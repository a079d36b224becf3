//! The pipelines driven directly: datagrams in, datagrams (or nothing) out.

use super::{Edge, Outcome, Worker};
use crate::config;
use crate::flow::Transport;
use crate::stats::Event;
use sip::{HeaderIndex, HeaderName, NameAddr, Via};
use std::net::SocketAddr;

const EDGE: &str = "127.0.0.1:5060";
const DEST_A: &str = "127.0.0.1:5070";
const DEST_B: &str = "127.0.0.1:5071";
const CALLER: &str = "127.0.0.1:6000";
const SECRET: &[u8] = b"unit-test-secret-0123456789";

fn edge_with(algorithm: &str, flags: &str) -> Edge {
    edge_with_keys(algorithm, flags, "")
}

/// An edge with further `[[edge]]` keys (`extra`, whole lines).
fn edge_with_keys(algorithm: &str, flags: &str, extra: &str) -> Edge {
    let text = format!(
        r#"
[node]
id = "t"
secret = "unit-test-secret-0123456789"
[[edge]]
listen = ["udp:{EDGE}"]
algorithm = "{algorithm}"
flags = [{flags}]
{extra}
[[edge.destination]]
uri = "sip:{DEST_A}"
[[edge.destination]]
uri = "sip:{DEST_B}"
"#
    );
    let cfg = config::parse(&text, "test.toml").expect("config");
    Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(SECRET),
    )
}

fn edge() -> Edge {
    edge_with("weighted-round-robin", "\"ping-replies\"")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn invite(call: &str, branch: &str) -> String {
    format!(
        "INVITE sip:service@{EDGE} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:service@example.com>\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{CALLER}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 4\r\n\r\nv=0\r"
    )
}

fn run(e: &Edge, w: &mut Worker, msg: &[u8], src: &str) -> (Outcome, Vec<u8>) {
    let o = w.handle(
        e,
        msg,
        crate::flow::Flow::udp(0, addr(src)),
        e.epoch() + std::time::Duration::from_secs(100),
    );
    (o, w.output().to_vec())
}

fn sent_to(o: Outcome) -> SocketAddr {
    match o {
        Outcome::Send(crate::flow::Flow { remote: to, .. }) => to,
        Outcome::Queued => panic!("a stateless edge queued"),
        Outcome::Drop(e) => panic!("dropped: {e:?}"),
        Outcome::Resolve => panic!("waits for DNS"),
    }
}

fn header<'a>(msg: &'a [u8], name: HeaderName, idx: &'a mut HeaderIndex) -> Vec<String> {
    let m = sip::parse(msg, idx).expect("output parses");
    m.elements(name)
        .map(|e| String::from_utf8_lossy(e.text).into_owned())
        .collect()
}

/// A Route or Record-Route entry as written, its flow token (the user
/// part) taken out, and that token opened with the edge's keys.
fn untoken(e: &Edge, entry: &str) -> (String, Option<crate::token::Token>) {
    let Some((head, rest)) = entry.split_once('@') else {
        return (entry.to_string(), None);
    };
    let text = head.strip_prefix("<sip:").expect("a sip: entry");
    let token = crate::token::open(e.keys.opening(), text.as_bytes(), e.name.as_bytes());
    assert!(token.is_some(), "{entry}: a token that opens");
    (format!("<sip:{rest}"), token)
}

/// Every entry [`untoken`]ed.
fn untokened(e: &Edge, entries: &[String]) -> Vec<String> {
    entries.iter().map(|x| untoken(e, x).0).collect()
}

fn status(msg: &[u8]) -> u16 {
    let mut idx = HeaderIndex::new();
    sip::parse(msg, &mut idx)
        .expect("reply parses")
        .status()
        .expect("a response")
}

#[test]
fn invite_is_forwarded_with_our_via_record_route_and_fixed_sender_via() {
    let e = edge();
    let mut w = e.worker();
    let (o, out) = run(
        &e,
        &mut w,
        invite("c1", "z9hG4bK-1").as_bytes(),
        "127.0.0.1:6001",
    );
    assert_eq!(sent_to(o), addr(DEST_A));
    let mut idx = HeaderIndex::new();
    let vias = header(&out, HeaderName::Via, &mut idx);
    assert_eq!(vias.len(), 2);
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsE"),
        "{}",
        vias[0]
    );
    assert_eq!(
        vias[1],
        format!("SIP/2.0/UDP {CALLER};branch=z9hG4bK-1;rport=6001;received=127.0.0.1")
    );
    let mut idx = HeaderIndex::new();
    let rr = header(&out, HeaderName::RecordRoute, &mut idx);
    assert_eq!(untokened(&e, &rr), vec!["<sip:127.0.0.1:5060;lr>"]);
    // Its token: the caller's flow, and the server chosen for the call.
    let (_, token) = untoken(&e, &rr[0]);
    let token = token.unwrap();
    assert_eq!(
        (token.outside.transport, token.outside.remote, token.sticky),
        (Transport::Udp, addr("127.0.0.1:6001"), false)
    );
    assert_eq!(token.pool, Some((Transport::Udp, addr(DEST_A))));
    let mut idx = HeaderIndex::new();
    let m = sip::parse(&out, &mut idx).unwrap();
    assert_eq!(m.max_forwards().unwrap(), Some(69));
    assert_eq!(m.body(), b"v=0\r");
    assert_eq!(m.uri(), format!("sip:service@{EDGE}").as_bytes());
}

#[test]
fn retransmission_cancel_and_ack_follow_the_invite() {
    let e = edge();
    let mut w = e.worker();
    let inv1 = invite("c1", "z9hG4bK-1");
    let (o1, out1) = run(&e, &mut w, inv1.as_bytes(), CALLER);
    let (o2, _) = run(&e, &mut w, invite("c2", "z9hG4bK-2").as_bytes(), CALLER);
    assert_ne!(sent_to(o1), sent_to(o2), "two calls spread 1:1");
    let (o3, out3) = run(&e, &mut w, inv1.as_bytes(), CALLER);
    assert_eq!(sent_to(o3), sent_to(o1));
    assert_eq!(
        out3, out1,
        "a retransmission is forwarded byte for byte the same"
    );
    let cancel = inv1
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            "Content-Length: 4\r\n\r\nv=0\r",
            "Content-Length: 0\r\n\r\n",
        );
    let (o4, out4) = run(&e, &mut w, cancel.as_bytes(), CALLER);
    assert_eq!(sent_to(o4), sent_to(o1));
    let (mut i1, mut i4) = (HeaderIndex::new(), HeaderIndex::new());
    assert_eq!(
        header(&out1, HeaderName::Via, &mut i1)[0],
        header(&out4, HeaderName::Via, &mut i4)[0],
        "CANCEL carries the INVITE's branch"
    );
    let ack = cancel
        .replace("CANCEL sip:", "ACK sip:")
        .replace("CSeq: 1 CANCEL", "CSeq: 1 ACK")
        .replace(
            "To: <sip:service@example.com>",
            "To: <sip:service@example.com>;tag=uas9",
        );
    let (o5, _) = run(&e, &mut w, ack.as_bytes(), CALLER);
    assert_eq!(sent_to(o5), sent_to(o1));
}

#[test]
fn a_cancel_repeating_the_invites_route_values_gets_its_branch_however_written() {
    // RFC 3261 §9.1: the CANCEL repeats the INVITE's Route values; how they
    // are spread over lines or spaced is not part of them.
    let e = edge_with("hash-call-id", "");
    let mut w = e.worker();
    let routes = format!("Route: <sip:{EDGE};lr>, <sip:{DEST_B};lr>\r\n");
    let inv = invite("rc", "z9hG4bK-rc").replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{routes}"),
    );
    let (_, fwd) = run(&e, &mut w, inv.as_bytes(), CALLER);
    let cancel = inv
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace(
            &routes,
            &format!("Route:  <sip:{EDGE};lr>\r\nRoute: <sip:{DEST_B};lr> \r\n"),
        );
    let (_, out) = run(&e, &mut w, cancel.as_bytes(), CALLER);
    let (mut i1, mut i2) = (HeaderIndex::new(), HeaderIndex::new());
    assert_eq!(
        header(&fwd, HeaderName::Via, &mut i1)[0],
        header(&out, HeaderName::Via, &mut i2)[0]
    );
    // Another Route set is another request (a spiral through elsewhere).
    let other = cancel.replace(&format!("<sip:{DEST_B};lr>"), &format!("<sip:{DEST_A};lr>"));
    let (_, out) = run(&e, &mut w, other.as_bytes(), CALLER);
    let mut i3 = HeaderIndex::new();
    assert_ne!(
        header(&fwd, HeaderName::Via, &mut i1)[0],
        header(&out, HeaderName::Via, &mut i3)[0]
    );
}

#[test]
fn response_goes_back_to_the_caller_without_our_via() {
    let e = edge();
    let mut w = e.worker();
    let (_, fwd) = run(
        &e,
        &mut w,
        invite("c1", "z9hG4bK-1").as_bytes(),
        "127.0.0.1:6001",
    );
    let resp = answer(&fwd, 180);
    let (o, out) = run(&e, &mut w, &resp, DEST_A);
    assert_eq!(
        sent_to(o),
        addr("127.0.0.1:6001"),
        "rport and received are honoured"
    );
    let mut idx = HeaderIndex::new();
    let vias = header(&out, HeaderName::Via, &mut idx);
    assert_eq!(vias.len(), 1);
    assert!(vias[0].contains("branch=z9hG4bK-1"));

    // A forged branch (one hex digit changed) is dropped, not relayed.
    let text = String::from_utf8(resp.clone()).unwrap();
    let pos = text.find("z9hG4bKsE").unwrap() + 9;
    let mut forged = resp.clone();
    forged[pos] = if forged[pos] == b'0' { b'1' } else { b'0' };
    let (o, _) = run(&e, &mut w, &forged, DEST_A);
    assert_eq!(o, Outcome::Drop(Event::BadToken));

    // A response whose top Via is someone else's is absorbed.
    let other = text.replacen(
        "Via: SIP/2.0/UDP 127.0.0.1:5060",
        "Via: SIP/2.0/UDP 192.0.2.9:5060",
        1,
    );
    let (o, _) = run(&e, &mut w, other.as_bytes(), DEST_A);
    assert_eq!(o, Outcome::Drop(Event::ResponseNotOurs));
}

#[test]
fn answers_to_requests_signed_before_a_secret_rotation_still_verify() {
    let cfg = |secrets: &str| {
        let text = format!(
            "[node]\nid = \"t\"\n{secrets}\n[[edge]]\nlisten = [\"udp:{EDGE}\"]\n\
             [[edge.destination]]\nuri = \"sip:{DEST_A}\"\n"
        );
        config::parse(&text, "test.toml").expect("config")
    };
    let old_secret = &b"the secret before rotation"[..];
    let new_secret = &b"the secret after rotation!"[..];
    let before = cfg("");
    let old = Edge::new(
        &before.edges[0],
        &before.node,
        &crate::keyring::KeyRing::single(old_secret),
    );
    let (_, fwd) = run(
        &old,
        &mut old.worker(),
        invite("rot", "z9hG4bK-r").as_bytes(),
        CALLER,
    );
    let resp = answer(&fwd, 200);

    let after = cfg("");
    let rotated = crate::keyring::KeyRing::new([new_secret, old_secret]);
    let e = Edge::new(&after.edges[0], &after.node, &rotated);
    let (o, _) = run(&e, &mut e.worker(), &resp, DEST_A);
    assert_eq!(sent_to(o), addr(CALLER), "the old secret still verifies");

    let forgotten = crate::keyring::KeyRing::single(new_secret);
    let e = Edge::new(&after.edges[0], &after.node, &forgotten);
    let (o, _) = run(&e, &mut e.worker(), &resp, DEST_A);
    assert_eq!(
        o,
        Outcome::Drop(Event::BadToken),
        "a dropped secret does not"
    );

    // New requests are signed with the new secret: the same INVITE gets
    // another branch than before the rotation.
    let e = Edge::new(&after.edges[0], &after.node, &rotated);
    let (_, again) = run(
        &e,
        &mut e.worker(),
        invite("rot", "z9hG4bK-r").as_bytes(),
        CALLER,
    );
    let mut i1 = HeaderIndex::new();
    let mut i2 = HeaderIndex::new();
    let top = |m: &[u8], i: &'_ mut HeaderIndex| header(m, HeaderName::Via, i)[0].clone();
    assert_ne!(top(&fwd, &mut i1), top(&again, &mut i2));
}

/// The caller's BYE of a call on destination B, routed through the edge.
fn bye_to_b() -> String {
    format!(
        "BYE sip:bob@{DEST_B} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-b1\r\n\
         Route: <sip:{EDGE};lr>\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:service@example.com>;tag=b1\r\n\
         Call-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The same BYE sent by `dest` toward the caller.
fn bye_from(dest: &str) -> String {
    bye_to_b()
        .replace(&format!("sip:bob@{DEST_B}"), &format!("sip:alice@{CALLER}"))
        .replace(
            &format!("Via: SIP/2.0/UDP {CALLER}"),
            &format!("Via: SIP/2.0/UDP {dest}"),
        )
}

#[test]
fn in_dialog_requests_route_by_route_and_request_uri() {
    let e = edge();
    let mut w = e.worker();
    let bye = bye_to_b();
    let (o, out) = run(&e, &mut w, bye.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_B));
    let mut idx = HeaderIndex::new();
    assert!(
        header(&out, HeaderName::Route, &mut idx).is_empty(),
        "our Route entry is consumed"
    );

    // The same BYE naming a foreign host never goes there: it is
    // dispatched into the pool, which owns the dialog...
    let relay = bye.replace(&format!("sip:bob@{DEST_B}"), "sip:bob@127.0.0.1:9999");
    let (o, _) = run(&e, &mut w, relay.as_bytes(), CALLER);
    let to = sent_to(o);
    assert!(to == addr(DEST_A) || to == addr(DEST_B), "{to}");
    assert_eq!(w.stats.get(Event::ForeignDispatched), 1);
    assert_eq!(w.stats.get(Event::RelayDenied), 0);
    // ...or, with foreign_next_hop = "refuse", answered 403.
    let strict = edge_with_keys("weighted-round-robin", "", "foreign_next_hop = \"refuse\"");
    let mut sw = strict.worker();
    let (o, out) = run(&strict, &mut sw, relay.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    assert_eq!(status(&out), 403);
    assert_eq!(sw.stats.get(Event::RelayDenied), 1);
    // The ACK of a non-2xx answer repeats its INVITE's Request-URI and
    // Route, foreign or not (RFC 3261 §17.1.1.3): it follows its INVITE
    // into the pool in either mode, and is counted as neither.
    let ack = relay.replace("BYE", "ACK");
    let routed_ack = ack.replace(
        &format!("Route: <sip:{EDGE};lr>"),
        &format!("Route: <sip:{EDGE};lr>, <sip:127.0.0.1:9999;lr>"),
    );
    for (edge, worker) in [(&e, &mut w), (&strict, &mut sw)] {
        for a in [&ack, &routed_ack] {
            let (o, _) = run(edge, worker, a.as_bytes(), CALLER);
            let to = sent_to(o);
            assert!(to == addr(DEST_A) || to == addr(DEST_B), "{to}");
        }
    }
    assert_eq!(w.stats.get(Event::ForeignDispatched), 1);
    assert_eq!(sw.stats.get(Event::RelayDenied), 1);

    // From a destination, the BYE goes out to the caller's Contact.
    let (o, _) = run(&e, &mut w, bye_from(DEST_A).as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CALLER));
}

/// A destination a reload removed gets no new calls, but the in-dialog
/// requests of its calls still reach it, and what it sends still counts
/// as the pool's — until `max_call_duration` after its removal.
#[test]
fn a_removed_destination_keeps_its_dialogs_until_max_call_duration() {
    let e = edge();
    let text = format!(
        "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:{EDGE}\"]\n\
         max_call_duration = 60\n\
         [[edge.destination]]\nuri = \"sip:{DEST_A}\"\n"
    );
    let cfg = config::parse(&text, "test.toml").expect("config");
    let keys = crate::keyring::KeyRing::single(SECRET);
    let t0 = e.epoch() + std::time::Duration::from_secs(100);
    let r = e.reloaded(&cfg.edges[0], &cfg.node, &keys, t0);
    assert_eq!(r.destinations().len(), 1);
    assert_eq!(r.retired().len(), 1);
    let mut w = r.worker();
    for i in 0..20 {
        let (o, _) = run(
            &r,
            &mut w,
            invite(&format!("n{i}"), &format!("z9hG4bKn{i}")).as_bytes(),
            CALLER,
        );
        assert_eq!(sent_to(o), addr(DEST_A), "a new call");
    }
    let bye = bye_to_b();
    let (o, _) = run(&r, &mut w, bye.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_B), "its call's BYE");
    assert_eq!(w.stats.get(Event::ForeignDispatched), 0);
    let (o, _) = run(&r, &mut w, bye_from(DEST_B).as_bytes(), DEST_B);
    assert_eq!(sent_to(o), addr(CALLER), "its BYE toward the caller");
    // Another reload within the minute keeps it; one after, forgets it.
    let r2 = r.reloaded(
        &cfg.edges[0],
        &cfg.node,
        &keys,
        t0 + std::time::Duration::from_secs(59),
    );
    assert_eq!(r2.retired().len(), 1);
    let r3 = r2.reloaded(
        &cfg.edges[0],
        &cfg.node,
        &keys,
        t0 + std::time::Duration::from_secs(60),
    );
    assert!(r3.retired().is_empty());
    let mut w3 = r3.worker();
    let (o, _) = run(&r3, &mut w3, bye.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A), "dispatched as a foreign next hop");
}

/// Blank lines before the start line are tolerated (RFC 3261 §7.5) but
/// never passed on: what is forwarded starts with the start line, also
/// when `on_invalid = "tag"` adds its header after it.
#[test]
fn blank_lines_before_the_start_line_are_not_forwarded() {
    let tagging = edge_with_keys(
        "weighted-round-robin",
        "",
        "validate = [\"basic\"]\non_invalid = \"tag\"",
    );
    for (e, tagged) in [(edge(), false), (tagging, true)] {
        let mut w = e.worker();
        let msg = format!("\r\n\n\r\n{}", invite("blank", "z9hG4bK-blank"))
            .replace("Max-Forwards: 70\r\n", "");
        let (o, out) = run(&e, &mut w, msg.as_bytes(), CALLER);
        sent_to(o);
        assert!(
            out.starts_with(b"INVITE sip:"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let tags = out
            .windows(18)
            .filter(|w| w == b"\nX-Validate-Fail: ")
            .count();
        assert_eq!(
            tags,
            usize::from(tagged),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// What sipedge forwards always parses again: a request so close to the
/// parser's header limit that sipedge's own headers would cross it gets
/// 400 instead; one with room is forwarded.
#[test]
fn requests_near_the_header_limit_are_refused_not_forwarded_unparseable() {
    let e = edge();
    let mut w = e.worker();
    let with_extra = |n: usize| {
        let extra = "X-Pad: 1\r\n".repeat(n);
        invite(&format!("pad{n}"), &format!("z9hG4bK-pad{n}")).replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{extra}"),
            1,
        )
    };
    // invite() has 9 header lines: 248 in all are forwarded, 249 are not.
    let most = sip::MAX_HEADERS - 8;
    let (o, out) = run(&e, &mut w, with_extra(most - 9).as_bytes(), CALLER);
    assert!(sent_to(o) == addr(DEST_A) || sent_to(o) == addr(DEST_B));
    let mut idx = HeaderIndex::new();
    assert!(sip::parse(&out, &mut idx).is_ok());

    let (o, out) = run(&e, &mut w, with_extra(most - 9 + 1).as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    assert!(out.starts_with(b"SIP/2.0 400 Too Many Headers\r\n"));
}

/// A request too long to go on in one datagram once sipedge's headers are
/// added gets 513 (RFC 3261 §21.5.11) instead of being lost in sendmsg;
/// an ACK or a response that long is dropped, never answered.
#[test]
fn messages_that_would_not_fit_a_datagram_get_513_or_are_dropped() {
    let e = edge();
    let mut w = e.worker();
    // A request of exactly `len` bytes.
    let sized = |method: &str, len: usize| {
        let head = invite("huge", "z9hG4bK-huge")
            .replace("INVITE", method)
            .replace("Content-Length: 4\r\n\r\nv=0\r", "Content-Length: ");
        let digits = 5;
        let body = "a".repeat(len - head.len() - digits - 4);
        format!("{head}{:05}\r\n\r\n{body}", body.len())
    };
    let fits = sized("INVITE", e.room);
    assert_eq!(fits.len(), e.room);
    let (o, out) = run(&e, &mut w, fits.as_bytes(), CALLER);
    assert!(sent_to(o) == addr(DEST_A) || sent_to(o) == addr(DEST_B));
    assert!(out.len() <= super::MAX_DATAGRAM, "{}", out.len());

    let (o, out) = run(&e, &mut w, sized("INVITE", e.room + 1).as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    assert!(out.starts_with(b"SIP/2.0 513 Message Too Large\r\n"));

    let (o, _) = run(&e, &mut w, sized("ACK", e.room + 1).as_bytes(), CALLER);
    assert_eq!(o, Outcome::Drop(Event::Oversized));
    assert_eq!(w.stats.get(Event::Oversized), 2);

    // A 513 that would itself be too large (the request's bulk in a Via
    // line, which the answer copies) is not sent either.
    let bare = |pad: &str| {
        format!(
            "MESSAGE sip:a@{EDGE} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-fat;x={pad}\r\n\
             From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n\
             Call-ID: fat\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let fat = bare(&"v".repeat(super::MAX_DATAGRAM - bare("").len()));
    assert_eq!(fat.len(), super::MAX_DATAGRAM);
    let (o, _) = run(&e, &mut w, fat.as_bytes(), CALLER);
    assert_eq!(o, Outcome::Drop(Event::Oversized));
}

/// A request over the header limit whose lines are nearly all Vias cannot
/// be answered within the limit either (the answer copies every Via): it
/// is dropped.
#[test]
fn a_request_of_nothing_but_vias_is_dropped_not_answered() {
    let e = edge();
    let mut w = e.worker();
    let via = format!("Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-v\r\n");
    let vias = via.repeat(sip::MAX_HEADERS - 8);
    let msg = invite("vias", "z9hG4bK-vias").replacen("Max-Forwards: 70\r\n", &vias, 1);
    let (o, _) = run(&e, &mut w, msg.as_bytes(), CALLER);
    assert_eq!(o, Outcome::Drop(Event::Oversized));
}

#[test]
fn new_requests_are_dispatched_whatever_they_name() {
    let e = edge();
    let mut w = e.worker();
    let foreign = invite("c9", "z9hG4bK-9").replace(
        &format!("INVITE sip:service@{EDGE}"),
        "INVITE sip:victim@192.0.2.77",
    );
    let (o, _) = run(&e, &mut w, foreign.as_bytes(), CALLER);
    let to = sent_to(o);
    assert!(to == addr(DEST_A) || to == addr(DEST_B));
}

/// What a pool server acting as a proxy (not a B2BUA) sends back through
/// the edge: `msg` with its own Via on top and, if given, a Route to the
/// edge; the Request-URI unchanged.
fn proxied_back(msg: &[u8], via_branch: &str, route: Option<&str>) -> Vec<u8> {
    proxied_by(DEST_A, msg, via_branch, route)
}

/// [`proxied_back`] by the proxy at `who`.
fn proxied_by(who: &str, msg: &[u8], via_branch: &str, route: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8(msg.to_vec()).unwrap();
    let eol = text.find("\r\n").unwrap() + 2;
    let mut added = format!("Via: SIP/2.0/UDP {who};branch={via_branch}\r\n");
    if let Some(r) = route {
        added.push_str(&format!("Route: {r}\r\n"));
    }
    format!("{}{added}{}", &text[..eol], &text[eol..]).into_bytes()
}

#[test]
fn max_forwards_zero_is_483_and_loops_are_482() {
    let e = edge();
    let mut w = e.worker();
    let inv = invite("c1", "z9hG4bK-1").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let (o, out) = run(&e, &mut w, inv.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    assert_eq!(status(&out), 483);

    // The INVITE names the edge: into the pool it goes. A pool server
    // that proxies it back unchanged is routed again (from the pool the
    // Request-URI naming the edge means the pool: a spiral)...
    let (_, fwd) = run(&e, &mut w, invite("c2", "z9hG4bK-2").as_bytes(), CALLER);
    let (o, again) = run(&e, &mut w, &proxied_back(&fwd, "z9hG4bKp1", None), DEST_A);
    assert!(matches!(o, Outcome::Send(_)), "{o:?}");
    assert_eq!(status_or_method(&again), "INVITE");
    // ...but the same request from the same side a second time has
    // looped: 482, to the pool server that sent it.
    let (o, out) = run(&e, &mut w, &proxied_back(&again, "z9hG4bKp2", None), DEST_A);
    assert_eq!(status(&out), 482);
    assert_eq!(sent_to(o), addr(DEST_A));
}

/// The status code or method of a message sipedge sent.
fn status_or_method(msg: &[u8]) -> String {
    let mut idx = HeaderIndex::new();
    let m = sip::parse(msg, &mut idx).expect("output parses");
    m.status().map_or_else(
        || String::from_utf8_lossy(m.method_bytes()).into_owned(),
        |c| c.to_string(),
    )
}

#[test]
fn a_pool_server_proxying_a_call_back_out_is_a_spiral_not_a_loop() {
    // Carrier -> edge -> routing proxy (a pool server) -> edge -> carrier,
    // with the Request-URI naming the far carrier throughout (RFC 3261
    // §16.3 step 4: a spiral is routed again; only a loop gets 482).
    let e = edge();
    let mut w = e.worker();
    let far = "127.0.0.1:7000";
    let inv = invite("spiral", "z9hG4bK-s").replace(
        &format!("INVITE sip:service@{EDGE}"),
        &format!("INVITE sip:bob@{far}"),
    );
    let (o, fwd) = run(&e, &mut w, inv.as_bytes(), CALLER);
    let pool = sent_to(o);
    assert!(pool == addr(DEST_A) || pool == addr(DEST_B));
    for (k, route) in [None, Some(format!("<sip:{EDGE};lr>"))].iter().enumerate() {
        let back = proxied_back(&fwd, &format!("z9hG4bKr{k}"), route.as_deref());
        let (o, out) = run(&e, &mut w, &back, DEST_A);
        assert_eq!(sent_to(o), addr(far), "route {route:?}");
        assert_eq!(status_or_method(&out), "INVITE");
        // Out it goes with both of the edge's Vias and the pool's.
        let mut idx = HeaderIndex::new();
        let vias = header(&out, HeaderName::Via, &mut idx);
        assert_eq!(vias.len(), 4, "{vias:?}");
        assert!(vias[0].contains(EDGE) && vias[2].contains(EDGE), "{vias:?}");
        // A real loop: the far side hands the same request straight back
        // from outside, as the edge sent it — 482 after that one pass.
        let looped = proxied_by(far, &out, "z9hG4bKfar", None);
        let (o, looped) = run(&e, &mut w, &looped, far);
        assert_eq!(status(&looped), 482, "route {route:?}");
        assert_eq!(sent_to(o), addr(far));
    }
}

#[test]
fn a_request_carrying_the_edges_own_via_on_top_is_never_answered() {
    // Fed back exactly as forwarded (a destination sharing the edge's
    // address that returns the request, a forged Via): an answer would go
    // to the edge itself and come back as a response of its own.
    let e = edge();
    let mut w = e.worker();
    let (_, fwd) = run(&e, &mut w, invite("own", "z9hG4bK-own").as_bytes(), CALLER);
    let (o, _) = run(&e, &mut w, &fwd, DEST_A);
    assert_eq!(o, Outcome::Drop(Event::OwnVia));
    // Even one that would be refused (Max-Forwards 0, a bad CSeq).
    for edit in [
        ("Max-Forwards: 69", "Max-Forwards: 0"),
        ("CSeq: 1 INVITE", "CSeq: x"),
    ] {
        let text = String::from_utf8(fwd.clone())
            .unwrap()
            .replace(edit.0, edit.1);
        let (o, _) = run(&e, &mut w, text.as_bytes(), DEST_A);
        assert_eq!(o, Outcome::Drop(Event::OwnVia), "{edit:?}");
    }
    assert_eq!(w.stats.get(Event::OwnVia), 3);
    // A phone behind NAT may claim the edge's (private) address in its
    // Via; without one of the edge's branches it is served as usual.
    let nat =
        invite("nat", "z9hG4bK-nat").replace(&format!("UDP {CALLER}"), &format!("UDP {EDGE}"));
    let (o, _) = run(&e, &mut w, nat.as_bytes(), CALLER);
    assert!(matches!(o, Outcome::Send(_)), "{o:?}");
}

#[test]
fn options_to_the_edge_is_answered_locally() {
    let e = edge();
    let mut w = e.worker();
    let opt = format!(
        "OPTIONS sip:{EDGE} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-o\r\nMax-Forwards: 70\r\n\
         From: <sip:ping@example.com>;tag=p\r\nTo: <sip:{EDGE}>\r\nCall-ID: ping1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, out) = run(&e, &mut w, opt.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    let mut idx = HeaderIndex::new();
    let m = sip::parse(&out, &mut idx).unwrap();
    assert_eq!(m.status(), Some(200));
    assert!(m
        .first_value(HeaderName::Allow)
        .is_some_and(|v| v.starts_with(b"INVITE")));
    assert!(m.first(HeaderName::Accept).is_some());
    assert!(m.first(HeaderName::Supported).is_some());
    let to = NameAddr::parse(m.first_value(HeaderName::To).unwrap()).unwrap();
    assert!(to.tag().is_some(), "a final response carries a To tag");
    assert_eq!(w.stats.get(Event::RequestForwarded), 0);

    // Without the flag, the ping goes to the pool.
    let e = edge_with("weighted-round-robin", "");
    let mut w = e.worker();
    let (o, _) = run(&e, &mut w, opt.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
}

#[test]
fn garbage_is_dropped_and_broken_requests_get_400() {
    let e = edge();
    let mut w = e.worker();
    for junk in [
        &b"\x00\x01\x02garbage"[..],
        b"",
        b"\r\n\r\n",
        b"SIP/2.0 200",
        b"INVITE",
    ] {
        let (o, _) = run(&e, &mut w, junk, CALLER);
        assert!(matches!(o, Outcome::Drop(_)), "{junk:?}");
    }
    let bad = invite("c1", "z9hG4bK-1").replace("Content-Length: 4", "Content-Length: 400");
    let (o, out) = run(&e, &mut w, bad.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    let mut idx = HeaderIndex::new();
    let m = sip::parse(&out, &mut idx).unwrap();
    assert_eq!(m.status(), Some(400));
    assert_eq!(&out[8..12], b"400 ");
    let top = Via::parse(m.elements(HeaderName::Via).next().unwrap().text).unwrap();
    assert_eq!(top.branch, Some(&b"z9hG4bK-1"[..]));
    assert_eq!(
        top.rport,
        sip::Rport::Port(6000),
        "RFC 3581 applies to 400s too"
    );
    assert_eq!(top.received, Some(&b"127.0.0.1"[..]));
}

#[test]
fn unparseable_acks_and_responses_are_never_answered() {
    let e = edge();
    let mut w = e.worker();
    let bad = invite("c2", "z9hG4bK-2").replace("Content-Length: 4", "Content-Length: 400");
    let rest = &bad[bad.find("\r\n").unwrap()..];
    // Blank space before the start line hides neither the ACK nor the
    // response; "SIP" in a status line may be in any case.
    for junk in [
        format!(" \t\r\n{}", bad.replacen("INVITE ", "ACK ", 1)),
        format!("sip/2.0 200 OK{rest}"),
        format!("  SIP/2.0 200 OK{rest}"),
    ] {
        let (o, _) = run(&e, &mut w, junk.as_bytes(), CALLER);
        assert!(matches!(o, Outcome::Drop(_)), "{junk:?}");
    }
    // A broken request behind blank space is still answered.
    let (o, out) = run(&e, &mut w, format!("  {bad}").as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    assert_eq!(&out[8..12], b"400 ");
}

#[test]
fn bare_line_ends_are_refused_and_never_copied_into_the_400() {
    let e = edge();
    let mut w = e.worker();
    // sipedge would read a Route where a strict server reads one Subject
    // line: neither reading may reach the pool.
    let smuggle = invite("lf", "z9hG4bK-lf").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSubject: a\nRoute: <sip:127.0.0.1:7000;lr>\r\n",
    );
    for text in [
        smuggle.clone(),
        smuggle.replace("a\nRoute", "a\rRoute"),
        invite("lf2", "z9hG4bK-lf2").replace("\r\n", "\n"),
    ] {
        let (o, out) = run(&e, &mut w, text.as_bytes(), CALLER);
        assert_eq!(sent_to(o), addr(CALLER), "{text:?}");
        assert!(
            out.starts_with(b"SIP/2.0 400 Line End Not CRLF\r\n"),
            "{text:?}"
        );
        assert_eq!(bare_line_ends(&out), 0, "{}", String::from_utf8_lossy(&out));
        assert_eq!(status(&out), 400);
    }
    assert_eq!(w.stats.get(Event::RequestForwarded), 0);
    // A response with one is dropped.
    let resp = answer(
        &run(&e, &mut w, invite("r", "z9hG4bK-r").as_bytes(), CALLER).1,
        180,
    );
    let bare = String::from_utf8(resp).unwrap().replacen("\r\n", "\n", 2);
    let (o, _) = run(&e, &mut w, bare.as_bytes(), DEST_A);
    assert_eq!(o, Outcome::Drop(Event::Malformed));
}

/// How many CR or LF bytes of `msg`'s start line and headers are not part
/// of a CRLF.
fn bare_line_ends(msg: &[u8]) -> usize {
    let head = &msg[..memchr::memmem::find(msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 4)];
    (0..head.len())
        .filter(|&i| match head[i] {
            b'\r' => head.get(i + 1) != Some(&b'\n'),
            b'\n' => i == 0 || head[i - 1] != b'\r',
            _ => false,
        })
        .count()
}

#[test]
fn routing_fields_must_be_well_formed_without_validate() {
    let e = edge();
    let mut w = e.worker();
    for (from, to, reason) in [
        ("branch=z9hG4bK-c", "branch=z9hG4bK\x0f-c", "Bad Via"),
        ("Call-ID: ctl", "Call-ID: c\x0ftl", "Bad Call-ID"),
        ("Call-ID: ctl", "Call-ID: c tl", "Bad Call-ID"),
        ("tag=a1", "tag=a\x01", "Bad From"),
        (
            "To: <sip:service@example.com>",
            "To: <sip:service@example.com>;tag=\x7f",
            "Bad To",
        ),
        ("To: <sip:service", "To: <sip:serv\x02ice", "Bad To"),
        ("CSeq: 1 INVITE", "CSeq: 1 INV\x03ITE", "Bad CSeq"),
    ] {
        let text = invite("ctl", "z9hG4bK-c").replacen(from, to, 1);
        assert_ne!(text, invite("ctl", "z9hG4bK-c"));
        let (o, out) = run(&e, &mut w, text.as_bytes(), CALLER);
        assert_eq!(sent_to(o), addr(CALLER), "{to:?}");
        let want = format!("SIP/2.0 400 {reason}\r\n");
        assert!(
            out.starts_with(want.as_bytes()),
            "{to:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    // A Route with a control byte in its URI.
    let text = invite("ctl", "z9hG4bK-c").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRoute: <sip:127.0.0.1:5070;\x0flr>\r\n",
    );
    let (_, out) = run(&e, &mut w, text.as_bytes(), CALLER);
    assert!(out.starts_with(b"SIP/2.0 400 Bad Route\r\n"));
    assert_eq!(w.stats.get(Event::RequestForwarded), 0);
}

#[test]
fn responses_with_a_duplicated_singleton_or_bad_fields_are_dropped() {
    let e = edge();
    let mut w = e.worker();
    let (_, fwd) = run(&e, &mut w, invite("dup", "z9hG4bK-d").as_bytes(), CALLER);
    let ok = String::from_utf8(answer(&fwd, 200)).unwrap();
    let (o, _) = run(&e, &mut w, ok.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CALLER), "the plain answer is relayed");
    let cseq = "CSeq: 1 INVITE\r\n";
    for bad in [
        ok.replace(cseq, &format!("CSeq: 1 INVITZ\r\n{cseq}")),
        ok.replace(cseq, &format!("{cseq}Call-ID: dup\r\n")),
        ok.replace(cseq, &format!("{cseq}To: <sip:x@example.com>;tag=9\r\n")),
        ok.replace(cseq, &format!("{cseq}From: <sip:x@example.com>;tag=9\r\n")),
        ok.replace(
            cseq,
            &format!("{cseq}Max-Forwards: 70\r\nMax-Forwards: 69\r\n"),
        ),
        ok.replace("Call-ID: dup", "Call-ID: d\x0fup"),
        ok.replace(cseq, "CSeq: one INVITE\r\n"),
    ] {
        let (o, _) = run(&e, &mut w, bad.as_bytes(), DEST_A);
        assert_eq!(o, Outcome::Drop(Event::BadResponse), "{bad:?}");
    }
    assert_eq!(w.stats.get(Event::BadResponse), 7);
}

#[test]
fn a_garbled_response_from_a_destination_is_never_answered() {
    // The destination shares the edge's address: a 400 to the top Via
    // would reach the edge itself and be relayed to the caller as the
    // final answer of its INVITE.
    let e = edge();
    let mut w = e.worker();
    let (_, fwd) = run(&e, &mut w, invite("g", "z9hG4bK-g").as_bytes(), CALLER);
    let ok = String::from_utf8(answer(&fwd, 200)).unwrap();
    let rest = &ok[ok.find("\r\n").unwrap()..];
    for garbled in [
        format!("\u{fe} 200 OK{rest}"),
        format!("200 OK{rest}"),
        format!("XIP/2.0 200 OK{rest}"),
    ] {
        let mut bytes = garbled.into_bytes();
        if bytes.starts_with("\u{fe}".as_bytes()) {
            bytes[..2].copy_from_slice(b"\xff\xfe");
        }
        let (o, _) = run(&e, &mut w, &bytes, DEST_A);
        assert_eq!(
            o,
            Outcome::Drop(Event::Malformed),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // A broken request whose Via names the edge is not answered either.
    let broken = String::from_utf8(fwd)
        .unwrap()
        .replace("Content-Length: 4", "Content-Length: 99");
    let (o, _) = run(&e, &mut w, broken.as_bytes(), DEST_A);
    assert_eq!(o, Outcome::Drop(Event::OwnVia));
    assert_eq!(w.stats.get(Event::Replied), 0);
}

#[test]
fn a_response_whose_loop_hash_digits_were_changed_is_dropped() {
    let e = edge();
    let mut w = e.worker();
    let (_, fwd) = run(&e, &mut w, invite("lh", "z9hG4bK-lh").as_bytes(), CALLER);
    let resp = answer(&fwd, 180);
    let dot = memchr::memmem::find(&resp, b"z9hG4bKsE").unwrap() + 9 + 16;
    assert_eq!(resp[dot], b'.');
    for i in dot + 1..dot + 9 {
        let mut forged = resp.clone();
        forged[i] = if forged[i] == b'0' { b'1' } else { b'0' };
        let (o, _) = run(&e, &mut w, &forged, DEST_A);
        assert_eq!(o, Outcome::Drop(Event::BadToken), "digit {}", i - dot);
    }
    // A hex digit in upper case reads as the same number, but is not how
    // sipedge writes a branch: not ours.
    let mut upper = resp.clone();
    let letter = (dot - 16..dot)
        .find(|&i| upper[i].is_ascii_alphabetic())
        .expect("a letter");
    upper[letter] = upper[letter].to_ascii_uppercase();
    let (o, _) = run(&e, &mut w, &upper, DEST_A);
    assert_eq!(o, Outcome::Drop(Event::ResponseNotOurs));
    // An attempt suffix added to a first attempt's branch.
    let mut suffixed = resp[..dot + 9].to_vec();
    suffixed.extend_from_slice(b".1");
    suffixed.extend_from_slice(&resp[dot + 9..]);
    let (o, _) = run(&e, &mut w, &suffixed, DEST_A);
    assert_eq!(o, Outcome::Drop(Event::BadToken));
    let (o, _) = run(&e, &mut w, &resp, DEST_A);
    assert_eq!(sent_to(o), addr(CALLER), "the answer as sent is relayed");
}

#[test]
fn hash_call_id_sticks_and_first_takes_the_first() {
    let e = edge_with("hash-call-id", "");
    let mut w = e.worker();
    for i in 0..50 {
        let call = format!("call-{i}");
        let (a, _) = run(
            &e,
            &mut w,
            invite(&call, &format!("z9hG4bK-x{i}")).as_bytes(),
            CALLER,
        );
        let (b, _) = run(
            &e,
            &mut w,
            invite(&call, &format!("z9hG4bK-y{i}")).as_bytes(),
            CALLER,
        );
        assert_eq!(sent_to(a), sent_to(b));
    }
    let e = edge_with("first", "");
    let mut w = e.worker();
    for i in 0..20 {
        let (o, _) = run(
            &e,
            &mut w,
            invite(&format!("f{i}"), &format!("z9hG4bK-f{i}")).as_bytes(),
            CALLER,
        );
        assert_eq!(sent_to(o), addr(DEST_A));
    }
}

/// Every message of the shared corpus, as MANIFEST.tsv says a proxy must
/// handle it: forwarded to the pool, rejected, or absorbed.
#[test]
fn conformance_corpus_through_the_pipeline() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance");
    let e = edge_with("hash-call-id", "\"ping-replies\"");
    let mut failures = Vec::new();
    let mut n = 0;
    for set in ["torture", "realworld"] {
        let manifest =
            std::fs::read_to_string(root.join(set).join("MANIFEST.tsv")).expect("manifest");
        for line in manifest.lines().skip(1).filter(|l| !l.is_empty()) {
            let c: Vec<&str> = line.split('\t').collect();
            let (file, expect, also) = (c[0], c[5], c[6]);
            let bytes = std::fs::read(root.join(set).join(file)).expect("corpus file");
            let mut w = e.worker();
            let o = w.handle(
                &e,
                &bytes,
                crate::flow::Flow::udp(0, addr("192.0.2.200:5060")),
                e.epoch() + std::time::Duration::from_secs(1),
            );
            n += 1;
            let got = match o {
                Outcome::Send(crate::flow::Flow { remote: to, .. })
                    if e.destinations().iter().any(|d| d.addr == to) =>
                {
                    "forward".to_string()
                }
                Outcome::Send(_) => match status(w.output()) {
                    200..=299 => "answer".to_string(),
                    s => format!("reject {s}"),
                },
                Outcome::Drop(ev) => format!("drop {}", ev.name()),
                Outcome::Queued => "queued by a stateless edge".to_string(),
                Outcome::Resolve => "waits for DNS".to_string(),
            };
            let meets = |want: &str| match want {
                "forward" => got == "forward",
                "reject" => got.starts_with("reject") || got.starts_with("drop"),
                "answer" => got == "answer",
                "absorb" => got.starts_with("drop"),
                _ => false,
            };
            let ok = meets(expect) || (also != "-" && meets(also));
            if !ok {
                failures.push(format!("{file}: expected {expect}, got {got}"));
            }
        }
    }
    assert!(n >= 69);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The response a destination would send to a forwarded request: its Via,
/// From, To, Call-ID, CSeq and Record-Route copied, with `code`.
fn answer(fwd: &[u8], code: u16) -> Vec<u8> {
    let mut idx = HeaderIndex::new();
    let m = sip::parse(fwd, &mut idx).unwrap();
    let mut resp = format!("SIP/2.0 {code} Whatever\r\n").into_bytes();
    for h in m.headers() {
        if matches!(
            h.name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::RecordRoute
        ) {
            resp.extend_from_slice(&fwd[h.line.range()]);
        }
    }
    resp.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    resp
}

#[test]
fn new_calls_avoid_destinations_the_health_view_marks_unusable() {
    let e = edge_with("hash-call-id", "");
    let mut w = e.worker();
    e.health().set_usable(0, false);
    for i in 0..50 {
        let (o, _) = run(
            &e,
            &mut w,
            invite(&format!("h{i}"), "z9hG4bK-h").as_bytes(),
            CALLER,
        );
        assert_eq!(sent_to(o), addr(DEST_B), "call {i} went to the unusable A");
    }
    e.health().set_usable(1, false);
    let (o, out) = run(&e, &mut w, invite("none", "z9hG4bK-n").as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CALLER));
    assert_eq!(status(&out), 503, "nothing usable: 503 to the caller");
    e.health().set_usable(0, true);
    for i in 0..50 {
        let (o, _) = run(
            &e,
            &mut w,
            invite(&format!("r{i}"), "z9hG4bK-r").as_bytes(),
            CALLER,
        );
        assert_eq!(sent_to(o), addr(DEST_A), "B is unusable now");
    }
}

#[test]
fn forwarded_requests_and_verified_answers_feed_the_passive_counters() {
    let e = edge_with("first", "");
    let mut w = e.worker();
    let (o, fwd) = run(&e, &mut w, invite("p1", "z9hG4bK-p1").as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    let t = e.health().totals();
    assert_eq!((t[0].calls, t[0].requests, t[0].expecting), (1, 1, 1));
    assert_eq!(t[1], Default::default(), "nothing went to B");

    // 100 from A: a reply, not bad; 503 from A: a bad final reply.
    run(&e, &mut w, &answer(&fwd, 100), DEST_A);
    run(&e, &mut w, &answer(&fwd, 503), DEST_A);
    let t = e.health().totals();
    assert_eq!((t[0].replies, t[0].bad), (2, 1));

    // The same 503 sent from an address that is not A counts for nobody,
    // and a forged branch is not evidence either.
    run(&e, &mut w, &answer(&fwd, 503), "127.0.0.1:6999");
    let text = String::from_utf8(answer(&fwd, 500)).unwrap();
    let pos = text.find("z9hG4bKsE").unwrap() + 9;
    let mut forged = text.into_bytes();
    forged[pos] = if forged[pos] == b'0' { b'1' } else { b'0' };
    run(&e, &mut w, &forged, DEST_A);
    let t = e.health().totals();
    assert_eq!((t[0].replies, t[0].bad), (2, 1));

    // An ACK expects no reply.
    let ack = invite("p1", "z9hG4bK-p1")
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    let (o, _) = run(&e, &mut w, ack.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    let t = e.health().totals();
    assert_eq!((t[0].calls, t[0].requests, t[0].expecting), (1, 2, 1));
}

mod explain;
mod flows;
mod hiding;
mod nat;
mod normalize;
mod outbound;
mod records;
mod registrar;
mod registrations;
mod security;
mod tokens;
