//! The request pipeline (DESIGN principle 5), in the order every request
//! goes through it:
//!
//! `sanity → security → local → hops → route → transaction → limits → nat
//! → send`, then the compact/compress stage in [`super::Worker`].
//!
//! Each stage is a function in the module of its name that returns `Ok`
//! to go on or `Err` with its verdict (an answer, a drop). A stateless and
//! a transactional edge share every stage but the last two: a
//! transactional edge absorbs retransmissions and matches ACK and CANCEL
//! to its transactions (the transaction stage), and sends through a
//! transaction that fails over and retransmits.
//!
//! The stages up to the route decision are `#[inline(always)]`: each runs
//! once per request, and inlined, what they hand on (the facts, the route
//! set: over a kilobyte) is built in place instead of copied from stage to
//! stage — 1,000 instructions per INVITE, 4%, measured with callgrind.

use super::checked::{Checked, RouteSet};
use super::hops;
use super::{capacity, forward, local, route, sanity, stateful};
use super::{Edge, Outcome, Scratch};
use crate::flow::Flow;
use crate::stats::Event;
use sip::{Message, Method};
use std::time::Instant;

/// One request through the whole pipeline (inlined into `Worker::handle`:
/// its one caller, and a call there costs about 1% per message).
#[inline(always)]
pub(crate) fn request(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    from: Flow,
    now: Instant,
) -> Outcome {
    match run(edge, s, m, from, now) {
        Ok(o) | Err(o) => o,
    }
}

#[inline(always)]
fn run(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    from: Flow,
    now: Instant,
) -> Result<Outcome, Outcome> {
    let c = checks(edge, s, m, from, now)?;
    // What the request says, counted once, where it arrives.
    if c.foreign_hop {
        s.stats.count(Event::ForeignDispatched);
    }
    if c.method == Method::Bye {
        edge.limits.call_ended(c.call_id(), now);
    }
    // A request relayed to the node holding its connection has its
    // answers come back through that node: no transaction here; nor for
    // one to a registered contact (it has one target, and the pool's
    // transaction retransmits it).
    let reach = matches!(c.route, super::checked::Route::Reach);
    let held = match edge.stateful() {
        Some(st) if !reach && route::relayed_to(edge, &c).is_none() => {
            stateful::transaction(edge, st, s, m, &c, now)?
        }
        _ => None,
    };
    if capacity::is_new_call(&c) {
        s.stats.count(Event::NewCall);
        // Which peer it came from, only when the edge names some.
        if !edge.peers().is_empty() {
            if let Some(i) = edge.peers().of(&from, m) {
                edge.peers().count_call(i);
            }
        }
        capacity::admit(edge, s, m, &c, now)?;
    }
    // nat: what the checks found is counted here, once per request;
    // rport/received are written for every request by the send stage, and
    // a caller behind NAT is marked in its flow token so that the dialog's
    // requests from the pool reach it at its NAT binding.
    if !c.nat.is_empty() {
        edge.count_nat(c.nat);
    }
    Ok(match held {
        Some(held) => stateful::start(edge, held, s, m, &c, now),
        None => forward::stateless(edge, s, m, &c, now),
    })
}

/// The stages up to the route decision: everything that reads the request
/// and has no effect but its verdict — also how a transaction reads its
/// stored request again.
#[inline(always)]
pub(crate) fn checks<'a>(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'a>,
    from: Flow,
    now: Instant,
) -> Result<Checked<'a>, Outcome> {
    let origin = sanity::origin(edge, s, m, from)?;
    let facts = sanity::facts(edge, s, m, &origin)?;
    // security (hygiene, bans, floods) ran before the parse, in
    // `Worker::step`: see `security.rs`.
    let routes = RouteSet::read(edge, m, &facts);
    local::answer(edge, s, m, &origin, &facts, &routes, now)?;
    let hops = hops::check(edge, s, m, &origin, &facts)?;
    routed(edge, s, m, origin, facts, routes, hops, now)
}

/// The route stage and what the request is then known as: the last of
/// [`checks`], and on its own for `explain`, which reports each stage.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn routed<'a>(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'a>,
    origin: super::checked::Origin<'a>,
    facts: super::checked::Facts<'a>,
    routes: RouteSet<'a>,
    hops: hops::Hops,
    now: Instant,
) -> Result<Checked<'a>, Outcome> {
    let from = origin.from;
    let in_dialog = facts.to_tag.is_some();
    let decided = route::decide(
        edge,
        s,
        m,
        &origin,
        (&routes, &facts.uri),
        in_dialog,
        hops.from_pool,
        now,
    )?;
    // A request from outside is tested for NAT (`nat_test`).
    let nat = match hops.from_pool {
        None => crate::nat::detect_in(edge.nat_tests(), m, &origin.via, from.remote),
        Some(_) => crate::nat::NatTests::default(),
    };
    let mac = edge.keys.signing().tx_mac(
        &origin.via,
        facts.call_id,
        facts.cseq,
        facts.from_tag,
        hops.loop_hash,
    );
    Ok(Checked {
        foreign_hop: decided.foreign_hop,
        outward: decided.outward,
        nat,
        origin,
        facts,
        routes,
        route: decided.route,
        mac,
        loop_hash: hops.loop_hash,
        method: m.method(),
        in_dialog,
        from_pool: hops.from_pool,
    })
}
