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
    let a = call(
        &format!("sip:00442079460000@{EDGE}"),
        "sip:02079460001@a.example",
        "<tel:02079460001>",
        "",
        CARRIER_A,
    );
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

#[test]
fn the_request_uri_inside_a_dialog_is_a_contact_and_left_alone() {
    let e = carriers();
    let mut w = e.worker();
    let bye = format!(
        "BYE sip:0044@{DEST_A} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CARRIER_A};branch=z9hG4bK-b1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:0044111@a.example>;tag=a1\r\n\
         To: <sip:0044222@b.example>;tag=b1\r\n\
         Call-ID: norm-2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
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
