//! Compact header names (RFC 3261 §7.3.3): one-letter forms for the
//! headers that have one, which a message can carry instead of the full
//! names to stay under the path MTU (RFC 3261 §18.1.1).

use crate::message::Message;
use crate::name::HeaderName;
use crate::splice::Splicer;

/// Adds to `sp` the edits that give every header of `m` with a compact form
/// that form, except the headers `keep` names (an operator's allow-list of
/// names to keep long, for a peer that does not read the short ones).
/// Returns how many names it shortened.
pub fn compact_names(
    m: &Message<'_>,
    sp: &mut Splicer,
    keep: impl Fn(HeaderName) -> bool,
) -> usize {
    let mut n = 0;
    for h in m.headers() {
        let Some(letter) = h.name.compact() else {
            continue;
        };
        if h.name_span.len() > 1 && !keep(h.name) {
            sp.replace(h.name_span.range(), &[letter]);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, HeaderIndex};

    const MSG: &[u8] = b"INVITE sip:b@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:a@example.com>;tag=1\r\n\
        TO : <sip:b@example.com>\r\n\
        Call-ID: c1\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:a@10.0.0.1>\r\n\
        Supported: timer\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\r";

    fn run(keep: &[HeaderName]) -> (usize, Vec<u8>) {
        let mut idx = HeaderIndex::new();
        let m = parse(MSG, &mut idx).unwrap();
        let mut sp = Splicer::new();
        let n = compact_names(&m, &mut sp, |h| keep.contains(&h));
        let mut out = Vec::new();
        sp.write_message(&m, &mut out);
        (n, out)
    }

    #[test]
    fn every_name_with_a_compact_form_gets_it_and_nothing_else_changes() {
        let (n, out) = run(&[]);
        assert_eq!(n, 8);
        let text = String::from_utf8(out.clone()).unwrap();
        for line in [
            "v: SIP/2.0/UDP",
            "Max-Forwards: 70",
            "f: <sip:a@",
            "t : <sip:b@",
            "i: c1",
            "CSeq: 1 INVITE",
            "m: <sip:a@",
            "k: timer",
            "c: application/sdp",
            "l: 4",
        ] {
            assert!(text.contains(&format!("\r\n{line}")), "{line} in\n{text}");
        }
        // It parses to the same headers.
        let (mut a, mut b) = (HeaderIndex::new(), HeaderIndex::new());
        let (x, y) = (parse(MSG, &mut a).unwrap(), parse(&out, &mut b).unwrap());
        let names = |m: &Message<'_>| m.headers().iter().map(|h| h.name).collect::<Vec<_>>();
        assert_eq!(names(&x), names(&y));
        assert_eq!(x.body(), y.body());
        // Via 2, From 3, To 1, Call-ID 6, Contact 6, Supported 8, Content-Type 11,
        // Content-Length 13 bytes shorter.
        assert_eq!(out.len(), MSG.len() - 50);
    }

    #[test]
    fn the_allow_list_keeps_names_long() {
        let (n, out) = run(&[HeaderName::CallId, HeaderName::Via]);
        assert_eq!(n, 6);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nVia: ") && text.contains("\r\nCall-ID: c1"));
        assert!(text.contains("\r\nf: "));
    }
}
