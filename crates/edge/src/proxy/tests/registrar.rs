//! The built-in registrar in the pipeline: REGISTERs answered by the
//! edge, requests from the pool sent to the registered contact at its
//! flow, keepalives and their answers.

use super::*;
use crate::flow::Flow;
use std::time::Duration;

fn registrar_edge(allow: &str) -> Edge {
    edge_with_keys(
        "weighted-round-robin",
        "\"registrations\"",
        &format!("[edge.registrar]\nallow = [\"{allow}\"]\nkeepalive_interval = 30\nkeepalive_failures = 2\n"),
    )
}

fn register(call: &str, cseq: u32, contact: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-r{call}{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=r{call}\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: {call}\r\nCSeq: {cseq} REGISTER\r\n\
         {contact}Content-Length: 0\r\n\r\n"
    )
}

/// An INVITE the pool sends to `uri` through the edge.
fn invite_from_pool(uri: &str) -> String {
    format!(
        "INVITE {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-p1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:pbx@example.com>;tag=p1\r\n\
         To: <{uri}>\r\n\
         Call-ID: pool-call\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:pbx@{DEST_A}>\r\nContent-Length: 0\r\n\r\n"
    )
}

fn at(e: &Edge, secs: u64) -> std::time::Instant {
    e.epoch() + Duration::from_secs(secs)
}

#[test]
fn a_register_is_answered_by_the_edge_and_the_pools_invite_reaches_the_phone() {
    let e = registrar_edge("127.0.0.0/8");
    let mut w = e.worker();
    // The phone's Contact is private; its REGISTER comes from CALLER (its
    // NAT binding).
    let (o, out) = run(
        &e,
        &mut w,
        register(
            "c1",
            1,
            "Contact: <sip:alice@192.168.1.20:5060>;expires=600\r\n",
        )
        .as_bytes(),
        CALLER,
    );
    assert_eq!(sent_to(o), addr(CALLER), "answered, not forwarded");
    assert_eq!(status(&out), 200);
    let mut idx = HeaderIndex::new();
    assert_eq!(
        header(&out, HeaderName::Contact, &mut idx),
        ["<sip:alice@192.168.1.20:5060>;expires=600"]
    );
    assert_eq!(w.stats.get(Event::Registered), 1);

    // The pool calls the address of record: the INVITE goes to the NAT
    // binding, its Request-URI the contact, with a sticky token.
    let (o, out) = run(
        &e,
        &mut w,
        invite_from_pool("sip:alice@example.com").as_bytes(),
        DEST_A,
    );
    assert_eq!(sent_to(o), addr(CALLER));
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("INVITE sip:alice@192.168.1.20:5060 SIP/2.0\r\n"),
        "{text}"
    );
    let mut idx = HeaderIndex::new();
    let rr = header(&out, HeaderName::RecordRoute, &mut idx);
    let token = untoken(&e, &rr[0]).1.unwrap();
    assert!(token.sticky, "the dialog's requests follow the binding");
    assert_eq!(token.outside.remote, addr(CALLER));
    assert_eq!(token.pool.map(|p| p.1), Some(addr(DEST_A)));
    assert_eq!(w.stats.get(Event::ToBinding), 1);

    // Its CANCEL follows it.
    let cancel = invite_from_pool("sip:alice@example.com")
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    let (o, _) = run(&e, &mut w, cancel.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CALLER));

    // So does the ACK of a non-2xx answer (it repeats the INVITE's
    // Request-URI, with the phone's To tag).
    let ack = invite_from_pool("sip:alice@example.com")
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK")
        .replace(
            "To: <sip:alice@example.com>",
            "To: <sip:alice@example.com>;tag=busy",
        );
    let (o, _) = run(&e, &mut w, ack.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CALLER));

    // Unregistered, at the edge's own address: 480. Elsewhere: routed as
    // before (here: a DNS name to look up).
    let (o, out) = run(
        &e,
        &mut w,
        invite_from_pool(&format!("sip:bob@{EDGE}")).as_bytes(),
        DEST_A,
    );
    assert_eq!(sent_to(o), addr(DEST_A));
    assert_eq!(status(&out), 480);
    let (o, _) = run(
        &e,
        &mut w,
        invite_from_pool("sip:bob@example.com").as_bytes(),
        DEST_A,
    );
    assert_eq!(o, Outcome::Resolve);
    // Unregistering ends it.
    run(
        &e,
        &mut w,
        register(
            "c1",
            2,
            "Contact: <sip:alice@192.168.1.20:5060>;expires=0\r\n",
        )
        .as_bytes(),
        CALLER,
    );
    let (_, out) = run(
        &e,
        &mut w,
        invite_from_pool(&format!("sip:alice@{EDGE}")).as_bytes(),
        DEST_A,
    );
    assert_eq!(status(&out), 480);
}

#[test]
fn with_domains_only_their_addresses_of_record_are_looked_up() {
    let e = edge_with_keys(
        "weighted-round-robin",
        "\"registrations\"",
        "[edge.registrar]\nallow = [\"127.0.0.0/8\"]\ndomains = [\"example.com\"]\n",
    );
    let mut w = e.worker();
    run(
        &e,
        &mut w,
        register("c1", 1, "Contact: <sip:alice@192.168.1.20:5060>\r\n").as_bytes(),
        CALLER,
    );
    let (o, _) = run(
        &e,
        &mut w,
        invite_from_pool("sip:alice@example.com").as_bytes(),
        DEST_A,
    );
    assert_eq!(sent_to(o), addr(CALLER));
    // Another domain is not the registrar's: routed as before (a name to
    // look up), never captured.
    let (o, _) = run(
        &e,
        &mut w,
        invite_from_pool("sip:alice@carrier.example").as_bytes(),
        DEST_A,
    );
    assert_eq!(o, Outcome::Resolve);
    assert_eq!(w.stats.get(Event::ToBinding), 1);
}

#[test]
fn refusals_carry_their_reasons() {
    let e = registrar_edge("10.0.0.0/8");
    let mut w = e.worker();
    let (_, out) = run(
        &e,
        &mut w,
        register("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n").as_bytes(),
        CALLER,
    );
    assert_eq!(status(&out), 403, "{}", String::from_utf8_lossy(&out));
    let e = registrar_edge("127.0.0.0/8");
    let (_, out) = run(
        &e,
        &mut w,
        register("c1", 1, "Contact: <sip:a@10.0.0.1>;expires=5\r\n").as_bytes(),
        CALLER,
    );
    assert_eq!(status(&out), 423);
    let mut idx = HeaderIndex::new();
    assert_eq!(header(&out, HeaderName::MinExpires, &mut idx), ["60"]);
    assert_eq!(w.stats.get(Event::RegisterRefused), 2);
    // A REGISTER from the pool is not the registrar's: it passes through.
    let (o, _) = run(
        &e,
        &mut w,
        register("c2", 1, "Contact: <sip:a@10.0.0.1>\r\n").as_bytes(),
        DEST_A,
    );
    assert!(matches!(o, Outcome::Send(_) | Outcome::Resolve), "{o:?}");
    assert_eq!(w.stats.get(Event::Registered), 0);
}

#[test]
fn keepalives_go_to_the_binding_and_their_answers_are_counted() {
    let e = registrar_edge("127.0.0.0/8");
    let mut w = e.worker();
    run(
        &e,
        &mut w,
        register("c1", 1, "Contact: <sip:alice@192.168.1.20:5060>\r\n").as_bytes(),
        CALLER,
    );
    // The registration was at 100 s: nothing due before 130 s.
    assert_eq!(w.keepalives(&e, at(&e, 129)), 0);
    assert_eq!(w.keepalives(&e, at(&e, 130)), 1);
    let (options, to) = w
        .sends()
        .iter()
        .next()
        .map(|(b, f)| (b.to_vec(), f))
        .unwrap();
    assert_eq!(to, Flow::udp(0, addr(CALLER)));
    let text = String::from_utf8_lossy(&options).into_owned();
    assert!(
        text.starts_with("OPTIONS sip:alice@192.168.1.20:5060 SIP/2.0\r\n"),
        "{text}"
    );
    // The phone answers (its 200 echoes Via, To, Call-ID, CSeq).
    let mut idx = HeaderIndex::new();
    let m = sip::parse(&options, &mut idx).unwrap();
    let mut answer = b"SIP/2.0 200 OK\r\n".to_vec();
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        let h = m.first(name).unwrap();
        answer.extend_from_slice(&options[h.line.range()]);
    }
    answer.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let (o, _) = run(&e, &mut w, &answer, CALLER);
    assert_eq!(o, Outcome::Drop(Event::KeepaliveAnswered));
    // A forged answer (another MAC) counts for nothing.
    let text = String::from_utf8(answer.clone()).unwrap();
    let forged = text.replacen("Call-ID: ka.", "Call-ID: ka.f", 1);
    let (o, _) = run(&e, &mut w, forged.as_bytes(), CALLER);
    assert_eq!(o, Outcome::Drop(Event::ResponseNotOurs));
    // Answered at 130: two more unanswered (160, 190) and it is gone at 220.
    assert_eq!(w.keepalives(&e, at(&e, 160)), 1);
    assert_eq!(w.keepalives(&e, at(&e, 190)), 1);
    assert_eq!(w.keepalives(&e, at(&e, 220)), 0);
    assert_eq!(w.stats.get(Event::BindingLost), 1);
    assert_eq!(e.registrar().unwrap().store().count(), (0, 0));
}
