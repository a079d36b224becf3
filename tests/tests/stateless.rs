//! Stateless proxying by hand-made messages (RFC 3261 §16, §16.11): the
//! INVITE's retransmission, CANCEL and non-2xx ACK go where the INVITE
//! went, from any instance; 483 and 482; garbage does not hurt; IPv6.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use e2e::config::{edge_at, single_edge};
use e2e::expect::{
    branch_of, final_response, next_arrival, pool_silent, via_values, ANSWER, SILENCE,
};
use e2e::junk::{self, Target};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, Direction, FakePool, Sipedge, SippUac, SippUas, Udp};

const SDP: &str = "v=0\r\no=e2e 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                   t=0 0\r\nm=audio 9 RTP/AVP 0\r\n";

fn edge_addr(listen: u16) -> SocketAddr {
    SocketAddr::from((e2e::LOCALHOST, listen))
}

/// Checks that a response relayed to the caller carries exactly the
/// caller's own Via (sipedge's popped), with the caller's branch.
#[track_caller]
fn assert_only_callers_via(resp: &str, request: &Request) {
    let vias = via_values(resp);
    assert_eq!(vias.len(), 1, "sipedge's Via not removed:\n{resp}");
    assert_eq!(
        sip::top_via_branch(resp),
        request.get("Via").and_then(branch_of),
        "{resp}"
    );
}

/// A request belonging to the INVITE transaction `invite` (RFC 3261 §9.1
/// for CANCEL, §17.1.1.3 for the ACK of a non-2xx): same Request-URI, top
/// Via, From, Call-ID and CSeq number; `to` is the To (with the tag of the
/// response for an ACK).
fn same_transaction(invite: &Request, method: &str, uri: &str, to: &str) -> Request {
    let get = |h: &str| invite.get(h).unwrap_or_else(|| panic!("INVITE has no {h}"));
    Request::new(method, uri, "127.0.0.1:9".parse().expect("addr"))
        .set("Via", get("Via"))
        .set("From", get("From"))
        .set("To", to)
        .set("Call-ID", get("Call-ID"))
        .set("CSeq", &format!("1 {method}"))
        .remove("Contact")
}

/// RFC 3261 §16.11 and DESIGN principle 2, on one instance: with weighted
/// round-robin (whose next pick would differ), an INVITE retransmission is
/// forwarded byte for byte to the same server, and so are the CANCEL and
/// the ACK of the 487 (same sipedge branch, so the server's transaction
/// matches them, §9.1 and §17.2.3); the 487 reaches the caller with only
/// its own Via.
#[test]
fn stateless_retransmission_cancel_and_ack_follow_the_invite() {
    require_private_netns();
    let pool = FakePool::start(2);
    let ports = pool.ports();
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "weighted-round-robin",
        &[(ports[0], 1), (ports[1], 1)],
    ));
    let caller = Udp::bind();
    let uri = format!("sip:bob@127.0.0.1:{listen}");
    let new_invite =
        || Request::new("INVITE", &uri, caller.local_addr()).body("application/sdp", SDP);

    let invite = new_invite();
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(invite.build(), edge_addr(listen));
    let first = next_arrival(&pool, "INVITE", &call_id);
    let branch = sip::top_via_branch(&first.text)
        .expect("forwarded INVITE has a Via")
        .to_string();
    assert!(
        branch.starts_with("z9hG4bKsE"),
        "top Via is not sipedge's:\n{}",
        first.text
    );
    let s = first.server;
    // RFC 3581 §4: the caller's Via (it asked with `rport`) gets the source
    // port, and `received` even though it equals the sent-by host.
    let caller_via = &via_values(&first.text)[1];
    let port = caller.port();
    assert!(
        caller_via.contains(&format!(";rport={port}"))
            && caller_via.contains(";received=127.0.0.1"),
        "caller's Via lacks rport={port} / received:\n{}",
        first.text
    );

    // The retransmission: identical bytes in, identical bytes out, same server.
    caller.send_to(invite.build(), edge_addr(listen));
    let again = next_arrival(&pool, "INVITE", &call_id);
    assert_eq!(again.server, s, "retransmission went to another server");
    assert_eq!(
        again.text, first.text,
        "retransmission forwarded differently"
    );

    // Two new calls: round-robin 1:1 moves to the other server and back,
    // so the next fresh pick would be the other server, not `s`.
    let second = new_invite();
    let second_id = second.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(second.build(), edge_addr(listen));
    let got = next_arrival(&pool, "INVITE", &second_id);
    assert_ne!(
        got.server, s,
        "round-robin 1:1 picked the same server twice"
    );
    let third = new_invite();
    let third_id = third.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(third.build(), edge_addr(listen));
    let got = next_arrival(&pool, "INVITE", &third_id);
    assert_eq!(got.server, s, "round-robin 1:1 did not alternate");

    // CANCEL of the first INVITE: same server, same branch (§16.11: a
    // stateless proxy gives the CANCEL the branch of the INVITE).
    let to = invite.get("To").expect("To").to_string();
    let cancel = same_transaction(&invite, "CANCEL", &uri, &to);
    caller.send_to(cancel.build(), edge_addr(listen));
    let c = next_arrival(&pool, "CANCEL", &call_id);
    assert_eq!(c.server, s, "CANCEL went to another server than its INVITE");
    assert_eq!(
        sip::top_via_branch(&c.text),
        Some(branch.as_str()),
        "{}",
        c.text
    );
    assert_eq!(sip::cseq(&c.text), Some((1, "CANCEL")));

    // The server answers the CANCEL and ends the INVITE with 487.
    pool.send_from(s, sip::response_to(&c.text, 200, "OK"), c.from);
    let (ok, _) = final_response(&caller, &call_id, "CANCEL");
    assert_eq!(sip::status_code(&ok), Some(200), "{ok}");
    assert_only_callers_via(&ok, &cancel);
    pool.send_from(
        s,
        sip::response_to(&first.text, 487, "Request Terminated"),
        first.from,
    );
    let (terminated, from) = final_response(&caller, &call_id, "INVITE");
    assert_eq!(sip::status_code(&terminated), Some(487), "{terminated}");
    assert_eq!(from, edge_addr(listen), "487 not sent from the listener");
    assert_only_callers_via(&terminated, &invite);
    let tagged_to = sip::header(&terminated, "To").expect("To").to_string();
    assert!(tagged_to.contains(";tag="), "{terminated}");

    // The ACK of the 487: same server, same branch.
    let ack = same_transaction(&invite, "ACK", &uri, &tagged_to);
    caller.send_to(ack.build(), edge_addr(listen));
    let a = next_arrival(&pool, "ACK", &call_id);
    assert_eq!(a.server, s, "ACK of the 487 went to another server");
    assert_eq!(
        sip::top_via_branch(&a.text),
        Some(branch.as_str()),
        "{}",
        a.text
    );

    // Nothing else was forwarded (no duplicate to the other server).
    pool_silent(&pool, "a stray message after the ACK");
}

/// DESIGN principles 1 and 2 across instances: two sipedges sharing the
/// secret and the advertised address (as behind one anycast address),
/// `random` algorithm. INVITEs go through instance 1, their CANCELs and
/// non-2xx ACKs through instance 2: each reaches the server of its INVITE
/// with the INVITE's branch, and each instance relays the responses.
#[test]
fn stateless_cancel_and_ack_via_another_instance_follow_the_invite() {
    require_private_netns();
    let pool = FakePool::start(2);
    let ports = pool.ports();
    let dests = [(ports[0], 1), (ports[1], 1)];
    let (l1, l2) = (free_port(), free_port());
    let _e1 = Sipedge::start(&single_edge(l1, "random", &dests));
    // Instance 2 listens elsewhere (one machine) but advertises instance
    // 1's address, as every instance behind an anycast address would.
    let cfg2 = single_edge(l2, "random", &dests).replacen(
        &format!("listen = [\"udp:127.0.0.1:{l2}\"]\n"),
        &format!("listen = [\"udp:127.0.0.1:{l2}\"]\nadvertise = \"127.0.0.1:{l1}\"\n"),
        1,
    );
    assert!(cfg2.contains("advertise"), "{cfg2}");
    let _e2 = Sipedge::start(&cfg2);
    let caller = Udp::bind();
    let uri = format!("sip:bob@127.0.0.1:{l1}");

    let mut servers = BTreeSet::new();
    for _ in 0..20 {
        let invite = Request::new("INVITE", &uri, caller.local_addr()).body("application/sdp", SDP);
        let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
        caller.send_to(invite.build(), edge_addr(l1));
        let first = next_arrival(&pool, "INVITE", &call_id);
        let branch = sip::top_via_branch(&first.text).map(str::to_string);
        servers.insert(first.server);

        let to = invite.get("To").expect("To").to_string();
        let cancel = same_transaction(&invite, "CANCEL", &uri, &to);
        caller.send_to(cancel.build(), edge_addr(l2));
        let c = next_arrival(&pool, "CANCEL", &call_id);
        assert_eq!(
            c.server, first.server,
            "CANCEL via instance 2 went to another server than the INVITE via instance 1"
        );
        assert_eq!(
            sip::top_via_branch(&c.text),
            branch.as_deref(),
            "{}",
            c.text
        );

        // The CANCEL's 200 goes back through instance 2, the 487 through
        // instance 1: either verifies the other's branch.
        pool.send_from(c.server, sip::response_to(&c.text, 200, "OK"), c.from);
        let (ok, _) = final_response(&caller, &call_id, "CANCEL");
        assert_eq!(sip::status_code(&ok), Some(200), "{ok}");
        pool.send_from(
            first.server,
            sip::response_to(&first.text, 487, "Request Terminated"),
            first.from,
        );
        let (terminated, _) = final_response(&caller, &call_id, "INVITE");
        assert_eq!(sip::status_code(&terminated), Some(487), "{terminated}");
        assert_only_callers_via(&terminated, &invite);

        let tagged_to = sip::header(&terminated, "To").expect("To").to_string();
        let ack = same_transaction(&invite, "ACK", &uri, &tagged_to);
        caller.send_to(ack.build(), edge_addr(l2));
        let a = next_arrival(&pool, "ACK", &call_id);
        assert_eq!(a.server, first.server, "ACK via instance 2 went elsewhere");
        assert_eq!(
            sip::top_via_branch(&a.text),
            branch.as_deref(),
            "{}",
            a.text
        );
    }
    assert_eq!(servers.len(), 2, "20 random picks all went to one server");
}

/// RFC 3261 §16.3 step 3: a request with Max-Forwards 0 is answered 483
/// and not forwarded; with Max-Forwards 1 it is forwarded with 0.
#[test]
fn stateless_max_forwards_zero_gets_483() {
    require_private_netns();
    let pool = FakePool::start(2);
    let ports = pool.ports();
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "hash-call-id",
        &[(ports[0], 1), (ports[1], 1)],
    ));
    let caller = Udp::bind();

    // A new call (dispatched), and an in-dialog BYE naming a destination
    // (routed by Request-URI): both would be forwarded but for Max-Forwards.
    let invite = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{listen}"),
        caller.local_addr(),
    )
    .set("Max-Forwards", "0")
    .body("application/sdp", SDP);
    let bye = Request::new(
        "BYE",
        &format!("sip:bob@127.0.0.1:{}", ports[1]),
        caller.local_addr(),
    )
    .set("To", &format!("<sip:bob@127.0.0.1:{listen}>;tag=mf0"))
    .set("CSeq", "2 BYE")
    .set("Max-Forwards", "0");
    for req in [&invite, &bye] {
        caller.send_to(req.build(), edge_addr(listen));
        let call_id = req.get("Call-ID").expect("Call-ID");
        let cseq_method = sip::cseq(&req.build()).expect("CSeq").1.to_string();
        let (resp, from) = final_response(&caller, call_id, &cseq_method);
        assert_eq!(sip::status_code(&resp), Some(483), "{resp}");
        assert_eq!(from, edge_addr(listen));
        assert_only_callers_via(&resp, req);
    }

    // OPTIONS to a destination (not to the edge: no ping reply) with
    // Max-Forwards 0: §16.3 step 3 lets a proxy answer an OPTIONS itself
    // (200) instead of 483, but never forward it.
    let options = Request::new(
        "OPTIONS",
        &format!("sip:127.0.0.1:{}", ports[0]),
        caller.local_addr(),
    )
    .set("Max-Forwards", "0");
    caller.send_to(options.build(), edge_addr(listen));
    let (resp, from) = final_response(&caller, options.get("Call-ID").expect("Call-ID"), "OPTIONS");
    assert!(
        matches!(sip::status_code(&resp), Some(483 | 200)),
        "OPTIONS with Max-Forwards 0: {resp}"
    );
    assert_eq!(from, edge_addr(listen));

    // Max-Forwards 1 still goes through, decremented to 0; it is the first
    // thing the pool sees, so none of the above was forwarded.
    let last_hop = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{listen}"),
        caller.local_addr(),
    )
    .set("Max-Forwards", "1")
    .body("application/sdp", SDP);
    let last_id = last_hop.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(last_hop.build(), edge_addr(listen));
    let got = next_arrival(&pool, "INVITE", &last_id);
    assert_eq!(
        sip::header(&got.text, "Max-Forwards"),
        Some("0"),
        "{}",
        got.text
    );
    pool_silent(&pool, "a Max-Forwards 0 request was forwarded");
}

/// RFC 3261 §16.3 step 4: a destination that sends back, byte for byte,
/// the INVITE sipedge forwarded to it gets nothing (sipedge's own Via is
/// on top: an answer would go to sipedge itself); one that proxies it back
/// unchanged twice makes a loop, and the second return gets 482. The same
/// INVITE sent back with a new Request-URI is a spiral, not a loop, and is
/// forwarded.
#[test]
fn stateless_looped_request_gets_482_and_spiral_passes() {
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
    let invite = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{listen}"),
        caller.local_addr(),
    )
    .body("application/sdp", SDP);
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(invite.build(), edge_addr(listen));
    let got = next_arrival(&pool, "INVITE", &call_id);
    assert_eq!(got.server, 0, "`first` picked server {}", got.server);

    // Server 0 sends the very same bytes back: sipedge's own Via is on
    // top, so any answer would go to sipedge itself. It is dropped, not
    // answered and not forwarded: the spiral below is the next thing the
    // pool sees, and the caller has nothing waiting by then.
    pool.send_from(0, &got.text, got.from);

    // The loop: server 0, acting as a proxy, sends it back with its own
    // Via on top and the Request-URI unchanged. From the pool that is
    // routed again (back into the pool: it names the edge), once; the
    // second time it has looped and gets 482, to server 0.
    let proxied = |text: &str, n: u32| {
        let (line, rest) = text.split_once("\r\n").expect("start line");
        format!(
            "{line}\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-e2e-loop{n}\r\n{rest}",
            pool.addr(0)
        )
    };
    pool.send_from(0, proxied(&got.text, 1), got.from);
    let again = next_arrival(&pool, "INVITE", &call_id);
    pool.send_from(0, proxied(&again.text, 2), got.from);
    let looped = pool
        .recv_matching(ANSWER, |a| sip::status_code(&a.text).is_some())
        .expect("an answer to the looping INVITE");
    assert_eq!(sip::status_code(&looped.text), Some(482), "{}", looped.text);
    assert_eq!(looped.server, 0);

    // The spiral: server 0, acting as a proxy, retargets the request to
    // server 1 (new Request-URI, its own Via on top).
    let (start, rest) = got.text.split_once("\r\n").expect("start line");
    assert!(start.starts_with("INVITE "), "{start}");
    let spiral = format!(
        "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {};branch=z9hG4bK-e2e-spiral\r\n{rest}",
        ports[1],
        pool.addr(0)
    );
    pool.send_from(0, &spiral, got.from);
    let spiralled = next_arrival(&pool, "INVITE", &call_id);
    assert_eq!(
        spiralled.server, 1,
        "spiral not forwarded to its new target"
    );
    assert_eq!(
        via_values(&spiralled.text).len(),
        4,
        "expected sipedge, server 0, sipedge, caller Vias:\n{}",
        spiralled.text
    );
    // Nothing reached the caller all along: not an answer to the same
    // bytes sent back, nor the 482 meant for server 0.
    assert!(
        caller.already_received().is_none(),
        "the caller got an answer"
    );
}

/// DESIGN principle 7 and issue 2 §8: 1,000 garbage datagrams (random
/// bytes and text, truncated and broken SIP, forged responses, 60 KiB
/// datagrams, empty datagrams, CRLF keep-alives) do not stop sipedge, are
/// never forwarded to the pool, and get no answer but an error; then SIPp
/// calls go through.
#[test]
fn stateless_survives_1000_garbage_datagrams() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let mut edge = Sipedge::start(&single_edge(
        listen,
        "hash-call-id",
        &[(a.port(), 1), (b.port(), 1)],
    ));
    let junk_sender = Udp::bind();
    let target = Target {
        edge: edge_addr(listen),
        sender: junk_sender.local_addr(),
        victim: a.addr(),
    };
    let seed = 0x5eed_2026;
    let datagrams = junk::garbage(seed, 1000, &target);
    assert_eq!(datagrams.len(), 1000);

    // In batches of 10, each followed by an OPTIONS ping from the same
    // socket (so the same worker, in order): its 200 shows the batch was
    // processed and the worker is alive. Everything else that comes back
    // must be an error response.
    let mut answers = Vec::new();
    for (n, batch) in datagrams.chunks(10).enumerate() {
        for d in batch {
            junk_sender.send_to(d, edge_addr(listen));
        }
        let ping = Request::new(
            "OPTIONS",
            &format!("sip:127.0.0.1:{listen}"),
            junk_sender.local_addr(),
        );
        let ping_id = ping.get("Call-ID").expect("Call-ID").to_string();
        junk_sender.send_to(ping.build(), edge_addr(listen));
        // Bounded: each turn consumes one datagram or ends at the deadline.
        let deadline = std::time::Instant::now() + ANSWER;
        loop {
            let left = deadline
                .checked_duration_since(std::time::Instant::now())
                .unwrap_or_else(|| {
                    panic!("no answer to the ping after batch {n} (seed {seed:#x})")
                });
            let Some((text, _)) = junk_sender.recv_text_timeout(left) else {
                panic!("no answer to the ping after batch {n} (seed {seed:#x})");
            };
            if sip::header(&text, "Call-ID") == Some(ping_id.as_str()) {
                assert_eq!(sip::status_code(&text), Some(200), "{text}");
                break;
            }
            answers.push(text);
        }
    }
    assert!(edge.is_running(), "sipedge died on garbage");
    let not_errors: Vec<&String> = answers
        .iter()
        .filter(|t| !sip::status_code(t).is_some_and(|c| (400..700).contains(&c)))
        .collect();
    assert!(
        not_errors.is_empty(),
        "garbage (seed {seed:#x}) got {} answers that are not error responses:\n{}",
        not_errors.len(),
        not_errors
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join("\n----\n")
    );

    let uac = SippUac::run("uac.xml", &format!("127.0.0.1:{listen}"), 10, 50, &[]);
    let (a, b) = (a.stop(), b.stop());
    uac.assert_all_successful();
    assert!(edge.is_running(), "sipedge died");
    let calls: BTreeSet<&str> = uac
        .messages()
        .iter()
        .filter(|m| m.direction == Direction::Sent && m.method() == Some("INVITE"))
        .filter_map(|m| m.call_id())
        .collect();
    assert_eq!(calls.len(), 10);
    let leaked: Vec<&str> = [&a, &b]
        .iter()
        .flat_map(|server| server.received())
        .filter(|m| !(m.is_request() && m.call_id().is_some_and(|id| calls.contains(id))))
        // sipedge's own health probes are not garbage that got through.
        .filter(|m| !m.is_health_probe())
        .map(|m| m.text.as_str())
        .collect();
    assert!(
        leaked.is_empty(),
        "{} garbage messages (seed {seed:#x}) reached the pool:\n{}",
        leaked.len(),
        leaked.join("\n----\n")
    );
    assert_eq!(a.count("INVITE") + b.count("INVITE"), 10);
}

/// A datagram cut short inside its header section is not a SIP message:
/// "the empty line MUST be present even if the message-body is not" (RFC
/// 3261 §7), and a UDP datagram is the whole message (§18.3). sipedge must
/// refuse (400) or drop such a datagram, not complete it and forward it:
/// downstream, a repaired truncated request is indistinguishable from a
/// real one.
#[test]
fn stateless_datagram_cut_in_its_headers_is_not_forwarded() {
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
    let target = Target {
        edge: edge_addr(listen),
        sender: caller.local_addr(),
        victim: pool.addr(0),
    };
    let mut cases: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let mut case = |what: &'static str, cut: &dyn Fn(&str) -> usize| {
        let call_id = sip::unique("cut-");
        let full = junk::valid_invite(&target, &call_id);
        let bytes = full.as_bytes()[..cut(&full)].to_vec();
        cases.push((what, call_id, bytes));
    };
    case("ends after the To line's CRLF", &|m| {
        junk::to_value_end(m) + 2
    });
    case("ends in a bare CR after the To value", &|m| {
        junk::to_value_end(m) + 1
    });
    case("ends inside the Content-Type value", &|m| {
        m.find("Content-Type: applic").expect("Content-Type") + 20
    });
    case("ends inside the Max-Forwards line", &|m| {
        m.find("Max-Forwards: 7").expect("Max-Forwards") + 15
    });
    // A bodiless request, complete but for the empty line.
    let bodiless = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{listen}"),
        caller.local_addr(),
    );
    let text = bodiless.build();
    let unterminated = text.strip_suffix("\r\n").expect("ends with the empty line");
    cases.push((
        "has complete headers, no body, but no empty line",
        bodiless.get("Call-ID").expect("Call-ID").to_string(),
        unterminated.as_bytes().to_vec(),
    ));

    for (_, _, bytes) in &cases {
        caller.send_to(bytes, edge_addr(listen));
    }
    // A complete INVITE after them, from the same socket (same worker, in
    // order): it must be the first thing the pool sees.
    let marker = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{listen}"),
        caller.local_addr(),
    )
    .body("application/sdp", SDP);
    let marker_id = marker.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(marker.build(), edge_addr(listen));

    let mut forwarded = Vec::new();
    // Bounded: at most one arrival per case plus the marker, each waited
    // for at most ANSWER.
    for _ in 0..=cases.len() {
        let Some(got) = pool.recv(ANSWER) else { break };
        if sip::header(&got.text, "Call-ID") == Some(marker_id.as_str()) {
            break;
        }
        forwarded.push(got);
    }
    forwarded.extend(std::iter::from_fn(|| pool.recv(SILENCE)).take(16));
    let report: Vec<String> = forwarded
        .iter()
        .map(|got| {
            let id = sip::header(&got.text, "Call-ID").unwrap_or("");
            let what = cases
                .iter()
                .find(|(_, c, _)| c == id)
                .map_or("(unknown)", |(w, _, _)| *w);
            format!(
                "datagram that {what} reached server {} as:\n{}",
                got.server,
                got.text.replace('\r', "\\r")
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} of {} truncated datagrams were forwarded:\n{}",
        report.len(),
        cases.len(),
        report.join("\n")
    );
    // Whatever came back to the caller for them is an error.
    while let Some((text, _)) = caller.recv_text_timeout(SILENCE) {
        let code = sip::status_code(&text);
        assert!(
            code.is_some_and(|c| c >= 400),
            "a truncated datagram was answered with:\n{text}"
        );
    }
}

/// IPv6 (issue 2 §8): sipedge on [::1] between SIPp caller and servers on
/// [::1]; calls complete, each on one server, with sipedge's IPv6 Via and
/// Record-Route.
#[test]
fn stateless_ipv6_calls_complete() {
    require_private_netns();
    let v6 = ["-i", "::1"];
    let a = SippUas::start("uas.xml", free_port(), &v6);
    let b = SippUas::start("uas.xml", free_port(), &v6);
    let listen = free_port();
    let (ua, ub) = (
        format!("sip:[::1]:{}", a.port()),
        format!("sip:[::1]:{}", b.port()),
    );
    let _edge = Sipedge::start(&edge_at(
        &format!("udp:[::1]:{listen}"),
        "hash-call-id",
        &[(&ua, 1), (&ub, 1)],
    ));
    let uac = SippUac::run("uac.xml", &format!("[::1]:{listen}"), 40, 100, &v6);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    assert_eq!(
        e2e::calls_on_one_server(&[&a, &b], &["INVITE", "ACK", "BYE"]),
        Ok(40)
    );
    assert!(
        a.count("INVITE") > 0 && b.count("INVITE") > 0,
        "40 calls all hashed to one server"
    );
    let invite = a.requests("INVITE")[0];
    let top = via_values(&invite.text)[0].clone();
    assert!(
        top.starts_with(&format!("SIP/2.0/UDP [::1]:{listen};branch=z9hG4bKsE")),
        "{}",
        invite.text
    );
    let rr = sip::untokened(invite.header("Record-Route").unwrap_or(""));
    assert!(
        rr.starts_with(&format!("<sip:[::1]:{listen};")),
        "{}",
        invite.text
    );
}
