//! Names by DNS (RFC 3263), against the test's own dnsmasq in the test's
//! namespace. The outbound proxy: a pool server's request to
//! `sip:bob@carrier.test` goes where carrier.test's NAPTR and SRV
//! records say — the target of highest priority, then the next when it
//! does not answer — from the edge's own address; an outside source that
//! routes through the edge to that name gets 403 and nothing leaves.

use e2e::config::SECRET;
use e2e::dnsmasq::{Dnsmasq, Record};
use e2e::{free_port, require_private_netns, sip, Sipedge, Udp};
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
