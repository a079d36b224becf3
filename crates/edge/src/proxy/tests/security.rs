//! The security stage: flood counting, bans, and what a banned source may
//! still send (the in-dialog requests of the calls it is in).

use super::*;
use crate::bans::Reason;
use std::time::{Duration, Instant};

const FLOODER: &str = "127.0.0.2:6000";

fn at(e: &Edge, w: &mut Worker, msg: &[u8], src: &str, now: Instant) -> Outcome {
    w.handle(e, msg, crate::flow::Flow::udp(0, addr(src)), now)
}

fn invite_from(src: &str, call: &str) -> String {
    invite(call, &format!("z9hG4bK-{call}")).replace(CALLER, src)
}

#[test]
fn a_flooding_source_is_dropped_then_banned_and_others_go_on() {
    let e = edge_with_keys(
        "first",
        "",
        "flood_threshold = 5\nflood_window = 2\nban_time = 60",
    );
    let mut w = e.worker();
    let t0 = e.epoch() + Duration::from_secs(10);
    for n in 0..5 {
        let o = at(
            &e,
            &mut w,
            invite_from(FLOODER, &format!("f{n}")).as_bytes(),
            FLOODER,
            t0,
        );
        assert!(matches!(o, Outcome::Send(_)), "request {n}: {o:?}");
    }
    let o = at(
        &e,
        &mut w,
        invite_from(FLOODER, "f5").as_bytes(),
        FLOODER,
        t0,
    );
    assert_eq!(o, Outcome::Drop(Event::Blocked), "the sixth in the window");
    // Responses and keepalives are not counted, nor is the pool.
    assert_eq!(e.bans().find(addr(FLOODER).ip(), t0), None, "queued");
    assert_eq!(e.bans().apply(t0).added.len(), 1);
    assert_eq!(e.bans().find(addr(FLOODER).ip(), t0), Some(Reason::Flood));
    // The next window: still banned, whatever it sends.
    let t1 = t0 + Duration::from_secs(3);
    let o = at(
        &e,
        &mut w,
        invite_from(FLOODER, "f6").as_bytes(),
        FLOODER,
        t1,
    );
    assert_eq!(o, Outcome::Drop(Event::Blocked));
    // Another source of the same host's neighbours goes on.
    let o = at(&e, &mut w, invite_from(CALLER, "ok").as_bytes(), CALLER, t1);
    assert!(matches!(o, Outcome::Send(_)), "{o:?}");
    let counts = e.blocked_counts();
    assert_eq!(counts[crate::hygiene::Block::Flood.index()].1, 2);
    // The ban runs out.
    let t2 = t0 + Duration::from_secs(61);
    e.bans().apply(t2);
    let o = at(
        &e,
        &mut w,
        invite_from(FLOODER, "f7").as_bytes(),
        FLOODER,
        t2,
    );
    assert!(matches!(o, Outcome::Send(_)), "{o:?}");
}

#[test]
fn the_pool_and_allowed_sources_are_never_counted() {
    let e = edge_with_keys(
        "first",
        "",
        "flood_threshold = 2\nallow = [\"127.0.0.3/32\"]",
    );
    let mut w = e.worker();
    let t0 = e.epoch() + Duration::from_secs(10);
    for n in 0..10 {
        let o = at(
            &e,
            &mut w,
            invite_from("127.0.0.3:6000", &format!("a{n}")).as_bytes(),
            "127.0.0.3:6000",
            t0,
        );
        assert!(matches!(o, Outcome::Send(_)), "allowed, request {n}: {o:?}");
        // A pool server's own new requests go out (`outbound_from` is not
        // needed for the count: it is not counted).
        let bye = bye_from(DEST_A);
        let o = at(&e, &mut w, bye.as_bytes(), DEST_A, t0);
        assert_ne!(o, Outcome::Drop(Event::Blocked), "pool, request {n}");
    }
    assert!(e.bans().apply(t0).added.is_empty());
}

#[test]
fn a_banned_phone_keeps_its_calls_but_starts_none() {
    let e = edge_with_keys("first", "", "");
    let mut w = e.worker();
    let t0 = e.epoch() + Duration::from_secs(10);
    // A call set up before the ban: its Record-Route carries the token.
    let o = at(
        &e,
        &mut w,
        invite_from(FLOODER, "c1").as_bytes(),
        FLOODER,
        t0,
    );
    assert!(matches!(o, Outcome::Send(_)), "{o:?}");
    let rr = {
        let mut idx = HeaderIndex::new();
        header(w.output(), HeaderName::RecordRoute, &mut idx)[0].clone()
    };
    e.bans().ban(
        addr(FLOODER).ip(),
        Duration::from_secs(60),
        Reason::Admin,
        None,
        t0,
    );
    e.bans().apply(t0);

    let in_dialog = |route: &str| {
        format!(
            "BYE sip:service@{DEST_A} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {FLOODER};branch=z9hG4bK-bye\r\n{route}Max-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:service@example.com>;tag=b1\r\n\
             Call-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let bye = in_dialog(&format!("Route: {rr}\r\n"));
    let o = at(&e, &mut w, bye.as_bytes(), FLOODER, t0);
    assert_eq!(sent_to(o), addr(DEST_A), "the call's BYE goes through");
    // Without the edge's token, or with a forged one: dropped.
    let forged = rr.replacen("<sip:", "<sip:x", 1);
    for route in [String::new(), format!("Route: {forged}\r\n")] {
        let o = at(&e, &mut w, in_dialog(&route).as_bytes(), FLOODER, t0);
        assert_eq!(o, Outcome::Drop(Event::Blocked), "{route}");
    }
    let o = at(
        &e,
        &mut w,
        invite_from(FLOODER, "c2").as_bytes(),
        FLOODER,
        t0,
    );
    assert_eq!(o, Outcome::Drop(Event::Blocked), "no new call");
    assert_eq!(
        e.blocked_counts()[crate::hygiene::Block::Banned.index()].1,
        3
    );
    // Connections from it are refused at accept.
    assert!(e.refuses(addr(FLOODER).ip(), t0));
    assert!(!e.refuses(addr(CALLER).ip(), t0));
}
