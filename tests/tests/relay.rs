//! Not an open relay: requests from outside the pool only ever reach the
//! pool's destinations; requests from a destination may go out along
//! their Route or Request-URI — also when a routing proxy in the pool
//! sends a call back out through the edge (a spiral; a request that really
//! loops gets 482, `stateless.rs`).

use std::net::SocketAddr;

use e2e::config::single_edge;
use e2e::expect::{final_response, next_arrival, pool_silent, via_values, ANSWER, SILENCE};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, SippUac, SippUas, Udp};

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

/// Two pool servers, an outsider and a foreign host (raw sockets on
/// loopback, none of them a destination), and the requests that try to
/// reach the foreign host through sipedge.
struct RelayScene {
    pool: FakePool,
    listen: u16,
    _edge: Sipedge,
    outsider: Udp,
    foreign: Udp,
    foreign_uri: String,
    own_route: String,
    foreign_route: String,
    dest1_uri: String,
}

impl RelayScene {
    /// sipedge with `first` over two servers and `lines` added to the edge.
    fn start(lines: &str) -> RelayScene {
        let pool = FakePool::start(2);
        let ports = pool.ports();
        let listen = free_port();
        let config = single_edge(listen, "first", &[(ports[0], 1), (ports[1], 1)])
            .replace("flags = ", &format!("{lines}\nflags = "));
        let edge = Sipedge::start(&config);
        let foreign = Udp::bind();
        RelayScene {
            foreign_uri: format!("sip:victim@127.0.0.1:{}", foreign.port()),
            own_route: format!("<sip:127.0.0.1:{listen};lr>"),
            foreign_route: format!("<sip:127.0.0.1:{};lr>", foreign.port()),
            dest1_uri: format!("sip:bob@127.0.0.1:{}", ports[1]),
            pool,
            listen,
            _edge: edge,
            outsider: Udp::bind(),
            foreign,
        }
    }

    /// Out of dialog, addressed to the foreign host: an INVITE and its
    /// CANCEL are dispatched to the pool (`first`: server 0) instead,
    /// Request-URI untouched, whatever `foreign_next_hop` says.
    fn new_requests_are_dispatched(&self) {
        let me = self.outsider.local_addr();
        let invite = Request::new("INVITE", &self.foreign_uri, me);
        self.outsider
            .send_to(invite.build(), edge_addr(self.listen));
        let got = next_arrival(
            &self.pool,
            "INVITE",
            invite.get("Call-ID").expect("Call-ID"),
        );
        assert_eq!(got.server, 0, "{}", got.text);
        assert_eq!(sip::request_uri(&got.text), Some(self.foreign_uri.as_str()));

        let cancel = Request::new("CANCEL", &self.foreign_uri, me)
            .set("Via", invite.get("Via").expect("Via"))
            .set("From", invite.get("From").expect("From"))
            .set("Call-ID", invite.get("Call-ID").expect("Call-ID"))
            .set("CSeq", "1 CANCEL");
        self.outsider
            .send_to(cancel.build(), edge_addr(self.listen));
        let got = next_arrival(
            &self.pool,
            "CANCEL",
            cancel.get("Call-ID").expect("Call-ID"),
        );
        assert_eq!(got.server, 0, "{}", got.text);
    }

    /// In-dialog requests whose next hop (the first Route after sipedge's
    /// own, else the Request-URI) is the foreign host, each with what it
    /// shows.
    fn in_dialog_attempts(&self) -> Vec<(&'static str, Request)> {
        let me = self.outsider.local_addr();
        let (own, foreign) = (&self.own_route, &self.foreign_route);
        vec![
            (
                "BYE to a foreign Request-URI",
                in_dialog("BYE", &self.foreign_uri, me, &[]),
            ),
            (
                "BYE with a foreign Route after sipedge's",
                in_dialog("BYE", &self.dest1_uri, me, &[own.clone(), foreign.clone()]),
            ),
            (
                "INFO with a foreign Route in a combined line",
                in_dialog("INFO", &self.dest1_uri, me, &[format!("{own}, {foreign}")]),
            ),
            (
                "BYE with a foreign first Route",
                in_dialog("BYE", &self.dest1_uri, me, std::slice::from_ref(foreign)),
            ),
        ]
    }

    /// Checks that nothing more arrives: at the pool (`pool_what` says
    /// what that would mean), at the foreign host, or back at the outsider
    /// (an answer to an ACK, say).
    fn nothing_else(&self, pool_what: &str) {
        pool_silent(&self.pool, pool_what);
        silent(
            &self.foreign,
            "the foreign host received a request via sipedge",
        );
        silent(&self.outsider, "an unexpected answer (e.g. to an ACK)");
    }

    /// ACKs whose next hop is the foreign host, by a Route after sipedge's
    /// and by the Request-URI alone, reach the pool (`first`: server 0) as
    /// the ACK of a non-2xx answer follows its INVITE.
    fn acks_follow_their_invite(&self) {
        let me = self.outsider.local_addr();
        let routes = [self.own_route.clone(), self.foreign_route.clone()];
        for ack in [
            in_dialog("ACK", &self.dest1_uri, me, &routes),
            in_dialog("ACK", &self.foreign_uri, me, &[]),
        ] {
            self.outsider.send_to(ack.build(), edge_addr(self.listen));
            let got = next_arrival(&self.pool, "ACK", ack.get("Call-ID").expect("Call-ID"));
            assert_eq!(got.server, 0, "{}", got.text);
        }
    }

    /// A legitimate in-dialog request through sipedge's Route to server 1
    /// still goes there, with sipedge's Route entry removed.
    fn routed_request_passes(&self) {
        let ports = self.pool.ports();
        let ok = in_dialog(
            "BYE",
            &format!("sip:bob@127.0.0.1:{}", ports[0]),
            self.outsider.local_addr(),
            &[
                self.own_route.clone(),
                format!("<sip:127.0.0.1:{};lr>", ports[1]),
            ],
        );
        self.outsider.send_to(ok.build(), edge_addr(self.listen));
        let got = next_arrival(&self.pool, "BYE", ok.get("Call-ID").expect("Call-ID"));
        assert_eq!(got.server, 1, "BYE not sent along its Route:\n{}", got.text);
        let routes = sip::headers(&got.text, "Route").join(",");
        assert!(
            !routes.contains(&format!("127.0.0.1:{}", self.listen)),
            "sipedge's own Route entry not removed:\n{}",
            got.text
        );
        assert!(
            routes.contains(&format!("127.0.0.1:{}", ports[1])),
            "{}",
            got.text
        );
    }
}

/// By default (`foreign_next_hop = "dispatch"`) an in-dialog request from
/// outside whose next hop is foreign goes into the pool, whose servers own
/// the dialog, never to that host: new requests, CANCELs, in-dialog
/// requests and ACKs alike. Nothing is answered at the edge.
#[test]
fn relay_requests_from_outside_go_into_the_pool_never_to_a_foreign_host() {
    require_private_netns();
    let scene = RelayScene::start("");
    scene.new_requests_are_dispatched();

    for (what, req) in scene.in_dialog_attempts() {
        let sent = req.build();
        let method = sip::method(&sent).expect("request").to_string();
        scene
            .outsider
            .send_to(sent.clone(), edge_addr(scene.listen));
        let got = next_arrival(&scene.pool, &method, req.get("Call-ID").expect("Call-ID"));
        assert_eq!(
            got.server, 0,
            "{what}: not dispatched by `first`:\n{}",
            got.text
        );
        assert_eq!(
            sip::request_uri(&got.text),
            sip::request_uri(&sent),
            "{what}: Request-URI changed"
        );
        assert!(
            !sip::headers(&got.text, "Route")
                .join(",")
                .contains(&scene.own_route),
            "{what}: sipedge's own Route entry not removed:\n{}",
            got.text
        );
    }

    // ACKs too, with a foreign Route or a foreign Request-URI.
    scene.acks_follow_their_invite();

    scene.routed_request_passes();
    scene.nothing_else("a request reached the pool twice");
}

/// With `foreign_next_hop = "refuse"` the same in-dialog requests get 403;
/// new requests, CANCELs and ACKs are still dispatched, and the foreign
/// host receives nothing at all.
#[test]
fn relay_requests_from_outside_are_refused_with_foreign_next_hop_refuse() {
    require_private_netns();
    let scene = RelayScene::start("foreign_next_hop = \"refuse\"");
    scene.new_requests_are_dispatched();

    for (what, req) in scene.in_dialog_attempts() {
        assert_refused(&scene.outsider, scene.listen, &req, what);
    }
    // ACKs are never answered (RFC 3261 §17): the ACK of a non-2xx answer
    // repeats its INVITE's Request-URI and Route, so it follows its INVITE
    // into the pool, in this mode too.
    scene.acks_follow_their_invite();

    // Only the legitimate BYE reaches the pool after that.
    scene.routed_request_passes();
    scene.nothing_else("a refused request reached the pool");
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
    let rr = sip::untokened(sip::header(&text, "Record-Route").unwrap_or(""));
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

/// Carrier A -> sipedge -> a routing proxy in the pool (SIPp, not a B2BUA)
/// -> sipedge -> carrier B, with the Request-URI naming carrier B all the
/// way: each request of the call passes the edge twice, once from outside
/// into the pool and once from the pool outward. That is a spiral (RFC 3261
/// §16.3 step 4), not a loop: the whole call goes through, INVITE, ACK and
/// BYE, with the routing proxy's Record-Route and the Route it sends back.
#[test]
fn relay_a_routing_proxy_in_the_pool_spirals_calls_back_out() {
    require_private_netns();
    let listen = free_port();
    let edge_at = format!("127.0.0.1:{listen}");
    let routing = SippUas::start("pool-proxy.xml", free_port(), &["-key", "edge", &edge_at]);
    let carrier_b = SippUas::start("uas.xml", free_port(), &[]);
    let _edge = Sipedge::start(&single_edge(listen, "first", &[(routing.port(), 1)]));
    let far = format!("127.0.0.1:{}", carrier_b.port());
    let uac = SippUac::run("uac-far.xml", &edge_at, 3, 10, &["-key", "far", &far]);
    let (routing, carrier_b) = (routing.stop(), carrier_b.stop());
    uac.assert_all_successful();
    for method in ["INVITE", "ACK", "BYE"] {
        assert_eq!(routing.count(method), 3, "{method} at the routing proxy");
        assert_eq!(carrier_b.count(method), 3, "{method} at carrier B");
    }
    // Carrier B got the INVITE with the Request-URI it was sent with and
    // both passes through the edge on the Via stack.
    let invite = carrier_b.requests("INVITE")[0];
    assert!(invite
        .text
        .starts_with(&format!("INVITE sip:service@{far} ")));
    let vias = invite.headers("Via").join(",");
    let edge_vias = vias
        .matches(&format!("127.0.0.1:{listen};branch=z9hG4bKsE"))
        .count();
    assert_eq!(edge_vias, 2, "{}", invite.text);
    assert_eq!(uac.responses(482).len(), 0);
    // The in-dialog requests kept their Request-URI (carrier B's Contact)
    // through both passes.
    let bye = carrier_b.requests("BYE")[0];
    let contact = format!("BYE sip:{far};transport=UDP SIP/2.0");
    assert!(bye.text.starts_with(&contact), "{}", bye.text);
}
