//! The normalize stage: a peer's number rules, URI form and header
//! policy, on requests into the pool and out to the peer, and on the
//! responses that pass between them.

use super::*;

const CARRIER_A: &str = "127.0.0.2:5060";
const CARRIER_B: &str = "127.0.0.3:5060";

/// Carrier A dials `0044…` and national `0…`, wants `0…` back and no
/// internal headers; carrier B sends E.164 already, as `tel:`, with
/// headers of its own.
const PEERS: &str = r#"
[[edge.peer]]
name = "carrier-a"
sources = ["127.0.0.2"]
[edge.peer.in]
number = [{ e164 = "44", examples = [["00442079460000", "+442079460000"], ["02079460000", "+442079460000"]] }]
[edge.peer.out]
number = [{ match = '^\+44(\d+)$', replace = "0$1", fields = ["ruri", "to"] }]
remove = ["X-Internal-*"]
add = ["X-Carrier: a"]
[[edge.peer]]
name = "carrier-b"
sources = ["127.0.0.3"]
[edge.peer.in]
tel = "sip"
allow = ["P-Asserted-Identity"]
replace = ["User-Agent: carrier-b"]
"#;

fn carriers() -> Edge {
    edge_with_keys("weighted-round-robin", "", PEERS)
}

fn call(uri: &str, from: &str, pai: &str, extra: &str, via: &str) -> String {
    format!(
        "INVITE {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bK-n1\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <{from}>;tag=a1\r\n\
         To: <{uri}>\r\n\
         Call-ID: norm-1\r\n\
         CSeq: 1 INVITE\r\n\
         P-Asserted-Identity: {pai}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// Carrier A's call as it dials it.
fn call_from_a() -> String {
    call(
        &format!("sip:00442079460000@{EDGE}"),
        "sip:02079460001@a.example",
        "<tel:02079460001>",
        "",
        CARRIER_A,
    )
}

fn first_line_and(out: &[u8], name: &str) -> (String, Vec<String>) {
    let text = String::from_utf8_lossy(out);
    let first = text.lines().next().unwrap_or_default().to_owned();
    let lower = name.to_ascii_lowercase();
    let values = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().to_ascii_lowercase() == lower)
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    (first, values)
}

#[test]
fn numbers_from_two_carriers_reach_the_pool_as_one_e164_form() {
    let e = carriers();
    let mut w = e.worker();
    // Carrier A: international and national prefixes.
    let a = call(
        &format!("sip:00442079460000@{EDGE}"),
        "sip:02079460001@a.example",
        "<sip:00442079460001@a.example>, <tel:02079460001>",
        "",
        CARRIER_A,
    );
    let (o, out) = run(&e, &mut w, a.as_bytes(), CARRIER_A);
    assert_eq!(sent_to(o), addr(DEST_A));
    let (first, to) = first_line_and(&out, "To");
    assert_eq!(first, format!("INVITE sip:+442079460000@{EDGE} SIP/2.0"));
    assert_eq!(to, [format!("<sip:+442079460000@{EDGE}>")]);
    let (_, from) = first_line_and(&out, "From");
    assert_eq!(from, ["\"Caller\" <sip:+442079460001@a.example>;tag=a1"]);
    let (_, pai) = first_line_and(&out, "P-Asserted-Identity");
    assert_eq!(pai, ["<sip:+442079460001@a.example>, <tel:+442079460001>"]);
    // Carrier B: E.164 already, in tel: form, which it gets as sip:.
    let b = call(
        "tel:+442079460000",
        "tel:+442079460001",
        "<tel:+442079460001>",
        "User-Agent: b-sbc\r\nX-B-Billing: 7\r\nSubject: hi\r\n",
        CARRIER_B,
    );
    let (o, out) = run(&e, &mut w, b.as_bytes(), CARRIER_B);
    let to_pool = sent_to(o);
    let (first, _) = first_line_and(&out, "To");
    assert_eq!(
        first,
        format!("INVITE sip:+442079460000@{to_pool};user=phone SIP/2.0")
    );
    let (_, from) = first_line_and(&out, "From");
    assert_eq!(
        from,
        [format!(
            "\"Caller\" <sip:+442079460001@{EDGE};user=phone>;tag=a1"
        )]
    );
    let (_, pai) = first_line_and(&out, "P-Asserted-Identity");
    assert_eq!(pai, [format!("<sip:+442079460001@{EDGE};user=phone>")]);
    // Its allow-list let through what SIP needs and PAI; the replaced
    // User-Agent is the one line written.
    let text = String::from_utf8_lossy(&out);
    assert!(
        !text.contains("X-B-Billing") && !text.contains("Subject"),
        "{text}"
    );
    assert_eq!(first_line_and(&out, "User-Agent").1, ["carrier-b"]);
    for needed in [
        "Via",
        "Max-Forwards",
        "Call-ID",
        "CSeq",
        "Record-Route",
        "Content-Length",
    ] {
        assert!(
            !first_line_and(&out, needed).1.is_empty(),
            "{needed}: {text}"
        );
    }
    // Anyone else: nothing rewritten.
    let other = call(
        &format!("sip:00442079460000@{EDGE}"),
        "sip:0207@x",
        "<tel:0207>",
        "X-Internal-Cost: 1\r\n",
        CALLER,
    );
    let (_, out) = run(&e, &mut w, other.as_bytes(), CALLER);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with(&format!("INVITE sip:00442079460000@{EDGE} ")),
        "{text}"
    );
    assert!(
        text.contains("<tel:0207>") && text.contains("X-Internal-Cost: 1"),
        "{text}"
    );
}

#[test]
fn what_the_pool_sends_a_carrier_leaves_in_its_form_without_internal_headers() {
    let e = carriers();
    let mut w = e.worker();
    let to_a = call(
        &format!("sip:+442079460000@{CARRIER_A}"),
        "sip:+442079460001@pbx.example",
        "<sip:+442079460001@pbx.example>",
        "X-Internal-Route: pool-7\r\nx-internal-cost: 3\r\n",
        DEST_A,
    );
    let (o, out) = run(&e, &mut w, to_a.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CARRIER_A));
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with(&format!("INVITE sip:02079460000@{CARRIER_A} SIP/2.0\r\n")),
        "{text}"
    );
    assert_eq!(
        first_line_and(&out, "To").1,
        [format!("<sip:02079460000@{CARRIER_A}>")]
    );
    // `fields` left From and PAI alone.
    assert_eq!(
        first_line_and(&out, "From").1,
        ["\"Caller\" <sip:+442079460001@pbx.example>;tag=a1"]
    );
    assert!(!text.to_ascii_lowercase().contains("x-internal"), "{text}");
    assert_eq!(first_line_and(&out, "X-Carrier").1, ["a"]);

    // The carrier's answer comes back into the pool untouched by A's
    // `out` policy; the pool's answer to A's own call leaves without
    // internal headers.
    let a = call_from_a();
    let (_, fwd) = run(&e, &mut w, a.as_bytes(), CARRIER_A);
    let ok = String::from_utf8(answer(&fwd, 200))
        .expect("utf-8")
        .replacen(
            "Content-Length",
            "X-Internal-Node: 10.1.2.3\r\nContent-Length",
            1,
        );
    let (o, out) = run(&e, &mut w, ok.as_bytes(), DEST_A);
    assert_eq!(sent_to(o), addr(CARRIER_A));
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
    assert!(!text.contains("X-Internal-Node"), "{text}");
    assert_eq!(first_line_and(&out, "X-Carrier").1, ["a"]);
}

/// A request from carrier A with a To tag: `method uri`, From and To
/// URIs `from` and `to`.
fn tagged_from_a(method: &str, uri: &str, from: &str, to: &str) -> String {
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CARRIER_A};branch=z9hG4bK-b1\r\n\
         Max-Forwards: 70\r\n\
         From: <{from}>;tag=a1\r\n\
         To: <{to}>;tag=b1\r\n\
         Call-ID: norm-2\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn the_request_uri_inside_a_dialog_is_a_contact_and_left_alone() {
    let e = carriers();
    let mut w = e.worker();
    let bye = tagged_from_a(
        "BYE",
        &format!("sip:0044@{DEST_A}"),
        "sip:0044111@a.example",
        "sip:0044222@b.example",
    );
    let (_, out) = run(&e, &mut w, bye.as_bytes(), CARRIER_A);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with(&format!("BYE sip:0044@{DEST_A} ")),
        "{text}"
    );
    assert_eq!(
        first_line_and(&out, "From").1,
        ["<sip:+44111@a.example>;tag=a1"]
    );
    assert_eq!(
        first_line_and(&out, "To").1,
        ["<sip:+44222@b.example>;tag=b1"]
    );
}

#[test]
fn the_ack_of_a_failure_repeats_the_invites_rewritten_request_uri() {
    let e = carriers();
    let mut w = e.worker();
    let uri = format!("sip:00442079460000@{EDGE}");
    let ack = tagged_from_a("ACK", &uri, "sip:02079460001@a.example", &uri);
    let (_, out) = run(&e, &mut w, ack.as_bytes(), CARRIER_A);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with(&format!("ACK sip:+442079460000@{EDGE} SIP/2.0\r\n")),
        "{text}"
    );
}

#[test]
fn a_form_change_of_an_unbracketed_uri_brackets_it_and_a_line_added_survives_a_removal() {
    let e = carriers();
    let mut w = e.worker();
    // Carrier B's From without brackets: its tag stays the header's. Its
    // last line is the edge's own Route, which goes: the replaced
    // User-Agent is still written.
    let b = format!(
        "INVITE tel:+442079460000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CARRIER_B};branch=z9hG4bK-u1\r\n\
         Max-Forwards: 70\r\n\
         From: tel:+442079460001;tag=b1\r\n\
         To: <tel:+442079460000>\r\n\
         Call-ID: norm-3\r\nCSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\
         Route: <sip:{EDGE};lr>\r\n\r\n"
    );
    let (_, out) = run(&e, &mut w, b.as_bytes(), CARRIER_B);
    assert_eq!(
        first_line_and(&out, "From").1,
        [format!("<sip:+442079460001@{EDGE};user=phone>;tag=b1")]
    );
    assert_eq!(first_line_and(&out, "User-Agent").1, ["carrier-b"]);
    assert!(first_line_and(&out, "Route").1.is_empty());
}

#[test]
fn a_transactional_edge_cancels_with_the_request_uri_it_sent() {
    let e = edge_with_keys(
        "weighted-round-robin",
        "",
        &format!("insertion = \"transactional\"\n{PEERS}"),
    );
    let mut w = e.worker();
    let now = e.epoch() + std::time::Duration::from_secs(100);
    let a = call_from_a();
    let from = crate::flow::Flow::udp(0, addr(CARRIER_A));
    w.handle(&e, a.as_bytes(), from, now);
    let (invite, to) = w
        .sends()
        .iter()
        .find(|(b, _)| b.starts_with(b"INVITE"))
        .map(|(b, f)| (b.to_vec(), f.remote))
        .expect("the INVITE sent");
    // The server rings; the carrier cancels.
    let ringing = answer(&invite, 180);
    w.handle(&e, &ringing, crate::flow::Flow::udp(0, to), now);
    let cancel =
        a.replacen("INVITE sip:", "CANCEL sip:", 1)
            .replacen("CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1);
    w.handle(&e, cancel.as_bytes(), from, now);
    let sent = w
        .sends()
        .iter()
        .find(|(b, _)| b.starts_with(b"CANCEL"))
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .expect("a CANCEL to the server");
    assert!(
        sent.starts_with(&format!("CANCEL sip:+442079460000@{EDGE} SIP/2.0\r\n")),
        "{sent}"
    );
    assert!(sent.contains("<sip:+442079460001@a.example>"), "{sent}");
}
