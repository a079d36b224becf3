//! The sanity stage (RFC 3261 §16.3 steps 1 and 5): a request whose top
//! Via cannot be answered, which names this edge as its sender, whose
//! routing headers are missing, doubled or unreadable, or which requires
//! an extension, goes no further.

use super::checked::{Facts, Origin, Refusal};
use super::reply::reply;
use super::{Edge, Outcome, Scratch};
use crate::flow::Flow;
use crate::stats::Event;
use sip::{HeaderName, Message, Method, NameAddr, Scheme, Uri};

/// Where the request came from and where its answers go: a request
/// without a readable top Via gets 400 (if that can be sent at all), one
/// whose answer would reach this edge itself is dropped.
#[inline(always)]
pub(crate) fn origin<'a>(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'a>,
    from: Flow,
) -> Result<Origin<'a>, Outcome> {
    let (top, via) = match m.top_via() {
        Ok(v) => v,
        Err(_) => return Err(super::reply::bad_via(edge, s, m, from)),
    };
    // A request carrying the edge's own Via on top came from the edge
    // itself (or says it did): anything done with it, an answer above all,
    // would come back here.
    if edge.answers_itself(Some(&via), super::reply::reply_address(&via, &from)) {
        return Err(Outcome::Drop(Event::OwnVia));
    }
    Ok(Origin { top, via, from })
}

/// What the headers a proxy acts on say, once each; an answer (400, 416,
/// 420, 501) for a request that cannot be proxied as it is.
#[inline(always)]
pub(crate) fn facts<'a>(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'a>,
    origin: &Origin<'a>,
) -> Result<Facts<'a>, Outcome> {
    let facts = match read(m) {
        Ok(f) => f,
        Err((code, reason)) => return Err(reply(edge, s, m, origin, code, reason, &[])),
    };
    // Proxy-Require names extensions this proxy must support; we support none
    // (RFC 3261 §16.3 step 5 → 420 with Unsupported).
    if let Some(req) = m.first_value(HeaderName::ProxyRequire) {
        return Err(reply(
            edge,
            s,
            m,
            origin,
            420,
            "Bad Extension",
            &[("Unsupported", req)],
        ));
    }
    Ok(facts)
}

/// The checks that keep everything after them safe: the headers a proxy
/// reads exist once and parse (RFC 3261 §16.3 "reasonable syntax").
#[inline(always)]
fn read<'a>(m: &Message<'a>) -> Result<Facts<'a>, Refusal> {
    let counts = super::count_singletons(m);
    const MISSING: [&str; 4] = [
        "Missing Call-ID",
        "Missing CSeq",
        "Missing From",
        "Missing To",
    ];
    const DUPLICATE: [&str; 5] = [
        "Duplicate Call-ID",
        "Duplicate CSeq",
        "Duplicate From",
        "Duplicate To",
        "Duplicate Max-Forwards",
    ];
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 && i < MISSING.len() {
            return Err((400, MISSING[i]));
        }
        if n > 1 {
            return Err((400, DUPLICATE[i]));
        }
    }
    let call_id = m.call_id().unwrap_or_default();
    if !sip::call_id::is_valid(call_id) {
        return Err((400, "Bad Call-ID"));
    }
    let cseq = m.cseq().map_err(|_| (400, "Bad CSeq"))?;
    if cseq.method != m.method_bytes() {
        // RFC 4475 §3.1.2.18: an unknown method is better answered 501.
        return Err(if m.method() == Method::Other {
            (501, "Not Implemented")
        } else {
            (400, "CSeq Method Mismatch")
        });
    }
    let max_forwards = m.max_forwards().map_err(|_| (400, "Bad Max-Forwards"))?;
    let from = NameAddr::parse(m.first_value(HeaderName::From).unwrap_or_default())
        .map_err(|_| (400, "Bad From"))?;
    let to = NameAddr::parse(m.first_value(HeaderName::To).unwrap_or_default())
        .map_err(|_| (400, "Bad To"))?;
    // RFC 4475 §3.1.2.7: a Request-URI in <> is malformed (400), not an
    // unknown scheme (416).
    if m.uri().first() == Some(&b'<') {
        return Err((400, "Bad Request-URI"));
    }
    let uri = match Scheme::of(m.uri()) {
        Scheme::Other => return Err((416, "Unsupported URI Scheme")),
        _ => {
            let u = Uri::parse(m.uri()).map_err(|_| (400, "Bad Request-URI"))?;
            if u.headers.is_some() {
                // RFC 3261 §19.1.1: headers are not allowed in a Request-URI.
                return Err((400, "Bad Request-URI"));
            }
            u
        }
    };
    for e in m.elements(HeaderName::Contact) {
        if e.text != b"*" {
            NameAddr::parse(e.text).map_err(|_| (400, "Bad Contact"))?;
        }
    }
    let mut route_uris: [Option<Uri<'a>>; 8] = [None; 8];
    let mut route_texts: [&'a [u8]; 8] = [b""; 8];
    for (k, e) in m.elements(HeaderName::Route).enumerate() {
        let n = NameAddr::parse(e.text).map_err(|_| (400, "Bad Route"))?;
        let u = n.parse_uri().map_err(|_| (400, "Bad Route"))?;
        if let (Some(slot), Some(text)) = (route_uris.get_mut(k), route_texts.get_mut(k)) {
            *slot = Some(u);
            *text = n.uri;
        }
    }
    Ok(Facts {
        route_uris,
        route_texts,
        call_id,
        cseq: cseq.number,
        from_tag: from.tag().unwrap_or_default(),
        from,
        to_tag: to.tag(),
        uri,
        max_forwards,
    })
}
