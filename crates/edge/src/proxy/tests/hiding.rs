//! Topology hiding: nothing the edge sends out names a pool server (its
//! address, 127.0.0.1:5070, or a pool proxy's, 10.1.1.1), and whatever
//! comes back is restored from the message alone — by another instance
//! with the same secret too.

use super::*;

/// A proxy of the pool, in front of the server that answers.
const POOL_PROXY: &str = "10.1.1.1";
const OUTSIDE: &str = "127.0.0.9:5080";

fn hiding_edge(extra: &str) -> Edge {
    edge_with_keys("first", "", &format!("topology_hiding = true\n{extra}"))
}

/// What names the pool in `msg`, if anything.
fn leaks(msg: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(msg);
    [DEST_A, DEST_B, POOL_PROXY, ":5070", ":5071"]
        .into_iter()
        .filter(|p| text.contains(p))
        .collect()
}

fn values(msg: &[u8], name: HeaderName) -> Vec<String> {
    let mut idx = HeaderIndex::new();
    header(msg, name, &mut idx)
}

/// The pool's 200 to forwarded INVITE `fwd`: the pool proxy's
/// Record-Route on top of the edge's, the server's Contact.
fn pool_answer(fwd: &[u8]) -> Vec<u8> {
    let ok = String::from_utf8(answer(fwd, 200)).expect("utf-8");
    ok.replacen(
        "Record-Route: ",
        &format!("Record-Route: <sip:{POOL_PROXY};lr>\r\nRecord-Route: "),
        1,
    )
    .replacen(
        "Content-Length",
        &format!("Contact: <sip:pool@{DEST_A}>\r\nContent-Length"),
        1,
    )
    .replacen(
        "To: <sip:service@example.com>",
        "To: <sip:service@example.com>;tag=p1",
        1,
    )
    .into_bytes()
}

/// A request inside the call, from the caller, along `rr` (the
/// Record-Route it got, reversed) to `target` (the Contact it got).
fn from_caller(method: &str, target: &str, rr: &[String]) -> String {
    let routes: String = rr.iter().rev().map(|r| format!("Route: {r}\r\n")).collect();
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-in-{method}\r\n\
         {routes}Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:service@example.com>;tag=p1\r\n\
         Call-ID: c1\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn uri_of(contact: &str) -> &str {
    contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
}

#[test]
fn a_call_into_the_pool_shows_the_outside_only_the_edge() {
    let e = hiding_edge("");
    let mut w = e.worker();
    let (o, fwd) = run(&e, &mut w, invite("c1", "z9hG4bK-1").as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    // The pool's answer leaves with the edge's Contact and Record-Route only.
    let (o, out) = run(&e, &mut w, &pool_answer(&fwd), DEST_A);
    assert_eq!(sent_to(o), addr(CALLER));
    assert!(
        leaks(&out).is_empty(),
        "{:?}\n{}",
        leaks(&out),
        String::from_utf8_lossy(&out)
    );
    let contact = values(&out, HeaderName::Contact);
    assert_eq!(contact.len(), 1);
    assert!(contact[0].starts_with("<sip:") && contact[0].ends_with(&format!("@{EDGE}>")));
    let rr = values(&out, HeaderName::RecordRoute);
    assert_eq!(rr.len(), 1, "{rr:?}");
    assert!(rr[0].contains(";lr;thr="), "{rr:?}");

    // The caller's BYE, on this instance and on another with the same
    // secret: to the server's Contact, through the pool's proxy.
    let other = hiding_edge("");
    let bye = from_caller("BYE", uri_of(&contact[0]), &rr);
    for (edge, label) in [(&e, "this instance"), (&other, "another instance")] {
        let mut w = edge.worker();
        let (o, into) = run(edge, &mut w, bye.as_bytes(), CALLER);
        assert_eq!(sent_to(o), addr(DEST_A), "{label}");
        let text = String::from_utf8_lossy(&into);
        assert!(
            text.starts_with(&format!("BYE sip:pool@{DEST_A} SIP/2.0\r\n")),
            "{label}: {text}"
        );
        assert_eq!(
            values(&into, HeaderName::Route),
            [format!("<sip:{POOL_PROXY};lr>")],
            "{label}: {text}"
        );
    }
}

#[test]
fn requests_from_the_pool_leave_without_its_vias_and_their_answers_get_them_back() {
    for transactional in [false, true] {
        let e = if transactional {
            hiding_edge("insertion = \"transactional\"")
        } else {
            hiding_edge("")
        };
        let mut w = e.worker();
        // The pool calls out through the edge, via a proxy of its own.
        let invite = format!(
            "INVITE sip:bob@{OUTSIDE} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-pool-1\r\n\
             Via: SIP/2.0/UDP {POOL_PROXY}:5060;branch=z9hG4bK-proxy-1\r\n\
             Record-Route: <sip:{POOL_PROXY};lr>\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:pbx@example.com>;tag=x1\r\n\
             To: <sip:bob@example.com>\r\n\
             Call-ID: out-1\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:pbx@{DEST_A}>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let o = w.handle(
            &e,
            invite.as_bytes(),
            crate::flow::Flow::udp(0, addr(DEST_A)),
            e.epoch() + std::time::Duration::from_secs(100),
        );
        let out = match o {
            Outcome::Send(f) => {
                assert_eq!(f.remote, addr(OUTSIDE));
                w.output().to_vec()
            }
            Outcome::Queued => {
                let sent: Vec<_> = w
                    .sends()
                    .iter()
                    .map(|(b, f)| (b.to_vec(), f.remote))
                    .collect();
                let (bytes, to) = sent
                    .into_iter()
                    .find(|(b, _)| b.starts_with(b"INVITE"))
                    .expect("the INVITE sent");
                assert_eq!(to, addr(OUTSIDE));
                bytes
            }
            o => panic!("{o:?}"),
        };
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(leaks(&out).is_empty(), "{:?}\n{text}", leaks(&out));
        assert_eq!(values(&out, HeaderName::Via).len(), 1, "{text}");
        assert!(values(&out, HeaderName::Via)[0].contains(";th="), "{text}");
        assert!(
            values(&out, HeaderName::RecordRoute)[0].contains(";thr="),
            "{text}"
        );

        // The callee answers: the pool gets its Vias and its proxy's
        // Record-Route entry back.
        let ok = String::from_utf8(answer(&out, 200))
            .expect("utf-8")
            .replacen(
                "To: <sip:bob@example.com>",
                "To: <sip:bob@example.com>;tag=b9",
                1,
            )
            .replacen(
                "Content-Length",
                &format!("Contact: <sip:bob@{OUTSIDE}>\r\nContent-Length"),
                1,
            );
        let o = w.handle(
            &e,
            ok.as_bytes(),
            crate::flow::Flow::udp(0, addr(OUTSIDE)),
            e.epoch() + std::time::Duration::from_secs(100),
        );
        let (to, back) = match o {
            Outcome::Send(f) => (f.remote, w.output().to_vec()),
            Outcome::Queued => {
                let (b, f) = w.sends().iter().last().expect("relayed");
                (f.remote, b.to_vec())
            }
            o => panic!("transactional {transactional}: {o:?}"),
        };
        assert_eq!(to, addr(DEST_A), "transactional {transactional}");
        let vias = values(&back, HeaderName::Via);
        assert_eq!(
            vias,
            [
                format!("SIP/2.0/UDP {DEST_A};branch=z9hG4bK-pool-1"),
                format!("SIP/2.0/UDP {POOL_PROXY}:5060;branch=z9hG4bK-proxy-1"),
            ],
            "transactional {transactional}: {}",
            String::from_utf8_lossy(&back)
        );
        let rr = values(&back, HeaderName::RecordRoute);
        assert_eq!(rr.len(), 2, "{rr:?}");
        assert_eq!(rr[1], format!("<sip:{POOL_PROXY};lr>"));
    }
}

#[test]
fn a_forged_or_foreign_blob_restores_nothing() {
    let e = hiding_edge("");
    let mut w = e.worker();
    let (_, fwd) = run(&e, &mut w, invite("c1", "z9hG4bK-1").as_bytes(), CALLER);
    let (_, out) = run(&e, &mut w, &pool_answer(&fwd), DEST_A);
    let contact = values(&out, HeaderName::Contact)[0].clone();
    let rr = values(&out, HeaderName::RecordRoute);
    // A Contact sealed under another secret is not opened: the request
    // keeps the Request-URI it came with.
    let secret = "another secret entirely, 0123";
    let cfg = config::parse(
        &format!(
            "[node]\nid = \"t\"\nsecret = \"{secret}\"\n[[edge]]\n\
             listen = [\"udp:{EDGE}\"]\ntopology_hiding = true\n\
             [[edge.destination]]\nuri = \"sip:{DEST_A}\"\n"
        ),
        "t.toml",
    )
    .expect("config");
    let keys = crate::keyring::KeyRing::single(secret.as_bytes());
    let stranger = Edge::new(&cfg.edges[0], &cfg.node, &keys);
    let mut sw = stranger.worker();
    let bye = from_caller("BYE", uri_of(&contact), &rr);
    let (o, _) = run(&stranger, &mut sw, bye.as_bytes(), CALLER);
    // Its Record-Route token does not open either: refused, not followed.
    assert_eq!(sent_to(o), addr(CALLER));
    // An altered blob on the right edge: the Request-URI stays as sent.
    let tampered = from_caller("BYE", &uri_of(&contact).replacen('@', "x@", 1), &rr);
    let (_, into) = run(&e, &mut w, tampered.as_bytes(), CALLER);
    let text = String::from_utf8_lossy(&into);
    assert!(
        !text.starts_with(&format!("BYE sip:pool@{DEST_A}")),
        "{text}"
    );
}

#[test]
fn the_contacts_of_a_registration_answer_are_the_phones_own() {
    let e = hiding_edge("");
    let mut w = e.worker();
    let register = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-r1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=r1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:alice@{CALLER}>\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, fwd) = run(&e, &mut w, register.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    let ok = String::from_utf8(answer(&fwd, 200))
        .expect("utf-8")
        .replacen(
            "Content-Length",
            &format!("Contact: <sip:alice@{CALLER}>;expires=3600\r\nContent-Length"),
            1,
        );
    let (_, out) = run(&e, &mut w, ok.as_bytes(), DEST_A);
    assert_eq!(
        values(&out, HeaderName::Contact),
        [format!("<sip:alice@{CALLER}>;expires=3600")]
    );
}

#[test]
fn the_pools_entries_come_back_after_both_of_the_edges_own() {
    // Listening on UDP and TCP: a pool call out over TCP is
    // Record-Routed once per side (RFC 5658).
    let text = format!(
        "[node]\nid = \"t\"\nsecret = \"unit-test-secret-0123456789\"\n[[edge]]\n\
         listen = [\"udp:{EDGE}\", \"tcp:{EDGE}\"]\ntopology_hiding = true\n\
         [[edge.destination]]\nuri = \"sip:{DEST_A}\"\n"
    );
    let cfg = config::parse(&text, "t.toml").expect("config");
    let e = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(SECRET),
    );
    let mut w = e.worker();
    let invite = format!(
        "INVITE sip:bob@{OUTSIDE};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-pool-2\r\n\
         Record-Route: <sip:{POOL_PROXY};lr>\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:pbx@example.com>;tag=x2\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: out-2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, out) = run(&e, &mut w, invite.as_bytes(), DEST_A);
    let Outcome::Send(flow) = o else {
        panic!("{o:?}");
    };
    assert_eq!(flow.transport, Transport::Tcp);
    let rr = values(&out, HeaderName::RecordRoute);
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(
        rr[0].contains("transport=tcp") && rr[0].contains(";thr="),
        "{rr:?}"
    );
    let ok = String::from_utf8(answer(&out, 200))
        .expect("utf-8")
        .replacen(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=b2",
            1,
        );
    let from = crate::flow::Flow {
        transport: Transport::Tcp,
        ..crate::flow::Flow::udp(1, addr(OUTSIDE))
    };
    let o = w.handle(
        &e,
        ok.as_bytes(),
        from,
        e.epoch() + std::time::Duration::from_secs(100),
    );
    assert_eq!(sent_to(o), addr(DEST_A));
    let back = values(w.output(), HeaderName::RecordRoute);
    assert_eq!(back.len(), 3, "{back:?}");
    assert_eq!(back[..2], rr[..]);
    assert_eq!(back[2], format!("<sip:{POOL_PROXY};lr>"));
}
