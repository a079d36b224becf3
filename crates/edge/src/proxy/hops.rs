//! The hop checks of RFC 3261 §16.3: Max-Forwards (step 3, 483 at zero)
//! and loop detection (step 4, 482): a request carrying one of this
//! edge's Vias with its own loop hash has been here before.

use super::checked::{Facts, Origin};
use super::reply::reply;
use super::{Edge, Outcome, Scratch};
use crate::branch::{self, loop_hash, parse_branch, Side};
use sip::{HeaderName, Message, NameAddr, Via};

/// What the hop checks learned: which side the request came from (a
/// destination of the pool, or the outside) and its loop hash.
pub(crate) struct Hops {
    pub from_pool: Option<usize>,
    pub loop_hash: u32,
}

/// `Err` with the 483 or 482 of a request that ran out of hops or looped.
#[inline(always)]
pub(crate) fn check(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    origin: &Origin<'_>,
    facts: &Facts<'_>,
) -> Result<Hops, Outcome> {
    if facts.max_forwards == Some(0) {
        return Err(reply(edge, s, m, origin, 483, "Too Many Hops", &[]));
    }
    // The loop hash covers the side the request came from and its Route
    // set: a pool server sending a call back out is a spiral, not a loop.
    let from_pool = edge.destination_of(&origin.from);
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
        facts.from_tag,
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
                return Err(reply(edge, s, m, origin, 482, "Loop Detected", &[]));
            }
        }
    }
    Ok(Hops {
        from_pool,
        loop_hash: lh,
    })
}
