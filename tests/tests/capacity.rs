//! Capacity (issue 5 §3): calls beyond a node's calls-per-second or a
//! destination's channels, with real SIPp callers and servers and two
//! sipedge nodes — the redirect (302) to another node that SIPp follows,
//! the 503 with Retry-After without one, and channels freed by BYE.

use std::net::SocketAddr;

use e2e::config::{single_edge, transactional};
use e2e::expect::SILENCE;
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, SippUac, SippUas, Udp};

fn target(listen: u16) -> String {
    format!("127.0.0.1:{listen}")
}

/// Issue 5: node A (transactional, 3 calls per second) redirects what it
/// cannot take to node B (stateless) with a 302 that SIPp follows: every
/// call completes, some through each node, and B never redirects back.
#[test]
fn capacity_failover_redirects_to_another_node_and_sipp_follows() {
    require_private_netns();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let (a, b) = (free_port(), free_port());
    let node_a = transactional(&single_edge(a, "first", &[(uas.port(), 1)]), "").replace(
        "insertion = ",
        &format!("cps = 3\ncapacity_failover = [\"sip:127.0.0.1:{b}\"]\ninsertion = "),
    );
    let node_b = single_edge(b, "first", &[(uas.port(), 1)]).replace("id = \"test\"", "id = \"b\"");
    let _a = Sipedge::start(&node_a);
    let _b = Sipedge::start(&node_b);
    let calls = 30;
    let uac = SippUac::run("uac-follow-302.xml", &target(a), calls, 30, &[]);
    let uas = uas.stop();
    uac.assert_all_successful();
    let redirects = uac.responses(302);
    assert!(
        redirects.len() >= 15,
        "only {} of {calls} calls were redirected",
        redirects.len()
    );
    for r in &redirects {
        let contact = r.header("Contact").unwrap_or_default();
        assert!(
            contact.contains(&format!("@127.0.0.1:{b};sipedge-overflow")),
            "{contact}"
        );
    }
    let invites = uas.requests("INVITE");
    assert_eq!(invites.len(), calls as usize);
    let via_a = invites.iter().filter(|m| m.via_port() == Some(a)).count();
    let via_b = invites.iter().filter(|m| m.via_port() == Some(b)).count();
    assert_eq!(via_a + via_b, calls as usize);
    assert_eq!(
        via_b,
        redirects.len(),
        "each redirected call went through B"
    );
    assert!(via_a >= 3, "A took only {via_a}");
}

/// Without `capacity_failover`, a call beyond `cps` gets 503 with
/// Retry-After and never reaches the pool; its ACK stays at the edge.
#[test]
fn capacity_without_failover_refuses_with_503_and_retry_after() {
    refuses_beyond_cps("", 503, "Service Unavailable", Some("1"));
}

/// `capacity_code`: what a carrier's routing takes as "try the next",
/// with Retry-After only where RFC 3261 §20.33 allows it.
#[test]
fn capacity_code_replaces_the_503() {
    refuses_beyond_cps("capacity_code = 486", 486, "Busy Here", Some("1"));
    refuses_beyond_cps("capacity_code = 403", 403, "Forbidden", None);
}

/// An edge with `cps = 2` and `extra` keys, offered five calls at once:
/// three get `code` (with `reason` and `retry_after`) and never reach
/// the pool, nor do their ACKs.
fn refuses_beyond_cps(extra: &str, code: u16, reason: &str, retry_after: Option<&str>) {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let config = single_edge(listen, "first", &[(pool.ports()[0], 1)])
        .replace("flags = ", &format!("cps = 2\n{extra}\nflags = "));
    let _edge = Sipedge::start(&config);
    let caller = Udp::bind();
    let edge = SocketAddr::from((e2e::LOCALHOST, listen));
    let uri = format!("sip:svc@{}", target(listen));
    let invites: Vec<Request> = (0..5)
        .map(|_| Request::new("INVITE", &uri, caller.local_addr()))
        .collect();
    for inv in &invites {
        caller.send_to(inv.build(), edge);
    }
    // Every answer the caller gets, until it has been quiet for a while.
    let mut answers = Vec::new();
    while let Some((text, _)) = caller.recv_text_timeout(SILENCE) {
        answers.push(text);
    }
    let mut refused = 0;
    for inv in &invites {
        let call_id = inv.get("Call-ID").expect("Call-ID");
        let Some(text) = answers
            .iter()
            .find(|t| sip::header(t, "Call-ID") == Some(call_id))
        else {
            continue;
        };
        assert_eq!(sip::status_code(text), Some(code), "{text}");
        assert!(
            text.starts_with(&format!("SIP/2.0 {code} {reason}\r\n")),
            "{text}"
        );
        assert_eq!(sip::header(text, "Retry-After"), retry_after, "{text}");
        refused += 1;
        let ack = Request::new("ACK", &uri, caller.local_addr())
            .set("Via", inv.get("Via").expect("Via"))
            .set("From", inv.get("From").expect("From"))
            .set("To", sip::header(text, "To").expect("To"))
            .set("Call-ID", call_id)
            .set("CSeq", "1 ACK");
        caller.send_to(ack.build(), edge);
    }
    assert_eq!(refused, 3, "2 of 5 calls fit the burst of cps = 2");
    let mut reached = 0;
    while let Some(got) = pool.recv(SILENCE) {
        assert_eq!(sip::method(&got.text), Some("INVITE"), "{}", got.text);
        reached += 1;
    }
    assert_eq!(
        reached, 2,
        "only admitted calls (and no ACK) reach the pool"
    );
}

/// A destination's `channels`: while it holds that many calls, new ones go
/// to the next destination; once their BYEs passed, it takes calls again.
#[test]
fn destination_channels_spill_to_the_next_and_free_on_bye() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let config = single_edge(listen, "first", &[(a.port(), 1), (b.port(), 1)]).replacen(
        "weight = 1\n",
        "weight = 1\nchannels = 2\n",
        1,
    );
    let _edge = Sipedge::start(&config);
    for _round in 0..2 {
        // Six calls 200 ms apart, each lasting 3 s: A holds two, B the rest.
        let uac = SippUac::run("uac.xml", &target(listen), 6, 5, &["-d", "3000"]);
        uac.assert_all_successful();
    }
    let (a, b) = (a.stop(), b.stop());
    assert_eq!(a.count("INVITE"), 4, "two calls per round on A");
    assert_eq!(b.count("INVITE"), 8);
    assert_eq!(a.count("BYE"), 4);
}
