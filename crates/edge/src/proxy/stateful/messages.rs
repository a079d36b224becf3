//! The messages a transactional edge writes itself: the ACK of a non-2xx
//! final response (RFC 3261 §17.1.1.3), CANCEL (§9.1), and a response
//! relayed upstream without our Via.

use crate::branch::write_attempt_branch;
use crate::proxy::splices::{add_content_length, remove_leading};
use sip::splice::write_num;
use sip::{Element, HeaderName, Message, Splicer, Writer};

/// Which request of a client transaction's branch to write.
#[derive(Clone, Copy, Debug)]
pub(super) struct OurVia<'a> {
    /// The transport the branch uses.
    pub transport: crate::flow::Transport,
    /// Our sent-by on the local address the branch uses.
    pub sent_by: &'a [u8],
    /// The branch MAC (`BranchKey::branch_mac`), loop hash and attempt.
    pub mac: u64,
    pub loop_hash: u32,
    pub attempt: u8,
}

impl OurVia<'_> {
    fn write(&self, w: &mut Writer<'_>) {
        w.header_with(b"Via", |o| {
            o.extend_from_slice(b"SIP/2.0/");
            o.extend_from_slice(self.transport.via_name());
            o.push(b' ');
            o.extend_from_slice(self.sent_by);
            o.extend_from_slice(b";branch=");
            write_attempt_branch(o, self.mac, self.loop_hash, self.attempt);
        });
    }
}

/// Writes a request for the same transaction as the INVITE `req` (as it
/// was received; `ours` of its leading Route entries were ours and are not
/// copied): Request-URI, Route, From, Call-ID and CSeq number of the
/// INVITE, the To of `to_from` (the final response for an ACK, the INVITE
/// itself for a CANCEL), and only our Via (§17.1.1.3, §9.1).
fn write_same_transaction(
    out: &mut Vec<u8>,
    method: &[u8],
    req: &Message<'_>,
    ours: usize,
    to_from: &Message<'_>,
    via: &OurVia<'_>,
) {
    out.clear();
    let mut w = Writer::request(out, method, req.uri());
    via.write(&mut w);
    w.header(b"Max-Forwards", b"70");
    // The route set in one line: as many lines as the INVITE had at most,
    // so the ACK or CANCEL parses wherever the INVITE did.
    let mut routes = req.elements(HeaderName::Route).skip(ours).peekable();
    if routes.peek().is_some() {
        w.header_with(b"Route", |o| {
            for (i, e) in routes.enumerate() {
                if i > 0 {
                    o.extend_from_slice(b", ");
                }
                o.extend_from_slice(e.text);
            }
        });
    }
    for (m, name) in [
        (req, HeaderName::From),
        (to_from, HeaderName::To),
        (req, HeaderName::CallId),
    ] {
        if let Some(h) = m.first(name) {
            w.raw_line(&m.buf()[h.line.range()]);
        }
    }
    let cseq = req.cseq().map(|c| c.number).unwrap_or(0);
    w.header_with(b"CSeq", |o| {
        write_num(o, cseq);
        o.push(b' ');
        o.extend_from_slice(method);
    });
    w.finish(b"");
}

/// The ACK for the non-2xx final response `resp` to the INVITE `req`.
pub(super) fn ack(
    out: &mut Vec<u8>,
    req: &Message<'_>,
    ours: usize,
    resp: &Message<'_>,
    via: &OurVia<'_>,
) {
    write_same_transaction(out, b"ACK", req, ours, resp, via);
}

/// The CANCEL of the INVITE `req` as sent on one branch.
pub(super) fn cancel(out: &mut Vec<u8>, req: &Message<'_>, ours: usize, via: &OurVia<'_>) {
    write_same_transaction(out, b"CANCEL", req, ours, req, via);
}

/// Writes response `m` without its top Via (ours) into `out`, with its
/// status line replaced by `status` when given, and its SDP's private
/// addresses replaced by `nat_sdp` (the address of a party behind NAT that
/// sent it, with `nat_sdp`), the header `policy` of the peer it comes
/// from or goes to applied, and with `topology_hiding` (`hiding`) the
/// pool's Vias written back or its Contact and routes sealed. `false` when it has no second Via to go to.
pub(super) fn relay(
    sp: &mut Splicer,
    out: &mut Vec<u8>,
    m: &Message<'_>,
    status: Option<&[u8]>,
    nat_sdp: Option<std::net::IpAddr>,
    policy: Option<&crate::header_policy::HeaderPolicy>,
    hiding: Option<crate::proxy::hiding::Answer<'_>>,
) -> bool {
    let mut vias = m.elements(HeaderName::Via);
    let (Some(top), second) = (vias.next(), vias.next()) else {
        return false;
    };
    let hidden = hiding.and_then(|h| crate::proxy::hiding::hidden_vias(h.edge, &top));
    sp.clear();
    match (&hidden, hiding, second) {
        (Some(vias), Some(h), _) => crate::proxy::hiding::restore_answer(h.edge, sp, m, &top, vias),
        (None, _, Some(second)) => {
            let elems: [Element<'_>; 2] = [top, second];
            remove_leading(sp, &elems, 1);
            if let Some(h) = hiding.filter(|h| h.from_pool) {
                crate::proxy::hiding::hide_answer(h.edge, sp, m, h.local);
            }
        }
        _ => return false,
    }
    if let Some(p) = policy {
        p.apply(sp, m);
    }
    let body_len = match nat_sdp {
        Some(source) => crate::proxy::nat_sdp::rewrite(sp, m, source),
        None => m.body().len(),
    };
    // Upstream may be a connection, where the length frames the message.
    add_content_length(sp, m, body_len);
    if let Some(line) = status {
        sp.replace(m.start_line_span().range(), line);
    }
    out.clear();
    sp.write_message(m, out);
    true
}
