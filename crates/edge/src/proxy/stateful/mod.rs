//! The transactional edge (`insertion = "transactional"`): it keeps each
//! request's transactions for their few seconds of life so it can answer
//! retransmissions itself, try the next destination when one fails or does
//! not answer (serial failover, RFC 3261 §16.6–§16.7), and handle CANCEL
//! (§16.10).
//!
//! Statelessness is kept wherever no transaction is needed: an ACK of a
//! 2xx, a response or CANCEL that matches nothing here (it belongs to a
//! transaction another instance of an anycast cluster holds, or one that
//! has ended) take the stateless path — signed branch, pure dispatch — so
//! they still reach the right place.
//!
//! Entry points: [`request`] and [`response`] for the worker that received
//! a message, [`poll`] for the timer thread. All of them write what to send
//! into the worker's [`Sends`](super::Sends).

mod best;
mod context;
mod messages;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use self::context::{Context, Hop};
use self::table::{key, Shard, Table};
use super::capacity;
use super::checked::{Checked, Route};
use super::forward::{self, no_destination};
use super::reply;
use super::route::dispatch_input;
use super::{Edge, Outcome, Scratch};
use crate::branch::{parse_branch, MAX_ATTEMPTS};
use crate::config;
use crate::dispatch::HealthLookup;
use crate::limits::Full;
use crate::stats::Event;
use sip::{HeaderName, Message, Method, Via};

/// The largest request kept for a transaction: bigger ones are forwarded
/// statelessly, which bounds the memory of a full table.
const MAX_STORED: usize = 16 * 1024;

/// The transactional part of one edge: the transactions, shared by its
/// workers and its timer task and kept across reloads (so transactions in
/// flight finish), and the configuration they run by, which a reload
/// replaces.
pub struct Stateful {
    kept: Arc<Kept>,
    cfg: config::Transaction,
    /// Destinations tried before moving on, per tier (1 and 2).
    per_tier: [usize; 2],
    /// Contexts allowed per table shard (`max_transactions`).
    per_shard: usize,
}

/// What outlives a snapshot: the transactions themselves.
struct Kept {
    table: Table,
    /// Requests forwarded statelessly for want of room (table full, or too
    /// large to keep): the one sign that the edge is not as transactional
    /// as configured. Touched only on that path.
    untracked: AtomicU64,
}

impl std::fmt::Debug for Stateful {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stateful")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Stateful {
    /// Destinations tried before moving on, in tiers 1 and 2
    /// (`primary_attempts`, `secondary_attempts`).
    pub(crate) fn per_tier(&self) -> [usize; 2] {
        self.per_tier
    }

    /// The state of a transactional `[[edge]]`: the transactions of
    /// `previous` (the snapshot it replaces on a reload), or none yet.
    pub fn new(edge: &config::Edge, previous: Option<&Stateful>) -> Stateful {
        Stateful {
            kept: previous.map_or_else(
                || {
                    Arc::new(Kept {
                        table: Table::new(),
                        untracked: AtomicU64::new(0),
                    })
                },
                |p| Arc::clone(&p.kept),
            ),
            cfg: edge.transaction.clone(),
            per_tier: [
                edge.primary_attempts as usize,
                edge.secondary_attempts as usize,
            ],
            per_shard: table::per_shard(edge.transaction.max_transactions),
        }
    }

    /// Transactions held now.
    pub fn len(&self) -> usize {
        self.kept.table.len()
    }

    /// Requests forwarded statelessly so far because no transaction could
    /// be kept for them (`max_transactions` reached, or over 16 KiB).
    pub fn untracked(&self) -> u64 {
        self.kept.untracked.load(Ordering::Relaxed)
    }

    /// True when no transaction is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long the timer thread may sleep: its resolution. A fiftieth of
    /// T1 (10 ms at the default), never under 1 ms.
    pub fn tick(&self) -> std::time::Duration {
        (self.cfg.timers.t1 / 50).max(std::time::Duration::from_millis(1))
    }
}

/// What a context's handlers work with.
pub(super) struct Env<'e, 's, 'w> {
    pub edge: &'e Edge,
    pub cfg: &'e config::Transaction,
    pub s: &'s mut Scratch<'w>,
    pub now: Instant,
}

/// The outcome of a step that queued its sends (or had none).
fn queued(s: &Scratch<'_>) -> Outcome {
    if s.sends.is_empty() {
        Outcome::Drop(Event::Absorbed)
    } else {
        Outcome::Queued
    }
}

/// Moves a single-datagram outcome (a local reply) into the send queue.
fn enqueue(s: &mut Scratch<'_>, o: Outcome) -> Outcome {
    match o {
        Outcome::Send(to) => {
            s.sends.push(s.out, to);
            Outcome::Queued
        }
        other => other,
    }
}

/// A new transaction's place in the table, held (locked) from the
/// transaction stage until the send stage has started the transaction, so
/// that a retransmission handled by another worker meanwhile finds it.
pub(crate) struct Held<'t> {
    st: &'t Stateful,
    shard: MutexGuard<'t, Shard>,
    k: u64,
}

/// The transaction stage: a retransmission is absorbed (the transaction
/// answers it), a CANCEL or ACK of a transaction held here goes to it.
/// `Ok(Some)` for a new transaction, `Ok(None)` for a request forwarded
/// without one (the ACK of a 2xx, an ACK or CANCEL of a transaction held
/// elsewhere, §16.10: "MUST statelessly forward the CANCEL").
pub(crate) fn transaction<'t>(
    edge: &Edge,
    st: &'t Stateful,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    now: Instant,
) -> Result<Option<Held<'t>>, Outcome> {
    let mut env = Env {
        edge,
        cfg: &st.cfg,
        s,
        now,
    };
    if matches!(c.method, Method::Ack | Method::Cancel) {
        let k = key(c.mac, true);
        let mut shard = st.kept.table.shard(k);
        if let Some(ctx) = shard.get_mut(k, c.mac) {
            if c.method == Method::Ack {
                if ctx.on_ack(&env) {
                    shard.settle(k);
                    return Err(Outcome::Drop(Event::Absorbed));
                }
            } else {
                // §16.10: a matching CANCEL is answered 200 at once and
                // cancels the pending branches.
                let ok = reply::reply(edge, env.s, m, &c.origin, 200, "OK", &[]);
                enqueue(env.s, ok);
                ctx.on_cancel(&mut env);
                shard.settle(k);
                return Err(queued(env.s));
            }
        }
        return Ok(None);
    }
    let k = key(c.mac, c.method == Method::Invite);
    let mut shard = st.kept.table.shard(k);
    if let Some(ctx) = shard.get_mut(k, c.mac) {
        ctx.on_retransmission(&mut env);
        shard.settle(k);
        env.s.stats.count(Event::Retransmission);
        return Err(queued(env.s));
    }
    Ok(Some(Held { st, shard, k }))
}

/// The send stage of a transactional edge: the request goes to the
/// destinations of its plan in turn, through a transaction that
/// retransmits and fails over — or statelessly when the table is full or
/// the request too large to keep.
pub(crate) fn start(
    edge: &Edge,
    held: Held<'_>,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    now: Instant,
) -> Outcome {
    let Held { st, mut shard, k } = held;
    if shard.len() >= st.per_shard || m.end() > MAX_STORED {
        drop(shard);
        s.stats.count(Event::Untracked);
        st.kept.untracked.fetch_add(1, Ordering::Relaxed);
        return forward::stateless(edge, s, m, c, now);
    }
    let new_call = capacity::is_new_call(c);
    let mut env = Env {
        edge,
        cfg: &st.cfg,
        s,
        now,
    };
    let plan: Vec<Hop> = match c.route {
        // The pipeline sends these without a transaction.
        Route::Reach => return forward::stateless(edge, env.s, m, c, now),
        Route::To(to, dest) => vec![Hop {
            to,
            dest: dest.map(|i| edge.dest_ref(i)),
        }],
        Route::Named => {
            if let Err(o) = super::route::named(edge, env.s, m, c) {
                return o;
            }
            env.s
                .tries
                .iter()
                .map(|&(transport, addr)| Hop {
                    to: super::checked::Hop { transport, addr },
                    dest: None,
                })
                .collect()
        }
        Route::Dispatch { follow_up } => {
            let input = dispatch_input(edge, m, c, follow_up, edge.secs(now));
            let mut picks = Vec::new();
            let room = capacity::WithRoom { edge, now };
            let limited = new_call && edge.limits.limits_destinations();
            let health: &dyn HealthLookup = if limited { &room } else { &*edge.health };
            edge.selector.attempts(
                &input,
                env.s.dispatch,
                st.per_tier,
                MAX_ATTEMPTS,
                health,
                &mut picks,
            );
            if picks.is_empty()
                && limited
                && edge
                    .selector
                    .select(&input, env.s.dispatch, &*edge.health)
                    .is_some()
            {
                return capacity::beyond(edge, env.s, m, c, Full::Destinations);
            }
            picks
                .into_iter()
                .map(|i| Hop {
                    to: edge.destinations[i].hop(),
                    dest: Some(edge.dest_ref(i)),
                })
                .collect()
        }
    };
    if plan.is_empty() {
        return no_destination(edge, env.s, m, &c.origin);
    }
    // One next hop: nothing to fail over to, so it waits for Timer B or F.
    let fixed = plan.len() == 1 && !matches!(c.route, Route::Dispatch { .. });
    let ctx = Context::start(&mut env, m, c, plan, fixed, new_call);
    shard.insert(k, ctx);
    queued(env.s)
}

/// Handles one parsed response on a transactional edge; `None` when no
/// transaction here matches it (the caller then forwards it statelessly).
pub(super) fn response(
    edge: &Edge,
    st: &Stateful,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    now: Instant,
) -> Option<Outcome> {
    let top = m.elements(HeaderName::Via).next()?;
    let via = Via::parse(top.text).ok()?;
    if !edge.locals.iter().any(|l| l.is(&via.host, via.port)) {
        return None;
    }
    let branch = via.branch.and_then(parse_branch)?;
    let cseq = m.cseq().ok()?;
    let method = Method::from_bytes(cseq.method);
    let to_cancel = method == Method::Cancel;
    // The branch names its transaction; a changed loop hash or attempt
    // digit names none here (and then fails the stateless check too).
    // Under the key the request was signed with: the current one, or a
    // previous one for a transaction begun before the secret was rotated
    // (attempt 0's MAC is the same under every key).
    let invite = matches!(method, Method::Invite | Method::Cancel);
    let keys = edge.keys.verifying();
    let keys = if branch.attempt == 0 {
        &keys[..1]
    } else {
        keys
    };
    let (k, mut shard) = keys.iter().find_map(|signer| {
        let mac = signer.tx_mac_of(&branch);
        let k = key(mac, invite);
        let mut shard = st.kept.table.shard(k);
        let found = shard
            .get_mut(k, mac)
            .is_some_and(|c| c.loop_hash == branch.loop_hash);
        found.then_some((k, shard))
    })?;
    let ctx = shard.by_key(k)?;
    let mut env = Env {
        edge,
        cfg: &st.cfg,
        s,
        now,
    };
    if !ctx.on_response(&mut env, usize::from(branch.attempt), m, to_cancel) {
        return None;
    }
    shard.settle(k);
    Some(queued(env.s))
}

/// Runs every transaction timer due at `now`; returns how many contexts
/// had work.
pub(super) fn poll(edge: &Edge, st: &Stateful, s: &mut Scratch<'_>, now: Instant) -> usize {
    let mut env = Env {
        edge,
        cfg: &st.cfg,
        s,
        now,
    };
    let mut n = 0;
    for i in 0..st.kept.table.shard_count() {
        let mut shard = st.kept.table.shard_at(i);
        if shard.next_due().is_none_or(|t| t > now) {
            continue;
        }
        while let Some(k) = shard.pop_due(now) {
            if let Some(ctx) = shard.by_key(k) {
                if ctx.next_deadline().is_some_and(|t| t <= now) {
                    ctx.on_timer(&mut env);
                    n += 1;
                }
            }
            shard.settle(k);
        }
    }
    n
}

#[cfg(test)]
mod tests;
