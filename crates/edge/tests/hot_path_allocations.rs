//! The stateless forwarding path allocates nothing per message once its
//! buffers have grown (DESIGN principle 4): counted with a counting
//! allocator around requests and responses through `Worker::handle`.

use edge::proxy::{Edge, Outcome};
use sysio::counting::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONFIG: &str = r#"
[node]
id = "alloc"
secret = "allocation-test-secret-0123"
[[edge]]
listen = ["udp:127.0.0.1:5060"]
algorithm = "ALG"
[[edge.destination]]
uri = "sip:127.0.0.1:5070"
weight = 3
[[edge.destination]]
uri = "sip:127.0.0.1:5071"
"#;

fn invite(i: usize) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-{i};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a{i}\r\n\
         To: <sip:service@example.com>\r\nCall-ID: call-{i}@example.com\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:6000>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// The 200 OK a destination would send for what we forwarded.
fn ok_for(forwarded: &[u8]) -> Vec<u8> {
    let mut idx = sip::HeaderIndex::new();
    let m = sip::parse(forwarded, &mut idx).expect("forwarded INVITE parses");
    let mut out = b"SIP/2.0 200 OK\r\n".to_vec();
    for h in m.headers() {
        use sip::HeaderName::*;
        if matches!(h.name, Via | From | To | CallId | CSeq | RecordRoute) {
            out.extend_from_slice(&forwarded[h.line.range()]);
        }
    }
    out.extend_from_slice(b"Contact: <sip:uas@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n");
    out
}

fn count_for(algorithm: &str) -> (u64, usize) {
    let cfg = edge::config::parse(&CONFIG.replace("ALG", algorithm), "alloc.toml").expect("config");
    let e = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &edge::keyring::KeyRing::single(b"allocation-test-secret-0123"),
    );
    let mut w = e.worker();
    let caller = "127.0.0.1:6000".parse().unwrap();
    let invites: Vec<Vec<u8>> = (0..1000).map(invite).collect();
    // Warm up: let every reusable buffer reach its working size.
    let mut oks = Vec::new();
    for inv in invites.iter().take(20) {
        assert!(matches!(
            w.handle(
                &e,
                inv,
                edge::flow::Flow::udp(0, caller),
                e.epoch() + std::time::Duration::from_secs(1)
            ),
            Outcome::Send(_)
        ));
        oks.push(ok_for(w.output()));
    }
    let dest = e.destinations()[0].addr;
    for ok in &oks {
        w.handle(
            &e,
            ok,
            edge::flow::Flow::udp(0, dest),
            e.epoch() + std::time::Duration::from_secs(1),
        );
    }
    // Responses for the measured INVITEs, built before counting starts.
    let mut responses = Vec::new();
    for inv in &invites {
        w.handle(
            &e,
            inv,
            edge::flow::Flow::udp(0, caller),
            e.epoch() + std::time::Duration::from_secs(1),
        );
        responses.push(ok_for(w.output()));
    }
    let before = allocations();
    let mut sent = 0;
    for (inv, ok) in invites.iter().zip(&responses) {
        if let Outcome::Send(_) = w.handle(
            &e,
            inv,
            edge::flow::Flow::udp(0, caller),
            e.epoch() + std::time::Duration::from_secs(2),
        ) {
            sent += 1;
        }
        // Response handling does not depend on which destination sends it.
        match w.handle(
            &e,
            ok,
            edge::flow::Flow::udp(0, dest),
            e.epoch() + std::time::Duration::from_secs(2),
        ) {
            Outcome::Send(_) => sent += 1,
            Outcome::Drop(ev) => panic!("{ev:?}: {}", String::from_utf8_lossy(ok)),
            Outcome::Queued => panic!("a stateless edge queued"),
            Outcome::Resolve => panic!("no host names here"),
        }
    }
    (allocations() - before, sent)
}

#[test]
fn forwarding_requests_and_responses_allocates_nothing() {
    let before = allocations();
    std::hint::black_box(vec![0u8; 64]);
    assert!(allocations() > before, "the counting allocator counts");
    for alg in [
        "weighted-round-robin",
        "hash-call-id",
        "hash-from-uri",
        "random",
        "first",
        "least-latency",
    ] {
        let (allocs, sent) = count_for(alg);
        assert_eq!(sent, 2000, "{alg}: every INVITE and 200 OK was forwarded");
        assert_eq!(
            allocs, 0,
            "{alg}: {allocs} heap allocations for 2000 forwarded messages"
        );
    }
}
