//! Local replies: statelessly built responses to requests we answer
//! ourselves (errors, OPTIONS pings), RFC 3261 §8.2.6 and §16.3.

use super::checked::Origin;
use super::splices::{fix_top_via, fix_via_at};
use super::{Edge, Outcome, Scratch};
use crate::flow::Flow;
use crate::stats::Event;
use sip::{HeaderName, Message, ParseError, Rport, Via, Writer};
use std::net::SocketAddr;
use xxhash_rust::xxh3::xxh3_64;

/// Where a response to this request goes (RFC 3261 §18.2.2, RFC 3581 §4):
/// the source address, and the source port when rport was asked for or
/// the request came on a connection (whose other end that is: a WebSocket
/// client's Via names no port, nor a host), otherwise the sent-by port.
pub fn reply_address(via: &Via<'_>, from: &Flow) -> SocketAddr {
    let src = from.remote;
    let port = match via.rport {
        Rport::Absent if !from.is_stream() => via.port.unwrap_or(5060),
        _ => src.port(),
    };
    SocketAddr::new(src.ip(), port)
}

/// An answer to what arrived on `from`, for `to`: on the same transport
/// and local address, and on a connection transport on the same
/// connection while it is open — else by one to `to` (RFC 3261 §18.2.2).
fn back(from: Flow, to: SocketAddr) -> Flow {
    Flow { remote: to, ..from }
}

fn send(s: &mut Scratch<'_>, from: Flow, to: SocketAddr) -> Outcome {
    s.stats.count(Event::Replied);
    Outcome::Send(back(from, to))
}

/// Writes a response to `m` into `s.out` and says where to send it.
/// `extra` header lines are added before Content-Length.
pub(crate) fn reply(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    origin: &Origin<'_>,
    code: u16,
    reason: &str,
    extra: &[(&str, &[u8])],
) -> Outcome {
    if m.method() == sip::Method::Ack {
        // An ACK is never answered (RFC 3261 §17.2.1).
        return Outcome::Drop(Event::AckDropped);
    }
    let to = reply_address(&origin.via, &origin.from);
    if edge.answers_itself(Some(&origin.via), to) {
        return Outcome::Drop(Event::OwnVia);
    }
    write_reply(s, m, origin, code, reason, extra);
    send(s, origin.from, to)
}

/// Writes the response `code reason` to `m` (which came as `origin`)
/// into `s.out`, `extra` header lines before Content-Length.
pub(crate) fn write_reply(
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    origin: &Origin<'_>,
    code: u16,
    reason: &str,
    extra: &[(&str, &[u8])],
) {
    let (top, via, from) = (&origin.top, &origin.via, origin.from);
    let buf = m.buf();
    s.out.clear();
    let mut w = Writer::response(s.out, code, reason.as_bytes());
    for h in m.headers() {
        match h.name {
            HeaderName::Via if std::ptr::eq(h, top.header) => {
                s.splicer.clear();
                fix_top_via(s.splicer, top, via, &from);
                let mut line = Vec::new();
                s.splicer.write_range(buf, h.line.range(), &mut line);
                w.raw_line(&line);
            }
            HeaderName::To if code > 100 => {
                let has_tag = sip::NameAddr::parse(m.value(h)).is_ok_and(|n| n.tag().is_some());
                if has_tag {
                    w.raw_line(&buf[h.line.range()]);
                } else {
                    s.splicer.clear();
                    let tag = local_tag(m);
                    s.splicer.insert_with(h.value.end as usize, |o| {
                        o.extend_from_slice(b";tag=");
                        o.extend_from_slice(&tag);
                    });
                    let mut line = Vec::new();
                    s.splicer.write_range(buf, h.line.range(), &mut line);
                    w.raw_line(&line);
                }
            }
            name if copied_into_answer(name) => {
                w.raw_line(&buf[h.line.range()]);
            }
            _ => {}
        }
    }
    for (name, value) in extra {
        w.header(name.as_bytes(), value);
    }
    w.header(b"Server", b"sipedge");
    w.finish(b"");
}

/// The header lines a response copies from its request (RFC 3261 §8.2.6.2).
fn copied_into_answer(name: HeaderName) -> bool {
    matches!(
        name,
        HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
    )
}

/// A To tag for local replies: the same for a retransmitted request, so the
/// caller sees one dialog-less answer, not several — and for its ACK, which
/// is how an ACK of our own answer is recognised ([`is_local_tag`]) on any
/// instance, with no state.
fn local_tag(m: &Message<'_>) -> [u8; 16] {
    let cseq = m.cseq().map(|c| c.number).unwrap_or(0);
    tag_of(
        m.call_id().unwrap_or_default(),
        crate::branch::from_tag(m),
        cseq,
    )
}

/// The local To tag of the transaction (Call-ID, From tag, CSeq number).
fn tag_of(call_id: &[u8], from_tag: &[u8], cseq: u32) -> [u8; 16] {
    let mut h = xxh3_64(call_id);
    h ^= xxh3_64(from_tag).rotate_left(17);
    h ^= u64::from(cseq).rotate_left(41);
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = b"0123456789abcdef"[((h >> (60 - i * 4)) & 0xf) as usize];
    }
    out
}

/// Whether `tag` is the To tag this edge gives its local replies to the
/// transaction (Call-ID, From tag, CSeq number): an ACK of one of them
/// carries it. Tags of another shape are ruled out before any hashing.
pub(crate) fn is_local_tag(call_id: &[u8], from_tag: &[u8], cseq: u32, tag: &[u8]) -> bool {
    tag.len() == 16
        && tag.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && tag == tag_of(call_id, from_tag, cseq)
}

/// A message that failed the operator's validation with `on_invalid =
/// "reject"`: a request gets 400 with the failed check as reason phrase; a
/// response or an ACK is dropped (they are never answered), and so is a
/// request without a Via to answer to.
pub(crate) fn invalid(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    from: Flow,
    f: crate::validate::Failure,
) -> Outcome {
    refuse(edge, s, m, from, 400, f.reason(), Event::Invalid)
}

/// A parsed message that is not to go on: a request gets `code` and
/// `reason`; a response or an ACK is dropped as `event` (they are never
/// answered), and so is a request without a Via to answer to.
pub(crate) fn refuse(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    from: Flow,
    code: u16,
    reason: &str,
    event: Event,
) -> Outcome {
    if !m.is_request() || m.method() == sip::Method::Ack {
        return Outcome::Drop(event);
    }
    let Ok((top, via)) = m.top_via() else {
        return Outcome::Drop(event);
    };
    let origin = Origin { top, via, from };
    reply(edge, s, m, &origin, code, reason, &[])
}

/// A message that failed to parse: a request whose Via, From, To, Call-ID
/// and CSeq can still be found gets a 400 naming the problem (505 for a
/// version we do not speak); anything else is dropped — above all
/// anything that is not recognisably a request, which may be a garbled
/// response: a proxy never answers a response.
pub fn malformed(
    edge: &Edge,
    s: &mut Scratch<'_>,
    datagram: &[u8],
    err: ParseError,
    from: Flow,
) -> Outcome {
    let (code, reason) = match err {
        ParseError::VersionNotSupported => (505, "Version Not Supported"),
        e => (400, e.reason()),
    };
    salvaged(edge, s, datagram, code, reason, from)
}

/// Answers `code` and `reason` to a request that is not to be parsed
/// whole (one that failed to parse, one the stream framer could not
/// frame), from the lines that can be found in it; anything not
/// recognisably a request is dropped.
pub(crate) fn salvaged(
    edge: &Edge,
    s: &mut Scratch<'_>,
    datagram: &[u8],
    code: u16,
    reason: &str,
    from: Flow,
) -> Outcome {
    let src = from.remote;
    let Some(h) = salvage(datagram) else {
        s.stats.count(Event::Malformed);
        return Outcome::Drop(Event::Malformed);
    };
    // A Via that does not parse (RFC 4475 §3.1.2.16: SIP/7.0 in it too) is
    // copied as it is, and the answer goes back to the source address: the
    // sender still learns why.
    let via = Via::parse(h.top_via).ok();
    let to = via.as_ref().map_or(src, |v| reply_address(v, &from));
    if edge.answers_itself(via.as_ref(), to) {
        s.stats.count(Event::OwnVia);
        return Outcome::Drop(Event::OwnVia);
    }
    s.out.clear();
    let mut w = Writer::response(s.out, code, reason.as_bytes());
    let via_at = (h.top_via.as_ptr() as usize).saturating_sub(datagram.as_ptr() as usize);
    for (k, line) in h.copy.iter().take(h.copied).enumerate() {
        if let (true, Some(via)) = (k == h.top_via_line, &via) {
            s.splicer.clear();
            fix_via_at(s.splicer, via_at, via_at + h.top_via.len(), via, &from);
            let mut fixed = Vec::new();
            s.splicer.write_range(datagram, line.clone(), &mut fixed);
            w.raw_line(&fixed);
        } else {
            w.raw_line(&datagram[line.clone()]);
        }
    }
    w.header(b"Server", b"sipedge");
    w.finish(b"");
    s.stats.count(Event::Malformed);
    // The lines were copied by name only: if one of them is itself broken
    // (a NUL, a control byte in a Via), the answer would be too. Send only
    // what parses; otherwise the request is just dropped.
    if sip::parse(s.out, s.spare).is_err() {
        return Outcome::Drop(Event::Malformed);
    }
    Outcome::Send(back(from, to))
}

/// A request whose top Via does not parse (RFC 4475 §3.1.2.1: stray `;`
/// and `,` in it): 400 to the source address, the headers copied as they
/// are — if the answer parses; an ACK, or a request without Via, is dropped.
pub(crate) fn bad_via(edge: &Edge, s: &mut Scratch<'_>, m: &Message<'_>, from: Flow) -> Outcome {
    if m.method() == sip::Method::Ack || m.first(HeaderName::Via).is_none() {
        return Outcome::Drop(Event::BadVia);
    }
    if edge.answers_itself(None, from.remote) {
        return Outcome::Drop(Event::OwnVia);
    }
    let buf = m.buf();
    s.out.clear();
    let mut w = Writer::response(s.out, 400, b"Bad Via");
    for h in m.headers().iter().filter(|h| copied_into_answer(h.name)) {
        w.raw_line(&buf[h.line.range()]);
    }
    w.header(b"Server", b"sipedge");
    w.finish(b"");
    if sip::parse(s.out, s.spare).is_err() {
        return Outcome::Drop(Event::BadVia);
    }
    send(s, from, from.remote)
}

/// What can be recovered from an unparseable request to answer it.
struct Salvaged<'a> {
    top_via: &'a [u8],
    top_via_line: usize,
    /// The lines to copy, without their line ends (the answer ends each
    /// with CRLF: it never repeats a bare LF).
    copy: [std::ops::Range<usize>; 8],
    copied: usize,
}

/// Scans header lines by name only (no value parsing), for a 400 to a
/// recognisable request that is not an ACK (an ACK is never answered).
/// Lines end at LF here, with or without CR; a line with a CR anywhere
/// else is not copied.
fn salvage(d: &[u8]) -> Option<Salvaged<'_>> {
    // The start line begins where the parser says, whatever precedes it.
    let start = sip::message::start_of(d)?;
    let lines = d[start..].split(|&c| c == b'\n');
    let mut at = start;
    let mut out = Salvaged {
        top_via: b"",
        top_via_line: usize::MAX,
        copy: Default::default(),
        copied: 0,
    };
    let mut need = [false; 5]; // Via, From, To, Call-ID, CSeq
    for (n, raw) in lines.enumerate() {
        let begin = at;
        at += raw.len() + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if n == 0 {
            if !sip::message::is_request_line(line) || line.starts_with(b"ACK ") {
                return None;
            }
            continue;
        }
        if line.is_empty() || out.copied == out.copy.len() {
            break;
        }
        if line.contains(&b'\r') {
            continue;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let slot = match HeaderName::lookup(line[..colon].trim_ascii()) {
            HeaderName::Via => 0,
            HeaderName::From => 1,
            HeaderName::To => 2,
            HeaderName::CallId => 3,
            HeaderName::CSeq => 4,
            _ => continue,
        };
        if slot == 0 && !need[0] {
            let v = line[colon + 1..].trim_ascii();
            let comma = v.iter().position(|&c| c == b',').unwrap_or(v.len());
            out.top_via = v[..comma].trim_ascii();
            out.top_via_line = out.copied;
        }
        if slot == 0 || !need[slot] {
            need[slot] = true;
            out.copy[out.copied] = begin..begin + line.len();
            out.copied += 1;
        }
    }
    (need.iter().all(|&n| n) && !out.top_via.is_empty()).then_some(out)
}
