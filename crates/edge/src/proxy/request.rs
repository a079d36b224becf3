//! The request pipeline of a stateless edge, stage by stage:
//! parse (done) → validate → local → Max-Forwards / loop → route → splice.

use super::capacity;
use super::reply::{is_local_tag, reply};
use super::splices::{add_content_length, fix_top_via, remove_leading};
use super::{Edge, Outcome, Scratch};
use crate::branch::{self, loop_hash, parse_branch, write_attempt_branch, Side};
use crate::config::ForeignNextHop;
use crate::dispatch::{Algorithm, Input};
use crate::flow::{Flow, Transport};
use crate::limits::Full;
use crate::stats::Event;
use sip::splice::write_num;
use sip::{Element, HeaderName, Host, Message, Method, NameAddr, Scheme, Uri, Via};
use std::net::SocketAddr;
use std::time::Instant;

/// The methods whose out-of-dialog requests create a dialog we must stay in.
fn creates_dialog(m: Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
    )
}

/// Where a request's next hop (top Route after ours, or Request-URI) points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NextHop {
    /// At this edge itself.
    Here,
    /// At destination `i` of the pool.
    Destination(usize),
    /// Somewhere outside the pool (None: a name we cannot resolve).
    Outside(Option<Hop>),
}

/// A verdict of the validation stage: a response code and reason.
type Refusal = (u16, &'static str);

/// What validation read from the request, kept so that no later stage
/// parses the same header again.
struct Facts<'a> {
    /// The first Route URIs, parsed once while validating.
    route_uris: [Option<Uri<'a>>; 8],
    /// The same URIs as written (for the loop hash).
    route_texts: [&'a [u8]; 8],
    call_id: &'a [u8],
    cseq: u32,
    from: NameAddr<'a>,
    to_tag: Option<&'a [u8]>,
    uri: Uri<'a>,
    max_forwards: Option<u8>,
}

/// The checks that keep everything after them safe: the headers a proxy
/// reads exist once and parse (RFC 3261 §16.3 "reasonable syntax").
fn validate<'a>(m: &Message<'a>) -> Result<Facts<'a>, Refusal> {
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
        from,
        to_tag: to.tag(),
        uri,
        max_forwards,
    })
}

/// The request as it came: its top Via and where it came from, which is
/// what any answer to it needs.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The top Via element.
    pub top: Element<'a>,
    /// The top Via, parsed.
    pub via: Via<'a>,
    /// The flow it arrived on.
    pub from: Flow,
}

/// A request that passed every check and is to be forwarded, with what the
/// checks read from it, so no later stage parses a header again.
pub(crate) struct Checked<'a> {
    /// Where it came from.
    pub origin: Origin<'a>,
    facts: Facts<'a>,
    /// The Route elements (up to 8) and how many lead with our own address.
    routes: [Option<Element<'a>>; 8],
    n_routes: usize,
    ours: usize,
    /// Where the route stage says it goes.
    pub route: Route,
    /// The transaction MAC of our branch (the same for retransmissions, the
    /// CANCEL and the non-2xx ACK).
    pub mac: u64,
    /// The loop hash of our branch.
    pub loop_hash: u32,
    /// The method.
    pub method: Method,
    /// It carries a To tag.
    pub in_dialog: bool,
    /// An in-dialog request from outside (not an ACK or CANCEL) whose next
    /// hop is foreign, dispatched into the pool: counted where it arrives,
    /// not each time a transaction checks its stored request again.
    pub foreign_hop: bool,
}

impl<'a> Checked<'a> {
    /// How many leading Route entries named this edge (and are not
    /// forwarded).
    pub fn ours(&self) -> usize {
        self.ours
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &'a [u8] {
        self.facts.call_id
    }

    /// The Request-URI, parsed.
    pub fn request_uri(&self) -> &Uri<'a> {
        &self.facts.uri
    }

    /// The MAC our branch carries toward destination number `attempt`
    /// of this request (see [`crate::branch`]).
    pub fn branch_mac(&self, edge: &Edge, attempt: u8) -> u64 {
        edge.keys
            .signing()
            .branch_mac(self.mac, self.loop_hash, attempt)
    }
}

/// The request pipeline up to the route stage: validate, local answers,
/// Max-Forwards, loops, open-relay rules. `Err` carries the outcome of a
/// request answered (written into `s.out`) or dropped here.
pub(crate) fn check<'a>(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'a>,
    from: Flow,
) -> Result<Checked<'a>, Outcome> {
    let (top, via) = match m.top_via() {
        Ok(v) => v,
        Err(_) => return Err(super::reply::bad_via(edge, s, m, from)),
    };
    // A request carrying the edge's own Via on top came from the edge
    // itself (or says it did): anything done with it, an answer above all,
    // would come back here.
    if edge.answers_itself(Some(&via), super::reply::reply_address(&via, from.remote)) {
        return Err(Outcome::Drop(Event::OwnVia));
    }
    let origin = Origin { top, via, from };
    let method = m.method();
    let facts = match validate(m) {
        Ok(f) => f,
        Err((code, reason)) => return Err(reply(edge, s, m, &origin, code, reason, &[])),
    };
    // Proxy-Require names extensions this proxy must support; we support none
    // (RFC 3261 §16.3 step 5 → 420 with Unsupported).
    if let Some(req) = m.first_value(HeaderName::ProxyRequire) {
        return Err(reply(
            edge,
            s,
            m,
            &origin,
            420,
            "Bad Extension",
            &[("Unsupported", req)],
        ));
    }

    let in_dialog = facts.to_tag.is_some();

    // The ACK of an answer this edge gave itself (a 503, 302, 403...) ends
    // here: the pool never saw its INVITE (RFC 3261 §17.2.1).
    let from_tag = facts.from.tag().unwrap_or_default();
    let own_answer = |t| is_local_tag(facts.call_id, from_tag, facts.cseq, t);
    if method == Method::Ack && facts.to_tag.is_some_and(own_answer) {
        return Err(Outcome::Drop(Event::Absorbed));
    }

    // Our own Route entries lead the list when the previous hop followed our
    // Record-Route; they are consumed here (RFC 3261 §16.4).
    let mut routes: [Option<Element<'_>>; 8] = [None; 8];
    let mut n_routes = 0;
    let mut ours = 0;
    for e in m.elements(HeaderName::Route).take(routes.len()) {
        let uri = facts.route_uris[n_routes].as_ref();
        let is_ours = n_routes == ours && uri.is_some_and(|u| is_here(edge, u));
        if is_ours {
            ours += 1;
        }
        routes[n_routes] = Some(e);
        n_routes += 1;
    }
    let next_route = routes.get(ours).copied().flatten();
    let target_uri = match next_route {
        Some(_) => facts.route_uris.get(ours).copied().flatten(),
        None => Some(facts.uri),
    };
    let next = match &target_uri {
        Some(u) => classify(edge, u),
        None => NextHop::Outside(None),
    };

    // Local stage: OPTIONS pings addressed to the edge itself.
    if edge.ping_replies && method == Method::Options && next == NextHop::Here && !in_dialog {
        let allow: &[u8] = b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";
        return Err(reply(
            edge,
            s,
            m,
            &origin,
            200,
            "OK",
            &[
                ("Allow", allow),
                ("Accept", b"application/sdp"),
                ("Supported", b""),
            ],
        ));
    }

    // Max-Forwards (RFC 3261 §16.3 step 3).
    if facts.max_forwards == Some(0) {
        return Err(reply(edge, s, m, &origin, 483, "Too Many Hops", &[]));
    }

    // Loop detection (§16.3 step 4): one of our Vias with this request's
    // loop hash, which covers the side it came from and its Route set.
    let from_pool = edge.destination_of(&from);
    let side = if from_pool.is_some() {
        Side::Pool
    } else {
        Side::Outside
    };
    // Each Route entry's URI, not the line as written: a CANCEL or an ACK
    // must repeat its INVITE's Route values (RFC 3261 §9.1, §17.1.1.3),
    // not its spacing or how it splits them over lines.
    let route_uris =
        m.elements(HeaderName::Route)
            .enumerate()
            .map(|(k, e)| match facts.route_texts.get(k) {
                Some(&text) => text,
                None => NameAddr::parse(e.text).map_or(e.text, |n| n.uri),
            });
    let lh = loop_hash(
        m.uri(),
        facts.call_id,
        from_tag,
        facts.cseq,
        route_uris,
        side,
    );
    // Only a Via line carrying one of our branches can hold our Via: most
    // requests have none, and are not even split into their Via values.
    let our_lines = m
        .all(HeaderName::Via)
        .filter(|h| memchr::memmem::find(m.value(h), branch::PREFIX).is_some());
    for e in our_lines.flat_map(|h| m.elements_of(h)) {
        if memchr::memmem::find(e.text, branch::PREFIX).is_none() {
            continue;
        }
        if let Ok(v) = Via::parse(e.text) {
            let ours = edge.locals.iter().any(|l| l.is(&v.host, v.port));
            if ours
                && v.branch
                    .and_then(parse_branch)
                    .is_some_and(|b| b.loop_hash == lh)
            {
                return Err(reply(edge, s, m, &origin, 482, "Loop Detected", &[]));
            }
        }
    }

    let mac = edge
        .keys
        .signing()
        .tx_mac(&origin.via, facts.call_id, facts.cseq, from_tag, lh);

    // Route stage: where may this request go?
    let dispatch_as = |follow_up: bool| Route::Dispatch { follow_up };
    let route = match (from_pool, next) {
        // From the pool: outward along its Route / Request-URI.
        (Some(_), NextHop::Destination(i)) => Route::To(edge.destinations[i].hop(), Some(i)),
        (Some(_), NextHop::Outside(Some(a))) => Route::To(a, None),
        (Some(_), NextHop::Outside(None)) => Route::Refuse(404, "Unresolvable Destination"),
        (Some(_), NextHop::Here) => dispatch_as(matches!(method, Method::Cancel | Method::Ack)),
        // From outside: new requests and CANCELs by dispatch, whatever they name.
        (None, _) if method == Method::Cancel => dispatch_as(true),
        (None, _) if !in_dialog => dispatch_as(false),
        // In dialog: toward a destination of the pool, or into the pool.
        (None, NextHop::Destination(i)) => Route::To(edge.destinations[i].hop(), Some(i)),
        (None, NextHop::Here) => dispatch_as(method == Method::Ack),
        // An ACK naming no destination is mostly the ACK of a non-2xx
        // answer, with its INVITE's Request-URI and Route (RFC 3261
        // §17.1.1.3): it follows its INVITE into the pool, in either mode.
        (None, NextHop::Outside(_)) if method == Method::Ack => dispatch_as(true),
        // Any other request is never sent to a foreign next hop: it goes
        // into the pool, whose servers own the dialog, or is refused.
        (None, NextHop::Outside(_)) => match edge.foreign_next_hop {
            ForeignNextHop::Refuse => {
                s.stats.count(Event::RelayDenied);
                Route::Refuse(403, "Relaying Denied")
            }
            ForeignNextHop::Dispatch => dispatch_as(false),
        },
    };
    if let Route::Refuse(code, reason) = route {
        return Err(reply(edge, s, m, &origin, code, reason, &[]));
    }
    let foreign_hop = from_pool.is_none()
        && in_dialog
        && !matches!(method, Method::Ack | Method::Cancel)
        && matches!(next, NextHop::Outside(_));
    Ok(Checked {
        foreign_hop,
        origin,
        facts,
        routes,
        n_routes,
        ours,
        route,
        mac,
        loop_hash: lh,
        method,
        in_dialog,
    })
}

/// What the dispatch algorithms are asked for this request.
pub(crate) fn dispatch_input<'a>(
    edge: &Edge,
    m: &Message<'a>,
    c: &Checked<'a>,
    follow_up: bool,
    now_secs: u64,
) -> Input<'a> {
    Input {
        hash_key: hash_key(edge.selector.algorithm(), m, &c.facts),
        tx_key: c.mac,
        follow_up,
        now_secs,
    }
}

/// Handles one parsed request statelessly.
pub fn handle(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    from: Flow,
    now: Instant,
) -> Outcome {
    let c = match arrive(edge, s, m, from, now) {
        Ok(c) => c,
        Err(o) => return o,
    };
    if capacity::is_new_call(&c) {
        if let Err(o) = capacity::admit(edge, s, m, &c, now) {
            return o;
        }
    }
    handle_checked(edge, s, m, &c, now)
}

/// [`check`] for a request as it arrives (not a stored one checked
/// again): what it says is counted, and a BYE ends its call for the
/// channel count.
pub(crate) fn arrive<'a>(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'a>,
    from: Flow,
    now: Instant,
) -> Result<Checked<'a>, Outcome> {
    let c = check(edge, s, m, from)?;
    if c.foreign_hop {
        s.stats.count(Event::ForeignDispatched);
    }
    if c.method == Method::Bye {
        edge.limits.call_ended(c.call_id(), now);
    }
    Ok(c)
}

/// The stateless route and send stages for a request that passed [`check`]
/// (and the limits stage).
pub(crate) fn handle_checked(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    now: Instant,
) -> Outcome {
    let (to, dest_index) = match c.route {
        Route::To(a, i) => (a, i),
        Route::Refuse(code, reason) => return reply(edge, s, m, &c.origin, code, reason, &[]),
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
    let Some(out) = edge.flow_to(to.transport, to.addr, c.origin.from.local) else {
        return Outcome::Drop(Event::NoSocket);
    };
    splice(edge, s, m, c, &out, 0);
    count_forwarded(s, c, dest_index);
    Outcome::Send(out)
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
        if let Some(n) = s.stats.per_destination.get_mut(i) {
            *n += 1;
        }
        let new_call = c.method == Method::Invite && !c.in_dialog;
        s.counters.forwarded(i, new_call, c.method != Method::Ack);
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
    let sp = &mut *s.splicer;
    sp.clear();
    let first_via = top.header.line.start as usize;
    sp.insert_with(first_via, |w| {
        w.extend_from_slice(b"Via: SIP/2.0/");
        w.extend_from_slice(out.transport.via_name());
        w.push(b' ');
        w.extend_from_slice(sent_by);
        w.extend_from_slice(b";branch=");
        write_attempt_branch(w, c.branch_mac(edge, attempt), c.loop_hash, attempt);
        w.extend_from_slice(b"\r\n");
    });
    fix_top_via(sp, top, &c.origin.via, c.origin.from.remote);
    match (c.facts.max_forwards, m.first(HeaderName::MaxForwards)) {
        (Some(n), Some(h)) => sp.replace_with(h.value.range(), |w| write_num(w, n - 1)),
        _ => sp.insert(first_via, b"Max-Forwards: 70\r\n"),
    }
    if creates_dialog(c.method) && !c.in_dialog {
        let at = m
            .first(HeaderName::RecordRoute)
            .map_or(first_via, |h| h.line.start as usize);
        // When the request leaves by another transport or address than
        // it came in on, one entry per side (RFC 5658): the top one, which
        // the next hop uses, names the side facing it; the other the side
        // facing the caller.
        let inbound = &edge.locals[c.origin.from.local];
        sp.insert_with(at, |w| {
            record_route(w, outbound);
            if inbound.transport != outbound.transport || inbound.sent_by != outbound.sent_by {
                record_route(w, inbound);
            }
        });
    }
    if c.ours > 0 {
        let elems: [Element<'_>; 8] = std::array::from_fn(|i| c.routes[i].unwrap_or(*top));
        remove_leading(sp, &elems[..c.n_routes], c.ours);
    }
    add_content_length(sp, m);
    s.out.clear();
    sp.write_message(m, s.out);
}

/// A Record-Route line naming `local`: `<sip:host:port;lr>`, with the
/// transport parameter when it is not UDP.
fn record_route(w: &mut Vec<u8>, local: &super::Local) {
    w.extend_from_slice(b"Record-Route: <sip:");
    w.extend_from_slice(local.sent_by.as_bytes());
    if local.transport != Transport::Udp {
        w.extend_from_slice(b";transport=");
        w.extend_from_slice(local.transport.name().as_bytes());
    }
    w.extend_from_slice(b";lr>\r\n");
}

/// A next hop as an address and the transport to reach it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// What the route stage decided.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route {
    /// Forward to a next hop (and which destination it is, if one).
    To(Hop, Option<usize>),
    /// Choose a destination by the edge's algorithm.
    Dispatch { follow_up: bool },
    /// Answer with this code.
    Refuse(u16, &'static str),
}

fn is_here(edge: &Edge, u: &Uri<'_>) -> bool {
    edge.locals.iter().any(|l| l.is(&u.host, u.port))
}

fn classify(edge: &Edge, u: &Uri<'_>) -> NextHop {
    if is_here(edge, u) {
        return NextHop::Here;
    }
    if let Some(i) = edge.destinations.iter().position(|d| d.is(&u.host, u.port)) {
        return NextHop::Destination(i);
    }
    let transport = Transport::of_uri(u);
    NextHop::Outside(match u.host {
        Host::Name(_) => None,
        h => h.ip().map(|ip| Hop {
            transport,
            addr: SocketAddr::new(ip, u.port.unwrap_or(transport.default_port())),
        }),
    })
}

/// The bytes the edge's hash algorithm hashes, if the request has them.
fn hash_key<'a>(alg: Algorithm, m: &Message<'a>, facts: &Facts<'a>) -> Option<&'a [u8]> {
    let uri_in = |name| {
        m.first_value(name)
            .and_then(|v| NameAddr::parse(v).ok())
            .map(|n| n.uri)
    };
    match alg {
        Algorithm::HashCallId => Some(facts.call_id),
        Algorithm::HashFromUri => Some(facts.from.uri),
        Algorithm::HashToUri => uri_in(HeaderName::To),
        Algorithm::HashRequestUri => Some(m.uri()),
        Algorithm::HashAuthUsername => m
            .first_value(HeaderName::ProxyAuthorization)
            .and_then(sip::auth::digest_username)
            .or_else(|| {
                m.first_value(HeaderName::Authorization)
                    .and_then(sip::auth::digest_username)
            }),
        Algorithm::WeightedRoundRobin
        | Algorithm::Random
        | Algorithm::First
        | Algorithm::LeastLatency => None,
    }
}
