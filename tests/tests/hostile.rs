//! Hostile input through the running proxy: messages built to make the
//! edge and the servers behind it disagree (bare line ends, control bytes
//! in the fields the proxy routes on, a response with two CSeqs), a
//! garbled datagram from a destination that shares the edge's address,
//! and a response whose branch was edited. None of it reaches the other
//! side; what the edge answers parses the same way for everyone.
//!
//! "Not forwarded" is shown by a positive event: the next thing the other
//! side receives is the well-formed message the test sends after the bad
//! one (one source socket goes to one sipedge worker, in order).

use std::net::SocketAddr;

use e2e::config::single_edge;
use e2e::expect::{next_arrival, ANSWER};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, SippUac, Udp};

fn edge_addr(port: u16) -> SocketAddr {
    SocketAddr::from((e2e::LOCALHOST, port))
}

/// An edge without `validate` in front of one raw pool server.
struct Scene {
    pool: FakePool,
    listen: u16,
    _edge: Sipedge,
    caller: Udp,
}

impl Scene {
    fn start() -> Scene {
        let pool = FakePool::start(1);
        let listen = free_port();
        let edge = Sipedge::start(&single_edge(listen, "first", &[(pool.ports()[0], 1)]));
        Scene {
            pool,
            listen,
            _edge: edge,
            caller: Udp::bind(),
        }
    }

    fn invite(&self) -> Request {
        let uri = format!("sip:bob@127.0.0.1:{}", self.listen);
        Request::new("INVITE", &uri, self.caller.local_addr())
    }

    fn send(&self, bytes: impl AsRef<[u8]>) {
        self.caller.send_to(bytes, edge_addr(self.listen));
    }

    /// The next message the caller receives, as bytes.
    fn answer(&self) -> Vec<u8> {
        self.caller.recv_timeout(ANSWER).expect("an answer").0
    }

    /// Sends a well-formed INVITE and checks that it is the next thing the
    /// pool receives: whatever the caller sent before did not get there.
    fn next_at_pool_is_a_good_invite(&self) -> e2e::Arrival {
        let ok = self.invite();
        self.send(ok.build());
        next_arrival(&self.pool, "INVITE", ok.get("Call-ID").expect("Call-ID"))
    }
}

/// The start line and header section of `msg` (up to the empty line).
fn head(msg: &[u8]) -> &[u8] {
    let end = msg.windows(4).position(|w| w == b"\r\n\r\n");
    &msg[..end.map_or(msg.len(), |i| i + 4)]
}

/// Every CR or LF of `msg`'s head is part of a CRLF.
fn only_crlf(msg: &[u8]) -> bool {
    let h = head(msg);
    (0..h.len()).all(|i| match h[i] {
        b'\r' => h.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && h[i - 1] == b'\r',
        _ => true,
    })
}

/// `Subject: a\nRoute: <…>` is one header to a strict parser and two to a
/// lenient one: the edge refuses it with 400 (bare CR alike), its 400
/// repeats no bare line end, and nothing reaches the pool.
#[test]
fn hostile_bare_line_ends_are_refused_not_smuggled() {
    require_private_netns();
    let scene = Scene::start();
    let smuggled = "<sip:127.0.0.1:9;lr>";
    for eol in ["\n", "\r"] {
        let text = scene
            .invite()
            .set("Subject", &format!("a{eol}Route: {smuggled}"))
            .build();
        scene.send(&text);
        let answer = scene.answer();
        let shown = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            shown.starts_with("SIP/2.0 400 Line End Not CRLF\r\n"),
            "{shown}"
        );
        assert!(only_crlf(&answer), "{shown:?}");
        assert_eq!(
            sip::header(&shown, "Call-ID"),
            sip::header(&text, "Call-ID")
        );
    }
    // A request whose every line ends in a bare LF gets the same answer,
    // its copied lines ended with CRLF.
    let lf_only = scene.invite().build().replace("\r\n", "\n");
    scene.send(&lf_only);
    let answer = scene.answer();
    assert!(answer.starts_with(b"SIP/2.0 400 Line End Not CRLF\r\n"));
    assert!(only_crlf(&answer), "{:?}", String::from_utf8_lossy(&answer));
    scene.next_at_pool_is_a_good_invite();
}

/// The fields the proxy routes and matches on must be well-formed on an
/// edge without `validate`: a control byte in the Via branch, in the
/// Call-ID, in a From tag, a bare CR in the Call-ID. Each is refused, and
/// none reaches the pool.
#[test]
fn hostile_control_bytes_in_routing_fields_are_refused() {
    require_private_netns();
    let scene = Scene::start();
    let me = scene.caller.local_addr();
    let cases = [
        (
            scene.invite().set(
                "Via",
                &format!("SIP/2.0/UDP {me};branch=z9hG4bK\x0fab;rport"),
            ),
            Some("400 Bad Via"),
        ),
        (
            scene.invite().set("Call-ID", "ctl\x0f1"),
            Some("400 Bad Call-ID"),
        ),
        (
            scene.invite().set("From", "<sip:e2e@127.0.0.1>;tag=t\x01"),
            Some("400 Bad From"),
        ),
        (
            scene.invite().add("Route", "<sip:127.0.0.1:9;\x0flr>"),
            Some("400 Bad Route"),
        ),
        // A bare CR ends no line; the 400 would have to leave out the
        // Call-ID it cannot copy, so the request is dropped.
        (scene.invite().set("Call-ID", "cr\r1"), None),
    ];
    for (req, want) in &cases {
        scene.send(req.build());
        if let Some(want) = want {
            let answer = String::from_utf8_lossy(&scene.answer()).into_owned();
            assert!(
                answer.starts_with(&format!("SIP/2.0 {want}\r\n")),
                "{answer}"
            );
        }
    }
    scene.next_at_pool_is_a_good_invite();
    // The bare CR was not answered either: sipedge had handled it before
    // the good INVITE, and the caller has nothing waiting.
    assert!(scene.caller.already_received().is_none());
}

/// A response with two CSeqs (`1 INVITZ` then `1 INVITE`) is dropped — a
/// request like it gets 400 — and a response whose branch had a digit of
/// its loop hash changed fails the branch check: the caller's first answer
/// is the real one that follows each.
#[test]
fn hostile_responses_with_two_cseqs_or_an_edited_branch_are_dropped() {
    require_private_netns();
    let scene = Scene::start();
    let edits: [(&str, Edit); 3] = [
        ("two CSeqs", |r| {
            r.replacen(
                "CSeq: 1 INVITE\r\n",
                "CSeq: 1 INVITZ\r\nCSeq: 1 INVITE\r\n",
                1,
            )
        }),
        ("a loop-hash digit changed", |r| edit_branch(r, 26)),
        ("an attempt suffix added", |r| {
            let at = r.find("z9hG4bKsE").expect("our branch") + 34;
            format!("{}.1{}", &r[..at], &r[at..])
        }),
    ];
    for (what, edit) in edits {
        let got = scene.next_at_pool_is_a_good_invite();
        let forged = edit(&sip::response_to(&got.text, 180, "Ringing"));
        assert_ne!(
            forged,
            sip::response_to(&got.text, 180, "Ringing"),
            "{what}"
        );
        scene.pool.send_from(0, &forged, got.from);
        scene
            .pool
            .send_from(0, sip::response_to(&got.text, 486, "Busy Here"), got.from);
        let first = String::from_utf8_lossy(&scene.answer()).into_owned();
        assert_eq!(sip::status_code(&first), Some(486), "{what}: {first}");
        assert_eq!(sip::headers(&first, "CSeq"), ["1 INVITE"], "{what}");
    }
}

/// A change made to a response on its way back.
type Edit = fn(&str) -> String;

/// `branch` with the hex digit at offset `k` of our branch value changed.
fn edit_branch(response: &str, k: usize) -> String {
    let at = response.find("z9hG4bKsE").expect("our branch") + k;
    let old = response.as_bytes()[at];
    let new = if old == b'0' { "1" } else { "0" };
    format!("{}{new}{}", &response[..at], &response[at + 1..])
}

/// A SIPp call in flight when the destination, on the edge's own address,
/// sends a garbled datagram whose start line is no request line
/// (`\xff\xfe 200 OK`) before its real answer. The edge drops it: a 400
/// to its top Via would reach the edge itself and be relayed to the
/// caller as the final answer of its INVITE. The call completes.
#[test]
fn hostile_a_garbled_datagram_from_a_destination_is_never_answered() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let _edge = Sipedge::start(&single_edge(listen, "first", &[(pool.ports()[0], 1)]));
    let target = format!("127.0.0.1:{listen}");
    let caller = std::thread::spawn(move || SippUac::run("uac.xml", &target, 1, 1, &[]));

    let invite = pool.recv(ANSWER).expect("the INVITE").text;
    assert_eq!(sip::method(&invite), Some("INVITE"), "{invite}");
    let contact = format!("<sip:uas@{}>", pool.addr(0));
    let ok = with_dialog(&sip::response_to(&invite, 200, "OK"), &invite, &contact);
    let mut garbled = b"\xff\xfe 200 OK".to_vec();
    garbled.extend_from_slice(&ok.as_bytes()[ok.find("\r\n").expect("status line")..]);
    let edge = edge_addr(listen);
    pool.send_from(0, &garbled, edge);
    pool.send_from(0, &ok, edge);
    let ack = pool.recv(ANSWER).expect("the ACK of the 200").text;
    assert_eq!(sip::method(&ack), Some("ACK"), "{ack}");
    let bye = pool.recv(ANSWER).expect("the BYE").text;
    assert_eq!(sip::method(&bye), Some("BYE"), "{bye}");
    pool.send_from(0, sip::response_to(&bye, 200, "OK"), edge);

    let uac = caller.join().expect("the SIPp caller");
    uac.assert_all_successful();
    assert!(uac.responses(400).is_empty(), "{}", uac.summary());
}

/// `response` with the Record-Route of `request` and a Contact, as a UAS
/// answers a dialog-creating request (so the caller's ACK and BYE find
/// their way back through the edge).
fn with_dialog(response: &str, request: &str, contact: &str) -> String {
    let mut extra = String::new();
    for rr in sip::headers(request, "Record-Route") {
        extra.push_str(&format!("Record-Route: {rr}\r\n"));
    }
    extra.push_str(&format!("Contact: {contact}\r\n"));
    response.replacen("Content-Length:", &format!("{extra}Content-Length:"), 1)
}
