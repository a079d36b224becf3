//! The node-to-node link (`[cluster] listen`, `peers`): a phone's TCP
//! connection lives on the node it connected to; a request for it that
//! reaches another node (the pool's packets went there, as after an
//! anycast route moved) is relayed to the owner, which sends it over the
//! connection — and the phone's answer goes back to the pool from there.
//! Once the owner is gone, the other node answers 430 Flow Failed (RFC
//! 5626 §5.3) itself, so that the registrar drops the binding and the
//! phone, which lost its connection too, reconnects and registers again.
//!
//! Both nodes advertise node 1's address, as instances behind one anycast
//! address do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use e2e::expect::{next_arrival, ANSWER, SILENCE};
use e2e::sip;
use e2e::{free_port, require_private_netns, FakePool, Sipedge};

const SECRET: &str = "the node link test's cluster secret";
const PRIVATE: &str = "192.168.1.20:5062";

/// Node `n`'s config; `peers` is how it knows the other node: `peers =
/// […]`, or the cluster store that lists it (`redis = …`).
fn node(n: u8, listen: u16, shared: u16, link: u16, peers: &str, pool: &FakePool) -> String {
    format!(
        "[node]\nid = \"node-{n}\"\nsecret = \"{SECRET}\"\n\
         [cluster]\nlisten = \"127.0.0.1:{link}\"\n{peers}\n\
         [[edge]]\nname = \"phones\"\n\
         listen = [\"udp:127.0.0.1:{listen}\", \"tcp:127.0.0.1:{listen}\"]\n\
         advertise = \"127.0.0.1:{shared}\"\nnat_test = [\"private-contact\"]\n\
         [[edge.destination]]\nuri = \"sip:{}\"\n",
        pool.addr(0)
    )
}

/// Reads one SIP message from `conn`.
fn read_message(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut framer = ::sip::Framer::default();
    loop {
        if let ::sip::Frame::Message(len) = framer.next(&buf, 65_535) {
            return String::from_utf8_lossy(&buf[..len]).into_owned();
        }
        let mut chunk = [0u8; 4096];
        let got = conn.read(&mut chunk).expect("a message");
        assert!(got > 0, "connection closed");
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[test]
fn a_request_for_another_nodes_connection_is_relayed_there_and_gets_430_once_it_is_gone() {
    require_private_netns();
    relayed_then_430(|peer| format!("peers = [\"127.0.0.1:{peer}\"]"));
}

/// The same with no `peers`: each node learns the other's link address
/// from the cluster store's members.
#[test]
fn nodes_that_share_redis_relay_to_each_other_without_a_peer_list() {
    require_private_netns();
    let redis = e2e::redis::RedisServer::start();
    relayed_then_430(|_| format!("redis = \"{}\"", redis.url()));
}

/// A phone on node 1's TCP; the pool's request for it through node 2;
/// node 1 dies. `peers` gives a node's `[cluster]` line that names the
/// other (whose link port it gets).
fn relayed_then_430(peers: impl Fn(u16) -> String) {
    let pool = FakePool::start(1);
    let (one, two, link_one, link_two) = (free_port(), free_port(), free_port(), free_port());
    let mut first = Some(Sipedge::start(&node(
        1,
        one,
        one,
        link_one,
        &peers(link_two),
        &pool,
    )));
    let _second = Sipedge::start(&node(2, two, one, link_two, &peers(link_one), &pool));
    let (at_one, at_two) = (
        SocketAddr::from((e2e::LOCALHOST, one)),
        SocketAddr::from((e2e::LOCALHOST, two)),
    );

    // The phone, behind NAT, registers over TCP through node 1.
    let mut phone = TcpStream::connect(at_one).expect("connect");
    phone.set_read_timeout(Some(ANSWER)).unwrap();
    let register = sip::natted_register(phone.local_addr().unwrap(), PRIVATE);
    let call_id = register.get("Call-ID").expect("Call-ID").to_string();
    phone.write_all(register.build().as_bytes()).unwrap();
    let got = next_arrival(&pool, "REGISTER", &call_id);
    let path = sip::header(&got.text, "Path").expect("a Path").to_string();
    pool.send_from(0, sip::response_to(&got.text, 200, "OK"), got.from);
    assert_eq!(sip::status_code(&read_message(&mut phone)), Some(200));

    // The registrar's MESSAGE along the Path reaches node 2, which relays
    // it to node 1, which holds her connection. Until node 2 has heard
    // from node 1 (within a second of starting, or of reading the
    // members) it answers 430: the registrar's retransmission, here the
    // test's, then goes through.
    let message = |cseq: u32| sip::message_along_path(pool.addr(0), PRIVATE, &path, &call_id, cseq);
    phone.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut cseq = 1;
    let got = loop {
        pool.send_from(0, message(cseq), at_two);
        let answer = pool.recv_matching(SILENCE, |a| sip::status_code(&a.text).is_some());
        let mut buf = [0u8; 4096];
        match phone.read(&mut buf) {
            Ok(n) if n > 0 => break String::from_utf8_lossy(&buf[..n]).into_owned(),
            _ => {}
        }
        assert!(
            answer
                .as_ref()
                .is_none_or(|a| sip::status_code(&a.text) == Some(430)),
            "{answer:?}"
        );
        assert!(Instant::now() < deadline, "the MESSAGE never reached her");
        cseq += 1;
    };
    phone.set_nonblocking(false).unwrap();
    assert!(
        got.starts_with(&format!("MESSAGE sip:alice@{PRIVATE}")),
        "{got}"
    );
    phone
        .write_all(sip::response_to(&got, 200, "OK").as_bytes())
        .unwrap();
    let answered = pool
        .recv_matching(ANSWER, |a| sip::status_code(&a.text) == Some(200))
        .expect("her 200, through node 1");
    assert_eq!(
        sip::headers(&answered.text, "Via").len(),
        1,
        "{}",
        answered.text
    );

    // Node 1 dies, and her connection with it: node 2 answers 430 itself
    // once node 1 has been silent for three seconds.
    drop(first.take());
    drop(phone);
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        cseq += 1;
        pool.send_from(0, message(cseq), at_two);
        if let Some(a) = pool.recv_matching(SILENCE, |a| sip::status_code(&a.text).is_some()) {
            break a;
        }
        assert!(Instant::now() < deadline, "node 2 never answered");
    };
    assert!(
        refused.text.starts_with("SIP/2.0 430 Flow Failed\r\n"),
        "{}",
        refused.text
    );
}
