//! The local stage: requests the edge answers or ends itself instead of
//! forwarding — OPTIONS pings addressed to it (`ping-replies`), and the
//! ACK of an answer it gave itself (the pool never saw that INVITE, RFC
//! 3261 §17.2.1) — and REGISTERs to the built-in registrar
//! (`super::registrar`).

use super::checked::{Facts, NextHop, Origin, RouteSet};
use super::reply::{is_local_tag, reply};
use super::{Edge, Outcome, Scratch};
use crate::stats::Event;
use sip::{Message, Method};

/// What the edge itself supports, for the answer to an OPTIONS ping.
const ALLOW: &[u8] = b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

/// `Err` with the answer (or the drop) of a request the edge handles
/// itself; `Ok` for everything else.
#[inline(always)]
pub(crate) fn answer(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    origin: &Origin<'_>,
    facts: &Facts<'_>,
    routes: &RouteSet<'_>,
    now: std::time::Instant,
) -> Result<(), Outcome> {
    let method = m.method();
    let own_answer = |t| is_local_tag(facts.call_id, facts.from_tag, facts.cseq, t);
    if method == Method::Ack && facts.to_tag.is_some_and(own_answer) {
        return Err(Outcome::Drop(Event::Absorbed));
    }
    super::registrar::answer(edge, s, m, origin, facts, routes, now)?;
    let in_dialog = facts.to_tag.is_some();
    if edge.ping_replies && method == Method::Options && routes.next == NextHop::Here && !in_dialog
    {
        return Err(reply(
            edge,
            s,
            m,
            origin,
            200,
            "OK",
            &[
                ("Allow", ALLOW),
                ("Accept", b"application/sdp"),
                ("Supported", b""),
            ],
        ));
    }
    Ok(())
}
