//! Names by DNS (RFC 3263), against the test's own dnsmasq in the test's
//! namespace.
//!
//! The outbound proxy: a pool server's request to `sip:bob@carrier.test`
//! goes where carrier.test's NAPTR and SRV records say — the target of
//! highest priority, then the next when it does not answer — from the
//! edge's own address; an outside source that routes through the edge to
//! that name gets 403 and nothing leaves.
//!
//! A destination named by DNS: its SRV targets become the edge's
//! destinations, share calls by SRV weight, lower priorities first, each
//! probed on its own; a dead one is skipped, and when the record changes
//! the edge follows it after its TTL, without a reload.

use e2e::admin::{destination, edge_of};
use e2e::config::{admin, probe, SECRET};
use e2e::dnsmasq::{Dnsmasq, Record};
use e2e::{free_port, require_private_netns, sip, AdminApi, FakePool, Sipedge, Udp};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// A far end at `ip` (a loopback address of its own, so where a request
/// came from and went to are both plain to see).
fn far_end(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind far end");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// The next datagram `s` receives, as text, and who sent it.
fn next(s: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("nothing arrived at {:?}: {e}", s.local_addr()));
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

#[test]
fn the_pool_reaches_a_domain_by_naptr_and_srv_with_failover_and_outsiders_get_403() {
    require_private_netns();
    let first = far_end("127.0.0.21");
    let second = far_end("127.0.0.22");
    let dns = Dnsmasq::start(
        free_port(),
        60,
        &[
            Record::Naptr {
                name: "carrier.test",
                order: 10,
                preference: 10,
                service: "SIP+D2U",
                replacement: "_sip._udp.carrier.test",
            },
            Record::Srv {
                name: "_sip._udp.carrier.test",
                target: "a.carrier.test",
                port: first.local_addr().expect("addr").port(),
                priority: 10,
                weight: 10,
            },
            Record::Srv {
                name: "_sip._udp.carrier.test",
                target: "b.carrier.test",
                port: second.local_addr().expect("addr").port(),
                priority: 20,
                weight: 10,
            },
            Record::A("a.carrier.test", "127.0.0.21"),
            Record::A("b.carrier.test", "127.0.0.22"),
        ],
    );
    let pool = Udp::bind();
    let outsider = Udp::bind();
    let port = free_port();
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"t\"\nsecret = \"{SECRET}\"\ndns = [\"{dns}\"]\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{port}\"]\n\
         insertion = \"transactional\"\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:{pool}\"\n\
         [edge.probe]\nenabled = false\n\
         [edge.transaction]\nfailover_timeout = 0.5\n",
        dns = dns.addr(),
        pool = pool.port(),
    ));
    let route = format!("<sip:127.0.0.1:{port};lr>");

    // From outside, through the edge to the domain: refused.
    let relay = sip::Request::new("INVITE", "sip:bob@carrier.test", outsider.local_addr())
        .set("Route", &format!("{route}, <sip:carrier.test;lr>"))
        .build();
    outsider.send_to(&relay, ("127.0.0.1", port));
    let (answer, _) = outsider
        .recv_matching(WAIT, |t| sip::status_code(t).is_some_and(|c| c >= 200))
        .expect("an answer");
    assert_eq!(sip::status_code(&answer), Some(403), "{answer}");

    // From the pool: NAPTR → SRV → the priority 10 target, from the edge.
    let call =
        sip::Request::new("INVITE", "sip:bob@carrier.test", pool.local_addr()).set("Route", &route);
    pool.send_to(call.build(), ("127.0.0.1", port));
    let (invite, from) = next(&first);
    assert_eq!(
        from,
        SocketAddr::from(([127, 0, 0, 1], port)),
        "the far end sees the edge"
    );
    assert!(
        invite.starts_with("INVITE sip:bob@carrier.test SIP/2.0\r\n"),
        "the first datagram there is the pool's call (the outsider's never \
         left): {invite}"
    );
    assert_eq!(sip::header(&invite, "Call-ID"), call.get("Call-ID"));
    first
        .send_to(sip::response_to(&invite, 200, "OK").as_bytes(), from)
        .expect("answer");
    let (ok, _) = pool
        .recv_matching(WAIT, |t| sip::status_code(t) == Some(200))
        .unwrap_or_else(|| panic!("the 200 came back\n{}", edge.stderr_text()));
    assert_eq!(sip::header(&ok, "Call-ID"), call.get("Call-ID"));

    // The first target stops answering: the next call fails over to the
    // priority 20 one.
    drop(first);
    let call = sip::Request::new("INVITE", "sip:carol@carrier.test", pool.local_addr())
        .set("Route", &route);
    pool.send_to(call.build(), ("127.0.0.1", port));
    let (invite, from) = next(&second);
    assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(
        invite.starts_with("INVITE sip:carol@carrier.test "),
        "{invite}"
    );
    assert_eq!(sip::header(&invite, "Call-ID"), call.get("Call-ID"));
    let log = dns.log();
    assert!(log.contains("query[NAPTR] carrier.test"), "{log}");
    assert!(log.contains("query[SRV] _sip._udp.carrier.test"), "{log}");
}

/// SRV records of `_sip._udp.pool.test`, each `(target, port, priority,
/// weight)`, with the targets' A records (127.0.0.1).
fn pool_records<'a>(targets: &'a [(&'a str, u16, u16, u16)]) -> Vec<Record<'a>> {
    let mut out = Vec::new();
    for &(target, port, priority, weight) in targets {
        out.push(Record::Srv {
            name: "_sip._udp.pool.test",
            target,
            port,
            priority,
            weight,
        });
        out.push(Record::A(target, "127.0.0.1"));
    }
    out
}

/// Sends `n` new calls through the edge at `port` and counts where they
/// arrive, per server of `servers`.
fn spread(port: u16, servers: &[&FakePool], n: usize) -> Vec<usize> {
    let caller = Udp::bind();
    for _ in 0..n {
        let call = sip::Request::new("INVITE", "sip:svc@pool.test", caller.local_addr());
        caller.send_to(call.build(), ("127.0.0.1", port));
    }
    let mut counts = vec![0; servers.len()];
    let deadline = std::time::Instant::now() + WAIT;
    while counts.iter().sum::<usize>() < n && std::time::Instant::now() < deadline {
        for (i, s) in servers.iter().enumerate() {
            while s.recv(Duration::from_millis(5)).is_some() {
                counts[i] += 1;
            }
        }
    }
    assert_eq!(
        counts.iter().sum::<usize>(),
        n,
        "every call arrived: {counts:?}"
    );
    counts
}

#[test]
fn a_destination_named_by_srv_spreads_by_weight_skips_the_dead_and_follows_the_record() {
    require_private_netns();
    let (s1, s2, s3) = (FakePool::start(1), FakePool::start(1), FakePool::start(1));
    let port_of = |p: &FakePool| p.addr(0).port();
    let dns_port = free_port();
    let first = [
        ("s1.pool.test", port_of(&s1), 10, 10),
        ("s2.pool.test", port_of(&s2), 10, 30),
        ("s3.pool.test", port_of(&s3), 20, 10),
    ];
    let dns = Dnsmasq::start(dns_port, 1, &pool_records(&first));
    let (port, admin_port) = (free_port(), free_port());
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"t\"\nsecret = \"{SECRET}\"\ndns = [\"{dns}\"]\n{admin}\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{port}\"]\n\
         algorithm = \"random\"\n\
         [[edge.destination]]\nuri = \"sip:pool.test\"\n{probe}",
        dns = dns.addr(),
        admin = admin(admin_port),
        probe = probe(0.2, 0.2, 2, 2),
    ));
    let api = AdminApi::local(admin_port);
    let v = api.destinations();
    let members: Vec<(String, String, i64)> = edge_of(&v, "e")["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|d| {
            (
                d["uri"].as_str().unwrap_or_default().to_owned(),
                d["named_by"].as_str().unwrap_or_default().to_owned(),
                d["rank"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let want: Vec<(String, String, i64)> = first
        .iter()
        .zip([0, 0, 1])
        .map(|(t, rank)| {
            (
                format!("sip:{}:{}", t.0, t.1),
                "sip:pool.test".to_owned(),
                rank,
            )
        })
        .collect();
    assert_eq!(members, want, "one destination per SRV target");

    // Weights 10 and 30 at priority 10; priority 20 only as a backup.
    let counts = spread(port, &[&s1, &s2, &s3], 400);
    assert_eq!(
        counts[2], 0,
        "the priority 20 target while 10 is up: {counts:?}"
    );
    assert!(
        counts[0] > 0 && counts[1] > 2 * counts[0],
        "about 1:3 by SRV weight: {counts:?}"
    );

    // s2 dies: its probes fail and calls skip it.
    drop(s2);
    api.wait_for_state("e", 1, "inactive", WAIT);
    let dead = FakePool::start(0);
    let counts = spread(port, &[&s1, &dead, &s3], 40);
    assert_eq!(counts, [40, 0, 0], "s2 is skipped, s1 takes all");

    // The record changes (a new target, s4, alone): followed after its
    // TTL, without a reload.
    let s4 = FakePool::start(1);
    drop(dns);
    let second = [("s4.pool.test", port_of(&s4), 10, 10)];
    let dns = Dnsmasq::start(dns_port, 1, &pool_records(&second));
    let s4_uri = format!("sip:s4.pool.test:{}", port_of(&s4));
    api.wait_until(
        "the new target is a destination",
        Duration::from_secs(20),
        |v| destination(v, "e", 0)["uri"].as_str() == Some(s4_uri.as_str()),
    );
    let counts = spread(port, &[&s1, &s4], 40);
    assert_eq!(counts, [0, 40], "only the record's target now");
    assert!(
        edge.stderr_text().contains("dns:"),
        "the change is logged\n{}",
        edge.stderr_text()
    );

    // The name server goes away: the next lookup fails, and the name keeps
    // the server it had.
    drop(dns);
    assert!(
        edge.wait_for_stderr("the servers it had last stay", Duration::from_secs(20)),
        "a failed lookup is logged\n{}",
        edge.stderr_text()
    );
    let counts = spread(port, &[&s1, &s4], 20);
    assert_eq!(counts, [0, 20], "still the record's target");
}
