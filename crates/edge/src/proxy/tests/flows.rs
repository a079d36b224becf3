//! Flows: the transport and local address a message arrived on decide
//! how its answers leave, which Via and Record-Route the edge writes, and
//! whether its sender is one of the pool's servers.

use super::{addr, answer, header, status, untoken, untokened, DEST_A, DEST_B, EDGE};
use crate::config::{self, Listen};
use crate::flow::{ConnId, Flow, Transport};
use crate::keyring::KeyRing;
use crate::proxy::{Edge, Outcome};
use sip::{HeaderIndex, HeaderName};

const TCP_CALLER: &str = "127.0.0.1:40001";

/// An edge listening on UDP (local 0) and TCP (local 1) at the same
/// address, with destination B reached over TCP. The config parser still
/// refuses TCP, so the listener and destination are added to the parsed
/// config, which is plain data.
fn edge() -> Edge {
    let text = format!(
        "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:{EDGE}\"]\nalgorithm = \"first\"\n\
         flags = [\"ping-replies\"]\n\
         [[edge.destination]]\nuri = \"sip:{DEST_A}\"\n\
         [[edge.destination]]\nuri = \"sip:{DEST_B}\"\n"
    );
    let mut cfg = config::parse(&text, "test.toml").expect("config");
    let e = &mut cfg.edges[0];
    e.listen.push(Listen {
        transport: Transport::Tcp,
        addr: addr(EDGE),
        line: 0,
    });
    e.destinations[1].transport = Transport::Tcp;
    Edge::new(
        e,
        &cfg.node,
        &KeyRing::single(b"unit-test-secret-0123456789"),
    )
}

fn tcp(remote: &str, conn: u64) -> Flow {
    Flow {
        transport: Transport::Tcp,
        local: 1,
        remote: addr(remote),
        conn: Some(ConnId(conn)),
        reconnect: None,
        pinned: false,
        owner: None,
    }
}

fn invite_over_tcp(call: &str) -> String {
    super::invite(call, "z9hG4bK-t1").replace(
        &format!("Via: SIP/2.0/UDP {}", super::CALLER),
        &format!("Via: SIP/2.0/TCP {TCP_CALLER}"),
    )
}

fn handle(e: &Edge, msg: &[u8], from: Flow) -> (Outcome, Vec<u8>) {
    let mut w = e.worker();
    let o = w.handle(e, msg, from, e.epoch());
    (o, w.output().to_vec())
}

#[test]
fn a_request_that_changes_transport_is_record_routed_once_per_side() {
    let e = edge();
    let (o, out) = handle(&e, invite_over_tcp("f1").as_bytes(), tcp(TCP_CALLER, 7));
    assert_eq!(o, Outcome::Send(Flow::udp(0, addr(DEST_A))));
    let mut idx = HeaderIndex::new();
    let vias = header(&out, HeaderName::Via, &mut idx);
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsE"),
        "{vias:?}"
    );
    // Over a connection, received and rport are always written: the
    // answer must find this connection again (RFC 3261 §18.2.2).
    assert_eq!(
        vias[1],
        "SIP/2.0/TCP 127.0.0.1:40001;branch=z9hG4bK-t1;rport=40001;received=127.0.0.1"
    );
    // Without rport asked, both are written all the same.
    let plain = invite_over_tcp("f1b").replace(";rport", "");
    let (_, out2) = handle(&e, plain.as_bytes(), tcp(TCP_CALLER, 7));
    let mut idx2 = HeaderIndex::new();
    assert_eq!(
        header(&out2, HeaderName::Via, &mut idx2)[1],
        "SIP/2.0/TCP 127.0.0.1:40001;branch=z9hG4bK-t1;received=127.0.0.1;rport=40001"
    );
    // RFC 5658: the top entry faces the next hop (UDP), the other the
    // caller (TCP), so in-dialog requests leave on the right transport
    // either way.
    let mut idx = HeaderIndex::new();
    let rr = header(&out, HeaderName::RecordRoute, &mut idx);
    assert_eq!(
        untokened(&e, &rr),
        [
            "<sip:127.0.0.1:5060;lr>",
            "<sip:127.0.0.1:5060;transport=tcp;lr>"
        ]
    );
    // One token, in the top entry: both sides' route sets hold both.
    assert!(untoken(&e, &rr[0]).1.is_some());
    assert_eq!(untoken(&e, &rr[1]).1, None);

    // Its answer goes back over TCP to where the caller's Via says; the
    // runtime uses the connection open to that address.
    let (o, _) = handle(&e, &answer(&out, 200), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(back) = o else {
        panic!("{o:?}")
    };
    assert_eq!(
        (back.transport, back.local, back.remote),
        (Transport::Tcp, 1, addr(TCP_CALLER))
    );
}

#[test]
fn a_request_over_tcp_to_a_tcp_destination_has_one_record_route() {
    let e = edge();
    // Destination A is down for dispatch: B (over TCP) is the first usable.
    e.health().set_usable(0, false);
    let (o, out) = handle(&e, invite_over_tcp("f2").as_bytes(), tcp(TCP_CALLER, 7));
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert_eq!(
        (to.transport, to.local, to.remote, to.conn),
        (Transport::Tcp, 1, addr(DEST_B), None)
    );
    let mut idx = HeaderIndex::new();
    assert_eq!(
        untokened(&e, &header(&out, HeaderName::RecordRoute, &mut idx)),
        ["<sip:127.0.0.1:5060;transport=tcp;lr>"]
    );
    let mut idx = HeaderIndex::new();
    assert!(header(&out, HeaderName::Via, &mut idx)[0].starts_with("SIP/2.0/TCP 127.0.0.1:5060;"));
}

#[test]
fn answers_go_back_on_the_connection_the_request_came_in_on() {
    let e = edge();
    let ping = format!(
        "OPTIONS sip:{EDGE} SIP/2.0\r\nVia: SIP/2.0/TCP {TCP_CALLER};branch=z9hG4bK-p\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:{EDGE}>\r\n\
         Call-ID: ping-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, out) = handle(&e, ping.as_bytes(), tcp(TCP_CALLER, 9));
    assert_eq!(o, Outcome::Send(tcp(TCP_CALLER, 9)));
    assert_eq!(status(&out), 200);
}

#[test]
fn a_stream_message_without_content_length_gets_400() {
    let e = edge();
    let ping = format!(
        "OPTIONS sip:{EDGE} SIP/2.0\r\nVia: SIP/2.0/TCP {TCP_CALLER};branch=z9hG4bK-p\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:{EDGE}>\r\n\
         Call-ID: ping-2\r\nCSeq: 1 OPTIONS\r\n\r\n"
    );
    let (o, out) = handle(&e, ping.as_bytes(), tcp(TCP_CALLER, 3));
    assert_eq!(o, Outcome::Send(tcp(TCP_CALLER, 3)));
    assert!(
        String::from_utf8_lossy(&out).starts_with("SIP/2.0 400 Missing Content-Length\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Over UDP the datagram frames it: answered as usual.
    let udp = ping.replace("SIP/2.0/TCP", "SIP/2.0/UDP");
    let (o, out) = handle(&e, udp.as_bytes(), Flow::udp(0, addr(TCP_CALLER)));
    assert_eq!(o, Outcome::Send(Flow::udp(0, addr(TCP_CALLER))));
    assert_eq!(status(&out), 200);
}

#[test]
fn a_tcp_destination_connecting_from_any_port_is_the_pool() {
    let e = edge();
    let bye = |via: &str| {
        format!(
            "BYE sip:alice@192.0.2.77:5060 SIP/2.0\r\nVia: SIP/2.0/{via} 127.0.0.1:55555;branch=z9hG4bK-b\r\n\
             Max-Forwards: 70\r\nFrom: <sip:svc@example.com>;tag=s1\r\n\
             To: <sip:alice@example.com>;tag=a1\r\nCall-ID: bye-1\r\nCSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    // B's address over TCP, from an ephemeral port: the pool, so the BYE
    // goes out where its Request-URI says.
    let (o, _) = handle(&e, bye("TCP").as_bytes(), tcp("127.0.0.1:55555", 4));
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert_eq!(to.remote, addr("192.0.2.77:5060"));
    // The same port over UDP is not B (whose UDP address would be exact):
    // from outside, the BYE goes into the pool.
    let (o, _) = handle(
        &e,
        bye("UDP").as_bytes(),
        Flow::udp(0, addr("127.0.0.1:55555")),
    );
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert!([addr(DEST_A), addr(DEST_B)].contains(&to.remote), "{to:?}");
}

#[test]
fn an_in_dialog_request_consumes_both_record_routes_and_leaves_by_the_uri_transport() {
    let e = edge();
    let bye = format!(
        "BYE sip:alice@{TCP_CALLER};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-b2\r\n\
         Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.1:5060;transport=tcp;lr>\r\n\
         Max-Forwards: 70\r\nFrom: <sip:svc@example.com>;tag=s1\r\n\
         To: <sip:alice@example.com>;tag=a1\r\nCall-ID: bye-2\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let (o, out) = handle(&e, bye.as_bytes(), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert_eq!(
        (to.transport, to.local, to.remote),
        (Transport::Tcp, 1, addr(TCP_CALLER))
    );
    let mut idx = HeaderIndex::new();
    assert!(header(&out, HeaderName::Route, &mut idx).is_empty());
    let mut idx = HeaderIndex::new();
    assert!(header(&out, HeaderName::Via, &mut idx)[0].starts_with("SIP/2.0/TCP 127.0.0.1:5060;"));
}

#[test]
fn an_answer_finds_the_connection_by_rport_and_reopens_one_to_sent_by() {
    let e = edge();
    // The caller listens on 5099 (its sent-by) and connected from 40001.
    let invite = invite_over_tcp("f9").replace(
        &format!("SIP/2.0/TCP {TCP_CALLER}"),
        "SIP/2.0/TCP 127.0.0.1:5099",
    );
    let (_, out) = handle(&e, invite.as_bytes(), tcp(TCP_CALLER, 7));
    let (o, _) = handle(&e, &answer(&out, 200), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(back) = o else {
        panic!("{o:?}")
    };
    // Found on the open connection from 40001; were it closed, a new one
    // goes to the sent-by port (RFC 3261 §18.2.2).
    assert_eq!(back.remote, addr(TCP_CALLER));
    assert_eq!(back.reconnect, Some(5099));
    assert_eq!(back.reconnect_to(), addr("127.0.0.1:5099"));
}

/// An edge on UDP at `EDGE` (local 0) and the further listen address
/// `also` (local 1), with the further `[[edge]]` keys `extra`, dispatching
/// to destination A.
fn edge_on(also: &str, extra: &str) -> Edge {
    let text = format!(
        "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:{EDGE}\", {also}]\n\
         algorithm = \"first\"\n{extra}\n\
         [[edge.destination]]\nuri = \"sip:{DEST_A}\"\n"
    );
    let cfg = config::parse(&text, "test.toml").expect("config");
    Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &KeyRing::single(b"unit-test-secret-0123456789"),
    )
}

/// An edge listening on UDP (local 0) and WebSocket (local 1).
fn ws_edge() -> Edge {
    edge_on("\"ws:127.0.0.1:8088\"", "")
}

const BROWSER: &str = "127.0.0.1:50123";

fn ws(conn: u64) -> Flow {
    Flow {
        transport: Transport::Ws,
        local: 1,
        remote: addr(BROWSER),
        conn: Some(ConnId(conn)),
        reconnect: None,
        pinned: false,
        owner: None,
    }
}

/// What a browser's SIP stack sends: a Via and Contact naming a made-up
/// `.invalid` host, no Content-Length (the WebSocket message frames it).
fn from_browser(method: &str, call: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-w{call}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=w{call}\r\n\
         To: <sip:bob@example.com>\r\nCall-ID: {call}@browser\r\nCSeq: 1 {method}\r\n\
         Contact: <sip:x8s1@df7jal23ls0d.invalid;transport=ws;ob>\r\n\r\n"
    )
}

#[test]
fn a_websocket_callers_requests_name_its_flow_and_the_pool_reaches_it_through_them() {
    let e = ws_edge();
    // A MESSAGE without Content-Length: a WebSocket message is framed.
    let (o, out) = handle(&e, from_browser("INVITE", "w1").as_bytes(), ws(9));
    assert_eq!(
        o,
        Outcome::Send(Flow::udp(0, addr(DEST_A))),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let mut idx = HeaderIndex::new();
    let rr = header(&out, HeaderName::RecordRoute, &mut idx);
    assert_eq!(
        untokened(&e, &rr),
        [
            "<sip:127.0.0.1:5060;lr>",
            "<sip:127.0.0.1:8088;transport=ws;lr>"
        ]
    );
    // The browser's flow, sealed in the top entry.
    let (udp_entry, ws_entry) = (rr[0].clone(), rr[1].clone());
    let token = untoken(&e, &udp_entry).1.unwrap();
    assert_eq!(
        (token.outside.transport, token.outside.remote, token.sticky),
        (Transport::Ws, addr(BROWSER), true)
    );
    // The answer goes back over the WebSocket, by the Via's received and
    // rport.
    let (o, _) = handle(&e, &answer(&out, 200), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(back) = o else {
        panic!("{o:?}")
    };
    assert_eq!(
        (back.transport, back.remote),
        (Transport::Ws, addr(BROWSER))
    );

    // A BYE from the pool, to the browser's Contact, along the route set.
    let bye = format!(
        "BYE sip:x8s1@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-b1\r\nMax-Forwards: 70\r\n\
         Route: {udp_entry}\r\n\
         Route: {ws_entry}\r\n\
         From: <sip:bob@example.com>;tag=b\r\nTo: <sip:alice@example.com>;tag=ww1\r\n\
         Call-ID: w1@browser\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, out) = handle(&e, bye.as_bytes(), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(to) = o else {
        panic!("{o:?}: {}", String::from_utf8_lossy(&out))
    };
    assert_eq!(
        (to.transport, to.local, to.remote),
        (Transport::Ws, 1, addr(BROWSER))
    );
    let mut idx = HeaderIndex::new();
    assert!(header(&out, HeaderName::Route, &mut idx).is_empty());

    // A token not sealed by the cluster (written by someone else, or
    // changed) is refused.
    let at = udp_entry.find('@').unwrap() - 3;
    let changed = if &udp_entry[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    let forged = bye.replace(
        &udp_entry,
        &format!("{}{changed}{}", &udp_entry[..at], &udp_entry[at + 1..]),
    );
    let (o, out) = handle(&e, forged.as_bytes(), Flow::udp(0, addr(DEST_A)));
    assert_eq!(o, Outcome::Send(Flow::udp(0, addr(DEST_A))));
    assert_eq!(status(&out), 403);

    // The same from outside the pool is not sent to the flow.
    let (o, _) = handle(&e, bye.as_bytes(), Flow::udp(0, addr("127.0.0.1:7777")));
    assert!(
        !matches!(
            o,
            Outcome::Send(Flow {
                transport: Transport::Ws,
                ..
            })
        ),
        "{o:?}"
    );
}

#[test]
fn a_websocket_callers_register_carries_a_path_to_its_flow() {
    let e = ws_edge();
    let register = from_browser("REGISTER", "r1").replace("REGISTER sip:bob@", "REGISTER sip:");
    let (o, out) = handle(&e, register.as_bytes(), ws(9));
    assert_eq!(o, Outcome::Send(Flow::udp(0, addr(DEST_A))));
    let mut idx = HeaderIndex::new();
    let path = header(&out, HeaderName::Path, &mut idx);
    assert_eq!(path.len(), 1);
    let path = path[0].clone();
    let (bare, token) = untoken(&e, &path);
    assert_eq!(bare, "<sip:127.0.0.1:5060;lr>");
    assert_eq!(token.unwrap().outside.remote, addr(BROWSER));
    // A MESSAGE from the registrar to the binding, along the Path.
    let message = format!(
        "MESSAGE sip:x8s1@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-m1\r\nMax-Forwards: 70\r\n\
         Route: {path}\r\n\
         From: <sip:bob@example.com>;tag=m\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: m1@pool\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
         Content-Length: 2\r\n\r\nhi"
    );
    let (o, out) = handle(&e, message.as_bytes(), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert_eq!((to.transport, to.remote), (Transport::Ws, addr(BROWSER)));

    // An INVITE to the browser the same way: the Record-Route entry facing
    // it names its flow too, so the pool's BYE reaches it as well.
    let _ = out;
    let invite = message
        .replace("MESSAGE sip:", "INVITE sip:")
        .replace("CSeq: 1 MESSAGE", "CSeq: 1 INVITE")
        .replace("Call-ID: m1@pool", "Call-ID: i1@pool");
    let (o, out) = handle(&e, invite.as_bytes(), Flow::udp(0, addr(DEST_A)));
    assert!(
        matches!(
            o,
            Outcome::Send(Flow {
                transport: Transport::Ws,
                ..
            })
        ),
        "{o:?}"
    );
    let mut idx = HeaderIndex::new();
    let rr = header(&out, HeaderName::RecordRoute, &mut idx);
    let (bare, token) = untoken(&e, &rr[0]);
    assert_eq!(bare, "<sip:127.0.0.1:8088;transport=ws;lr>");
    let token = token.unwrap();
    assert_eq!(
        (token.outside.transport, token.outside.remote, token.sticky),
        (Transport::Ws, addr(BROWSER), true),
        "the callee is reached at its flow"
    );
    let bye = format!(
        "BYE sip:x8s1@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-b2\r\nMax-Forwards: 70\r\n\
         Route: {}\r\nRoute: {}\r\n\
         From: <sip:bob@example.com>;tag=b\r\nTo: <sip:alice@example.com>;tag=a\r\n\
         Call-ID: i1@pool\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        rr[1], rr[0]
    );
    let (o, _) = handle(&e, bye.as_bytes(), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert_eq!((to.transport, to.remote), (Transport::Ws, addr(BROWSER)));
    // Over TCP the REGISTER gets its Path too (the registration proxy),
    // with a token that is not sticky: the phone's Contact can be reached.
    let over_tcp = register
        .replace(
            "SIP/2.0/WS df7jal23ls0d.invalid",
            &format!("SIP/2.0/TCP {TCP_CALLER}"),
        )
        .replace("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n");
    let mut flow = ws(3);
    flow.transport = Transport::Tcp;
    // Not from the pool's address (over TCP the pool is known by IP).
    flow.remote = addr("127.0.0.3:40001");
    let e = edge();
    let (o, out) = handle(&e, over_tcp.as_bytes(), flow);
    assert!(
        matches!(o, Outcome::Send(f) if f.remote == addr(DEST_A) || f.remote == addr(DEST_B)),
        "into the pool: {o:?}"
    );
    let mut idx = HeaderIndex::new();
    let path = header(&out, HeaderName::Path, &mut idx);
    assert_eq!(path.len(), 1);
    assert!(!untoken(&e, &path[0]).1.unwrap().sticky);
    let mut idx = HeaderIndex::new();
    assert_eq!(header(&out, HeaderName::Supported, &mut idx), ["path"]);
}

/// An edge on UDP and TCP whose one destination takes UDP and, for what
/// is too large for a datagram, TCP; `coding` is its `compress_in`.
fn large_edge(coding: &str, insertion: &str) -> Edge {
    let text = format!(
        "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:{EDGE}\", \"tcp:{EDGE}\"]\n\
         algorithm = \"first\"\ninsertion = \"{insertion}\"\ncompress_in = {coding}\n\
         [[edge.destination]]\nuri = \"sip:{DEST_A}\"\ntransports = [\"udp\", \"tcp\"]\n"
    );
    let cfg = config::parse(&text, "test.toml").expect("config");
    Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &KeyRing::single(b"unit-test-secret-0123456789"),
    )
}

/// An INVITE over TCP with an SDP body of about `sdp` bytes.
fn sized_invite(call: &str, sdp: usize) -> String {
    let mut body = String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    while body.len() < sdp {
        body.push_str("a=rtpmap:0 PCMU/8000\r\n");
    }
    format!(
        "INVITE sip:service@{EDGE} SIP/2.0\r\nVia: SIP/2.0/TCP {TCP_CALLER};branch=z9hG4bK-{call}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:service@example.com>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{TCP_CALLER};transport=tcp>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_request_too_large_for_udp_goes_over_tcp_when_the_destination_takes_it() {
    for insertion in ["stateless", "transactional"] {
        let e = large_edge("[]", insertion);
        let mut w = e.worker();
        let big = sized_invite("big", 3000);
        assert!(big.len() > 3000, "{big}");
        let o = w.handle(&e, big.as_bytes(), tcp(TCP_CALLER, 7), e.epoch());
        let (to, out) = match o {
            Outcome::Send(to) => (to, w.output().to_vec()),
            // A transactional edge's 100 Trying goes first.
            Outcome::Queued => {
                let (b, to) = w
                    .sends()
                    .iter()
                    .find(|(_, to)| to.remote == addr(DEST_A))
                    .expect("a send to the destination");
                (to, b.to_vec())
            }
            other => panic!("{insertion}: {other:?}"),
        };
        assert_eq!(
            (to.transport, to.local, to.remote),
            (Transport::Tcp, 1, addr(DEST_A)),
            "{insertion}"
        );
        let mut idx = HeaderIndex::new();
        assert!(
            header(&out, HeaderName::Via, &mut idx)[0].starts_with("SIP/2.0/TCP 127.0.0.1:5060;"),
            "{insertion}"
        );
        let mut idx = HeaderIndex::new();
        assert_eq!(
            untokened(&e, &header(&out, HeaderName::RecordRoute, &mut idx)),
            ["<sip:127.0.0.1:5060;transport=tcp;lr>"],
            "{insertion}: one entry, caller and destination both on TCP"
        );
        // Over the connection the request is not retransmitted (Timer A is
        // for unreliable transports); over UDP it would be by now.
        if insertion == "transactional" {
            w.poll(&e, e.epoch() + std::time::Duration::from_secs(1));
            assert!(
                !w.sends().iter().any(|(_, to)| to.remote == addr(DEST_A)),
                "retransmitted over TCP"
            );
        }
        // A small one stays on UDP.
        let o = w.handle(
            &e,
            sized_invite("small", 300).as_bytes(),
            tcp(TCP_CALLER, 7),
            e.epoch(),
        );
        let to = match o {
            Outcome::Send(to) => to,
            Outcome::Queued => {
                w.sends()
                    .iter()
                    .find(|(_, to)| to.remote == addr(DEST_A))
                    .expect("a send to the destination")
                    .1
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(to.transport, Transport::Udp, "{insertion}");
    }
    // Compressed toward the pool, 3 KB of SDP fits a datagram: UDP.
    let e = large_edge("[\"compact\", \"deflate\"]", "stateless");
    let (o, out) = handle(
        &e,
        sized_invite("deflated", 3000).as_bytes(),
        tcp(TCP_CALLER, 7),
    );
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert_eq!(to.transport, Transport::Udp);
    assert!(out.len() <= 1300, "{} bytes", out.len());
}

#[test]
fn a_flow_parameter_names_a_websocket_connection_or_nothing() {
    let e = ws_edge();
    // From the pool, a Route of ours naming a UDP "flow": not followed;
    // the request goes where its Request-URI says.
    let bye = format!(
        "BYE sip:alice@127.0.0.1:7000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-f1\r\nMax-Forwards: 70\r\n\
         Route: <sip:127.0.0.1:5060;lr;flow=udp~127.0.0.1~9999>\r\n\
         From: <sip:bob@example.com>;tag=b\r\nTo: <sip:alice@example.com>;tag=a\r\n\
         Call-ID: f1@pool\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, _) = handle(&e, bye.as_bytes(), Flow::udp(0, addr(DEST_A)));
    assert_eq!(o, Outcome::Send(Flow::udp(0, addr("127.0.0.1:7000"))));
    // Garbage in it: the same.
    let garbled = bye.replace("udp~127.0.0.1~9999", "ws~not-an-ip~99999999");
    let (o, _) = handle(&e, garbled.as_bytes(), Flow::udp(0, addr(DEST_A)));
    assert_eq!(o, Outcome::Send(Flow::udp(0, addr("127.0.0.1:7000"))));
}

#[test]
fn a_request_for_a_token_flow_whose_connection_is_gone_is_answered_430_by_the_edge() {
    for insertion in ["stateless", "transactional"] {
        let e = edge_on(
            "\"ws:127.0.0.1:8088\"",
            &format!("insertion = \"{insertion}\""),
        );
        let register = from_browser("REGISTER", "g1").replace("REGISTER sip:bob@", "REGISTER sip:");
        let mut w = e.worker();
        let now = e.epoch();
        let o = w.handle(&e, register.as_bytes(), ws(9), now);
        assert!(matches!(o, Outcome::Send(_) | Outcome::Queued), "{o:?}");
        let out = match o {
            Outcome::Send(_) => w.output().to_vec(),
            _ => w.sends().iter().next().expect("queued").0.to_vec(),
        };
        let mut idx = HeaderIndex::new();
        let path = header(&out, HeaderName::Path, &mut idx)[0].clone();
        // The registrar's MESSAGE along the Path: pinned to connection 9.
        let message = format!(
            "MESSAGE sip:x8s1@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\n\
             Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-gone\r\nMax-Forwards: 70\r\n\
             Route: {path}\r\nFrom: <sip:bob@example.com>;tag=m\r\nTo: <sip:alice@example.com>\r\n\
             Call-ID: gone@pool\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
        );
        let o = w.handle(&e, message.as_bytes(), Flow::udp(0, addr(DEST_A)), now);
        let (to, forwarded) = match o {
            Outcome::Send(to) => (to, w.output().to_vec()),
            Outcome::Queued => {
                let (b, to) = w.sends().iter().next().expect("queued");
                (to, b.to_vec())
            }
            other => panic!("{insertion}: {other:?}"),
        };
        assert_eq!(
            (to.transport, to.remote, to.conn, to.pinned),
            (Transport::Ws, addr(BROWSER), Some(ConnId(9)), true),
            "{insertion}"
        );
        // The runtime finds connection 9 gone: the pool gets a 430, with
        // only its own Via.
        let o = w.flow_failed(&e, &forwarded, to, now);
        let (back_to, answer) = match o {
            Outcome::Send(back) => (back, w.output().to_vec()),
            Outcome::Queued => {
                let (b, to) = w.sends().iter().next().expect("queued");
                (to, b.to_vec())
            }
            other => panic!("{insertion}: {other:?}"),
        };
        assert_eq!(back_to.remote, addr(DEST_A), "{insertion}");
        assert_eq!(status(&answer), 430, "{insertion}");
        let mut idx = HeaderIndex::new();
        assert_eq!(
            header(&answer, HeaderName::Via, &mut idx),
            [format!("SIP/2.0/UDP {DEST_A};branch=z9hG4bK-gone")],
            "{insertion}"
        );
        assert_eq!(w.stats.get(crate::stats::Event::FlowFailed), 1);
    }
}

/// Two nodes of a cluster: a NAT'd TCP phone registered through node 1
/// (link address 10.0.0.1:5070); node 2 (10.0.0.2:5070) gets the pool's
/// INVITE along the Path and relays it. The INVITE's Record-Route keeps
/// naming node 1 as the connection's owner, so the pool's BYE is relayed
/// there too.
#[test]
fn a_call_relayed_to_another_nodes_connection_keeps_that_node_as_its_owner() {
    let text = format!(
        "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:{EDGE}\", \"tcp:{EDGE}\"]\n\
         algorithm = \"first\"\nnat_test = [\"private-contact\"]\n\
         [[edge.destination]]\nuri = \"sip:{DEST_A}\"\n"
    );
    let cfg = config::parse(&text, "test.toml").expect("config");
    let keys = KeyRing::single(b"unit-test-secret-0123456789");
    let node = |link: &str| Edge::new(&cfg.edges[0], &cfg.node, &keys).on_link(Some(addr(link)));
    let (one, two) = (node("10.0.0.1:5070"), node("10.0.0.2:5070"));
    let phone = "127.0.0.3:40001";
    let register = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.168.1.20:5062;branch=z9hG4bK-r1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=r\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@192.168.1.20:5062;transport=tcp>\r\n\
         Content-Length: 0\r\n\r\n";
    let (_, out) = handle(&one, register.as_bytes(), tcp(phone, 7));
    let mut idx = HeaderIndex::new();
    let path = header(&out, HeaderName::Path, &mut idx)[0].clone();
    let invite = format!(
        "INVITE sip:alice@192.168.1.20:5062;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-i1\r\nMax-Forwards: 70\r\nRoute: {path}\r\n\
         From: <sip:bob@example.com>;tag=b\r\nTo: <sip:alice@example.com>\r\nCall-ID: i1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:bob@{DEST_A}>\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, out) = handle(&two, invite.as_bytes(), Flow::udp(0, addr(DEST_A)));
    let Outcome::Send(to) = o else {
        panic!("{o:?}")
    };
    assert_eq!(
        (to.remote, to.conn, to.pinned, to.owner),
        (
            addr(phone),
            Some(ConnId(7)),
            true,
            Some(addr("10.0.0.1:5070"))
        )
    );
    let mut idx = HeaderIndex::new();
    let rr = header(&out, HeaderName::RecordRoute, &mut idx)[0].clone();
    let owner = untoken(&two, &rr).1.unwrap().outside.conn.unwrap().owner;
    assert_eq!(owner, Some(addr("10.0.0.1:5070")));
    let bye = format!(
        "BYE sip:alice@192.168.1.20:5062;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-b1\r\nMax-Forwards: 70\r\nRoute: {rr}\r\n\
         From: <sip:bob@example.com>;tag=b\r\nTo: <sip:alice@example.com>;tag=a\r\nCall-ID: i1\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, _) = handle(&two, bye.as_bytes(), Flow::udp(0, addr(DEST_A)));
    assert!(
        matches!(o, Outcome::Send(f) if f.owner == Some(addr("10.0.0.1:5070"))),
        "{o:?}"
    );
    // On node 1 itself, the same BYE goes over its own connection.
    let (o, _) = handle(&one, bye.as_bytes(), Flow::udp(0, addr(DEST_A)));
    assert!(
        matches!(o, Outcome::Send(f) if f.owner.is_none() && f.conn == Some(ConnId(7))),
        "{o:?}"
    );
    // A transactional node relays without a transaction: the answers come
    // back through node 1, never here, so no timer of its own may fail
    // the call.
    let mut cfg = cfg.clone();
    cfg.edges[0].insertion = config::Insertion::Transactional;
    let stateful = Edge::new(&cfg.edges[0], &cfg.node, &keys).on_link(Some(addr("10.0.0.2:5070")));
    let (o, _) = handle(&stateful, invite.as_bytes(), Flow::udp(0, addr(DEST_A)));
    assert!(
        matches!(o, Outcome::Send(f) if f.owner == Some(addr("10.0.0.1:5070"))),
        "sent at once, not queued by a transaction: {o:?}"
    );
    assert_eq!(stateful.stateful().map(|st| st.len()), Some(0));
}

/// A NAT lets in only what comes from where its binding points: the
/// pool's request to a phone leaves from the local address the phone
/// registered through, whichever one the pool sent it to.
#[test]
fn a_request_to_a_natted_phone_leaves_from_the_address_it_registered_through() {
    let e = edge_on("\"udp:127.0.0.1:5080\"", "nat_test = [\"private-contact\"]");
    let phone = "127.0.0.3:40001";
    let register = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK-r2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=r\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: r2\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@192.168.1.20:5062>\r\n\
         Content-Length: 0\r\n\r\n";
    let (_, out) = handle(&e, register.as_bytes(), Flow::udp(0, addr(phone)));
    let mut idx = HeaderIndex::new();
    let path = header(&out, HeaderName::Path, &mut idx)[0].clone();
    let message = format!(
        "MESSAGE sip:alice@192.168.1.20:5062 SIP/2.0\r\nVia: SIP/2.0/UDP {DEST_A};branch=z9hG4bK-m2\r\n\
         Max-Forwards: 70\r\nRoute: {path}\r\nFrom: <sip:bob@example.com>;tag=b\r\n\
         To: <sip:alice@example.com>\r\nCall-ID: m2\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    let (o, _) = handle(&e, message.as_bytes(), Flow::udp(1, addr(DEST_A)));
    assert_eq!(o, Outcome::Send(Flow::udp(0, addr(phone))));
}
