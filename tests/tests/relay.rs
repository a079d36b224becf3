//! Not an open relay (issue 2 §5): requests from outside the pool only
//! ever reach the pool's destinations; requests from a destination may go
//! out along their Route or Request-URI.

use std::net::SocketAddr;

use e2e::config::single_edge;
use e2e::expect::{final_response, next_arrival, pool_silent, via_values, ANSWER, SILENCE};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, Udp};

fn edge_addr(listen: u16) -> SocketAddr {
    SocketAddr::from((e2e::LOCALHOST, listen))
}

/// Panics if `sock` receives anything within [`SILENCE`].
#[track_caller]
fn silent(sock: &Udp, what: &str) {
    if let Some((text, from)) = sock.recv_text_timeout(SILENCE) {
        panic!("{what}: got from {from}:\n{text}");
    }
}

/// An in-dialog request (To tag) from `from` to `uri`, with `routes` as
/// Route header lines in order.
fn in_dialog(method: &str, uri: &str, from: SocketAddr, routes: &[String]) -> Request {
    let mut req = Request::new(method, uri, from)
        .set("To", "<sip:bob@example.invalid>;tag=dlg1")
        .set("CSeq", &format!("2 {method}"));
    for r in routes {
        req = req.add("Route", r);
    }
    req
}

/// Sends `req` from `outsider` and checks that sipedge refuses it with 403.
#[track_caller]
fn assert_refused(outsider: &Udp, listen: u16, req: &Request, what: &str) {
    outsider.send_to(req.build(), edge_addr(listen));
    let call_id = req.get("Call-ID").expect("Call-ID");
    let method = req.build();
    let method = sip::method(&method).expect("request").to_string();
    let (resp, from) = final_response(outsider, call_id, &method);
    assert_eq!(sip::status_code(&resp), Some(403), "{what}:\n{resp}");
    assert_eq!(from, edge_addr(listen), "{what}: 403 not from the listener");
}

/// From outside the pool, toward a host that is not a destination (a raw
/// socket on loopback): new requests and CANCELs are dispatched to the pool
/// whatever their Request-URI says; in-dialog requests whose next hop (the
/// first Route after sipedge's own, else the Request-URI) is foreign get
/// 403, and an ACK is dropped; the foreign host receives nothing at all.
#[test]
fn relay_requests_from_outside_never_reach_a_foreign_host() {
    require_private_netns();
    let pool = FakePool::start(2);
    let ports = pool.ports();
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "first",
        &[(ports[0], 1), (ports[1], 1)],
    ));
    let outsider = Udp::bind();
    let foreign = Udp::bind();
    let foreign_uri = format!("sip:victim@127.0.0.1:{}", foreign.port());
    let own_route = format!("<sip:127.0.0.1:{listen};lr>");
    let foreign_route = format!("<sip:127.0.0.1:{};lr>", foreign.port());
    let dest1_uri = format!("sip:bob@127.0.0.1:{}", ports[1]);
    let me = outsider.local_addr();

    // Out of dialog, addressed to the foreign host: dispatched to the pool
    // (`first`: server 0) instead, Request-URI untouched.
    let invite = Request::new("INVITE", &foreign_uri, me);
    outsider.send_to(invite.build(), edge_addr(listen));
    let got = next_arrival(&pool, "INVITE", invite.get("Call-ID").expect("Call-ID"));
    assert_eq!(got.server, 0, "{}", got.text);
    assert_eq!(sip::request_uri(&got.text), Some(foreign_uri.as_str()));

    // A CANCEL naming the foreign host follows dispatch too.
    let cancel = Request::new("CANCEL", &foreign_uri, me)
        .set("Via", invite.get("Via").expect("Via"))
        .set("From", invite.get("From").expect("From"))
        .set("Call-ID", invite.get("Call-ID").expect("Call-ID"))
        .set("CSeq", "1 CANCEL");
    outsider.send_to(cancel.build(), edge_addr(listen));
    let got = next_arrival(&pool, "CANCEL", cancel.get("Call-ID").expect("Call-ID"));
    assert_eq!(got.server, 0, "{}", got.text);

    // In dialog, Request-URI naming the foreign host, no Route: 403.
    let bye = in_dialog("BYE", &foreign_uri, me, &[]);
    assert_refused(&outsider, listen, &bye, "BYE to a foreign Request-URI");

    // In dialog, sipedge's own Route, then one naming the foreign host;
    // the Request-URI names a destination, but the Route decides: 403.
    let bye = in_dialog(
        "BYE",
        &dest1_uri,
        me,
        &[own_route.clone(), foreign_route.clone()],
    );
    assert_refused(
        &outsider,
        listen,
        &bye,
        "BYE with a foreign Route after sipedge's",
    );

    // The same in one comma-separated Route header.
    let bye = in_dialog(
        "INFO",
        &dest1_uri,
        me,
        &[format!("{own_route}, {foreign_route}")],
    );
    assert_refused(
        &outsider,
        listen,
        &bye,
        "INFO with a foreign Route in a combined line",
    );

    // A foreign Route with no Route of sipedge's before it: 403 as well.
    let bye = in_dialog("BYE", &dest1_uri, me, std::slice::from_ref(&foreign_route));
    assert_refused(&outsider, listen, &bye, "BYE with a foreign first Route");

    // An ACK with a foreign Route is dropped: never answered (RFC 3261
    // §17), never forwarded.
    let ack = in_dialog("ACK", &dest1_uri, me, &[own_route.clone(), foreign_route]);
    outsider.send_to(ack.build(), edge_addr(listen));
    // An ACK with a foreign Request-URI and no Route may follow its INVITE
    // into the pool (the ACK of a non-2xx), never to the foreign host.
    let ack2 = in_dialog("ACK", &foreign_uri, me, &[]);
    outsider.send_to(ack2.build(), edge_addr(listen));

    // A legitimate in-dialog request through sipedge's Route to a
    // destination still passes, with sipedge's Route entry removed.
    let ok = in_dialog(
        "BYE",
        &format!("sip:bob@127.0.0.1:{}", ports[0]),
        me,
        &[own_route, format!("<sip:127.0.0.1:{};lr>", ports[1])],
    );
    let ok_id = ok.get("Call-ID").expect("Call-ID").to_string();
    outsider.send_to(ok.build(), edge_addr(listen));

    // What the pool got: the BYE, and perhaps the Request-URI-only ACK;
    // nothing else. Bounded: a few arrivals, each waited for at most ANSWER,
    // then what trickles in within SILENCE.
    let mut arrivals = Vec::new();
    for _ in 0..3 {
        let Some(a) = pool.recv(ANSWER) else { break };
        let done = sip::header(&a.text, "Call-ID") == Some(ok_id.as_str());
        arrivals.push(a);
        if done {
            break;
        }
    }
    arrivals.extend(std::iter::from_fn(|| pool.recv(SILENCE)).take(10));
    let (byes, others): (Vec<_>, Vec<_>) = arrivals
        .into_iter()
        .partition(|a| sip::header(&a.text, "Call-ID") == Some(ok_id.as_str()));
    for a in &others {
        assert!(
            sip::method(&a.text) == Some("ACK")
                && sip::header(&a.text, "Call-ID") == ack2.get("Call-ID"),
            "a refused request reached server {}:\n{}",
            a.server,
            a.text
        );
    }
    assert_eq!(byes.len(), 1, "the routed BYE arrived {} times", byes.len());
    let got = &byes[0];
    assert_eq!(got.server, 1, "BYE not sent along its Route:\n{}", got.text);
    let routes = sip::headers(&got.text, "Route").join(",");
    assert!(
        !routes.contains(&format!("127.0.0.1:{listen}")),
        "sipedge's own Route entry not removed:\n{}",
        got.text
    );
    assert!(
        routes.contains(&format!("127.0.0.1:{}", ports[1])),
        "{}",
        got.text
    );

    silent(&foreign, "the foreign host received a request via sipedge");
    silent(&outsider, "an unexpected answer (e.g. to an ACK)");
}

/// From a destination, outward: an in-dialog BYE that follows sipedge's
/// Record-Route (Route: sipedge) with the caller's Contact as
/// Request-URI reaches the caller with sipedge's Via on top and the Route
/// entry consumed; the caller's 200 goes back through sipedge to that
/// destination. A new INVITE from a destination to an outside address goes
/// out too, record-routed, and its answer comes back.
#[test]
fn relay_requests_from_a_destination_go_out_along_their_route() {
    require_private_netns();
    let pool = FakePool::start(2);
    let ports = pool.ports();
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "first",
        &[(ports[0], 1), (ports[1], 1)],
    ));
    let caller = Udp::bind();
    let caller_uri = format!("sip:alice@127.0.0.1:{}", caller.port());

    let bye = Request::new("BYE", &caller_uri, pool.addr(1))
        .set("To", "<sip:alice@example.invalid>;tag=a1")
        .set("CSeq", "2 BYE")
        .add("Route", &format!("<sip:127.0.0.1:{listen};lr>"));
    let call_id = bye.get("Call-ID").expect("Call-ID").to_string();
    pool.send_from(1, bye.build(), edge_addr(listen));
    let (text, from) = caller
        .recv_matching(ANSWER, |t| sip::method(t) == Some("BYE"))
        .expect("the destination's BYE did not reach the caller");
    assert_eq!(from, edge_addr(listen), "BYE not sent by sipedge");
    assert_eq!(sip::header(&text, "Call-ID"), Some(call_id.as_str()));
    assert_eq!(sip::request_uri(&text), Some(caller_uri.as_str()));
    let vias = via_values(&text);
    assert_eq!(vias.len(), 2, "{text}");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{listen};branch=z9hG4bKsE")),
        "sipedge's Via not on top:\n{text}"
    );
    assert!(
        vias[1].starts_with(&format!("SIP/2.0/UDP {}", pool.addr(1)))
            && vias[1].contains(&format!(";rport={}", ports[1]))
            && vias[1].contains(";received=127.0.0.1"),
        "the destination's Via lacks rport / received (RFC 3581 §4):\n{text}"
    );
    assert!(
        sip::headers(&text, "Route").is_empty(),
        "sipedge's Route entry not removed:\n{text}"
    );
    assert_eq!(sip::header(&text, "Max-Forwards"), Some("69"), "{text}");

    // The caller answers to where the BYE came from; sipedge relays the
    // 200 to the destination that sent the BYE, with only its Via.
    caller.send_to(sip::response_to(&text, 200, "OK"), from);
    let got = pool
        .recv(ANSWER)
        .expect("200 for the BYE not relayed to the destination");
    assert_eq!(got.server, 1, "{}", got.text);
    assert_eq!(sip::status_code(&got.text), Some(200), "{}", got.text);
    assert_eq!(sip::header(&got.text, "Call-ID"), Some(call_id.as_str()));
    assert_eq!(via_values(&got.text).len(), 1, "{}", got.text);

    // A new call from destination 0 out to the caller.
    let invite = Request::new("INVITE", &caller_uri, pool.addr(0));
    let invite_id = invite.get("Call-ID").expect("Call-ID").to_string();
    pool.send_from(0, invite.build(), edge_addr(listen));
    let (text, from) = caller
        .recv_matching(ANSWER, |t| sip::method(t) == Some("INVITE"))
        .expect("the destination's INVITE did not reach the caller");
    assert_eq!(from, edge_addr(listen));
    assert_eq!(sip::header(&text, "Call-ID"), Some(invite_id.as_str()));
    let rr = sip::header(&text, "Record-Route").unwrap_or("");
    assert!(
        rr.starts_with(&format!("<sip:127.0.0.1:{listen};")),
        "outbound INVITE not record-routed:\n{text}"
    );
    caller.send_to(sip::response_to(&text, 486, "Busy Here"), from);
    let got = next_arrival_response(&pool, &invite_id);
    assert_eq!(got.server, 0, "{}", got.text);
    assert_eq!(sip::status_code(&got.text), Some(486), "{}", got.text);

    pool_silent(&pool, "unexpected message in the pool");
}

/// The next pool arrival, which must be a response for `call_id`.
#[track_caller]
fn next_arrival_response(pool: &FakePool, call_id: &str) -> e2e::Arrival {
    let got = pool
        .recv(ANSWER)
        .unwrap_or_else(|| panic!("no response for {call_id} reached the pool"));
    assert!(
        sip::status_code(&got.text).is_some() && sip::header(&got.text, "Call-ID") == Some(call_id),
        "expected a response for {call_id}:\n{}",
        got.text
    );
    got
}
