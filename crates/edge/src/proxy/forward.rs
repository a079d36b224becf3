//! The send stage: a request spliced for its next hop — our Via with the
//! signed branch, received/rport in the sender's Via, Max-Forwards less
//! one, Record-Route for a dialog-creating request (one per side when it
//! changes transport or address, RFC 5658), our own Route entries gone —
//! and, on a stateless edge, sent on at once.

use super::capacity;
use super::checked::{Checked, Origin, Route, Sealed};
use super::reply::reply;
use super::route::dispatch_input;
use super::splices::{add_content_length, fix_top_via, remove_leading};
use super::{Edge, Local, Outcome, Scratch};
use crate::branch::write_attempt_branch;
use crate::flow::{Flow, Transport};
use crate::limits::Full;
use crate::stats::Event;
use crate::token::{Conn, Outside, Token};
use sip::splice::write_num;
use sip::{Element, HeaderName, Message, Method};
use std::time::Instant;

/// The methods whose out-of-dialog requests create a dialog we must stay in.
fn creates_dialog(m: Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
    )
}

/// The route and send stages of a stateless edge (and of a transactional
/// one for what it forwards without a transaction): the destination the
/// route stage named, or the one dispatch picks, and the request spliced
/// for it.
pub(crate) fn stateless(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    now: Instant,
) -> Outcome {
    let (to, dest_index) = match c.route {
        Route::Reach => {
            // The route stage left the contact's flow in the worker.
            let Some(out) = *s.target_flow else {
                return Outcome::Drop(Event::NoSocket);
            };
            splice(edge, s, m, c, &out, 0);
            count_forwarded(s, c, None);
            return Outcome::Send(out);
        }
        Route::To(a, i) => (a, i),
        // A stateless edge keeps no transaction to fail over with: the
        // first target of the DNS answer.
        Route::Named => match super::route::named(edge, s, m, c) {
            Ok(()) => {
                let (transport, addr) = s.tries[0];
                (super::checked::Hop { transport, addr }, None)
            }
            Err(o) => return o,
        },
        Route::Dispatch { follow_up } => {
            let input = dispatch_input(edge, m, c, follow_up, edge.secs(now));
            let new_call = capacity::is_new_call(c) && edge.limits.limits_destinations();
            let picked = if new_call {
                let room = capacity::WithRoom { edge, now };
                match edge.selector.select(&input, s.dispatch, &room) {
                    Some(i) => {
                        edge.limits.dest_take(i, now);
                        Some(i)
                    }
                    // Usable destinations, all full: capacity, not health.
                    None if edge
                        .selector
                        .select(&input, s.dispatch, &*edge.health)
                        .is_some() =>
                    {
                        return capacity::beyond(edge, s, m, c, Full::Destinations);
                    }
                    None => None,
                }
            } else {
                edge.selector.select(&input, s.dispatch, &*edge.health)
            };
            match picked {
                Some(i) => (edge.destinations[i].hop(), Some(i)),
                None => return no_destination(edge, s, m, &c.origin),
            }
        }
    };
    // Send from the local address of the next hop's transport and family.
    let Some(mut out) = edge.flow_to(to.transport, to.addr, c.origin.from.local) else {
        return Outcome::Drop(Event::NoSocket);
    };
    super::route::pin(edge, c, &mut out);
    splice(edge, s, m, c, &out, 0);
    let out = too_large_for_udp(edge, s, m, c, out, dest_index, 0);
    count_forwarded(s, c, dest_index);
    Outcome::Send(out)
}

/// The largest request sent in a UDP datagram to a destination that
/// takes a stream transport too: RFC 3261 §18.1.1 (1300 bytes, for a path
/// MTU of 1500 and no fragmentation).
pub(crate) const UDP_LIMIT: usize = 1300;

/// RFC 3261 §18.1.1: a request spliced in `s.out` for UDP flow `out` that
/// is over [`UDP_LIMIT`] bytes — after the compaction and compression the
/// edge applies toward the pool — goes over the stream transport its
/// destination takes instead, spliced again for it. Otherwise, or when
/// the edge has no local address of that transport, `out` as it was.
#[allow(clippy::too_many_arguments)]
pub(crate) fn too_large_for_udp(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    out: Flow,
    dest: Option<usize>,
    attempt: u8,
) -> Flow {
    if out.transport != Transport::Udp || s.out.len() <= UDP_LIMIT {
        return out;
    }
    let Some(large) = dest
        .and_then(|i| edge.destinations.get(i))
        .and_then(|d| d.large)
    else {
        return out;
    };
    if edge.fits_a_datagram_once_coded(s.out, &out) {
        return out;
    }
    let Some(stream) = edge.flow_to(large, out.remote, c.origin.from.local) else {
        return out;
    };
    splice(edge, s, m, c, &stream, attempt);
    s.stats.count(Event::LargeOverStream);
    stream
}

/// The 503 for a request no destination is usable for.
pub(crate) fn no_destination(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    origin: &Origin<'_>,
) -> Outcome {
    s.stats.count(Event::NoDestination);
    reply(edge, s, m, origin, 503, "No Destination Available", &[])
}

/// Counts a request sent to `dest_index` (if a destination) in the
/// worker's statistics and the passive health counters.
pub(crate) fn count_forwarded(s: &mut Scratch<'_>, c: &Checked<'_>, dest_index: Option<usize>) {
    s.stats.count(Event::RequestForwarded);
    if let Some(i) = dest_index {
        let new_call = c.method == Method::Invite && !c.in_dialog;
        s.counters.forwarded(i, c.method, new_call);
    }
}

/// The splice stage: writes the request as forwarded on flow `out` into
/// `s.out` — our Via (with the branch of `attempt`), received/rport in the
/// caller's Via, Max-Forwards decremented, Record-Route for
/// dialog-creating requests, our own Route entries removed.
pub(crate) fn splice(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    out: &Flow,
    attempt: u8,
) {
    let outbound = &edge.locals[out.local];
    let sent_by = outbound.sent_by.as_bytes();
    let top = &c.origin.top;
    // topology_hiding: what goes out from the pool takes its Vias and
    // Record-Route entries along sealed, and its Contact is the edge's.
    let hide = edge.hiding() && c.outward;
    let th = if hide {
        super::hiding::sealed_vias(edge, m, c)
    } else {
        Vec::new()
    };
    let records = creates_dialog(c.method) && !c.in_dialog;
    let thr = if hide && records {
        super::hiding::request_routes(edge, m)
    } else {
        Vec::new()
    };
    let sp = &mut *s.splicer;
    sp.clear();
    // To a registered contact: it is the Request-URI (RFC 3261 §16.5).
    if let Route::Reach = c.route {
        let target = &*s.target;
        sp.replace_with(m.uri_span().range(), |w| w.extend_from_slice(target));
    }
    let first_via = top.header.line.start as usize;
    sp.insert_with(first_via, |w| {
        w.extend_from_slice(b"Via: SIP/2.0/");
        w.extend_from_slice(out.transport.via_name());
        w.push(b' ');
        w.extend_from_slice(sent_by);
        w.extend_from_slice(b";branch=");
        write_attempt_branch(w, c.branch_mac(edge, attempt), c.loop_hash, attempt);
        w.extend_from_slice(&th);
        w.extend_from_slice(b"\r\n");
    });
    // (Vias too many to seal are not hidden.)
    if th.is_empty() {
        fix_top_via(sp, top, &c.origin.via, &c.origin.from);
    }
    match (c.facts.max_forwards, m.first(HeaderName::MaxForwards)) {
        (Some(n), Some(h)) => sp.replace_with(h.value.range(), |w| write_num(w, n - 1)),
        _ => sp.insert(first_via, b"Max-Forwards: 70\r\n"),
    }
    if records {
        let at = m
            .first(HeaderName::RecordRoute)
            .map_or(first_via, |h| h.line.start as usize);
        // When the request leaves by another transport or address than
        // it came in on, one entry per side (RFC 5658): the top one, which
        // the next hop uses, names the side facing it; the other the side
        // facing the caller. The flow token goes in the top one only: both
        // sides' route sets hold both entries.
        let inbound = &edge.locals[c.origin.from.local];
        let from = &c.origin.from;
        let token = flow_token(edge, c, out);
        sp.insert_with(at, |w| {
            record_route(w, edge, outbound, Some(&token), &thr);
            let other_side = from.local != out.local
                && (inbound.transport != outbound.transport || inbound.sent_by != outbound.sent_by);
            if other_side {
                record_route(w, edge, inbound, None, b"");
            }
        });
    }
    if c.method == Method::Register && !c.outward {
        // The registration proxy (RFC 3327): the registrar keeps this Path
        // with the binding, and what it sends to the phone comes back
        // through the edge — any instance — to the phone's flow when the
        // token says it is reached only there (NAT, WebSocket). The
        // registrar is told the phone takes Path, which it implies by
        // registering through an edge that writes one.
        let at = m
            .first(HeaderName::Path)
            .map_or(first_via, |h| h.line.start as usize);
        let token = flow_token(edge, c, out);
        let supported = supports_path(m);
        sp.insert_with(at, |w| {
            w.extend_from_slice(b"Path: ");
            entry(w, edge, outbound, Some(&token), b"");
            w.extend_from_slice(b"\r\n");
            if !supported {
                w.extend_from_slice(b"Supported: path\r\n");
            }
        });
    }
    // The certificate header is sipedge's to write: the runtime wrote it
    // into what came on a TLS connection; anyone else's is removed.
    if let Some(name) = edge.client_cert_header() {
        let from = &c.origin.from;
        if from.transport != Transport::Tls && edge.destination_of(from).is_none() {
            super::client_cert::strip(sp, m, name);
        }
    }
    let routes = &c.routes;
    if routes.ours > 0 {
        let elems: [Element<'_>; 8] = std::array::from_fn(|i| routes.entries[i].unwrap_or(*top));
        remove_leading(sp, &elems[..routes.len], routes.ours);
    }
    // normalize: the rewrites of the peer it comes from or goes to.
    if edge.peers().rewrites() {
        super::normalize::request(edge, sp, m, c, out, sent_by);
    }
    if hide {
        if c.method != Method::Register {
            super::hiding::hide_contacts(edge, sp, m, outbound);
        }
        if !th.is_empty() {
            super::hiding::remove(sp, m, HeaderName::Via);
        }
        if !thr.is_empty() {
            super::hiding::remove(sp, m, HeaderName::RecordRoute);
        }
    } else if edge.hiding() && c.in_dialog {
        super::hiding::restore_request(edge, sp, m, c);
    }
    // nat_sdp: a caller a NAT test found behind NAT gets its SDP's
    // private addresses replaced by the one it came from.
    let body_len = if edge.nat_sdp && !c.nat.is_empty() {
        super::nat_sdp::rewrite(sp, m, c.origin.from.remote.ip())
    } else {
        m.body().len()
    };
    add_content_length(sp, m, body_len);
    s.out.clear();
    sp.write_message(m, s.out);
}

/// A Record-Route line naming `local` (see [`entry`]).
fn record_route(w: &mut Vec<u8>, edge: &Edge, local: &Local, token: Option<&Token>, params: &[u8]) {
    w.extend_from_slice(b"Record-Route: ");
    entry(w, edge, local, token, params);
    w.extend_from_slice(b"\r\n");
}

/// A route entry naming `local`: `<sip:TOKEN@host:port;lr>`, with the
/// transport parameter when it is not UDP, and further URI `params`
/// (topology hiding's sealed route entries).
fn entry(w: &mut Vec<u8>, edge: &Edge, local: &Local, token: Option<&Token>, params: &[u8]) {
    w.extend_from_slice(b"<sip:");
    if let Some(t) = token {
        if edge.keys.sealing().seal(t, edge.name.as_bytes(), w) {
            w.push(b'@');
        }
    }
    w.extend_from_slice(local.sent_by.as_bytes());
    if local.transport != Transport::Udp {
        w.extend_from_slice(b";transport=");
        w.extend_from_slice(local.transport.name().as_bytes());
    }
    w.extend_from_slice(b";lr");
    w.extend_from_slice(params);
    w.push(b'>');
}

/// Whether a request's Supported header names `path` (RFC 3327 §4).
fn supports_path(m: &Message<'_>) -> bool {
    m.elements(HeaderName::Supported)
        .any(|e| e.text.eq_ignore_ascii_case(b"path"))
}

/// Whether a caller on `flow` can only be reached over the connection it
/// opened: a WebSocket client (a browser), whose Contact names no host.
fn undialable(flow: &Flow) -> bool {
    matches!(flow.transport, Transport::Ws | Transport::Wss)
}

/// The flow token of a dialog (or registration) that `c` starts, sent on
/// `out`: the outside party is the caller when the request goes into
/// the pool, the callee it is sent to when it goes out. Either is reached
/// at its flow when it can be reached nowhere else — a NAT test fired on
/// the caller's request, it is a WebSocket client, or this request found
/// it at its flow (along a registration's Path) — and otherwise by its
/// Contact, as RFC 3261 routes (a TCP caller whose connection closed
/// gets a new one to its Contact).
fn flow_token(edge: &Edge, c: &Checked<'_>, out: &Flow) -> Token {
    let outside = |f: &Flow| Outside {
        transport: f.transport,
        local: u8::try_from(f.local).unwrap_or(u8::MAX),
        remote: f.remote,
        conn: f.conn.map(|id| Conn {
            id,
            // A connection another node holds (this request is relayed
            // there) keeps its owner.
            owner: f.owner.or(edge.relay()),
        }),
    };
    let from = &c.origin.from;
    if c.outward {
        // The server it came from; a sender of `outbound_from` only over
        // UDP (on a connection its port is an ephemeral one: the dialog's
        // requests follow its Contact instead).
        let pool = match c.from_pool.and_then(|i| edge.destinations.get(i)) {
            Some(d) => Some((d.transport, d.addr)),
            None if !from.is_stream() => Some((from.transport, from.remote)),
            None => None,
        };
        let found_at_flow = matches!(c.routes.token, Sealed::Open(t) if t.sticky)
            || matches!(c.route, Route::Reach);
        Token {
            outside: outside(out),
            sticky: found_at_flow || undialable(out),
            pool,
        }
    } else {
        Token {
            outside: outside(from),
            sticky: undialable(from) || !c.nat.is_empty(),
            pool: Some((out.transport, out.remote)),
        }
    }
}
