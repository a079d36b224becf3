//! The small rewrites a proxy makes, as splicer edits.

use crate::flow::Flow;
use sip::splice::{write_ip, write_num};
use sip::{Element, Message, Rport, Splicer, Via};

/// RFC 3261 §18.2.1 and RFC 3581 §4: record where the request really came
/// from in its top Via — `received` when the address differs from sent-by
/// (always when rport is asked for), and the source port in `rport`.
///
/// A request that came on a connection always gets both, asked or not
/// (what Kamailio's `force_rport` does): its answers must go back on that
/// connection, whose port is not the one in sent-by (RFC 3261 §18.2.2),
/// and a stateless edge finds it again only by that address.
pub fn fix_top_via(sp: &mut Splicer, elem: &Element<'_>, via: &Via<'_>, from: &Flow) {
    fix_via_at(
        sp,
        elem.span.start as usize,
        elem.span.end as usize,
        via,
        from,
    );
}

/// [`fix_top_via`] for a Via value found at `base..end` of the buffer.
pub fn fix_via_at(sp: &mut Splicer, base: usize, end: usize, via: &Via<'_>, from: &Flow) {
    let src = from.remote;
    let rport_asked = via.rport != Rport::Absent;
    let forced = from.is_stream() && !rport_asked;
    let write_received = |w: &mut Vec<u8>| {
        w.extend_from_slice(b";received=");
        write_ip(w, src.ip(), false);
    };
    let write_rport = |w: &mut Vec<u8>| {
        w.extend_from_slice(b";rport=");
        write_num(w, src.port());
    };
    if rport_asked || forced || via.host.ip() != Some(src.ip()) {
        match via.received_at {
            Some((a, b)) => sp.replace_with(base + a..base + b, write_received),
            // Both at the end: one insertion, received first.
            None if forced => sp.insert_with(end, |w| {
                write_received(w);
                write_rport(w);
            }),
            None => sp.insert_with(end, write_received),
        }
    }
    match via.rport_at {
        Some((a, b)) if rport_asked => sp.replace_with(base + a..base + b, write_rport),
        _ if forced && via.received_at.is_some() => sp.insert_with(end, write_rport),
        _ => {}
    }
}

/// Removes the first `n` elements of a multi-value header list (our Via in
/// a response, our Route entries in a request): whole lines where every
/// element of the line goes, otherwise up to the first element kept.
pub fn remove_leading(sp: &mut Splicer, elems: &[Element<'_>], n: usize) {
    let mut i = 0;
    while i < n {
        let line = elems[i].header.line;
        let mut j = i;
        while j < n && elems[j].header.line == line {
            j += 1;
        }
        match elems.get(j).filter(|e| e.header.line == line) {
            Some(kept) => sp.remove(elems[i].span.start as usize..kept.span.start as usize),
            None => sp.remove(line.range()),
        }
        i = j;
    }
}

/// Where a new header line goes at the end of the header section, and
/// whether it must first close an unterminated last line.
pub fn append_point(m: &Message<'_>) -> (usize, bool) {
    let at = m.headers_end();
    let buf = m.buf();
    (at, at > 0 && at == buf.len() && buf[at - 1] != b'\n')
}

/// Adds `Content-Length` when the sender left it out (RFC 2543 peers; UDP
/// lets them), so the next hop can frame the message on any transport.
pub fn add_content_length(sp: &mut Splicer, m: &Message<'_>, body_len: usize) {
    if m.content_length().is_some() {
        return;
    }
    let (at, close_line) = append_point(m);
    let unterminated = at == m.buf().len();
    sp.insert_with(at, |w| {
        if close_line {
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"Content-Length: ");
        write_num(w, body_len);
        w.extend_from_slice(b"\r\n");
        if unterminated {
            w.extend_from_slice(b"\r\n");
        }
    });
}
