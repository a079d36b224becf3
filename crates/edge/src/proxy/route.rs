//! The route stage: where a request may go. Our own leading Route
//! entries are consumed (RFC 3261 §16.4); a request from the pool goes
//! where its Route or Request-URI says; a request from outside goes into
//! the pool — by the edge's algorithm, or to the destination its route
//! names — and never to a foreign host (no open relay).

use super::checked::{Checked, Facts, Hop, NextHop, Origin, Route, RouteSet, Sealed};
use super::reply::reply;
use super::{Edge, Outcome, Scratch};
use crate::config::ForeignNextHop;
use crate::dispatch::{Algorithm, Input};
use crate::flow::Transport;
use crate::outbound::{Answer, Query};
use crate::stats::Event;
use sip::{HeaderName, Host, Message, Method, NameAddr, Uri};
use std::net::SocketAddr;

/// How the route stage sees a request: what it may do and where it goes.
pub(crate) struct Decision {
    pub route: Route,
    /// An in-dialog request from outside toward a foreign next hop.
    pub foreign_hop: bool,
    /// It goes out toward the outside rather than into the pool.
    pub outward: bool,
}

impl<'a> RouteSet<'a> {
    /// The Route entries of `m` (whose URIs `facts` parsed), our own
    /// leading ones counted, and where the next hop points.
    #[inline(always)]
    pub(crate) fn read(edge: &Edge, m: &Message<'a>, facts: &Facts<'a>) -> RouteSet<'a> {
        let mut entries: [Option<sip::Element<'a>>; 8] = [None; 8];
        let mut len = 0;
        let mut ours = 0;
        let mut token = Sealed::None;
        for e in m.elements(HeaderName::Route).take(entries.len()) {
            let uri = facts.route_uris[len].as_ref();
            if len == ours {
                if let Some(u) = uri.filter(|u| is_here(edge, u)) {
                    ours += 1;
                    // The first of our entries whose user part opens; a
                    // user part that does not (the edge writes no other)
                    // is refused if none does.
                    if let (Some(user), Sealed::None | Sealed::Refused) = (u.user, token) {
                        token = open_token(edge, user);
                    }
                }
            }
            entries[len] = Some(e);
            len += 1;
        }
        let target_uri = match entries.get(ours).copied().flatten() {
            Some(_) => facts.route_uris.get(ours).copied().flatten(),
            None => Some(facts.uri),
        };
        let next = match &target_uri {
            Some(u) => classify(edge, u),
            None => NextHop::Outside(None),
        };
        let name = match (next, &target_uri) {
            (NextHop::Outside(None), Some(u)) => Query::of(u),
            _ => None,
        };
        RouteSet {
            entries,
            len,
            ours,
            next,
            token,
            name,
        }
    }
}

/// The route stage's verdict for a request from `from_pool` (the
/// destination it came from, if any). `Err` with the answer of a request
/// refused (404, 403).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    origin: &Origin<'_>,
    (routes, uri): (&RouteSet<'_>, &Uri<'_>),
    in_dialog: bool,
    from_pool: Option<usize>,
    now: std::time::Instant,
) -> Result<Decision, Outcome> {
    let method = m.method();
    let next = routes.next;
    let dispatch_as = |follow_up: bool| Route::Dispatch { follow_up };
    // The pool, and the networks `outbound_from` names, may go out.
    let outward = from_pool.is_some()
        || (!edge.outbound_from.is_empty() && edge.lets_out(origin.from.remote.ip()));
    let decided = |route| {
        Ok(Decision {
            route,
            foreign_hop: false,
            outward,
        })
    };
    match routes.token {
        // Refused where a token would be followed: from the pool, and in a
        // dialog. A new request from outside goes into the pool whatever
        // its Route says (a phone whose outbound proxy setting names the
        // edge with a user part still gets through).
        Sealed::Refused if outward || in_dialog => {
            s.stats.count(Event::FlowTokenRefused);
            return Err(reply(edge, s, m, origin, 403, "Invalid Flow Token", &[]));
        }
        // From the pool along our Record-Route or Path, when no Route
        // follows ours: to the party's flow when the token says it is
        // reached only there (behind NAT, or over its own connection),
        // whatever the Request-URI says.
        Sealed::Open(t) if outward && t.sticky && routes.len == routes.ours => {
            let o = t.outside;
            let hop = Hop {
                transport: o.transport,
                addr: o.remote,
            };
            return decided(Route::To(hop, None));
        }
        // From outside in a dialog: to the server the dialog is with,
        // unless the Request-URI names another destination of the pool
        // (a target refresh moved it there).
        Sealed::Open(t) if !outward && in_dialog && !matches!(next, NextHop::Destination(_)) => {
            if let Some((transport, addr)) = t.pool {
                let hop = Hop { transport, addr };
                return decided(Route::To(hop, edge.destination_at(transport, addr)));
            }
        }
        _ => {}
    }
    // The built-in registrar: a new request from the pool for an address
    // of record registered here goes to its contact — and so does the
    // ACK of a non-2xx answer, which repeats its INVITE's Request-URI
    // (RFC 3261 §17.1.1.3); one naming the edge itself with none
    // registered is not available. Only from the pool: what
    // `outbound_from` senders send goes out as before.
    let new_or_its_ack = !in_dialog || method == Method::Ack;
    if from_pool.is_some()
        && new_or_its_ack
        && routes.len == routes.ours
        && edge.registrar.is_some()
    {
        if let Some(flow) = super::registrar::reach(edge, s, uri, now) {
            s.stats.count(Event::ToBinding);
            *s.target_flow = Some(flow);
            return decided(Route::Reach);
        }
        if next == NextHop::Here {
            s.stats.count(Event::NotRegistered);
            return Err(reply(
                edge,
                s,
                m,
                origin,
                480,
                "Temporarily Unavailable",
                &[],
            ));
        }
    }
    let route = match (outward, next) {
        // From the pool: outward along its Route / Request-URI.
        (true, NextHop::Destination(i)) => Route::To(edge.destinations[i].hop(), Some(i)),
        (true, NextHop::Outside(Some(a))) => Route::To(a, None),
        (true, NextHop::Outside(None)) if routes.name.is_some() => Route::Named,
        (true, NextHop::Outside(None)) => {
            s.stats.count(Event::Unresolvable);
            return Err(reply(
                edge,
                s,
                m,
                origin,
                404,
                "Unresolvable Destination",
                &[],
            ));
        }
        (true, NextHop::Here) => dispatch_as(matches!(method, Method::Cancel | Method::Ack)),
        // From outside: new requests and CANCELs by dispatch, whatever they
        // name — unless a Route names this edge and then a foreign host:
        // that asks for the outbound proxy, which is the pool's only (no
        // open relay). A foreign Request-URI alone is an address of
        // record like any other, for the pool to serve.
        (false, _) if method == Method::Cancel => dispatch_as(true),
        (false, NextHop::Outside(_))
            if !in_dialog
                && routes.ours > 0
                && routes.len > routes.ours
                && method != Method::Ack =>
        {
            s.stats.count(Event::OutboundDenied);
            return Err(reply(edge, s, m, origin, 403, "Relaying Denied", &[]));
        }
        (false, _) if !in_dialog => dispatch_as(false),
        // In dialog: toward a destination of the pool, or into the pool.
        (false, NextHop::Destination(i)) => Route::To(edge.destinations[i].hop(), Some(i)),
        (false, NextHop::Here) => dispatch_as(method == Method::Ack),
        // An ACK naming no destination is mostly the ACK of a non-2xx
        // answer, with its INVITE's Request-URI and Route (RFC 3261
        // §17.1.1.3): it follows its INVITE into the pool, in either mode.
        (false, NextHop::Outside(_)) if method == Method::Ack => dispatch_as(true),
        // Any other request is never sent to a foreign next hop: it goes
        // into the pool, whose servers own the dialog, or is refused.
        (false, NextHop::Outside(_)) => match edge.foreign_next_hop {
            ForeignNextHop::Refuse => {
                s.stats.count(Event::RelayDenied);
                return Err(reply(edge, s, m, origin, 403, "Relaying Denied", &[]));
            }
            ForeignNextHop::Dispatch => dispatch_as(false),
        },
    };
    let foreign_hop = from_pool.is_none()
        && in_dialog
        && !matches!(method, Method::Ack | Method::Cancel)
        && matches!(next, NextHop::Outside(_));
    Ok(Decision {
        route,
        foreign_hop,
        outward,
    })
}

/// A request the route stage sent to a token's flow (from the pool along
/// our Record-Route or Path) leaves from the local address the party used
/// (a NAT lets in only what comes from where its binding points), and on
/// a connection on that connection only, never a new one (RFC 5626
/// §5.3) — relayed to the node that holds it if that is another. `out`
/// is the flow it is sent on.
pub(crate) fn pin(edge: &Edge, c: &Checked<'_>, out: &mut crate::flow::Flow) {
    let Some(o) = token_flow(c) else {
        return;
    };
    if (o.transport, o.remote) != (out.transport, out.remote) {
        return;
    }
    if let Some(local) = outside_local(edge, &o) {
        out.local = local;
    }
    if out.is_stream() {
        out.conn = o.conn.map(|c| c.id);
        out.pinned = true;
        out.owner = outside_owner(edge, &o);
    }
}

/// The edge's local address an outside party used (a token's, a
/// binding's), if this snapshot still has it with that transport and
/// address family.
pub(crate) fn outside_local(edge: &Edge, o: &crate::token::Outside) -> Option<usize> {
    let local = usize::from(o.local);
    let fits =
        |l: &super::Local| l.transport == o.transport && l.addr.is_ipv4() == o.remote.is_ipv4();
    edge.locals.get(local).is_some_and(fits).then_some(local)
}

/// The node that holds an outside party's connection, when that is
/// another node: requests for it are relayed there.
pub(crate) fn outside_owner(
    edge: &Edge,
    o: &crate::token::Outside,
) -> Option<std::net::SocketAddr> {
    o.conn
        .and_then(|conn| conn.owner)
        .filter(|&node| Some(node) != edge.relay())
}

/// The party's flow a request from the pool goes to by its token, if it
/// does (see [`decide`]).
fn token_flow(c: &Checked<'_>) -> Option<crate::token::Outside> {
    match c.routes.token {
        Sealed::Open(t) if c.outward && t.sticky && c.routes.len == c.routes.ours => {
            Some(t.outside)
        }
        _ => None,
    }
}

/// The node a request is relayed to: another node holding the connection
/// its token names. A transactional edge forwards such a request without a
/// transaction — its answers come back through the owner, not here.
pub(crate) fn relayed_to(edge: &Edge, c: &Checked<'_>) -> Option<std::net::SocketAddr> {
    token_flow(c).and_then(|o| outside_owner(edge, &o))
}

/// The targets of a [`Route::Named`] request, into `s.tries` in the order
/// to try them: from the edge's DNS answer for the route set's name.
/// `Err` with [`Outcome::Resolve`] when there is no answer yet (the
/// worker's `lookup` names the query), or with the refusal of a name that
/// has none (404) or whose lookup failed (503).
pub(crate) fn named(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
) -> Result<(), Outcome> {
    let Some(query) = c.routes.name else {
        return Err(reply(
            edge,
            s,
            m,
            &c.origin,
            404,
            "Unresolvable Destination",
            &[],
        ));
    };
    query.write_key(s.lookup);
    let Some(answer) = edge.names.get(s.lookup) else {
        s.stats.count(Event::Resolving);
        return Err(Outcome::Resolve);
    };
    // Only where the edge can send (a local address of the transport and
    // family), and never to the edge itself.
    let from = c.origin.from.local;
    answer.order(c.mac, s.tries, |t, a| {
        edge.local_for(t, a, from).is_some() && !edge.answers_itself(None, a)
    });
    if !s.tries.is_empty() {
        return Ok(());
    }
    s.stats.count(Event::Unresolvable);
    let (code, reason) = match *answer {
        Answer::Failed => (503, "DNS Lookup Failed"),
        _ => (404, "Unresolvable Destination"),
    };
    Err(reply(edge, s, m, &c.origin, code, reason, &[]))
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
        // `first` is the operator's order (primary, then backup): kept.
        aor: match (c.method, edge.selector.algorithm()) {
            (Method::Register, a) if a != Algorithm::First => aor_key(m),
            _ => None,
        },
        tx_key: c.mac,
        follow_up,
        now_secs,
    }
}

/// What the user part of one of our own Route entries says: a token the
/// cluster sealed for this edge, or something to refuse.
fn open_token(edge: &Edge, user: &[u8]) -> Sealed {
    match crate::token::open(edge.keys.opening(), user, edge.name.as_bytes()) {
        Some(t) => Sealed::Open(t),
        None => Sealed::Refused,
    }
}

/// Whether `u` names one of this edge's own addresses.
pub(crate) fn is_here(edge: &Edge, u: &Uri<'_>) -> bool {
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

/// A REGISTER's address of record as a key: its To URI's user and host
/// (RFC 3261 §10.3: scheme, port, parameters and the host's case do not
/// tell AORs apart; a password is no part of it).
fn aor_key(m: &Message<'_>) -> Option<u64> {
    let u = Uri::parse(to_uri(m)?).ok()?;
    let mut h = xxhash_rust::xxh3::Xxh3::with_seed(0x05ed_6a0f);
    h.update(u.user.unwrap_or_default());
    h.update(b"@");
    let mut lower = [0u8; 64];
    for chunk in u.host_text.chunks(lower.len()) {
        let lower = &mut lower[..chunk.len()];
        lower.copy_from_slice(chunk);
        lower.make_ascii_lowercase();
        h.update(lower);
    }
    Some(h.digest())
}

/// The To URI as written.
fn to_uri<'a>(m: &Message<'a>) -> Option<&'a [u8]> {
    m.first_value(HeaderName::To)
        .and_then(|v| NameAddr::parse(v).ok())
        .map(|n| n.uri)
}

/// The bytes the edge's hash algorithm hashes, if the request has them.
fn hash_key<'a>(alg: Algorithm, m: &Message<'a>, facts: &Facts<'a>) -> Option<&'a [u8]> {
    match alg {
        Algorithm::HashCallId => Some(facts.call_id),
        Algorithm::HashFromUri => Some(facts.from.uri),
        Algorithm::HashToUri => to_uri(m),
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
