//! The selection snapshot: built once per destination set, asked once per
//! request (in the shape of pingora-load-balancing's `select_with`).

use std::fmt;

use super::algorithm::Algorithm;
use super::health_lookup::HealthLookup;
use super::recent::{id_check, RecentPicks};
use super::rendezvous::{draw, id_mix, key_hash, score, tx_seed};
use super::round_robin::RoundRobin;
use super::target::Target;
use super::tiers::{tier_of, Tiers, GROUPS};

/// What the caller extracted from the request for dispatch. The selector
/// does no SIP parsing.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The bytes a hash algorithm hashes (Call-ID, From URI, To URI,
    /// Request-URI or digest username, per the algorithm); `None` when the
    /// request lacks them. Then `hash-auth-username` falls back to weighted
    /// round-robin, and the other hash algorithms to the pure pick seeded
    /// from `tx_key` (still a function of the request, DESIGN principle 2).
    pub hash_key: Option<&'a [u8]>,
    /// A REGISTER's address of record, as a key (a hash of its To URI's
    /// user and host): registrations of one AOR go to one registrar,
    /// whatever the hashing or spreading algorithm, so that its bindings
    /// are not spread over the pool (weighted rendezvous over it: the
    /// same server on every node, and only its AORs move when the pool
    /// changes).
    pub aor: Option<u64>,
    /// Hash of the transaction identity: identical for an INVITE, its
    /// retransmissions, its CANCEL and the ACK of a non-2xx response. Seeds
    /// `random` and `least-latency` and keys the recent-picks memo.
    pub tx_key: u64,
    /// True for CANCEL and the ACK of a non-2xx response: they must reach
    /// wherever the INVITE went, so they never start a new round-robin turn.
    pub follow_up: bool,
    /// Monotonic seconds, for memo expiry.
    pub now_secs: u64,
}

/// Per-worker mutable dispatch state of one edge: the round-robin position
/// of each tier and the recent-picks memo. Owned by one worker thread, so no
/// locks or atomics; only the algorithms that remember picks (weighted
/// round-robin, hash-auth-username and least-latency) touch it.
#[derive(Clone)]
pub struct WorkerState {
    rr: [RoundRobin; GROUPS],
    recent: RecentPicks,
}

impl WorkerState {
    /// State usable with any algorithm; allocates the fixed memo table
    /// (96 KiB) once, here, never in `select`.
    pub fn new() -> Self {
        WorkerState {
            rr: Default::default(),
            recent: RecentPicks::new(),
        }
    }

    /// State sized for `algorithm`: without the memo table when the
    /// algorithm never needs it, which saves its memory on every worker of
    /// every edge that hashes. Build it again when the edge's algorithm
    /// changes: a stateful algorithm run with this memo-less state still
    /// works, but retransmissions then restart the round-robin.
    pub fn for_algorithm(algorithm: Algorithm) -> Self {
        let stateful = matches!(
            algorithm,
            Algorithm::WeightedRoundRobin | Algorithm::HashAuthUsername | Algorithm::LeastLatency
        );
        WorkerState {
            rr: Default::default(),
            recent: if stateful {
                RecentPicks::new()
            } else {
                RecentPicks::disabled()
            },
        }
    }

    /// Bytes and address of the memo table, to show it never grows.
    #[cfg(test)]
    pub(crate) fn memo_footprint(&self) -> (usize, *const u8) {
        self.recent.footprint()
    }
}

impl Default for WorkerState {
    fn default() -> Self {
        WorkerState::new()
    }
}

impl fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The memo is thousands of slots; its contents help nobody in a log.
        f.debug_struct("WorkerState")
            .field("rr", &self.rr)
            .finish_non_exhaustive()
    }
}

/// What selection needs of one target, in the order of the caller's slice.
#[derive(Clone, Copy, Debug)]
struct Entry {
    id: u64,
    id_mix: u64,
    weight: u32,
    /// 1-based tier for this node, `None` when its zone may not use it.
    tier: Option<u8>,
}

/// How one request is decided, from the algorithm and what the request has.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Weighted rendezvous over this 64-bit key (pure).
    Rendezvous(u64),
    /// Weighted rendezvous over this key with every weight scaled by the
    /// health view's speed factor, behind the recent-picks memo
    /// (least-latency).
    Scaled(u64),
    /// Lowest priority value, config order on ties (pure).
    First,
    /// Weighted round-robin with the recent-picks memo (stateful).
    RoundRobin,
}

/// An immutable selection snapshot of one edge's destinations as seen from
/// this node's zone. Built when the destination set changes, shared by all
/// workers (it is `Send + Sync`); health comes in per call as a
/// [`HealthLookup`], so a health flip does not need a rebuild.
///
/// # Stateless determinism and its one compromise
///
/// DESIGN principle 2 asks that an INVITE, its retransmissions, its CANCEL
/// and its non-2xx ACK reach the same destination from any instance. The
/// hash algorithms, `random` (weighted rendezvous over the transaction key)
/// and `first` are pure functions of the request and the health view, so
/// they do. Weighted round-robin cannot be: its pick depends on how many
/// requests came before. It therefore remembers each pick in the worker's
/// fixed-size memo for Timer B (32 s); a retransmission, CANCEL or ACK that
/// finds its entry goes where the INVITE went. A CANCEL or ACK that misses
/// (it reached another worker or instance, or its slot was reused under
/// heavy load) falls back to the pure pick seeded from the transaction key,
/// without advancing the round-robin — the same destination every instance
/// would choose, but not necessarily the INVITE's. A retransmitted INVITE
/// that misses starts a new turn. Deployments that need strict stickiness
/// across instances should use `random` or a hash algorithm.
///
/// `least-latency` is pure for a fixed health view (weighted rendezvous over
/// the transaction key), but its weights move as latencies are measured, so
/// between an INVITE and its CANCEL the pure pick may change. It therefore
/// remembers its picks like weighted round-robin; a follow-up that misses the
/// memo takes the pure pick under the current scales, which is the INVITE's
/// unless a scale changed in between.
#[derive(Clone, Debug)]
pub struct Selector {
    algorithm: Algorithm,
    entries: Box<[Entry]>,
    tiers: Tiers,
    /// All weights equal: rendezvous compares raw draws, which is exact and
    /// skips the logarithm (same order as the weighted score).
    equal_weights: bool,
}

impl Selector {
    /// Builds the snapshot for `targets` as a node of `node_zone` sees them:
    /// destinations its zone may not use are dropped, the rest are grouped
    /// into tiers (see DESIGN.md, "Zones").
    pub fn new(algorithm: Algorithm, targets: &[Target], node_zone: Option<&str>) -> Selector {
        let entries: Box<[Entry]> = targets
            .iter()
            .map(|t| Entry {
                id: t.id,
                id_mix: id_mix(t.id),
                weight: t.weight.max(1),
                tier: tier_of(t, node_zone).and_then(|tier| u8::try_from(tier + 1).ok()),
            })
            .collect();
        let equal_weights = entries.windows(2).all(|w| w[0].weight == w[1].weight);
        Selector {
            algorithm,
            tiers: Tiers::new(targets, node_zone, algorithm == Algorithm::First),
            entries,
            equal_weights,
        }
    }

    /// The algorithm this snapshot applies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Destination `i`'s tier for this node: 1 (the node's own zone, or no
    /// zone on either side), 2 (its `backup_zones` name the node's zone), 3
    /// (any other zone), or `None` when its `limit_zones` exclude this node
    /// (or `i` is out of range). Every algorithm uses tier 2 only when tier 1
    /// has nothing usable, and so on; the value is here for those who show
    /// or reason about that order (admin API, "is this edge routable").
    pub fn tier(&self, i: usize) -> Option<u8> {
        self.entries.get(i).and_then(|e| e.tier)
    }

    /// The destination for this request: an index into the `targets` slice
    /// given to [`Selector::new`], from the first tier with a destination
    /// `health` calls usable, or `None` if no tier has one. Allocates
    /// nothing.
    pub fn select(
        &self,
        input: &Input<'_>,
        state: &mut WorkerState,
        health: &dyn HealthLookup,
    ) -> Option<usize> {
        if self.algorithm == Algorithm::HashAuthUsername && input.aor.is_none() {
            return self.auth_username(input, state, health);
        }
        self.select_in(self.mode(input), input, state, health)
    }

    /// hash-auth-username: the CANCEL and the ACK of a non-2xx answer carry
    /// no credentials, so the username hash cannot place them; the INVITE's
    /// pick, whichever way it was made, is remembered for them.
    fn auth_username(
        &self,
        input: &Input<'_>,
        state: &mut WorkerState,
        health: &dyn HealthLookup,
    ) -> Option<usize> {
        match input.hash_key {
            Some(k) if !input.follow_up => {
                let picked = self.rendezvous(key_hash(k), health);
                if let Some(i) = picked {
                    state
                        .recent
                        .put(input.tx_key, i, self.entries[i].id, input.now_secs);
                }
                picked
            }
            _ => self.round_robin(input, state, health),
        }
    }

    /// Destinations in preference order, for serial failover: clears `out`
    /// and fills it with at most `max` indices, skipping those `health`
    /// calls unusable — tier 1 candidates first, then tier 2, then tier 3
    /// (within a tier, servers of a DNS name by SRV priority).
    ///
    /// Call it instead of [`Selector::select`], once per request: its first
    /// element, and its effect on `state`, are exactly those of `select`
    /// (one round-robin step, one memo entry). The rest do not advance
    /// anything: hash algorithms, `random` and `least-latency` order by
    /// score, `first` by priority, round-robin in turn order from the
    /// current position.
    ///
    /// To skip destinations already tried as well, wrap the health view in
    /// a lookup that forwards its `scale`: a bare predicate has scale 1.0,
    /// which would rank `least-latency` candidates by weight alone.
    pub fn ranked(
        &self,
        input: &Input<'_>,
        state: &mut WorkerState,
        max: usize,
        health: &dyn HealthLookup,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        if max == 0 {
            return;
        }
        let mode = self.mode(input);
        let Some(first) = self.select_in(mode, input, state, health) else {
            return;
        };
        out.push(first);
        for (group, list) in self.tiers.lists.iter().enumerate() {
            let start = out.len();
            if start >= max {
                break;
            }
            let room = max - start;
            let others = |&i: &usize| i != first && health.usable(i);
            match mode {
                Mode::Rendezvous(key) => {
                    out.extend(list.iter().copied().filter(others));
                    by_descending_score(&mut out[start..], |i| self.score_of(key, i));
                    out.truncate(max);
                }
                Mode::Scaled(key) => {
                    out.extend(list.iter().copied().filter(others));
                    by_descending_score(&mut out[start..], |i| {
                        self.scaled_score_of(key, i, health)
                    });
                    out.truncate(max);
                }
                Mode::First => out.extend(list.iter().copied().filter(others).take(room)),
                Mode::RoundRobin => {
                    let n = list.len();
                    let from = match state.rr[group].pos {
                        pos if pos < n => pos,
                        _ => 0,
                    };
                    let turn = (0..n).map(|k| list[(from + k) % n]);
                    out.extend(turn.filter(others).take(room));
                }
            }
        }
    }

    /// The destinations a transactional edge tries in turn for one request
    /// (serial failover), into `out`, at most `max` of them: first up to
    /// `per_tier[0]` of tier 1 in [`ranked`](Self::ranked) order, then up to
    /// `per_tier[1]` of tier 2, then tier 3 — and after those, whatever
    /// usable destinations the limits held back, so a call is never failed
    /// while a usable destination is left untried. The limits say how many
    /// are tried *before moving on* to the next tier (DESIGN.md, "Zones":
    /// `primary_attempts` and `secondary_attempts`), not how many in all.
    pub fn attempts(
        &self,
        input: &Input<'_>,
        state: &mut WorkerState,
        per_tier: [usize; 2],
        max: usize,
        health: &dyn HealthLookup,
        out: &mut Vec<usize>,
    ) {
        self.ranked(input, state, self.entries.len(), health, out);
        // Stable partition in place: within the limits first, the held-back
        // rest after, each in ranked order.
        let mut taken = [0usize; 2];
        let mut held_back = Vec::new();
        let mut kept = 0;
        for r in 0..out.len() {
            let i = out[r];
            let keep = match self.entries[i].tier {
                Some(t @ (1 | 2)) => {
                    let t = usize::from(t - 1);
                    taken[t] += 1;
                    taken[t] <= per_tier[t]
                }
                _ => true,
            };
            if keep {
                out[kept] = i;
                kept += 1;
            } else {
                held_back.push(i);
            }
        }
        out.truncate(kept);
        out.extend_from_slice(&held_back);
        out.truncate(max);
    }

    fn mode(&self, input: &Input<'_>) -> Mode {
        if let Some(aor) = input.aor {
            return Mode::Rendezvous(aor);
        }
        let pure_tx = || Mode::Rendezvous(tx_seed(input.tx_key));
        match self.algorithm {
            Algorithm::HashCallId
            | Algorithm::HashFromUri
            | Algorithm::HashToUri
            | Algorithm::HashRequestUri => input
                .hash_key
                .map_or_else(pure_tx, |k| Mode::Rendezvous(key_hash(k))),
            Algorithm::HashAuthUsername => input
                .hash_key
                .map_or(Mode::RoundRobin, |k| Mode::Rendezvous(key_hash(k))),
            Algorithm::WeightedRoundRobin => Mode::RoundRobin,
            Algorithm::Random => pure_tx(),
            Algorithm::First => Mode::First,
            Algorithm::LeastLatency => Mode::Scaled(tx_seed(input.tx_key)),
        }
    }

    fn select_in(
        &self,
        mode: Mode,
        input: &Input<'_>,
        state: &mut WorkerState,
        health: &dyn HealthLookup,
    ) -> Option<usize> {
        match mode {
            Mode::Rendezvous(key) => self.rendezvous(key, health),
            Mode::Scaled(key) => self.least_latency(key, input, state, health),
            Mode::First => self
                .tiers
                .lists
                .iter()
                .find_map(|list| list.iter().copied().find(|&i| health.usable(i))),
            Mode::RoundRobin => self.round_robin(input, state, health),
        }
    }

    /// Weighted rendezvous with the configured weights, tier by tier.
    fn rendezvous(&self, key: u64, health: &dyn HealthLookup) -> Option<usize> {
        self.best(health, |i| self.score_of(key, i))
    }

    /// The usable target of the first tier that has one with the highest
    /// `score`; ties go to the lower index. Generic over the score so each
    /// caller's loop is compiled with its own scoring inlined.
    #[inline]
    fn best(&self, health: &dyn HealthLookup, score: impl Fn(usize) -> f64) -> Option<usize> {
        self.tiers.lists.iter().find_map(|list| {
            let mut best: Option<(f64, usize)> = None;
            for &i in list.iter().filter(|&&i| health.usable(i)) {
                let s = score(i);
                // Strictly greater: on a tie the earlier (lower) index stays.
                if !matches!(best, Some((b, _)) if s <= b) {
                    best = Some((s, i));
                }
            }
            best.map(|(_, i)| i)
        })
    }

    /// Target `i`'s rendezvous score for `key`. With equal weights the
    /// truncated draw itself (exact in an f64: it has 53 bits), which orders
    /// targets exactly as the weighted score would.
    #[inline]
    fn score_of(&self, key: u64, i: usize) -> f64 {
        let entry = &self.entries[i];
        let d = draw(key, entry.id_mix);
        if self.equal_weights {
            (d >> 11) as f64
        } else {
            score(d, f64::from(entry.weight))
        }
    }

    /// Target `i`'s least-latency score for `key`: the weighted score with
    /// weight `weight × scale(i)`. Always the full score, since the scales
    /// make the weights unequal whatever the configuration says.
    #[inline]
    fn scaled_score_of(&self, key: u64, i: usize, health: &dyn HealthLookup) -> f64 {
        let entry = &self.entries[i];
        let weight = f64::from(entry.weight) * sane_scale(health.scale(i));
        score(draw(key, entry.id_mix), weight)
    }

    /// The pick remembered for this transaction, if the memo holds one, the
    /// target at its index is still the one remembered, and it is usable.
    fn recall(
        &self,
        input: &Input<'_>,
        state: &WorkerState,
        health: &dyn HealthLookup,
    ) -> Option<usize> {
        let recalled = state.recent.get(input.tx_key, input.now_secs)?;
        let same_target = self
            .entries
            .get(recalled.index)
            .is_some_and(|e| id_check(e.id) == recalled.id_check);
        (same_target && health.usable(recalled.index)).then_some(recalled.index)
    }

    /// least-latency: the remembered pick of this transaction, else weighted
    /// rendezvous over `key` with scaled weights, remembered for the
    /// transaction's retransmissions and follow-ups (see the type's
    /// documentation for why).
    fn least_latency(
        &self,
        key: u64,
        input: &Input<'_>,
        state: &mut WorkerState,
        health: &dyn HealthLookup,
    ) -> Option<usize> {
        if let Some(i) = self.recall(input, state, health) {
            return Some(i);
        }
        let picked = self.best(health, |i| self.scaled_score_of(key, i, health));
        if let (Some(i), false) = (picked, input.follow_up) {
            state
                .recent
                .put(input.tx_key, i, self.entries[i].id, input.now_secs);
        }
        picked
    }

    /// Weighted round-robin behind the recent-picks memo (see the type's
    /// documentation for the trade-off).
    fn round_robin(
        &self,
        input: &Input<'_>,
        state: &mut WorkerState,
        health: &dyn HealthLookup,
    ) -> Option<usize> {
        if let Some(i) = self.recall(input, state, health) {
            return Some(i);
        }
        if input.follow_up {
            return self.rendezvous(tx_seed(input.tx_key), health);
        }
        let entries = &self.entries;
        let picked = self
            .tiers
            .lists
            .iter()
            .zip(state.rr.iter_mut())
            .find_map(|(list, rr)| rr.pick(list, |i| entries[i].weight, health));
        if let Some(i) = picked {
            state
                .recent
                .put(input.tx_key, i, entries[i].id, input.now_secs);
        }
        picked
    }
}

/// Sorts `candidates` best score first, ties by lower index, so failover
/// order is deterministic.
fn by_descending_score(candidates: &mut [usize], score: impl Fn(usize) -> f64) {
    candidates.sort_unstable_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
}

/// The smallest speed factor least-latency applies: a destination a million
/// times slower than the fastest still gets a trickle, never exactly none.
const MIN_SCALE: f64 = 1e-6;

/// A health view's scale made safe to weigh with: the view promises
/// (0, 1], anything else is clamped into [`MIN_SCALE`, 1] and NaN counts as
/// 1.0 (unmeasured), so a bad value can neither starve a usable destination
/// completely nor win every key.
#[inline]
fn sane_scale(scale: f64) -> f64 {
    if scale.is_nan() {
        1.0
    } else {
        scale.clamp(MIN_SCALE, 1.0)
    }
}
