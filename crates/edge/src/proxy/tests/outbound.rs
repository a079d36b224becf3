//! The outbound proxy: requests from the pool (or `outbound_from`) to
//! host names wait for their DNS answer and go to its targets; from
//! anyone else, a route through the edge to a foreign host is refused.

use super::*;
use crate::outbound::{Answer, Target};
use std::sync::Arc;

const CARRIER_1: &str = "127.0.0.9:5080";
const CARRIER_2: &str = "127.0.0.10:5080";

fn out_invite(uri: &str, route: &str, via: &str) -> String {
    format!(
        "INVITE {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bKout1\r\n\
         {route}Max-Forwards: 70\r\n\
         From: <sip:pbx@example.com>;tag=p1\r\n\
         To: <{uri}>\r\n\
         Call-ID: out-1\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn targets() -> Answer {
    let t = |priority, id, a: &str| Target {
        priority,
        weight: 10,
        id,
        host: "a.carrier.test".into(),
        transport: crate::flow::Transport::Udp,
        addr: addr(a),
    };
    Answer::Targets(vec![t(20, 1, CARRIER_2), t(10, 2, CARRIER_1)])
}

#[test]
fn a_pool_request_to_a_name_waits_for_its_answer_then_goes_to_the_best_target() {
    let e = edge();
    let mut w = e.worker();
    let msg = out_invite("sip:bob@Carrier.Test", "", DEST_A);
    let (o, _) = run(&e, &mut w, msg.as_bytes(), DEST_A);
    assert_eq!(o, Outcome::Resolve);
    assert_eq!(w.lookup(), "sip:carrier.test");
    assert_eq!(w.stats.get(Event::Resolving), 1);
    e.names().put(w.lookup(), Arc::new(targets()));
    let (o, out) = run(&e, &mut w, msg.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CARRIER_1), "priority 10 before 20");
    assert!(
        out.starts_with(b"INVITE sip:bob@Carrier.Test SIP/2.0\r\n"),
        "the Request-URI is left as it is"
    );
}

#[test]
fn a_name_without_records_is_404_and_a_failed_lookup_503() {
    let e = edge();
    let mut w = e.worker();
    let msg = out_invite("sip:bob@nowhere.test", "", DEST_A);
    e.names()
        .put("sip:nowhere.test", Arc::new(Answer::NoSuchName));
    let (_, out) = run(&e, &mut w, msg.as_bytes(), DEST_A);
    assert_eq!(status(&out), 404);
    e.names().put("sip:nowhere.test", Arc::new(Answer::Failed));
    let (_, out) = run(&e, &mut w, msg.as_bytes(), DEST_A);
    assert_eq!(status(&out), 503);
    assert_eq!(w.stats.get(Event::Unresolvable), 2);
}

#[test]
fn outside_a_route_through_the_edge_to_a_foreign_host_is_refused() {
    let e = edge();
    let mut w = e.worker();
    let relay = out_invite(
        "sip:bob@carrier.test",
        &format!("Route: <sip:{EDGE};lr>, <sip:carrier.test;lr>\r\n"),
        CALLER,
    );
    let (_, out) = run(&e, &mut w, relay.as_bytes(), CALLER);
    assert_eq!(status(&out), 403);
    assert_eq!(w.stats.get(Event::OutboundDenied), 1);
    // The same from the pool goes out.
    let pool = out_invite(
        "sip:bob@carrier.test",
        &format!("Route: <sip:{EDGE};lr>, <sip:{CARRIER_2};lr>\r\n"),
        DEST_A,
    );
    let (o, _) = run(&e, &mut w, pool.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CARRIER_2));
    // A foreign Request-URI alone, from outside, is a call into the pool.
    let call = out_invite(
        "sip:bob@carrier.test",
        &format!("Route: <sip:{EDGE};lr>\r\n"),
        CALLER,
    );
    let (o, _) = run(&e, &mut w, call.as_bytes(), CALLER);
    let to = sent_to(o);
    assert!(to == addr(DEST_A) || to == addr(DEST_B), "{to}");
}

#[test]
fn outbound_from_lets_a_network_out_like_the_pool() {
    let msg = out_invite(&format!("sip:bob@{CARRIER_1}"), "", CALLER);
    let e = edge();
    let (o, _) = run(&e, &mut e.worker(), msg.as_bytes(), CALLER);
    let to = sent_to(o);
    assert!(
        to == addr(DEST_A) || to == addr(DEST_B),
        "into the pool: {to}"
    );
    let e = edge_with_keys(
        "weighted-round-robin",
        "",
        "outbound_from = [\"127.0.0.0/24\"]",
    );
    let (o, _) = run(&e, &mut e.worker(), msg.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(CARRIER_1), "out, like the pool");
}

/// Resolves `pool.test` to two servers (SRV targets on 127.0.0.1).
struct Pool;

impl crate::config::Resolve for Pool {
    fn resolve(&self, host: &str) -> Result<std::net::IpAddr, String> {
        Err(format!("no {host}"))
    }
    fn locate(
        &self,
        _key: &str,
        _host: &str,
        _port: u16,
        _transport: crate::flow::Transport,
    ) -> Result<Vec<Target>, String> {
        let t = |host: &str, a: &str| Target {
            priority: 10,
            weight: 10,
            id: 0,
            host: host.into(),
            transport: crate::flow::Transport::Udp,
            addr: addr(a),
        };
        Ok(vec![t("a.pool.test", DEST_A), t("b.pool.test", DEST_B)])
    }
}

#[test]
fn a_request_naming_the_pool_by_its_dns_name_goes_to_one_of_its_servers() {
    let text = format!(
        "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:{EDGE}\"]\n\
         foreign_next_hop = \"refuse\"\n\
         [[edge.destination]]\nuri = \"sip:pool.test\"\n"
    );
    let cfg = crate::config::parse_with(&text, "t.toml", &Pool).expect("config");
    assert_eq!(cfg.edges[0].destinations.len(), 2);
    let e = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &crate::keyring::KeyRing::single(SECRET),
    );
    // In dialog from outside, routed by the written name: to the pool,
    // not refused as a foreign next hop.
    let bye = out_invite(
        "sip:svc@pool.test",
        &format!("Route: <sip:{EDGE};lr>, <sip:pool.test;lr>\r\n"),
        CALLER,
    )
    .replace("INVITE", "BYE")
    .replace("To: <sip:svc@pool.test>", "To: <sip:svc@pool.test>;tag=x");
    let (o, _) = run(&e, &mut e.worker(), bye.as_bytes(), CALLER);
    assert_eq!(sent_to(o), addr(DEST_A), "the first server of the name");
}
