//! Transactional mode (issue 5) with real SIPp callers and servers: serial
//! failover on a failure code and on silence, the best response when every
//! server fails, CANCEL, absorbed retransmissions, and a transactional and
//! a stateless edge side by side in one process.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::config::{single_edge, transactional};
use e2e::expect::{final_response, next_arrival, pool_silent, ANSWER, SILENCE};
use e2e::sip::{self, Request};
use e2e::{
    calls_on_one_server, free_port, require_private_netns, FakePool, Sipedge, SippUac, SippUas, Udp,
};

fn target(listen: u16) -> String {
    format!("127.0.0.1:{listen}")
}

fn edge_addr(listen: u16) -> SocketAddr {
    SocketAddr::from((e2e::LOCALHOST, listen))
}

/// Sends an INVITE from `caller` through the edge and returns every
/// response up to the final one, after acknowledging a non-2xx final.
fn call(caller: &Udp, listen: u16) -> Vec<String> {
    let invite = Request::new(
        "INVITE",
        &format!("sip:svc@{}", target(listen)),
        caller.local_addr(),
    );
    caller.send_to(invite.build(), edge_addr(listen));
    let call_id = invite.get("Call-ID").expect("Call-ID").to_owned();
    let mut got = Vec::new();
    let deadline = Instant::now() + ANSWER;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (text, _) = caller
            .recv_matching(left, |t| {
                sip::header(t, "Call-ID") == Some(call_id.as_str())
            })
            .unwrap_or_else(|| panic!("no final response to {call_id}; got {got:#?}"));
        let code = sip::status_code(&text).expect("a response");
        got.push(text.clone());
        if code >= 200 {
            if code >= 300 {
                let to = sip::header(&text, "To").expect("To");
                let ack = Request::new(
                    "ACK",
                    &format!("sip:svc@{}", target(listen)),
                    caller.local_addr(),
                )
                .set("Via", invite.get("Via").expect("Via"))
                .set("From", invite.get("From").expect("From"))
                .set("Call-ID", &call_id)
                .set("To", to)
                .set("CSeq", "1 ACK");
                caller.send_to(ack.build(), edge_addr(listen));
            }
            return got;
        }
    }
}

fn codes(responses: &[String]) -> Vec<u16> {
    responses
        .iter()
        .filter_map(|r| sip::status_code(r))
        .collect()
}

/// Issue 5: a server answering 503 costs the caller nothing: every call
/// completes on the second server, and the first got its ACK hop by hop.
#[test]
fn transactional_503_fails_over_to_the_next_server() {
    require_private_netns();
    let broken = SippUas::start("uas-503.xml", free_port(), &[]);
    let good = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&transactional(
        &single_edge(listen, "first", &[(broken.port(), 1), (good.port(), 1)]),
        "",
    ));
    let calls = 50;
    let uac = SippUac::run("uac.xml", &target(listen), calls, 50, &[]);
    let (broken, good) = (broken.stop(), good.stop());
    uac.assert_all_successful();
    assert!(uac.responses(503).is_empty(), "a 503 reached the caller");
    assert_eq!(broken.count("INVITE"), calls as usize);
    assert_eq!(broken.count("ACK"), calls as usize, "503s not acknowledged");
    assert_eq!(broken.count("BYE"), 0);
    assert_eq!(
        calls_on_one_server(&[&good], &["INVITE", "ACK", "BYE"]),
        Ok(calls as usize)
    );
}

/// Issue 5: a server that never answers is given up on after the failover
/// timer and the call completes on the next one.
#[test]
fn transactional_silent_server_fails_over_after_the_failover_timer() {
    require_private_netns();
    let silent = Udp::bind();
    let good = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&transactional(
        &single_edge(listen, "first", &[(silent.port(), 1), (good.port(), 1)]),
        "failover_timeout = 0.3",
    ));
    let calls = 10;
    let uac = SippUac::run("uac.xml", &target(listen), calls, 20, &[]);
    let good = good.stop();
    uac.assert_all_successful();
    assert_eq!(good.count("INVITE"), calls as usize);
    // The silent server got each call's INVITE (retransmitted while waited on).
    let mut call_ids = BTreeSet::new();
    while let Some((text, _)) = silent.recv_text_timeout(SILENCE) {
        assert_eq!(sip::method(&text), Some("INVITE"), "{text}");
        call_ids.insert(sip::header(&text, "Call-ID").unwrap_or_default().to_owned());
    }
    assert_eq!(call_ids.len(), calls as usize);
    assert_eq!(call_ids, good.call_ids("INVITE"));
}

/// Issue 5: every server failing, the caller gets the best response of RFC
/// 3261 §16.7: a 486 over a 503; a 500 when every server said 503 (a proxy
/// does not pass a 503 on); each server gets its INVITE once and its ACK.
#[test]
fn transactional_every_server_failing_gives_the_best_response() {
    require_private_netns();
    for (codes_of_servers, best) in [([503, 486], 486), ([503, 503], 500), ([480, 503], 480)] {
        let servers: Vec<SippUas> = codes_of_servers
            .iter()
            .map(|&c| SippUas::rejecting(c, "Refused"))
            .collect();
        let listen = free_port();
        let edge = Sipedge::start(&transactional(
            &single_edge(
                listen,
                "first",
                &[(servers[0].port(), 1), (servers[1].port(), 1)],
            ),
            "",
        ));
        let caller = Udp::bind();
        let got = call(&caller, listen);
        assert_eq!(codes(&got), [100, best], "{codes_of_servers:?}: {got:#?}");
        // The caller's ACK is absorbed: its final is not retransmitted.
        assert!(caller
            .recv_text_timeout(Duration::from_millis(700))
            .is_none());
        drop(edge);
        for s in servers {
            let r = s.stop();
            assert_eq!(
                (r.count("INVITE"), r.count("ACK")),
                (1, 1),
                "{codes_of_servers:?}"
            );
        }
    }
}

/// Issue 5: CANCEL before the answer: the caller gets 200 for its CANCEL
/// and 487 for its INVITE, the server saw the CANCEL, and nothing goes to
/// the next server.
#[test]
fn transactional_cancel_before_answer() {
    require_private_netns();
    let ringing = SippUas::start("uas-ring-behind-proxy.xml", free_port(), &[]);
    let spare = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&transactional(
        &single_edge(listen, "first", &[(ringing.port(), 1), (spare.port(), 1)]),
        "",
    ));
    let calls = 20;
    let uac = SippUac::run("uac-cancel.xml", &target(listen), calls, 20, &[]);
    let (ringing, spare) = (ringing.stop(), spare.stop());
    uac.assert_all_successful();
    let cancel_oks = uac
        .responses(200)
        .into_iter()
        .filter(|m| m.cseq().is_some_and(|(_, method)| method == "CANCEL"))
        .count();
    assert_eq!(cancel_oks, calls as usize, "200 for each CANCEL");
    assert_eq!(uac.responses(487).len(), calls as usize);
    assert_eq!(ringing.count("CANCEL"), calls as usize);
    assert_eq!(ringing.count("ACK"), calls as usize, "487s acknowledged");
    assert_eq!(spare.count("INVITE"), 0, "a cancelled call went on");
}

/// Issue 5: INVITE retransmissions from the caller are absorbed: the
/// server sees one INVITE; the caller gets the last provisional again.
#[test]
fn transactional_invite_retransmissions_are_absorbed() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let _edge = Sipedge::start(&transactional(
        &single_edge(listen, "first", &[(pool.ports()[0], 1)]),
        // No retransmission of our own during the test.
        "t1 = 2\nt2 = 4",
    ));
    let caller = Udp::bind();
    let invite = Request::new(
        "INVITE",
        &format!("sip:svc@{}", target(listen)),
        caller.local_addr(),
    );
    let call_id = invite.get("Call-ID").expect("Call-ID").to_owned();
    for _ in 0..3 {
        caller.send_to(invite.build(), edge_addr(listen));
    }
    let got = next_arrival(&pool, "INVITE", &call_id);
    pool_silent(&pool, "INVITE retransmissions");
    for n in 0..3 {
        let (text, _) = caller.recv_text_timeout(ANSWER).expect("a 100 per INVITE");
        assert_eq!(sip::status_code(&text), Some(100), "#{n}: {text}");
    }
    pool.send_from(0, sip::response_to(&got.text, 180, "Ringing"), got.from);
    let (text, _) = caller.recv_text_timeout(ANSWER).expect("180 relayed");
    assert_eq!(sip::status_code(&text), Some(180));
    caller.send_to(invite.build(), edge_addr(listen));
    let (text, _) = caller.recv_text_timeout(ANSWER).expect("180 again");
    assert_eq!(sip::status_code(&text), Some(180), "{text}");
    pool_silent(&pool, "INVITE retransmission after the 180");
    pool.send_from(0, sip::response_to(&got.text, 200, "OK"), got.from);
    let (fin, _) = final_response(&caller, &call_id, "INVITE");
    assert_eq!(sip::status_code(&fin), Some(200));
}

/// Issue 5: a transactional and a stateless edge in one process, each in
/// front of a server answering 503 and a good one: the transactional edge
/// fails over, the stateless one relays the 503.
#[test]
fn transactional_and_stateless_edges_side_by_side() {
    require_private_netns();
    let servers = [
        SippUas::rejecting(503, "Service Unavailable"),
        SippUas::start("uas.xml", free_port(), &[]),
        SippUas::rejecting(503, "Service Unavailable"),
        SippUas::start("uas.xml", free_port(), &[]),
    ];
    let (stateless, stateful) = (free_port(), free_port());
    let first = single_edge(
        stateless,
        "first",
        &[(servers[0].port(), 1), (servers[1].port(), 1)],
    )
    .replace("name = \"e\"", "name = \"s\"");
    let second = single_edge(
        stateful,
        "first",
        &[(servers[2].port(), 1), (servers[3].port(), 1)],
    )
    .replace(
        "[node]\nid = \"test\"\nsecret = \"e2e-test-secret-0123456789\"\n",
        "",
    );
    let _edge = Sipedge::start(&transactional(&(first + &second), ""));
    let caller = Udp::bind();
    assert_eq!(codes(&call(&caller, stateless)), [503]);
    let uac = SippUac::run("uac.xml", &target(stateful), 10, 20, &[]);
    uac.assert_all_successful();
    let results: Vec<_> = servers.into_iter().map(SippUas::stop).collect();
    assert_eq!(
        results[1].count("INVITE"),
        0,
        "the stateless edge failed over"
    );
    assert_eq!(results[3].count("INVITE"), 10);
}

/// A full transaction table (`max_transactions`) degrades to stateless
/// forwarding: every call still completes, the admin API counts the
/// requests not kept and the log says failover is off for them.
#[test]
fn transactional_full_table_forwards_statelessly_and_says_so() {
    require_private_netns();
    let good = SippUas::start("uas.xml", free_port(), &[]);
    let (listen, admin) = (free_port(), free_port());
    let config = transactional(
        &single_edge(listen, "first", &[(good.port(), 1)]),
        // One transaction per shard: far fewer than 200 calls need.
        "max_transactions = 1",
    ) + &e2e::config::admin(admin);
    let edge = Sipedge::start(&config);
    let calls = 200;
    let uac = SippUac::run("uac.xml", &target(listen), calls, 200, &[]);
    uac.assert_all_successful();
    let api = e2e::AdminApi::local(admin).destinations();
    let e = &api["edges"][0];
    assert_eq!(e["insertion"].as_str(), Some("transactional"));
    let untracked = e["untracked"].as_u64().unwrap_or(0);
    assert!(untracked > 0, "nothing forwarded statelessly: {api}");
    assert!(
        edge.wait_for_stderr("transaction table full", Duration::from_secs(5)),
        "no warning in:\n{}",
        edge.stderr_text()
    );
    let good = good.stop();
    assert_eq!(good.count("INVITE"), calls as usize);
}
