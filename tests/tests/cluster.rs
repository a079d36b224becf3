//! Cluster state in Redis: calls-per-second limits and calls in progress
//! counted across the nodes of a cluster, through a real `redis-server`
//! and a real three-master Redis Cluster; and what happens when Redis
//! dies, stalls and comes back.
//!
//! Every node is a sipedge process on loopback with its own port; SIPp
//! callers offer each node more than the edge's `cps`, one SIPp server
//! answers for the pool. A call beyond the limit gets 503 (the callers'
//! scenario takes it as an answer), so admitted calls are counted at the
//! server.

use std::time::{Duration, Instant};

use e2e::admin::AdminApi;
use e2e::expect::{final_response, next_arrival};
use e2e::redis::{RedisCluster, RedisServer};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Json, Sipedge, SippUac, SippUas, Udp};

/// The edge's limit, on every node.
const CPS: u32 = 20;

/// One node: its sipedge, SIP port and admin API.
struct Node {
    sipedge: Sipedge,
    port: u16,
    api: AdminApi,
}

/// A node named `id` whose `[cluster]` says `store` (`redis = …`), its
/// edge's destination `pool` (a URI) and further edge keys `extra`.
fn node(id: &str, store: &str, pool: &str, extra: &str) -> Node {
    node_with(id, "", store, pool, &format!("cps = {CPS}\n{extra}"))
}

/// [`node`] with further `[node]` keys and no `cps` of its own.
fn node_with(id: &str, node_keys: &str, store: &str, pool: &str, edge_keys: &str) -> Node {
    let (port, admin) = (free_port(), free_port());
    let sipedge = Sipedge::start(&format!(
        "[node]\nid = \"{id}\"\nsecret = \"one secret for the whole cluster\"\n{node_keys}\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n[cluster]\n{store}\n\
         [[edge]]\nname = \"customer\"\nlisten = [\"udp:127.0.0.1:{port}\"]\n{edge_keys}\n\
         [[edge.destination]]\nuri = \"{pool}\"\n"
    ));
    Node {
        sipedge,
        port,
        api: AdminApi::local(admin),
    }
}

/// Polls `GET /api/cluster` until `done` holds, at most 15 s.
#[track_caller]
fn wait_cluster(n: &Node, what: &str, done: impl Fn(&Json) -> bool) -> Json {
    let start = Instant::now();
    loop {
        let v = n.api.get("/api/cluster").json();
        if done(&v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "not within 15 s: {what}\n{v}\n{}",
            n.sipedge.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sharing(v: &Json, nodes: u64) -> bool {
    v["redis"] == "up" && v["counting"] == "shared" && v["nodes"].as_u64() == Some(nodes)
}

/// Each node offered `rate` calls a second for `secs` seconds, at once,
/// from a SIPp caller of its own (`extra`: more SIPp arguments).
fn call(
    nodes: &[&Node],
    rate: u32,
    secs: u32,
    extra: &'static [&'static str],
) -> Vec<std::thread::JoinHandle<e2e::UacResult>> {
    nodes
        .iter()
        .map(|n| {
            let target = format!("127.0.0.1:{}", n.port);
            std::thread::spawn(move || {
                let mut args = vec!["-s", "pool"];
                args.extend_from_slice(extra);
                SippUac::run("uac-or-503.xml", &target, rate * secs, rate, &args)
            })
        })
        .collect()
}

/// Waits for the callers; asserts that every call ended (admitted and
/// completed, or refused with 503) and returns how many the pool
/// answered.
fn answered(callers: Vec<std::thread::JoinHandle<e2e::UacResult>>, pool: SippUas) -> usize {
    for r in callers {
        r.join().expect("a caller thread").assert_all_successful();
    }
    let pool = pool.stop();
    assert_eq!(
        pool.failed(),
        0,
        "a call failed at the pool\n{}",
        pool.summary()
    );
    pool.call_ids("INVITE").len()
}

/// [`call`] and [`answered`].
fn offer(nodes: &[&Node], pool: SippUas, rate: u32, secs: u32) -> usize {
    answered(call(nodes, rate, secs, &[]), pool)
}

/// Admitted calls over `secs` seconds of offered load are the limit's,
/// within 5% over the whole seconds (the first and last second of the
/// run are partial, so they bound it loosely).
#[track_caller]
fn assert_limit(admitted: usize, secs: u32) {
    eprintln!("{admitted} calls admitted in {secs} s at cps = {CPS}");
    let lo = (f64::from(CPS) * f64::from(secs - 1) * 0.95) as usize;
    let hi = (CPS * (secs + 1)) as usize;
    assert!(
        (lo..=hi).contains(&admitted),
        "{admitted} calls admitted in {secs} s at cps = {CPS}: expected {lo} to {hi}"
    );
}

/// Calls refused for `cps` on a node (its admin API).
/// One sample of the node's `/metrics`.
fn metric(n: &Node, name: &str) -> u64 {
    e2e::prometheus::Scrape::of(&n.api.get("/metrics").body).count(name, &[])
}

fn breaches(n: &Node) -> u64 {
    n.api.destinations()["edges"][0]["cps_breaches"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn one_node_offered_three_times_its_limit_admits_the_limit() {
    require_private_netns();
    let redis = RedisServer::start();
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let a = node(
        "a",
        &format!("redis = \"{}\"", redis.url()),
        &pool.uri(),
        "",
    );
    wait_cluster(&a, "Redis up", |v| sharing(v, 1));
    let secs = 10;
    let admitted = offer(&[&a], pool, 3 * CPS, secs);
    assert_limit(admitted, secs);
    assert_eq!(
        breaches(&a) as usize,
        (3 * CPS * secs) as usize - admitted,
        "every call not admitted was a breach"
    );
    assert_eq!(metric(&a, "sipedge_cps_breaches_total"), breaches(&a));
    let status = a.api.get("/api/cluster").json();
    assert!(status["leases"].as_u64().is_some_and(|n| n > 0), "{status}");
    let limit_key = redis.cli(&["--scan", "--pattern", "sipedge:cps:*"]);
    assert_eq!(limit_key.trim(), "sipedge:cps:edge/customer", "{limit_key}");
}

#[test]
fn two_nodes_sharing_redis_admit_the_limit_once() {
    require_private_netns();
    let redis = RedisServer::start();
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let store = format!("redis = \"{}\"", redis.url());
    let a = node("a", &store, &pool.uri(), "");
    let b = node("b", &store, &pool.uri(), "");
    for n in [&a, &b] {
        let v = wait_cluster(n, "both nodes alive", |v| sharing(v, 2));
        let ids: Vec<&str> = v["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| x["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ids, ["a", "b"], "{v}");
    }
    let secs = 10;
    // 30 a second to each: 60 offered, 20 allowed in total.
    let admitted = offer(&[&a, &b], pool, 30, secs);
    assert_limit(admitted, secs);
    assert_eq!(
        (breaches(&a) + breaches(&b)) as usize,
        (60 * secs) as usize - admitted
    );

    // A ban made on one node holds on the other; so does its lift.
    let out = a.api.ctl(&["bans", "add", "198.51.100.9", "1h"]);
    assert_eq!(out.code, Some(0), "{out}");
    let listed = |n: &Node| {
        n.api.get("/api/bans").json()["bans"]
            .as_array()
            .is_some_and(|l| l.iter().any(|b| b["address"] == "198.51.100.9"))
    };
    let start = Instant::now();
    while !listed(&b) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the ban did not reach b"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = a.api.ctl(&["bans", "remove", "198.51.100.9"]);
    assert_eq!(out.code, Some(0), "{out}");
    while listed(&b) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the lift did not reach b"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!listed(&a));
}

/// `capacity_failover = ["cluster"]`: a node beyond its `cps` redirects
/// to another live node at the address that node offers (its
/// `public_address` with the edge's port), learnt from Redis with no
/// address in the config; once that node is gone, calls beyond the
/// limit get 503.
#[test]
fn a_full_node_redirects_to_a_live_node_it_learnt_from_redis() {
    require_private_netns();
    let mut redis = RedisServer::start();
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let store = format!("redis = \"{}\"", redis.url());
    let public = "public_address = \"127.0.0.1\"";
    let failover = "capacity_failover = [\"cluster\"]";
    let a = node_with(
        "a",
        public,
        &store,
        &pool.uri(),
        &format!("cps = 3\n{failover}"),
    );
    let b = node_with("b", public, &store, &pool.uri(), failover);
    let offered = |v: &Json, port: u16| {
        v["members"].as_array().is_some_and(|m| {
            m.iter()
                .any(|x| x["sip"]["customer"][0] == format!("sip:127.0.0.1:{port}").as_str())
        })
    };
    wait_cluster(&a, "b's address known to a", |v| offered(v, b.port));

    let calls = 20;
    let uac = SippUac::run(
        "uac-follow-302.xml",
        &format!("127.0.0.1:{}", a.port),
        calls,
        10,
        &["-s", "pool"],
    );
    uac.assert_all_successful();
    let redirects = uac.responses(302);
    assert!(
        redirects.len() >= 10,
        "only {} of {calls} calls were redirected",
        redirects.len()
    );
    for r in &redirects {
        let contact = r.header("Contact").unwrap_or_default();
        assert_eq!(
            contact,
            format!("<sip:pool@127.0.0.1:{};sipedge-overflow>", b.port)
        );
    }
    let pool_port = pool.port();
    let served = pool.stop();
    let invites = served.requests("INVITE");
    assert_eq!(invites.len(), calls as usize, "{}", served.summary());
    let via_b = invites
        .iter()
        .filter(|m| m.via_port() == Some(b.port))
        .count();
    assert_eq!(
        via_b,
        redirects.len(),
        "each redirected call went through b"
    );

    // b stops: it leaves the membership as it goes (its lease would keep
    // it listed for seconds), and a no longer redirects to it.
    drop(b);
    let listed = redis.cli(&["ZRANGE", "sipedge:{nodes}", "0", "-1"]);
    assert_eq!(listed.split_whitespace().collect::<Vec<_>>(), ["a"]);
    wait_cluster(&a, "b gone", |v| sharing(v, 1));
    let refused_only = |pool: SippUas| {
        let uac = SippUac::run(
            "uac-or-503.xml",
            &format!("127.0.0.1:{}", a.port),
            20,
            10,
            &["-s", "pool"],
        );
        uac.assert_all_successful();
        assert!(!uac.responses(503).is_empty());
        assert!(uac.responses(302).is_empty());
        pool.stop();
    };
    refused_only(SippUas::start("uas.xml", pool_port, &[]));

    // Another node is up, then Redis goes: a knows of no live node while
    // it cannot ask, and refuses rather than redirect.
    let c = node_with(
        "c",
        public,
        &store,
        &format!("sip:127.0.0.1:{pool_port}"),
        failover,
    );
    wait_cluster(&a, "c's address known to a", |v| offered(v, c.port));
    redis.kill();
    wait_cluster(&a, "Redis down", |v| v["redis"] == "down");
    refused_only(SippUas::start("uas.xml", pool_port, &[]));
}

#[test]
fn two_nodes_sharing_a_redis_cluster_admit_the_limit_once() {
    require_private_netns();
    let redis = RedisCluster::start();
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let seeds: Vec<String> = redis.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let store = format!("redis_cluster = [{}]", seeds.join(", "));
    // Calls in progress are counted too (the script keeps an edge's keys
    // in one slot).
    let a = node("a", &store, &pool.uri(), "channels = 1000");
    let b = node("b", &store, &pool.uri(), "channels = 1000");
    for n in [&a, &b] {
        wait_cluster(n, "both nodes alive", |v| sharing(v, 2));
    }
    let secs = 10;
    let admitted = offer(&[&a, &b], pool, 30, secs);
    assert_limit(admitted, secs);
    let keys = redis.keys("sipedge:*");
    assert!(
        keys.iter().any(|k| k == "sipedge:cps:edge/customer"),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k == "sipedge:{nodes}"), "{keys:?}");
    for n in [&a, &b] {
        wait_channels(n, 0);
        assert!(
            !n.sipedge.stderr_text().contains("Redis unreachable"),
            "{}",
            n.sipedge.stderr_text()
        );
    }
}

#[test]
fn redis_killed_stalled_and_back_no_call_fails_and_the_limit_holds() {
    require_private_netns();
    let mut redis = RedisServer::start();
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let store = format!("redis = \"{}\"", redis.url());
    let a = node("a", &store, &pool.uri(), "");
    let b = node("b", &store, &pool.uri(), "");
    for n in [&a, &b] {
        wait_cluster(n, "both nodes alive", |v| sharing(v, 2));
        assert_eq!(metric(n, "sipedge_redis_up"), 1);
        assert_eq!(metric(n, "sipedge_cluster_nodes"), 2);
    }
    // Calls of half a second each, so that some are in progress when
    // Redis goes.
    let secs = 14;
    let callers = call(&[&a, &b], 30, secs, &["-d", "500"]);
    // Redis goes once calls are flowing (some in progress).
    let flowing = pool.count_so_far("INVITE") + 40;
    assert!(pool.wait_for_count("INVITE", flowing, Duration::from_secs(15)));
    redis.kill();
    for n in [&a, &b] {
        let v = wait_cluster(n, "Redis down", |v| v["redis"] == "down");
        assert_eq!(v["counting"], "local share", "{v}");
        assert_eq!(metric(n, "sipedge_redis_up"), 0);
        assert_eq!(v["nodes"], 2, "the share: half of each limit\n{v}");
        let health = n.api.get("/health");
        assert_eq!(health.status, 200, "Redis down is not an outage");
        assert_eq!(health.json()["cluster"]["redis"], "down");
    }
    // Calls go on while it is down; then it comes back.
    let served = pool.count_so_far("INVITE") + 20;
    assert!(
        pool.wait_for_count("INVITE", served, Duration::from_secs(15)),
        "calls stopped while Redis was down"
    );
    redis.restart();
    for n in [&a, &b] {
        wait_cluster(n, "Redis back", |v| sharing(v, 2));
    }
    // Redis stalls (a command holding it for 2 s): the nodes stop
    // waiting for it and count alone meanwhile.
    let stall = {
        let port = redis.port().to_string();
        std::thread::spawn(move || {
            std::process::Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port, "DEBUG", "SLEEP", "2"])
                .output()
                .expect("redis-cli")
        })
    };
    for n in [&a, &b] {
        wait_cluster(n, "Redis stalled", |v| v["redis"] == "down");
    }
    stall.join().expect("the stall");
    for n in [&a, &b] {
        wait_cluster(n, "Redis answers again", |v| sharing(v, 2));
    }
    let admitted = answered(callers, pool);
    // Shared or each at half of it, the limit held throughout (each
    // node's local meter starts with a burst of its share when Redis
    // goes: twice, here).
    let hi = (CPS * (secs + 1) + 2 * CPS) as usize;
    assert!(
        admitted <= hi && admitted >= (CPS * (secs - 4)) as usize,
        "{admitted} calls admitted in {secs} s at cps = {CPS}"
    );
    for n in [&a, &b] {
        assert!(
            n.sipedge
                .wait_for_stderr("Redis unreachable", Duration::from_secs(1)),
            "logged once"
        );
        let said = n.sipedge.stderr_text();
        assert!(
            said.matches("Redis unreachable").count() <= 2,
            "logged once per outage:\n{said}"
        );
    }
}

/// Calls in progress on an edge, as a node counts them (the cluster's).
fn channels_in_use(n: &Node) -> u64 {
    n.api.destinations()["edges"][0]["channels_in_use"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// Polls until node `n` counts `calls` calls in progress, at most 10 s.
#[track_caller]
fn wait_channels(n: &Node, calls: u64) {
    let start = Instant::now();
    while channels_in_use(n) != calls {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node {} counts {} calls in progress, not {calls}",
            n.port,
            channels_in_use(n)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_call_set_up_through_one_node_and_ended_through_another_frees_its_channel() {
    require_private_netns();
    let redis = RedisServer::start();
    let pool = FakePool::start(1);
    let store = format!("redis = \"{}\"", redis.url());
    let dest = format!("sip:{}", pool.addr(0));
    let a = node("a", &store, &dest, "channels = 1");
    let b = node("b", &store, &dest, "channels = 1");
    for n in [&a, &b] {
        wait_cluster(n, "both nodes alive", |v| sharing(v, 2));
    }
    let (to_a, to_b) = (
        format!("127.0.0.1:{}", a.port),
        format!("127.0.0.1:{}", b.port),
    );

    // A call through node a.
    let phone = Udp::bind();
    let invite = Request::new("INVITE", &format!("sip:bob@{to_a}"), phone.local_addr());
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    phone.send_to(invite.build(), to_a.as_str());
    let got = next_arrival(&pool, "INVITE", &call_id);
    let rr = sip::header(&got.text, "Record-Route")
        .expect("Record-Route")
        .to_string();
    let ok = sip::accepted(&got.text, &rr, &dest);
    pool.send_from(0, &ok, got.from);
    let (answer, _) = final_response(&phone, &call_id, "INVITE");
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");

    // Node b counts it too, and its one channel is taken: a second call
    // through b is refused.
    wait_channels(&b, 1);
    let other = Udp::bind();
    let second = Request::new("INVITE", &format!("sip:bob@{to_b}"), other.local_addr());
    let second_id = second.get("Call-ID").expect("Call-ID").to_string();
    other.send_to(second.build(), to_b.as_str());
    let (refused, _) = final_response(&other, &second_id, "INVITE");
    assert_eq!(sip::status_code(&refused), Some(503), "{refused}");

    // The call ends through node b (as after an anycast route change).
    let in_dialog = |method: &str, cseq: u32| {
        Request::new(method, &dest, phone.local_addr())
            .set("Call-ID", &call_id)
            .set("From", invite.get("From").expect("From"))
            .set("To", sip::header(&answer, "To").expect("To"))
            .set("CSeq", &format!("{cseq} {method}"))
            .set("Route", &rr)
    };
    phone.send_to(in_dialog("ACK", 1).build(), to_b.as_str());
    next_arrival(&pool, "ACK", &call_id);
    phone.send_to(in_dialog("BYE", 2).build(), to_b.as_str());
    let bye = next_arrival(&pool, "BYE", &call_id);
    pool.send_from(0, sip::response_to(&bye.text, 200, "OK"), bye.from);
    let (ended, _) = final_response(&phone, &call_id, "BYE");
    assert_eq!(sip::status_code(&ended), Some(200), "{ended}");

    // Both nodes free the channel; a new call through b gets through.
    wait_channels(&a, 0);
    wait_channels(&b, 0);
    let third = Request::new("INVITE", &format!("sip:bob@{to_b}"), other.local_addr());
    let third_id = third.get("Call-ID").expect("Call-ID").to_string();
    other.send_to(third.build(), to_b.as_str());
    next_arrival(&pool, "INVITE", &third_id);
    // The call's record in Redis: its tombstone (the BYE came).
    let keys = redis.cli(&["--scan", "--pattern", "sipedge:call:{edge/customer}:*"]);
    let record = keys.lines().next().unwrap_or_default();
    assert_eq!(redis.cli(&["GET", record]).trim(), "-", "{keys}");
}

#[test]
fn a_phone_registered_through_one_node_is_reached_through_another() {
    require_private_netns();
    let redis = RedisServer::start();
    let pool = FakePool::start(1);
    let store = format!("redis = \"{}\"", redis.url());
    let dest = format!("sip:{}", pool.addr(0));
    let registrar = "flags = [\"registrations\"]\n\
                     [edge.registrar]\nallow = [\"127.0.0.0/8\"]\nkeepalive_interval = 0";
    let a = node("a", &store, &dest, registrar);
    let b = node("b", &store, &dest, registrar);
    for n in [&a, &b] {
        wait_cluster(n, "both nodes alive", |v| sharing(v, 2));
    }
    // Alice registers through node a.
    let phone_port = free_port();
    SippUac::run(
        "phone-register.xml",
        &format!("127.0.0.1:{}", a.port),
        1,
        1,
        &["-s", "alice", "-p", &phone_port.to_string()],
    )
    .assert_all_successful();
    let phone = SippUas::start("uas.xml", phone_port, &[]);
    // Node b learns her binding from Redis.
    b.api
        .wait_until("b holds alice's binding", Duration::from_secs(10), |v| {
            v["edges"][0]["registrations"]["bindings"].as_u64() == Some(1)
        });
    // A call from the pool for her, through node b, reaches her phone.
    let invite = Request::new("INVITE", "sip:alice@127.0.0.1", pool.addr(0));
    pool.send_from(
        0,
        invite.build(),
        format!("127.0.0.1:{}", b.port).parse().expect("addr"),
    );
    assert!(
        phone.wait_for_request("INVITE", Duration::from_secs(10)),
        "the pool's INVITE through node b did not reach alice\n{}",
        b.sipedge.stderr_text()
    );
    let keys = redis.cli(&["HKEYS", "sipedge:reg:{edge/customer}"]);
    assert_eq!(keys.trim(), "alice@127.0.0.1", "{keys}");
}

#[test]
fn a_redis_over_tls_is_reached_with_its_ca() {
    require_private_netns();
    let dir = e2e::TempDir::new("rediss");
    let ca = e2e::certs::Ca::new(dir.path(), "redis-ca");
    let redis = RedisServer::start_tls(&ca);
    assert!(redis.url().starts_with("rediss://"));
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let store = format!(
        "redis = \"{}\"\nredis_ca = \"{}\"",
        redis.url(),
        ca.cert().display()
    );
    let a = node("a", &store, &pool.uri(), "");
    wait_cluster(&a, "Redis over TLS up", |v| sharing(v, 1));
    let secs = 5;
    let admitted = offer(&[&a], pool, 2 * CPS, secs);
    assert_limit(admitted, secs);
    let keys = redis.cli(&["--scan", "--pattern", "sipedge:cps:*"]);
    assert_eq!(keys.trim(), "sipedge:cps:edge/customer", "{keys}");
}
