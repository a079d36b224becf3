//! `explain`: each stage's verdict, the algorithm's ranking, and that
//! explaining changes nothing on the edge it shadows.

use super::super::explain::{arrival, explain, Explanation};
use super::super::Edge;
use crate::config;
use crate::keyring::KeyRing;
use std::net::SocketAddr;
use std::time::Instant;

const SECRET: &[u8] = b"unit-test-secret-0123456789";
const OUTSIDE: &str = "203.0.113.5:5070";

/// An edge of three destinations in zones a, b (backup for a) and c, on
/// a node of zone a, with further `[[edge]]` keys.
fn setup(algorithm: &str, extra: &str) -> (config::Config, Edge) {
    let text = format!(
        r#"
[node]
id = "t"
zone = "a"
secret = "unit-test-secret-0123456789"
[[edge]]
name = "e"
listen = ["udp:127.0.0.1:5060"]
algorithm = "{algorithm}"
{extra}
[[edge.destination]]
uri = "sip:127.0.0.1:5070"
zone = "a"
weight = 10
[[edge.destination]]
uri = "sip:127.0.0.1:5071"
zone = "b"
backup_zones = ["a"]
weight = 20
[[edge.destination]]
uri = "sip:127.0.0.1:5072"
zone = "c"
weight = 30
"#
    );
    let cfg = config::parse(&text, "test.toml").expect("config");
    let edge = Edge::new(&cfg.edges[0], &cfg.node, &KeyRing::single(SECRET));
    (cfg, edge)
}

fn invite(call_id: &str, extra: &str) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {OUTSIDE};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{OUTSIDE}>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

fn run(cfg: &config::Config, edge: &Edge, msg: &str, from: Option<&str>) -> Explanation {
    let from: Option<SocketAddr> = from.map(|f| f.parse().expect("address"));
    let flow = arrival(edge, msg.as_bytes(), from);
    explain(
        edge,
        &cfg.edges[0],
        edge,
        msg.as_bytes(),
        flow,
        Instant::now(),
    )
}

/// The stage that stopped the message and what it said, or `None`.
fn stop(x: &Explanation) -> Option<(&'static str, &str)> {
    x.stopped_at().map(|v| (v.stage, v.says.as_str()))
}

fn ranked_uris(x: &Explanation) -> Vec<&str> {
    x.candidates
        .iter()
        .filter(|c| c.rank.is_some())
        .map(|c| c.uri.as_str())
        .collect()
}

#[test]
fn each_stage_that_refuses_says_so_and_the_answer_is_what_would_be_sent() {
    let max_forwards_0 = invite("mf0", "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let no_call_id = invite("nocid", "").replace("Call-ID: nocid\r\n", "");
    let in_dialog_foreign = invite("dlg", "")
        .replace("INVITE sip:bob@example.com", "BYE sip:bob@198.51.100.9")
        .replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=b2",
        )
        .replace("CSeq: 1 INVITE", "CSeq: 2 BYE");
    // (extra edge keys, message, stopping stage, words in its verdict,
    // first line of the answer sent back — if any)
    type Case = (
        &'static str,
        String,
        &'static str,
        &'static str,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "",
            "INVITE nonsense\r\n\r\n".to_owned(),
            "parse",
            "malformed",
            // No Via to answer along: dropped.
            None,
        ),
        (
            "deny = [\"203.0.113.0/24\"]",
            invite("deny", ""),
            "security",
            "blocked (deny)",
            None,
        ),
        (
            "",
            invite("ua", "User-Agent: friendly-scanner\r\n"),
            "security",
            "User-Agent",
            None,
        ),
        (
            "validate = [\"basic\", \"contact\"]",
            invite("val", "").replace("Contact: <sip:alice@203.0.113.5:5070>", "Contact: <>"),
            "validate",
            "failed",
            Some("SIP/2.0 400"),
        ),
        (
            "",
            no_call_id,
            "sanity",
            "answered 400",
            Some("SIP/2.0 400"),
        ),
        (
            "",
            max_forwards_0,
            "hops",
            "answered 483",
            Some("SIP/2.0 483"),
        ),
        (
            "foreign_next_hop = \"refuse\"",
            in_dialog_foreign,
            "route",
            "answered 403 Relaying Denied",
            Some("SIP/2.0 403"),
        ),
    ];
    for (extra, msg, stage, words, answer) in cases {
        let (cfg, edge) = setup("hash-call-id", extra);
        let x = run(&cfg, &edge, &msg, None);
        let (stopped, says) =
            stop(&x).unwrap_or_else(|| panic!("{stage}: nothing stopped it:\n{}", x.to_text()));
        assert_eq!(stopped, stage, "{}", x.to_text());
        assert!(says.contains(words), "{stage}: {says:?} lacks {words:?}");
        let first = x
            .sent
            .first()
            .map(|s| s.message.lines().next().unwrap_or(""));
        match answer {
            Some(a) => assert!(
                first.is_some_and(|f| f.starts_with(a)),
                "{stage}: sent {first:?}"
            ),
            None => assert!(x.sent.is_empty(), "{stage}: sent {first:?}"),
        }
        assert!(x.candidates.is_empty(), "{stage}: no dispatch after a stop");
    }
}

#[test]
fn a_hash_ranks_every_destination_and_the_request_goes_to_the_first() {
    let (cfg, edge) = setup("hash-call-id", "");
    let mut firsts = std::collections::HashSet::new();
    for n in 0..40 {
        let call = format!("call-{n}");
        let x = run(&cfg, &edge, &invite(&call, ""), None);
        assert_eq!(stop(&x), None, "{}", x.to_text());
        // Tier 1 (zone a) then 2 (b backs a up) then 3 (c): one
        // destination each, so the ranking is the zone order.
        assert_eq!(
            ranked_uris(&x),
            [
                "sip:127.0.0.1:5070",
                "sip:127.0.0.1:5071",
                "sip:127.0.0.1:5072"
            ]
        );
        let tiers: Vec<_> = x.candidates.iter().map(|c| c.tier).collect();
        assert_eq!(tiers, [Some(1), Some(2), Some(3)]);
        let weights: Vec<_> = x.candidates.iter().map(|c| c.weight).collect();
        assert_eq!(weights, [10, 20, 30]);
        let to = x.sent.last().expect("forwarded").to;
        assert_eq!(to, "127.0.0.1:5070".parse().unwrap());
        firsts.insert(x.sent.last().map(|s| s.to));
        // The same Call-ID is explained the same way every time.
        let again = run(&cfg, &edge, &invite(&call, ""), None);
        assert_eq!(ranked_uris(&again), ranked_uris(&x));
    }
    assert_eq!(firsts.len(), 1);
}

#[test]
fn within_a_tier_the_hash_order_is_the_pipelines_pick() {
    // Three destinations in one zone: the hash orders them per Call-ID,
    // and what is sent goes to rank 1 whatever it is.
    let (cfg, edge) = setup("hash-call-id", "");
    let mut cfg = cfg;
    for d in &mut cfg.edges[0].destinations {
        d.zone = None;
        d.backup_zones.clear();
    }
    let edge2 = Edge::new(&cfg.edges[0], &cfg.node, &KeyRing::single(SECRET));
    drop(edge);
    let mut seen_first = std::collections::HashSet::new();
    for n in 0..60 {
        let x = run(&cfg, &edge2, &invite(&format!("spread-{n}"), ""), None);
        let ranked = ranked_uris(&x);
        assert_eq!(ranked.len(), 3, "{}", x.to_text());
        let port: u16 = ranked[0].rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(x.sent.last().expect("forwarded").to.port(), port);
        seen_first.insert(port);
    }
    // Weighted 10:20:30, sixty calls: every destination comes first
    // sometimes.
    assert_eq!(seen_first.len(), 3, "{seen_first:?}");
}

#[test]
fn a_zone_failover_ranks_the_backup_zone_first_and_says_why_the_other_is_out() {
    let (cfg, edge) = setup("hash-call-id", "insertion = \"transactional\"");
    edge.health().set_usable(0, false);
    let x = run(&cfg, &edge, &invite("zone-failover", ""), None);
    assert_eq!(stop(&x), None, "{}", x.to_text());
    assert_eq!(
        ranked_uris(&x),
        ["sip:127.0.0.1:5071", "sip:127.0.0.1:5072"]
    );
    let down = x.candidates.iter().find(|c| c.index == 0).expect("listed");
    assert_eq!((down.rank, down.usable), (None, false));
    assert!(x.to_text().contains("unusable (health)"));
    let dispatch = x
        .stages
        .iter()
        .find(|v| v.stage == "dispatch")
        .expect("dispatch");
    assert!(
        dispatch.says.contains("serial failover"),
        "{}",
        dispatch.says
    );
    // The transactional edge answers 100 Trying and forwards to zone b.
    let to: Vec<_> = x.sent.iter().map(|s| s.to.port()).collect();
    assert_eq!(to, [5070, 5071]);
    assert!(x.sent[0].message.starts_with("SIP/2.0 100 Trying"));
}

#[test]
fn no_destination_left_is_a_dispatch_stop() {
    let (cfg, edge) = setup("weighted-round-robin", "");
    for i in 0..3 {
        edge.health().set_usable(i, false);
    }
    let x = run(&cfg, &edge, &invite("none-left", ""), None);
    assert_eq!(stop(&x).map(|s| s.0), Some("dispatch"), "{}", x.to_text());
    assert!(x.candidates.iter().all(|c| c.rank.is_none()));
    let answer = x.sent.first().expect("answered");
    assert!(
        answer.message.starts_with("SIP/2.0 503"),
        "{}",
        answer.message
    );
}

#[test]
fn a_spent_cps_budget_on_the_live_edge_stops_at_limits_and_explaining_spends_nothing() {
    let (cfg, live) = setup("hash-call-id", "cps = 1");
    let now = Instant::now();
    let keys = KeyRing::single(SECRET);
    // Explaining on a shadow takes nothing from the live budget...
    let shadow = live.shadow(&cfg.edges[0], &cfg.node, &keys, now);
    let msg = invite("budget", "");
    let ask = || {
        let flow = arrival(&shadow, msg.as_bytes(), None);
        explain(&shadow, &cfg.edges[0], &live, msg.as_bytes(), flow, now)
    };
    for _ in 0..3 {
        let x = ask();
        assert_eq!(stop(&x), None, "{}", x.to_text());
    }
    assert_eq!(live.limits().would_admit(now), Ok(()));
    assert_eq!(live.limits().breaches(), (0, 0));
    // Nor do its workers count on the live edge's board.
    let counted = live.health().board().totals();
    assert!(counted
        .events
        .iter()
        .chain(&counted.requests)
        .all(|&n| n == 0));
    // ...and once the live budget is spent, says the call would be refused.
    assert!(live.limits().admit(now).is_ok());
    let x = ask();
    let (stage, says) = stop(&x).expect("refused");
    assert_eq!(stage, "limits");
    assert!(says.contains("calls-per-second"), "{says}");
    assert!(
        x.sent[0].message.starts_with("SIP/2.0 503"),
        "{}",
        x.sent[0].message
    );
    assert_eq!(live.limits().breaches(), (0, 0));
}

#[test]
fn a_request_from_the_pool_is_explained_as_one() {
    let (cfg, edge) = setup("hash-call-id", "");
    let msg = invite("from-pool", "")
        .replace(
            "INVITE sip:bob@example.com",
            "INVITE sip:bob@127.0.0.1:6000",
        )
        .replace(
            &format!("Via: SIP/2.0/UDP {OUTSIDE}"),
            "Via: SIP/2.0/UDP 127.0.0.1:5071",
        );
    let x = run(&cfg, &edge, &msg, None);
    assert_eq!(stop(&x), None, "{}", x.to_text());
    let hops = x.stages.iter().find(|v| v.stage == "hops").expect("hops");
    assert!(
        hops.says.contains("from destination sip:127.0.0.1:5071"),
        "{}",
        hops.says
    );
    assert_eq!(
        x.sent.last().expect("sent").to,
        "127.0.0.1:6000".parse().unwrap()
    );
}

#[test]
fn the_peer_a_request_comes_from_is_named() {
    let (cfg, edge) = setup(
        "hash-call-id",
        "[[edge.peer]]\nname = \"carrier-a\"\nsources = [\"203.0.113.0/24\"]\n\
         [[edge.peer]]\nname = \"carrier-b\"\nsources = [\"198.51.100.0/24\"]\n",
    );
    let x = run(&cfg, &edge, &invite("peer-a", ""), None);
    let peer = x
        .stages
        .iter()
        .find(|v| v.stage == "peer")
        .expect("a peer stage");
    assert_eq!(peer.says, "from peer carrier-a");
    let x = run(
        &cfg,
        &edge,
        &invite("peer-none", ""),
        Some("192.0.2.9:5060"),
    );
    let peer = x
        .stages
        .iter()
        .find(|v| v.stage == "peer")
        .expect("a peer stage");
    assert_eq!(peer.says, "none of the 2 peers matches");
    // An edge without peers has no such stage.
    let (cfg, edge) = setup("hash-call-id", "");
    let x = run(&cfg, &edge, &invite("no-peers", ""), None);
    assert!(x.stages.iter().all(|v| v.stage != "peer"));
}

#[test]
fn a_peers_rewrites_are_named_and_shown_in_what_is_sent() {
    let (cfg, edge) = setup(
        "hash-call-id",
        "[[edge.peer]]\nname = \"carrier-a\"\nsources = [\"203.0.113.0/24\"]\n\
         [edge.peer.in]\nnumber = [{ match = '^bob$', replace = \"+442079460000\" }]\n\
         remove = [\"X-*\"]\n",
    );
    let x = run(&cfg, &edge, &invite("peer-rw", "X-Secret: 1\r\n"), None);
    let peer = x
        .stages
        .iter()
        .find(|v| v.stage == "peer")
        .expect("a peer stage");
    assert_eq!(
        peer.says,
        "from peer carrier-a; its [in] rewrites apply: 1 number rules, a header policy"
    );
    let sent = &x.sent.last().expect("sent").message;
    assert!(
        sent.starts_with("INVITE sip:+442079460000@example.com SIP/2.0\r\n"),
        "{sent}"
    );
    assert!(!sent.contains("X-Secret"), "{sent}");
}
