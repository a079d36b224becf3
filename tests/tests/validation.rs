//! Packet validation (issue 6 §1–2) through the running proxy: a crafted
//! message per failure reason and the 400 naming it (`on_invalid =
//! "reject"`), the `X-Validate-Fail` tag on what goes on (`"tag"`), replies
//! that lack what their code promises, and the counts per reason in the
//! admin API.

use std::net::SocketAddr;

use e2e::config::{admin, single_edge};
use e2e::expect::{next_arrival, pool_silent, ANSWER, SILENCE};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, AdminApi, FakePool, Sipedge, Udp};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn edge_addr(port: u16) -> SocketAddr {
    SocketAddr::from((e2e::LOCALHOST, port))
}

/// A config of one edge named `e` on `listen` in front of `pool`, with
/// `lines` added, probes off, and the admin API on `api`.
fn config(listen: u16, pool: u16, lines: &str, api: u16) -> String {
    single_edge(listen, "first", &[(pool, 1)]).replace("flags = ", &format!("{lines}\nflags = "))
        + "\n[edge.probe]\nenabled = false\n"
        + &admin(api)
}

/// sipedge with one edge in front of `pool`'s server and `lines` added;
/// returns its listen port, its admin API port and the process.
fn start_edge(pool: &FakePool, lines: &str) -> (u16, u16, Sipedge) {
    let (listen, api) = (free_port(), free_port());
    let edge = Sipedge::start(&config(listen, pool.ports()[0], lines, api));
    (listen, api, edge)
}

/// A valid INVITE with SDP from `caller` to the edge on `listen`.
fn invite(caller: &Udp, listen: u16) -> Request {
    Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{listen}"),
        caller.local_addr(),
    )
    .body("application/sdp", SDP)
}

/// Sends each request from `caller` and checks that it gets `400 reason`.
#[track_caller]
fn each_refused(caller: &Udp, listen: u16, cases: &[(Request, &str)]) {
    for (req, reason) in cases {
        caller.send_to(req.build(), edge_addr(listen));
        assert_eq!(
            answer(caller),
            format!("SIP/2.0 400 {reason}"),
            "{}",
            req.build()
        );
    }
}

/// The status line of the next answer `caller` gets.
fn answer(caller: &Udp) -> String {
    let (text, _) = caller.recv_text_timeout(ANSWER).expect("an answer");
    sip::start_line(&text).to_owned()
}

/// With only `validate = ["from", "to", "contact"]`, a URI without a
/// scheme (`<caller@127.0.0.3:5680>`) or with a byte no scheme may hold is
/// refused: "URI and a valid host", a Contact that parses.
#[test]
fn validation_refuses_uris_without_a_scheme() {
    require_private_netns();
    let pool = FakePool::start(1);
    let (listen, _api, _edge) = start_edge(&pool, "validate = [\"from\", \"to\", \"contact\"]");
    let caller = Udp::bind();
    let cases: Vec<(Request, &str)> = vec![
        (
            invite(&caller, listen).set("From", "<caller@127.0.0.3:5680>;tag=f1"),
            "From Header Parse Error",
        ),
        (
            invite(&caller, listen).set("To", "<svc@127.0.0.1>"),
            "To Header Parse Error",
        ),
        (
            invite(&caller, listen).set("Contact", "<caller@127.0.0.3:5680>"),
            "Contact Header Parse Error",
        ),
    ];
    each_refused(&caller, listen, &cases);
    // `s\xa4p:` as the scheme: not text a Request can build.
    let latin1 = invite(&caller, listen).set("From", "<sip:caller@127.0.0.3:5680>;tag=f2");
    let mut bytes = latin1.build().into_bytes();
    let at = bytes.windows(5).position(|w| w == b"<sip:").expect("From") + 2;
    bytes[at] = 0xa4;
    caller.send_to(&bytes, edge_addr(listen));
    assert_eq!(answer(&caller), "SIP/2.0 400 From Header Parse Error");
    // What passes next is the first thing the pool sees.
    let ok = invite(&caller, listen);
    caller.send_to(ok.build(), edge_addr(listen));
    next_arrival(&pool, "INVITE", ok.get("Call-ID").expect("Call-ID"));
}

/// Issue 6: with every check and `on_invalid = "reject"`, each crafted
/// request gets a 400 whose reason phrase names the failed check, and
/// nothing reaches the pool; a valid one passes.
#[test]
fn validation_rejects_each_failure_with_a_400_naming_it() {
    require_private_netns();
    let pool = FakePool::start(1);
    let (listen, api, _edge) = start_edge(
        &pool,
        "validate = [\"basic\", \"sdp\", \"request-uri\", \"from\", \"to\", \"contact\"]",
    );
    let caller = Udp::bind();
    let cases: Vec<(Request, &str)> = vec![
        (
            invite(&caller, listen).remove("Call-ID"),
            "No Call-ID Header",
        ),
        (invite(&caller, listen).remove("CSeq"), "No CSeq Header"),
        (invite(&caller, listen).remove("From"), "No From Header"),
        (invite(&caller, listen).remove("To"), "No To Header"),
        (
            invite(&caller, listen).remove("Max-Forwards"),
            "No Max-Forwards Header",
        ),
        (
            invite(&caller, listen).remove("Contact"),
            "No Contact Header",
        ),
        (
            invite(&caller, listen).remove("Content-Type"),
            "No Content-Type Header",
        ),
        (
            invite(&caller, listen).add("Path", "<sip:p@127.0.0.1;lr>"),
            "Path in Non-REGISTER Request",
        ),
        (
            invite(&caller, listen).body("application/sdp", "v=1\r\ns=-\r\n"),
            "SDP Body Parsing Error",
        ),
        (
            Request::new(
                "INVITE",
                "sip:bob@bad_host.example.com",
                caller.local_addr(),
            )
            .body("application/sdp", SDP),
            "Bad Hostname in Request-URI",
        ),
        (
            invite(&caller, listen).set("From", "<sip:a@-x.example.com>;tag=1"),
            "Bad Hostname in From Header",
        ),
        (
            invite(&caller, listen).set("To", "<sip:b@x..example.com>"),
            "Bad Hostname in To Header",
        ),
        (
            invite(&caller, listen).set("From", "\"unterminated <sip:a@example.com>;tag=1"),
            "From Header Parse Error",
        ),
        (
            invite(&caller, listen).set("To", "<sip:b@example.com"),
            "To Header Parse Error",
        ),
        (
            invite(&caller, listen).set("Contact", "<sip:a@127.0.0.1"),
            "Contact Header Parse Error",
        ),
    ];
    each_refused(&caller, listen, &cases);
    pool_silent(&pool, "an invalid request reached the pool");
    // A valid request passes.
    let ok = invite(&caller, listen);
    caller.send_to(ok.build(), edge_addr(listen));
    next_arrival(&pool, "INVITE", ok.get("Call-ID").expect("Call-ID"));
    // Counted per reason.
    let api = AdminApi::local(api).destinations();
    let counts = &api["edges"][0]["validation_failures"];
    for token in [
        "no-call-id",
        "no-max-forwards",
        "sdp-parse",
        "request-uri-host",
        "contact-parse",
    ] {
        assert_eq!(counts[token].as_u64(), Some(1), "{token}: {api}");
    }
}

/// Issue 6: the `headers` check catches a header whose body breaks its
/// grammar, and a request without Via cannot be answered (counted only).
#[test]
fn validation_header_grammar_and_a_request_without_via() {
    require_private_netns();
    let pool = FakePool::start(1);
    let (listen, api, _edge) = start_edge(&pool, "validate = [\"basic\", \"headers\"]");
    let caller = Udp::bind();
    let bad = invite(&caller, listen).add("Supported", "timer,,100rel");
    caller.send_to(bad.build(), edge_addr(listen));
    assert_eq!(answer(&caller), "SIP/2.0 400 Header Parsing Error");
    caller.send_to(
        invite(&caller, listen).remove("Via").build(),
        edge_addr(listen),
    );
    assert!(
        caller.recv_text_timeout(SILENCE).is_none(),
        "no Via: nowhere to answer"
    );
    pool_silent(&pool, "an invalid request reached the pool");
    let api = AdminApi::local(api).destinations();
    let counts = &api["edges"][0]["validation_failures"];
    assert_eq!(counts["header-parse"].as_u64(), Some(1), "{api}");
    assert_eq!(counts["no-via"].as_u64(), Some(1), "{api}");
}

/// Issue 6: `on_invalid = "tag"` forwards with `X-Validate-Fail`; a reply
/// that lacks what its code promises is dropped when rejecting and tagged
/// when tagging — never answered.
#[test]
fn validation_tag_mode_and_replies() {
    require_private_netns();
    let pool = FakePool::start(1);
    let (reject, api_r, _r) = start_edge(&pool, "validate = [\"basic\"]");
    let (tag, api_t) = (free_port(), free_port());
    let tagging = config(
        tag,
        pool.ports()[0],
        "validate = [\"basic\"]\non_invalid = \"tag\"",
        api_t,
    )
    .replace("id = \"test\"", "id = \"tagging\"");
    let _t = Sipedge::start(&tagging);
    let caller = Udp::bind();

    // A request without Max-Forwards goes on, tagged.
    let req = invite(&caller, tag).remove("Max-Forwards");
    caller.send_to(req.build(), edge_addr(tag));
    let got = next_arrival(&pool, "INVITE", req.get("Call-ID").expect("Call-ID"));
    assert_eq!(
        sip::header(&got.text, "X-Validate-Fail"),
        Some("no-max-forwards")
    );

    for (code, token) in [
        (405, "405-no-allow"),
        (423, "423-no-min-expires"),
        (407, "407-no-proxy-authenticate"),
        (420, "420-no-unsupported"),
        (401, "401-no-www-authenticate"),
    ] {
        for (edge, tagged) in [(reject, false), (tag, true)] {
            let req = invite(&caller, edge);
            caller.send_to(req.build(), edge_addr(edge));
            let got = next_arrival(&pool, "INVITE", req.get("Call-ID").expect("Call-ID"));
            pool.send_from(0, sip::response_to(&got.text, code, "Refused"), got.from);
            match caller.recv_text_timeout(if tagged { ANSWER } else { SILENCE }) {
                Some((text, _)) => {
                    assert!(
                        tagged,
                        "a rejecting edge relayed a {code} without its header"
                    );
                    assert_eq!(sip::status_code(&text), Some(code));
                    assert_eq!(sip::header(&text, "X-Validate-Fail"), Some(token), "{text}");
                }
                None => assert!(!tagged, "the tagging edge dropped the {code}"),
            }
        }
    }
    let api = AdminApi::local(api_r).destinations();
    assert_eq!(
        api["edges"][0]["validation_failures"]["405-no-allow"].as_u64(),
        Some(1)
    );
}
