//! The registration proxy: a REGISTER from outside goes to the registrar
//! its address of record hashes to, whatever the edge's algorithm, with a
//! Path whose token leads the registrar's requests back to the phone.

use super::*;

fn register(aor_user: &str, call: &str, supported: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-r{call};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{aor_user}@example.com>;tag=r{call}\r\n\
         To: <sip:{aor_user}@example.com>\r\n\
         Call-ID: {call}\r\nCSeq: 1 REGISTER\r\n{supported}\
         Contact: <sip:{aor_user}@{CALLER}>;expires=300\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn registrations_of_one_aor_stay_on_one_registrar_whatever_the_algorithm() {
    for algorithm in ["weighted-round-robin", "random", "hash-call-id", "first"] {
        let e = edge_with(algorithm, "");
        let mut w = e.worker();
        let mut servers = std::collections::BTreeSet::new();
        for user in [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
        ] {
            let mut first = None;
            // Refreshes: new Call-IDs and branches, with a port, To
            // parameters or the host's case that do not make another AOR.
            for k in 0..5 {
                let msg = register(user, &format!("{user}{k}"), "").replace(
                    &format!("To: <sip:{user}@example.com>"),
                    &[
                        format!("To: <sip:{user}@example.com:5060>"),
                        format!("To: <sip:{user}@example.com;user=phone>"),
                        format!("To: <sip:{user}@EXAMPLE.com>"),
                        format!("To: <sip:{user}:secret@Example.COM>"),
                        format!("To: <sip:{user}@example.com>"),
                    ][k],
                );
                let (o, _) = run(&e, &mut w, msg.as_bytes(), CALLER);
                let to = sent_to(o);
                assert_eq!(*first.get_or_insert(to), to, "{algorithm}: {user} moved");
            }
            servers.extend(first);
        }
        // `first` keeps the operator's order: every AOR on the primary.
        let spread = if algorithm == "first" { 1 } else { 2 };
        assert_eq!(servers.len(), spread, "{algorithm}: {servers:?}");
    }
}

#[test]
fn a_register_gets_a_path_with_its_token_and_supported_path_once() {
    let e = edge_with_keys("first", "", "nat_test = [\"private-contact\"]");
    for (supported, lines) in [("", 1), ("Supported: replaces, path\r\n", 1)] {
        let (o, out) = run(
            &e,
            &mut e.worker(),
            register("alice", "p1", supported).as_bytes(),
            CALLER,
        );
        let _ = sent_to(o);
        let mut idx = HeaderIndex::new();
        let path = header(&out, HeaderName::Path, &mut idx);
        assert_eq!(path.len(), 1);
        let (bare, token) = untoken(&e, &path[0]);
        assert_eq!(bare, format!("<sip:{EDGE};lr>"));
        let token = token.unwrap();
        assert_eq!(token.outside.remote, addr(CALLER));
        assert!(
            !token.sticky,
            "a phone not behind NAT is reached at its Contact"
        );
        let mut idx = HeaderIndex::new();
        let m = sip::parse(&out, &mut idx).unwrap();
        let paths: usize = m
            .elements(HeaderName::Supported)
            .filter(|e| e.text == b"path")
            .count();
        assert_eq!(paths, lines, "{supported:?}");
    }
    // Behind NAT: the registrar's INVITE along the Path reaches the NAT
    // binding, whatever the (private) Contact says.
    let natted = register("alice", "p2", "").replace(
        &format!("Contact: <sip:alice@{CALLER}>"),
        "Contact: <sip:alice@192.168.1.20:5062>",
    );
    let (_, out) = run(&e, &mut e.worker(), natted.as_bytes(), CALLER);
    let mut idx = HeaderIndex::new();
    let path = header(&out, HeaderName::Path, &mut idx)[0].clone();
    let invite = format!(
        "INVITE sip:alice@192.168.1.20:5062 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-reg-i\r\nMax-Forwards: 70\r\n\
         Route: {path}\r\nFrom: <sip:bob@example.com>;tag=b\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: reg-i\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@{DEST_A}>\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, out) = run(&e, &mut e.worker(), invite.as_bytes(), DEST_A);
    assert_eq!(
        sent_to(o),
        addr(CALLER),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // The call it starts gets a token of its own, as sticky: the phone's
    // BYE-side requests from the pool reach the binding too.
    let mut idx = HeaderIndex::new();
    let rr = header(&out, HeaderName::RecordRoute, &mut idx)[0].clone();
    assert!(untoken(&e, &rr).1.unwrap().sticky);
}
