//! The NAT stage: requests from outside are tested (`nat_test`) and
//! counted per test; requests from the pool are not.

use super::*;
use crate::nat::NatTest;

fn behind_nat(via: &str, contact: &str) -> String {
    invite("n1", "z9hG4bKnat1")
        .replace(
            &format!("Via: SIP/2.0/UDP {CALLER};"),
            &format!("Via: SIP/2.0/UDP {via};"),
        )
        .replace(
            &format!("Contact: <sip:alice@{CALLER}>"),
            &format!("Contact: <sip:alice@{contact}>"),
        )
}

#[test]
fn requests_from_outside_are_tested_and_counted_per_test() {
    let e = edge_with_keys("weighted-round-robin", "", "nat_test = 19");
    let mut w = e.worker();
    // A phone behind a NAT that rewrites nothing, seen from 127.0.0.1:6000.
    let (o, _) = run(
        &e,
        &mut w,
        behind_nat("192.168.1.20:5062", "192.168.1.20:5062").as_bytes(),
        CALLER,
    );
    assert!(matches!(o, Outcome::Send(_)), "forwarded as ever: {o:?}");
    let (n, per_test) = e.nat_counts();
    assert_eq!(n, 1);
    assert_eq!(
        per_test,
        [
            (NatTest::PrivateContact, 1),
            (NatTest::Received, 1),
            (NatTest::ViaPort, 1)
        ]
    );
    // From where it says it is: nothing found.
    let (o, _) = run(&e, &mut w, invite("n2", "z9hG4bKnat2").as_bytes(), CALLER);
    assert!(matches!(o, Outcome::Send(_)));
    assert_eq!(e.nat_counts().0, 1);
    // The pool is not tested.
    let from_pool = behind_nat("192.168.1.20:5062", "192.168.1.20:5062")
        .replace("Call-ID: n1", "Call-ID: n3")
        .replace("z9hG4bKnat1", "z9hG4bKnat3");
    let _ = run(&e, &mut w, from_pool.as_bytes(), DEST_A);
    assert_eq!(e.nat_counts().0, 1);
    // Without nat_test nothing runs.
    let plain = edge();
    let _ = run(
        &plain,
        &mut plain.worker(),
        behind_nat("10.0.0.1:5060", "10.0.0.1:5060").as_bytes(),
        CALLER,
    );
    assert_eq!(plain.nat_counts(), (0, Vec::new()));
}

/// An INVITE from a phone behind NAT (seen from `CALLER`) with an SDP
/// naming its private address.
fn natted_offer(call: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    behind_nat("192.168.1.20:5062", "192.168.1.20:5062")
        .replace("Call-ID: n1", &format!("Call-ID: {call}"))
        .replace(
            "Content-Length: 4\r\n\r\nv=0\r",
            &format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()),
        )
}

/// The forwarded message's `c=` lines and whether its Content-Length is
/// its body's length.
fn connection_lines(out: &[u8]) -> (Vec<String>, bool) {
    let mut idx = HeaderIndex::new();
    let m = sip::parse(out, &mut idx).expect("parses");
    let body = String::from_utf8_lossy(m.body()).into_owned();
    let lines = body
        .lines()
        .filter(|l| l.starts_with("c="))
        .map(str::to_owned)
        .collect();
    (lines, m.content_length() == Some(m.body().len()))
}

#[test]
fn nat_sdp_puts_the_source_address_into_a_natted_callers_sdp() {
    let e = edge_with_keys(
        "first",
        "",
        "nat_test = [\"private-contact\"]\nnat_sdp = true",
    );
    let (o, out) = run(&e, &mut e.worker(), natted_offer("s1").as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    assert_eq!(
        connection_lines(&out),
        (vec!["c=IN IP4 127.0.0.1".to_owned()], true)
    );
    // The o= line is left as it was.
    assert!(String::from_utf8_lossy(&out).contains("o=- 1 1 IN IP4 192.168.1.20"));

    // Without nat_sdp, or from a caller no test found behind NAT: as sent.
    let plain = edge_with_keys("first", "", "nat_test = [\"private-contact\"]");
    let (_, out) = run(
        &plain,
        &mut plain.worker(),
        natted_offer("s2").as_bytes(),
        CALLER,
    );
    assert_eq!(
        connection_lines(&out),
        (vec!["c=IN IP4 192.168.1.20".to_owned()], true)
    );
    let untested = edge_with_keys("first", "", "nat_sdp = true");
    let (_, out) = run(
        &untested,
        &mut untested.worker(),
        natted_offer("s3").as_bytes(),
        CALLER,
    );
    assert_eq!(connection_lines(&out).0, ["c=IN IP4 192.168.1.20"]);
}

#[test]
fn nat_sdp_fixes_answers_from_outside_the_pool_only() {
    for insertion in ["stateless", "transactional"] {
        let e = edge_with_keys(
            "first",
            "",
            &format!("nat_sdp = true\nnat_test = [\"private-sdp\"]\ninsertion = \"{insertion}\""),
        );
        let mut w = e.worker();
        // The pool calls out to a phone (the outbound proxy): its answer,
        // behind NAT, names its private address.
        let invite = format!(
            "INVITE sip:alice@127.0.0.9:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-out{insertion}\r\nMax-Forwards: 70\r\n\
             From: <sip:pool@example.com>;tag=p\r\nTo: <sip:alice@example.com>\r\n\
             Call-ID: out-{insertion}\r\nCSeq: 1 INVITE\r\nContact: <sip:pool@{DEST_A}>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let o = w.handle(
            &e,
            invite.as_bytes(),
            crate::flow::Flow::udp(0, addr(DEST_A)),
            e.epoch(),
        );
        // (A transactional edge also queues its 100 Trying to the pool.)
        let phone = addr("127.0.0.9:5062");
        let forwarded = match o {
            Outcome::Send(_) => w.output().to_vec(),
            Outcome::Queued => w
                .sends()
                .iter()
                .find(|(_, to)| to.remote == phone)
                .expect("queued to the phone")
                .0
                .to_vec(),
            other => panic!("{insertion}: {other:?}"),
        };
        let sdp = "v=0\r\nc=IN IP4 10.1.2.3\r\nm=audio 4000 RTP/AVP 0\r\n";
        let ok = String::from_utf8_lossy(&answer(&forwarded, 200)).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ),
        );
        let o = w.handle(
            &e,
            ok.as_bytes(),
            crate::flow::Flow::udp(0, addr("127.0.0.9:5062")),
            e.epoch(),
        );
        let back = match o {
            Outcome::Send(_) => w.output().to_vec(),
            Outcome::Queued => w.sends().iter().next().expect("queued").0.to_vec(),
            other => panic!("{insertion}: {other:?}"),
        };
        assert_eq!(
            connection_lines(&back),
            (vec!["c=IN IP4 127.0.0.9".to_owned()], true),
            "{insertion}"
        );
    }
}
