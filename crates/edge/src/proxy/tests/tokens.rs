//! Flow tokens in the route stage: the Record-Route the edge writes
//! carries the dialog's flow and server, sealed; any edge with the
//! cluster's keys routes the dialog's later requests by it alone, in
//! either direction; a token it did not seal is refused.

use super::*;

/// A NAT'd phone's INVITE: seen from `CALLER`, but its Via and Contact
/// name its private address.
fn natted_invite(call: &str) -> String {
    invite(call, &format!("z9hG4bK-{call}"))
        .replace(
            &format!("Via: SIP/2.0/UDP {CALLER};"),
            "Via: SIP/2.0/UDP 192.168.1.20:5062;",
        )
        .replace(
            &format!("Contact: <sip:alice@{CALLER}>"),
            "Contact: <sip:alice@192.168.1.20:5062>",
        )
}

/// The top Record-Route entry of a forwarded request: the one with the
/// token.
fn record_route(out: &[u8]) -> String {
    let mut idx = HeaderIndex::new();
    header(out, HeaderName::RecordRoute, &mut idx)[0].clone()
}

/// The Record-Route entry `e` writes into a plain INVITE of call `call`.
fn dialog_route(e: &Edge, call: &str) -> String {
    let (_, out) = run(
        e,
        &mut e.worker(),
        invite(call, "z9hG4bK-i").as_bytes(),
        CALLER,
    );
    record_route(&out)
}

/// A BYE from the pool server `dest` to the caller's Contact `contact`
/// along `route`.
fn bye_from_pool(dest: &str, contact: &str, route: &str) -> String {
    format!(
        "BYE sip:alice@{contact} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {dest};branch=z9hG4bK-pb\r\n\
         Route: {route}\r\nMax-Forwards: 70\r\n\
         From: <sip:service@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n\
         Call-ID: t1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The caller's in-dialog `method` with Request-URI `uri` along `route`.
fn from_caller(method: &str, uri: &str, route: &str) -> String {
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-c{method}\r\n\
         Route: {route}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:service@example.com>;tag=b1\r\n\
         Call-ID: t1\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn the_pool_reaches_a_natted_caller_at_its_flow_and_others_at_their_contact() {
    let e = edge_with_keys("first", "", "nat_test = [\"private-contact\"]");
    let (o, out) = run(&e, &mut e.worker(), natted_invite("t1").as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    let rr = record_route(&out);
    assert!(untoken(&e, &rr).1.unwrap().sticky, "behind NAT");
    // The server's BYE names the phone's private Contact: it goes to the
    // NAT binding the INVITE came from, on any instance of the cluster.
    let other_instance = edge_with_keys("first", "", "nat_test = [\"private-contact\"]");
    for edge in [&e, &other_instance] {
        let bye = bye_from_pool(DEST_A, "192.168.1.20:5062", &rr);
        let (o, out) = run(edge, &mut edge.worker(), bye.as_bytes(), DEST_A);
        assert_eq!(
            sent_to(o),
            addr(CALLER),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let mut idx = HeaderIndex::new();
        assert!(header(&out, HeaderName::Route, &mut idx).is_empty());
    }

    // Without a NAT test that fires, the dialog follows the Contact, as
    // RFC 3261 routes it (a caller's proxy that does not record-route).
    let plain = edge_with("first", "");
    let (_, out) = run(
        &plain,
        &mut plain.worker(),
        natted_invite("t2").as_bytes(),
        CALLER,
    );
    let rr = record_route(&out);
    assert!(!untoken(&plain, &rr).1.unwrap().sticky);
    let bye = bye_from_pool(DEST_A, "127.0.0.1:6100", &rr);
    let (o, _) = run(&plain, &mut plain.worker(), bye.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr("127.0.0.1:6100"));
}

#[test]
fn the_callers_in_dialog_requests_reach_the_server_of_the_dialog_from_any_instance() {
    let e = edge_with("first", "");
    // Destination A down: the call is set up on B.
    e.health().set_usable(0, false);
    let (o, out) = run(
        &e,
        &mut e.worker(),
        invite("t1", "z9hG4bK-i").as_bytes(),
        CALLER,
    );
    assert_eq!(sent_to(o), addr(DEST_B));
    let rr = record_route(&out);
    // Another instance, where A is up and "first" would pick it: the
    // server's Contact named the edge (as a server behind topology hiding
    // does), yet the BYE and the ACK reach B, from the token.
    let other = edge_with("first", "");
    let here = format!("sip:service@{EDGE}");
    for method in ["BYE", "ACK", "INVITE"] {
        let req = from_caller(method, &here, &rr);
        let (o, out) = run(&other, &mut other.worker(), req.as_bytes(), CALLER);
        assert_eq!(
            sent_to(o),
            addr(DEST_B),
            "{method}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    // A Request-URI naming another destination (a target refresh moved
    // the dialog there) is followed; a foreign one goes to B too, never
    // out (no open relay).
    let to_a = from_caller("BYE", &format!("sip:bob@{DEST_A}"), &rr);
    let (o, _) = run(&other, &mut other.worker(), to_a.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    let foreign = from_caller("BYE", "sip:bob@127.0.0.1:9999", &rr);
    let (o, _) = run(&other, &mut other.worker(), foreign.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_B));
}

/// `rr` with the character `back` places before the `@` changed.
fn altered(rr: &str, back: usize) -> String {
    let at = rr.find('@').unwrap() - back;
    let c = if &rr[at..at + 1] == "A" { "B" } else { "A" };
    format!("{}{c}{}", &rr[..at], &rr[at + 1..])
}

#[test]
fn tokens_the_cluster_did_not_seal_for_this_edge_get_403_and_go_nowhere() {
    let e = edge_with("first", "");
    let rr = dialog_route(&e, "t1");
    let (at, token_len) = (rr.find('@').unwrap(), rr.find('@').unwrap() - "<sip:".len());
    let truncated = format!("<sip:{}{}", &rr[5..5 + token_len / 2], &rr[at..]);
    let foreign_key = {
        let stranger = Edge::new(
            &config::parse(&edge_text("t"), "t.toml").unwrap().edges[0],
            &config::parse(&edge_text("t"), "t.toml").unwrap().node,
            &crate::keyring::KeyRing::single(b"another cluster's secret"),
        );
        dialog_route(&stranger, "t1")
    };
    let other_edge = {
        let carriers = config::parse(&edge_text("carriers"), "t.toml").unwrap();
        let keys = crate::keyring::KeyRing::single(SECRET);
        let c = Edge::new(&carriers.edges[0], &carriers.node, &keys);
        dialog_route(&c, "t1")
    };
    let not_a_token = format!("<sip:alice@{EDGE};lr>");
    let cases = [
        ("tampered", altered(&rr, 1)),
        ("tampered early", altered(&rr, token_len - 1)),
        ("truncated", truncated),
        ("foreign key", foreign_key),
        ("other edge", other_edge),
        ("not a token", not_a_token),
    ];
    let mut w = e.worker();
    for (i, (what, route)) in cases.iter().enumerate() {
        // From either side: never forwarded, answered 403.
        for (req, src) in [
            (
                from_caller("BYE", &format!("sip:service@{EDGE}"), route),
                CALLER,
            ),
            (bye_from_pool(DEST_A, "127.0.0.1:6100", route), DEST_A),
        ] {
            let (o, out) = run(&e, &mut w, req.as_bytes(), src);
            assert_eq!(sent_to(o), addr(src), "{what}: answered, not forwarded");
            assert_eq!(status(&out), 403, "{what}");
            assert!(String::from_utf8_lossy(&out).contains("403 Invalid Flow Token"));
        }
        assert_eq!(w.stats.get(Event::FlowTokenRefused), 2 * (i as u64 + 1));
    }
    // The genuine one still routes.
    let (o, _) = run(
        &e,
        &mut w,
        from_caller("BYE", &format!("sip:service@{EDGE}"), &rr).as_bytes(),
        CALLER,
    );
    assert_eq!(sent_to(o), addr(DEST_A));
}

/// A config of one edge named `name` on the usual address.
fn edge_text(name: &str) -> String {
    format!(
        "[node]\nid = \"t\"\n[[edge]]\nname = \"{name}\"\nlisten = [\"udp:{EDGE}\"]\n\
         algorithm = \"first\"\n[[edge.destination]]\nuri = \"sip:{DEST_A}\"\n\
         [[edge.destination]]\nuri = \"sip:{DEST_B}\"\n"
    )
}

#[test]
fn a_dialog_set_up_before_a_secret_rotation_keeps_routing_after_it() {
    let cfg = config::parse(&edge_text("e"), "t.toml").unwrap();
    let before = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(b"the old secret!!"),
    );
    before.health().set_usable(0, false);
    let rr = dialog_route(&before, "t1");
    let ring = crate::keyring::KeyRing::new([&b"the new secret!!"[..], b"the old secret!!"]);
    let after = Edge::new(&cfg.edges[0], &cfg.node, &ring);
    let bye = from_caller("BYE", &format!("sip:service@{EDGE}"), &rr);
    let (o, _) = run(&after, &mut after.worker(), bye.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_B), "the old token opens");
    // New dialogs get tokens under the new secret only.
    let fresh = dialog_route(&after, "t2");
    let dropped = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(b"the new secret!!"),
    );
    let (o, _) = run(
        &dropped,
        &mut dropped.worker(),
        from_caller("BYE", &format!("sip:service@{EDGE}"), &fresh).as_bytes(),
        CALLER,
    );
    assert_eq!(sent_to(o), addr(DEST_A));
    let (o, out) = run(&dropped, &mut dropped.worker(), bye.as_bytes(), CALLER);
    assert_eq!(
        (sent_to(o), status(&out)),
        (addr(CALLER), 403),
        "once the old secret is dropped"
    );
}

#[test]
fn a_route_naming_the_edge_without_a_token_routes_as_before_tokens() {
    // A dialog from before tokens (or a peer that dropped the user part):
    // by the Request-URI, under foreign_next_hop.
    let e = edge_with("first", "");
    let bye = from_caller(
        "BYE",
        &format!("sip:bob@{DEST_B}"),
        &format!("<sip:{EDGE};lr>"),
    );
    let (o, _) = run(&e, &mut e.worker(), bye.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_B));
}

#[test]
fn a_token_adds_one_user_part_to_one_record_route_entry() {
    let e = edge_with("first", "");
    let rr = dialog_route(&e, "t1");
    // 43 characters and the `@`, for an IPv4 caller and server.
    assert_eq!(rr.len() - format!("<sip:{EDGE};lr>").len(), 44, "{rr}");
}

#[test]
fn a_new_request_from_outside_is_dispatched_whatever_user_part_its_route_names() {
    // A phone whose outbound proxy setting is a URI with a user part.
    let e = edge_with("first", "");
    let msg = invite("t9", "z9hG4bK-ob").replace(
        "Max-Forwards: 70\r\n",
        &format!("Route: <sip:proxy@{EDGE};lr>\r\nMax-Forwards: 70\r\n"),
    );
    let mut w = e.worker();
    let (o, _) = run(&e, &mut w, msg.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A));
    assert_eq!(w.stats.get(Event::FlowTokenRefused), 0);
}
