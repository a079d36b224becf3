//! Property tests: what the writer and the splicer produce parses back to
//! the message that was meant, and no input makes the parser panic.

use proptest::prelude::*;
use sip::{parse, HeaderIndex, HeaderName, Splicer, Writer};

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Via".to_string()),
        Just("v".to_string()),
        Just("From".to_string()),
        Just("f".to_string()),
        Just("Contact".to_string()),
        Just("m".to_string()),
        Just("Subject".to_string()),
        Just("Route".to_string()),
        "X-[A-Za-z0-9-]{1,10}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    "[!-~][ -~]{0,40}[!-~]".prop_filter("no line breaks", |s| !s.contains('\r'))
}

#[derive(Debug, Clone)]
struct Msg {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        token(),
        (token(), "[a-z0-9.-]{1,20}", proptest::option::of(1u16..)),
        proptest::collection::vec((header_name(), header_value()), 0..20),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(method, (user, host, port), headers, body)| Msg {
            method,
            uri: match port {
                Some(p) => format!("sip:{user}@{host}:{p}"),
                None => format!("sip:{user}@{host}"),
            },
            headers,
            body,
        })
}

fn write(m: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::request(&mut out, m.method.as_bytes(), m.uri.as_bytes());
    for (n, v) in &m.headers {
        w.header(n.as_bytes(), v.as_bytes());
    }
    w.finish(&m.body);
    out
}

proptest! {
    #[test]
    fn written_messages_parse_back(m in msg()) {
        let bytes = write(&m);
        let mut idx = HeaderIndex::new();
        let p = parse(&bytes, &mut idx).unwrap();
        prop_assert_eq!(p.method_bytes(), m.method.as_bytes());
        prop_assert_eq!(p.uri(), m.uri.as_bytes());
        prop_assert_eq!(p.body(), &m.body[..]);
        // Our headers plus the Content-Length the writer adds.
        prop_assert_eq!(p.headers().len(), m.headers.len() + 1);
        for (h, (n, v)) in p.headers().iter().zip(&m.headers) {
            prop_assert_eq!(&bytes[h.name_span.range()], n.as_bytes());
            prop_assert_eq!(p.value(h), v.as_bytes());
            prop_assert_eq!(h.name, HeaderName::lookup(n.as_bytes()));
        }
    }

    #[test]
    fn spliced_messages_parse_back(m in msg(), extra in header_value(), drop_first in any::<bool>()) {
        let bytes = write(&m);
        let mut idx = HeaderIndex::new();
        let p = parse(&bytes, &mut idx).unwrap();
        let mut s = Splicer::new();
        s.insert_with(p.headers_start(), |w| {
            w.extend_from_slice(b"X-Inserted: ");
            w.extend_from_slice(extra.as_bytes());
            w.extend_from_slice(b"\r\n");
        });
        let dropped = drop_first && !m.headers.is_empty();
        if dropped {
            s.remove(p.headers()[0].line.range());
        }
        let mut out = Vec::new();
        s.write(&bytes, p.end(), &mut out);
        let mut idx2 = HeaderIndex::new();
        let q = parse(&out, &mut idx2).unwrap();
        prop_assert_eq!(q.uri(), m.uri.as_bytes());
        prop_assert_eq!(q.body(), &m.body[..]);
        prop_assert_eq!(q.value(&q.headers()[0]), extra.as_bytes());
        let want = m.headers.len() + 2 - usize::from(dropped);
        prop_assert_eq!(q.headers().len(), want);
        let rest: Vec<&[u8]> = q.headers()[1..q.headers().len() - 1].iter().map(|h| q.value(h)).collect();
        let expect: Vec<&[u8]> = m.headers.iter().skip(usize::from(dropped)).map(|(_, v)| v.as_bytes()).collect();
        prop_assert_eq!(rest, expect);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut idx = HeaderIndex::new();
        if let Ok(m) = parse(&bytes, &mut idx) {
            let _ = m.top_via();
            let _ = m.cseq();
            let _ = m.max_forwards();
            for e in m.elements(HeaderName::Via) { let _ = sip::Via::parse(e.text); }
            for h in m.headers() { let _ = sip::NameAddr::parse(m.value(h)); let _ = sip::Uri::parse(m.value(h)); }
        }
    }

    #[test]
    fn sip_shaped_noise_never_panics(lines in proptest::collection::vec("[ -~]{0,60}", 0..30)) {
        let text = format!("INVITE sip:a@b SIP/2.0\r\n{}\r\n\r\n", lines.join("\r\n"));
        let mut idx = HeaderIndex::new();
        if let Ok(m) = parse(text.as_bytes(), &mut idx) {
            for h in m.headers() {
                let v = m.value(h);
                let _ = sip::Via::parse(v);
                let _ = sip::NameAddr::parse(v);
                let _ = sip::CSeq::parse(v);
                let _ = sip::auth::digest_username(v);
            }
        }
    }
}

#[test]
fn large_header_block_parses_in_linear_time_bound() {
    // 256 headers of ~250 bytes: the parser indexes them without quadratic
    // rescans (each byte is looked at a bounded number of times).
    let mut text = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
    for i in 0..255 {
        text.extend_from_slice(format!("X-H{i}: {}\r\n", "a".repeat(240)).as_bytes());
    }
    text.extend_from_slice(b"\r\n");
    let mut idx = HeaderIndex::new();
    let m = parse(&text, &mut idx).unwrap();
    assert_eq!(m.headers().len(), 255);
    text.splice(25..25, b"X-One-Too-Many: 1\r\nX-Two: 2\r\n".iter().copied());
    let mut idx = HeaderIndex::new();
    assert_eq!(
        parse(&text, &mut idx).err(),
        Some(sip::ParseError::TooManyHeaders)
    );
}
