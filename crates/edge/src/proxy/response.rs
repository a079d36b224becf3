//! The response pipeline: check that the top Via is ours and signed by us,
//! pop it, and send the response to the next Via (RFC 3261 §16.11, §18.2.2).

use super::splices::{add_content_length, remove_leading};
use super::{Edge, Outcome, Scratch};
use crate::branch::{self, parse_branch};
use crate::flow::{Flow, Transport};
use crate::stats::Event;
use sip::{Element, HeaderName, Message, Rport, Via};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// The proxy's own check of a response before anything reads it, whatever
/// `validate` says: each singleton header a proxy or UA matches on
/// (Call-ID, CSeq, From, To, Max-Forwards; two Content-Lengths do not
/// parse) at most once — with two CSeqs, sipedge and the caller could each
/// read a different one — and the Call-ID well-formed ([`handle`] parses
/// the CSeq, once). A request with the same faults gets a 400; a response
/// is never answered, so it is dropped.
pub(super) fn sane(m: &Message<'_>) -> bool {
    super::count_singletons(m).iter().all(|&n| n <= 1)
        && m.call_id().is_some_and(sip::call_id::is_valid)
}

/// Handles one parsed response.
pub fn handle(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    from: Flow,
    now: Instant,
) -> Outcome {
    if let Some(o) = super::registrar::answered(edge, m, &from) {
        return o;
    }
    let mut vias = m.elements(HeaderName::Via);
    let (Some(top), second) = (vias.next(), vias.next()) else {
        return Outcome::Drop(Event::ResponseNotOurs);
    };
    let Ok(our) = Via::parse(top.text) else {
        return Outcome::Drop(Event::ResponseNotOurs);
    };
    if !edge.locals.iter().any(|l| l.is(&our.host, our.port)) {
        return Outcome::Drop(Event::ResponseNotOurs);
    }
    let Some(branch) = our.branch.and_then(parse_branch) else {
        return Outcome::Drop(Event::ResponseNotOurs);
    };
    // topology_hiding: an answer to a request from the pool carries the
    // pool's Vias sealed in ours.
    let hidden = if edge.hiding() {
        super::hiding::hidden_vias(edge, &top)
    } else {
        None
    };
    let next = match &hidden {
        Some(vias) => super::hiding::first_via(vias),
        None => second.and_then(|e| Via::parse(e.text).ok()),
    };
    let Some(next) = next else {
        return Outcome::Drop(Event::ResponseUnroutable);
    };
    let call_id = m.call_id().unwrap_or_default();
    let Ok(cseq) = m.cseq() else {
        return Outcome::Drop(Event::BadResponse);
    };
    // The From tag only enters the MAC for RFC 2543 peers: don't parse it otherwise.
    let from_tag = if next.has_cookie() {
        &b""[..]
    } else {
        branch::from_tag(m)
    };
    // Signed with the current secret, or with a previous one (a request
    // forwarded before the secret was rotated).
    let signed = edge.keys.verifying().iter().any(|key| {
        key.tx_mac(&next, call_id, cseq.number, from_tag, branch.loop_hash)
            == key.tx_mac_of(&branch)
    });
    if !signed {
        return Outcome::Drop(Event::BadToken);
    }
    // A verified answer from a destination: passive health evidence, and
    // a 2xx to an INVITE is a call in progress for the channel limits.
    let from_pool = edge.destination_of(&from);
    if let Some(i) = from_pool {
        let code = m.status().unwrap_or(0);
        s.counters.answered(i, code);
        let answered = (200..300).contains(&code) && cseq.method == b"INVITE";
        if answered && edge.limits.counts_channels() {
            edge.limits.call_answered(call_id, i, now);
        }
    }
    let Some((transport, to)) = next_hop(&next) else {
        return Outcome::Drop(Event::ResponseUnroutable);
    };
    let Some(mut out) = edge.flow_to(transport, to, from.local) else {
        return Outcome::Drop(Event::NoSocket);
    };
    if out.is_stream() {
        out.reconnect = Some(next.port.unwrap_or(transport.default_port()));
    }
    let sp = &mut *s.splicer;
    sp.clear();
    match &hidden {
        Some(vias) => super::hiding::restore_answer(edge, sp, m, &top, vias),
        None => {
            let elems: [Element<'_>; 2] = [top, second.unwrap_or(top)];
            remove_leading(sp, &elems, 1);
            if edge.hiding() && from_pool.is_some() {
                super::hiding::hide_answer(edge, sp, m, &edge.locals[out.local]);
            }
        }
    }
    if edge.peers().rewrites() {
        let came = (from.transport, from.remote.ip());
        if let Some(p) = super::normalize::response_policy(edge, from_pool.is_some(), came, &out) {
            p.apply(sp, m);
        }
    }
    // An answer from outside the pool found behind NAT, with `nat_sdp`:
    // its SDP's private addresses become the one it came from.
    let body_len = match from_pool {
        None if super::nat_sdp::answer_behind_nat(edge, m, &our, from.remote) => {
            super::nat_sdp::rewrite(sp, m, from.remote.ip())
        }
        _ => m.body().len(),
    };
    // A datagram's end framed it; on a connection (and in a WebSocket
    // message, which the writer cuts by it) the length must be said.
    if out.is_stream() {
        add_content_length(sp, m, body_len);
    }
    s.out.clear();
    sp.write_message(m, s.out);
    s.stats.count(Event::ResponseForwarded);
    Outcome::Send(out)
}

/// Where the previous hop wants its response: over the Via's transport, to
/// `received` (or the sent-by address) and `rport` (or the sent-by port,
/// by default the transport's). Names, broadcast, multicast and
/// unspecified addresses are refused (RFC 4475 §3.3.10), and so are
/// transports sipedge does not speak. On a connection transport the
/// runtime uses the connection open to that address, if any (RFC 3261
/// §18.2.2).
fn next_hop(v: &Via<'_>) -> Option<(Transport, SocketAddr)> {
    let transport = Transport::from_name(v.transport)?;
    let ip = match v.received {
        Some(r) => sip::host::parse_ip(r)?,
        None => v.host.ip()?,
    };
    let usable = match ip {
        IpAddr::V4(a) => !(a.is_broadcast() || a.is_multicast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    };
    let port = match v.rport {
        Rport::Port(p) => p,
        _ => v.port.unwrap_or(transport.default_port()),
    };
    (usable && port != 0).then(|| (transport, SocketAddr::new(ip, port)))
}
