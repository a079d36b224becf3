//! The small rewrites a proxy makes, as splicer edits.

use sip::splice::{write_ip, write_num};
use sip::{Element, Message, Rport, Splicer, Via};
use std::net::SocketAddr;

/// RFC 3261 §18.2.1 and RFC 3581 §4: record where the request really came
/// from in its top Via — `received` when the address differs from sent-by
/// (always when rport is asked for), and the source port in `rport`.
pub fn fix_top_via(sp: &mut Splicer, elem: &Element<'_>, via: &Via<'_>, src: SocketAddr) {
    fix_via_at(
        sp,
        elem.span.start as usize,
        elem.span.end as usize,
        via,
        src,
    );
}

/// [`fix_top_via`] for a Via value found at `base..end` of the buffer.
pub fn fix_via_at(sp: &mut Splicer, base: usize, end: usize, via: &Via<'_>, src: SocketAddr) {
    let rport_asked = via.rport != Rport::Absent;
    if rport_asked || via.host.ip() != Some(src.ip()) {
        let write = |w: &mut Vec<u8>| {
            w.extend_from_slice(b";received=");
            write_ip(w, src.ip(), false);
        };
        match via.received_at {
            Some((a, b)) => sp.replace_with(base + a..base + b, write),
            None => sp.insert_with(end, write),
        }
    }
    if rport_asked {
        if let Some((a, b)) = via.rport_at {
            sp.replace_with(base + a..base + b, |w| {
                w.extend_from_slice(b";rport=");
                write_num(w, src.port());
            });
        }
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
pub fn add_content_length(sp: &mut Splicer, m: &Message<'_>) {
    if m.content_length().is_some() {
        return;
    }
    let (at, close_line) = append_point(m);
    let unterminated = at == m.buf().len();
    let body_len = m.body().len();
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
