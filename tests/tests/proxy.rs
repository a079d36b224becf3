//! sipedge as a stateless proxy in front of a pool: calls, dispatch,
//! CANCEL, pings, and what it refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e::config::single_edge;
use e2e::sip::{self, Request};
use e2e::{
    calls_on_one_server, free_port, require_private_netns, FakePool, InjectionFile, Sipedge,
    SippUac, SippUas, Udp,
};

/// Long enough for any answer on loopback; only reached when one is lost.
const ANSWER: Duration = Duration::from_secs(5);

fn listen_target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn proxy_calls_succeed_and_each_call_stays_on_one_server() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let edge = Sipedge::start(&single_edge(
        listen,
        "hash-call-id",
        &[(a.port(), 1), (b.port(), 1)],
    ));
    let uac = SippUac::run("uac.xml", &listen_target(listen), 200, 100, &[]);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    assert_eq!(
        calls_on_one_server(&[&a, &b], &["INVITE", "ACK", "BYE"]),
        Ok(200)
    );
    assert!(
        a.count("INVITE") > 0 && b.count("INVITE") > 0,
        "hash-call-id sent every call to one server: {} / {}",
        a.count("INVITE"),
        b.count("INVITE")
    );

    // What a server sees: sipedge's Via on top of the caller's, its
    // Record-Route naming the listener, Max-Forwards decremented.
    let invite = a.requests("INVITE")[0];
    let vias = invite.headers("Via").join(",");
    assert_eq!(vias.matches("SIP/2.0/UDP").count(), 2, "{}", invite.text);
    assert!(
        vias.starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{listen}")),
        "top Via should be sipedge's listener:\n{}",
        invite.text
    );
    let rr = invite
        .header("Record-Route")
        .unwrap_or_else(|| panic!("INVITE not record-routed:\n{}", invite.text));
    assert_eq!(
        sip::untokened(rr),
        format!("<sip:127.0.0.1:{listen};lr>"),
        "{rr}"
    );
    assert_eq!(sip::tokens(rr), 1, "the dialog's flow token: {rr}");
    assert_eq!(invite.header("Max-Forwards"), Some("69"), "{}", invite.text);

    // What the caller sees: its own Via only.
    for ok in uac.responses(200) {
        let vias = ok.headers("Via").join(",");
        assert_eq!(vias.matches("SIP/2.0/UDP").count(), 1, "{}", ok.text);
    }
    drop(edge);
}

#[test]
fn proxy_weighted_round_robin_follows_weights() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "weighted-round-robin",
        &[(a.port(), 3), (b.port(), 1)],
    ));
    let uac = SippUac::run("uac.xml", &listen_target(listen), 400, 200, &[]);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    assert_eq!(
        calls_on_one_server(&[&a, &b], &["INVITE", "ACK", "BYE"]),
        Ok(400)
    );
    let share = a.count("INVITE") as f64 / 400.0;
    // 3:1 is 0.75; the band is over 4 standard deviations of a fair draw.
    assert!(
        (0.65..=0.85).contains(&share),
        "weight 3 server got {} of 400 calls",
        a.count("INVITE")
    );
}

#[test]
fn proxy_first_sends_everything_to_the_first_destination() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "first",
        &[(a.port(), 1), (b.port(), 1)],
    ));
    let uac = SippUac::run("uac.xml", &listen_target(listen), 50, 100, &[]);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    assert_eq!(a.count("INVITE"), 50);
    assert_eq!(b.count("INVITE"), 0);
}

#[test]
fn proxy_hash_to_uri_keeps_one_callee_on_one_server() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "hash-to-uri",
        &[(a.port(), 1), (b.port(), 1)],
    ));
    // `-s` sets the user part of the Request-URI and To.
    let uac = SippUac::run("uac.xml", &listen_target(listen), 40, 100, &["-s", "alice"]);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    let counts = (a.count("INVITE"), b.count("INVITE"));
    assert!(
        counts == (40, 0) || counts == (0, 40),
        "one To URI split over servers: {counts:?}"
    );
}

#[test]
fn proxy_hash_auth_username_keeps_each_user_on_one_server() {
    require_private_netns();
    let users: Vec<String> = (0..16).map(|i| format!("user{i:02}")).collect();
    let rows: Vec<&str> = users.iter().map(String::as_str).collect();
    let inf = InjectionFile::sequential(&rows);
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "hash-auth-username",
        &[(a.port(), 1), (b.port(), 1)],
    ));
    let uac = SippUac::run(
        "uac-auth.xml",
        &listen_target(listen),
        64,
        100,
        &["-inf", inf.path_str()],
    );
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    let mut servers_of_user: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, server) in [&a, &b].iter().enumerate() {
        for invite in server.requests("INVITE") {
            let auth = invite.header("Proxy-Authorization").unwrap_or("");
            let user = auth
                .split("username=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("no username in {auth:?}"));
            servers_of_user
                .entry(user.to_string())
                .or_default()
                .insert(i);
        }
    }
    assert_eq!(servers_of_user.len(), 16);
    for (user, servers) in &servers_of_user {
        assert_eq!(servers.len(), 1, "{user} went to servers {servers:?}");
    }
    let used: BTreeSet<usize> = servers_of_user.values().flatten().copied().collect();
    assert_eq!(used.len(), 2, "16 users all hashed to one server");
}

#[test]
fn proxy_cancel_reaches_the_server_of_its_invite() {
    require_private_netns();
    let a = SippUas::start("uas-ring.xml", free_port(), &[]);
    let b = SippUas::start("uas-ring.xml", free_port(), &[]);
    let listen = free_port();
    // `random` is the hard case: the CANCEL and the ACK of the 487 must
    // draw the same server as their INVITE with no state kept.
    let _edge = Sipedge::start(&single_edge(
        listen,
        "random",
        &[(a.port(), 1), (b.port(), 1)],
    ));
    let uac = SippUac::run("uac-cancel.xml", &listen_target(listen), 100, 100, &[]);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    assert_eq!(
        calls_on_one_server(&[&a, &b], &["INVITE", "CANCEL", "ACK"]),
        Ok(100)
    );
    assert_eq!(
        a.failed() + b.failed(),
        0,
        "{}\n{}",
        a.summary(),
        b.summary()
    );
}

#[test]
fn proxy_hash_call_id_is_the_same_on_every_instance() {
    require_private_netns();
    let pool = FakePool::start(2);
    let ports = pool.ports();
    let dests = [(ports[0], 1), (ports[1], 1)];
    let (l1, l2) = (free_port(), free_port());
    let _e1 = Sipedge::start(&single_edge(l1, "hash-call-id", &dests));
    let _e2 = Sipedge::start(&single_edge(l2, "hash-call-id", &dests));
    let caller = Udp::bind();

    let mut used = BTreeSet::new();
    for i in 0..20 {
        let call_id = format!("same-everywhere-{i}");
        let mut chosen = Vec::new();
        for listen in [l1, l2] {
            // A fresh transaction each time (new branch), same Call-ID.
            let invite = Request::new(
                "INVITE",
                &format!("sip:bob@127.0.0.1:{listen}"),
                caller.local_addr(),
            )
            .set("Call-ID", &call_id);
            caller.send_to(invite.build(), ("127.0.0.1", listen));
            let got = pool
                .recv_matching(ANSWER, |a| {
                    sip::header(&a.text, "Call-ID") == Some(&call_id)
                })
                .unwrap_or_else(|| panic!("INVITE {call_id} via port {listen} reached no server"));
            chosen.push(got.server);
        }
        assert_eq!(
            chosen[0], chosen[1],
            "{call_id}: instance 1 chose server {}, instance 2 server {}",
            chosen[0], chosen[1]
        );
        used.insert(chosen[0]);
    }
    assert_eq!(used.len(), 2, "20 Call-IDs all hashed to one server");
}

#[test]
fn proxy_replies_to_options_ping() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(listen, "first", &[(pool.ports()[0], 1)]));
    let caller = Udp::bind();
    let ping = Request::new(
        "OPTIONS",
        &format!("sip:127.0.0.1:{listen}"),
        caller.local_addr(),
    );
    caller.send_to(ping.build(), ("127.0.0.1", listen));
    let (answer, from) = caller
        .recv_matching(ANSWER, |t| sip::status_code(t).is_some_and(|c| c >= 200))
        .expect("no answer to OPTIONS ping");
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");
    assert_eq!(from.port(), listen);
    assert_eq!(sip::header(&answer, "Call-ID"), ping.get("Call-ID"));
    assert_eq!(
        sip::top_via_branch(&answer),
        sip::top_via_branch(&ping.build())
    );
    assert!(
        pool.recv(Duration::from_millis(200)).is_none(),
        "a ping for sipedge itself was forwarded to the pool"
    );
}

/// A request that would no longer fit one datagram once sipedge's Via and
/// Record-Route are added gets 513 Message Too Large (RFC 3261 §21.5.11)
/// from the edge, and nothing reaches the pool; one a little smaller is
/// forwarded whole.
#[test]
fn proxy_answers_513_to_a_request_too_large_to_forward() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(listen, "first", &[(pool.ports()[0], 1)]));
    let caller = Udp::bind();
    let uri = format!("sip:svc@127.0.0.1:{listen}");
    let huge =
        Request::new("MESSAGE", &uri, caller.local_addr()).body("text/plain", &"a".repeat(65_000));
    caller.send_to(huge.build(), ("127.0.0.1", listen));
    let (answer, _) = caller
        .recv_matching(ANSWER, |t| sip::status_code(t).is_some_and(|c| c >= 200))
        .expect("no answer to an oversized MESSAGE");
    assert_eq!(sip::status_code(&answer), Some(513), "{answer}");
    assert_eq!(sip::header(&answer, "Call-ID"), huge.get("Call-ID"));

    let large =
        Request::new("MESSAGE", &uri, caller.local_addr()).body("text/plain", &"a".repeat(60_000));
    caller.send_to(large.build(), ("127.0.0.1", listen));
    let got = pool
        .recv(ANSWER)
        .expect("a 60 KB MESSAGE was not forwarded");
    assert_eq!(sip::header(&got.text, "Call-ID"), large.get("Call-ID"));
    assert_eq!(sip::body(&got.text).len(), 60_000);
}

#[test]
fn proxy_routes_in_dialog_request_to_a_destination() {
    require_private_netns();
    let pool = FakePool::start(2);
    let listen = free_port();
    let ports = pool.ports();
    let _edge = Sipedge::start(&single_edge(
        listen,
        "first",
        &[(ports[0], 1), (ports[1], 1)],
    ));
    let caller = Udp::bind();
    // An in-dialog request whose Request-URI names the second destination
    // (as a Contact learned from its 200 would) goes there, not to the
    // first one the algorithm would pick for a new call.
    let bye = Request::new(
        "BYE",
        &format!("sip:127.0.0.1:{};transport=UDP", ports[1]),
        caller.local_addr(),
    )
    .set("To", &format!("<sip:bob@127.0.0.1:{listen}>;tag=xyz"))
    .set("CSeq", "2 BYE");
    caller.send_to(bye.build(), ("127.0.0.1", listen));
    let got = pool
        .recv_matching(ANSWER, |a| sip::method(&a.text) == Some("BYE"))
        .expect("BYE reached no server");
    assert_eq!(got.server, 1, "{}", got.text);
    // The server answers; sipedge relays the answer back to the caller.
    pool.send_from(1, sip::response_to(&got.text, 200, "OK"), got.from);
    let (answer, _) = caller
        .recv_matching(ANSWER, |t| sip::status_code(t).is_some())
        .expect("200 for BYE not relayed");
    assert_eq!(sip::status_code(&answer), Some(200));
    assert_eq!(sip::header(&answer, "Call-ID"), bye.get("Call-ID"));
}
