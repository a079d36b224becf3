//! What the forwarding workers read about destination health, and what they
//! count for passive suspicion — shared without locks on the hot path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::dispatch::HealthLookup;
use crate::stats::{bump, class_of, Board, CLASSES};
use sip::Method;

/// Per-edge health shared by the prober (the one writer) and the workers
/// (readers): whether each destination may be used and its least-latency
/// speed factor. Plain relaxed atomics: a worker seeing a change one packet
/// late is harmless, and reading costs no more than a plain load.
#[derive(Debug)]
pub struct HealthView {
    usable: Box<[AtomicBool]>,
    /// `f64` bits of the speed factor, in (0, 1].
    scale: Box<[AtomicU64]>,
    /// Every worker's counters, summed by [`HealthView::totals`].
    workers: Mutex<Vec<Arc<Counters>>>,
    /// What the view this one replaced on a reload had counted, per
    /// destination: totals carry on from there.
    base: Box<[DestTotals]>,
    /// The edge's own counts per worker; the same board for every view of
    /// the edge, so they outlive reloads.
    board: Arc<Board>,
}

impl HealthView {
    /// A view of `destinations` destinations, all usable at scale 1.0: a
    /// destination is trusted until a probe says otherwise.
    pub fn new(destinations: usize) -> HealthView {
        HealthView {
            usable: (0..destinations).map(|_| AtomicBool::new(true)).collect(),
            scale: (0..destinations)
                .map(|_| AtomicU64::new(1.0f64.to_bits()))
                .collect(),
            workers: Mutex::new(Vec::new()),
            base: vec![DestTotals::default(); destinations].into(),
            board: Arc::default(),
        }
    }

    /// The view that replaces `old` on a reload: new destination `i` keeps
    /// the usable flag, speed and totals of `old`'s destination
    /// `carried[i]` (the same URI); a new destination starts as in
    /// [`new`](Self::new). What `old`'s workers count after this is not
    /// carried: the shards move to the new view within a batch.
    pub fn carried(old: &HealthView, carried: &[Option<usize>]) -> HealthView {
        let totals = old.totals();
        let view = HealthView::new(carried.len());
        let mut base = vec![DestTotals::default(); carried.len()];
        for (i, j) in carried.iter().enumerate() {
            if let Some(j) = *j {
                view.set_usable(i, old.usable(j));
                view.set_scale(i, old.scale(j));
                base[i] = totals.get(j).copied().unwrap_or_default();
            }
        }
        HealthView {
            base: base.into(),
            board: Arc::clone(&old.board),
            ..view
        }
    }

    /// A copy of this view's states (usable, speed) with counts of its
    /// own: what runs on it shows nowhere else (`explain`'s shadow edge).
    pub fn detached(&self) -> HealthView {
        let view = HealthView::new(self.len());
        for i in 0..self.len() {
            view.set_usable(i, self.usable(i));
            view.set_scale(i, self.scale(i));
        }
        view
    }

    /// Whether destination `i` may get new requests; `false` for an index
    /// out of range, so a stale index can never be chosen.
    #[inline]
    pub fn usable(&self, i: usize) -> bool {
        self.usable.get(i).is_some_and(|u| u.load(Relaxed))
    }

    /// Marks destination `i` usable or not (the prober, after a state change).
    pub fn set_usable(&self, i: usize, usable: bool) {
        if let Some(u) = self.usable.get(i) {
            u.store(usable, Relaxed);
        }
    }

    /// Destination `i`'s least-latency speed factor in (0, 1]: 1.0 for the
    /// fastest destination and for one not measured yet (or out of range).
    #[inline]
    pub fn scale(&self, i: usize) -> f64 {
        self.scale
            .get(i)
            .map_or(1.0, |s| f64::from_bits(s.load(Relaxed)))
    }

    /// Sets destination `i`'s speed factor; a value outside (0, 1] (or not a
    /// number) is clamped, so a selector never sees a weight of zero or below.
    pub fn set_scale(&self, i: usize, scale: f64) {
        let scale = if scale > 0.0 { scale.min(1.0) } else { 1.0 };
        if let Some(s) = self.scale.get(i) {
            s.store(scale.to_bits(), Relaxed);
        }
    }

    /// Number of destinations the view covers.
    pub fn len(&self) -> usize {
        self.usable.len()
    }

    /// True when the view covers no destination.
    pub fn is_empty(&self) -> bool {
        self.usable.is_empty()
    }

    /// A new set of counters for one worker, summed into [`totals`](Self::totals)
    /// from now on. Call once per worker when it is created (takes a lock).
    pub fn register(&self) -> Arc<Counters> {
        let counters = Arc::new(Counters::new(self.len()));
        self.lock_workers().push(Arc::clone(&counters));
        counters
    }

    /// The edge's own counts (every worker's [`Stats`](crate::stats::Stats)).
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Per-destination sums over every registered worker, for the passive
    /// check and the admin API. The sums are taken destination by destination
    /// while workers keep counting, so they are a close, not an atomic, snapshot.
    pub fn totals(&self) -> Vec<DestTotals> {
        let mut totals = self.base.to_vec();
        for w in self.lock_workers().iter() {
            for (t, c) in totals.iter_mut().zip(w.per_dest.iter()) {
                t.add(&c.totals());
            }
        }
        totals
    }

    /// The worker list; a panic elsewhere while it was held leaves it intact
    /// (it is only ever pushed to), so a poisoned lock is used as is.
    fn lock_workers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Counters>>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl HealthLookup for HealthView {
    #[inline]
    fn usable(&self, i: usize) -> bool {
        HealthView::usable(self, i)
    }

    #[inline]
    fn scale(&self, i: usize) -> f64 {
        HealthView::scale(self, i)
    }
}

/// One worker's counters for one edge.
///
/// Each has a single writer, the worker thread that registered it, so an
/// increment is a relaxed load and store rather than a contended
/// read-modify-write; each destination's counters fill their own cache line
/// so workers and readers do not false-share. (Were two threads to write
/// one, counts could be lost, never corrupted.)
#[derive(Debug)]
pub struct Counters {
    per_dest: Box<[DestCounter]>,
}

/// The counters of one destination, on cache lines of its own. Requests
/// and replies are counted once, by method and by class; their totals are
/// sums.
#[derive(Debug, Default)]
#[repr(align(64))]
struct DestCounter {
    calls: AtomicU64,
    expecting: AtomicU64,
    bad: AtomicU64,
    /// Final responses that were timeouts of ours, not replies.
    timeouts: AtomicU64,
    methods: [AtomicU64; Method::COUNT],
    classes: [AtomicU64; CLASSES],
}

impl DestCounter {
    fn totals(&self) -> DestTotals {
        let methods: [u64; Method::COUNT] = std::array::from_fn(|i| self.methods[i].load(Relaxed));
        let classes: [u64; CLASSES] = std::array::from_fn(|i| self.classes[i].load(Relaxed));
        let replies: u64 = classes.iter().sum();
        DestTotals {
            calls: self.calls.load(Relaxed),
            requests: methods.iter().sum(),
            expecting: self.expecting.load(Relaxed),
            replies,
            finals: replies - classes[0] + self.timeouts.load(Relaxed),
            bad: self.bad.load(Relaxed),
            methods,
            classes,
        }
    }
}

impl Counters {
    /// Zeroed counters for `destinations` destinations.
    fn new(destinations: usize) -> Counters {
        Counters {
            per_dest: (0..destinations).map(|_| DestCounter::default()).collect(),
        }
    }

    /// Counts a request sent to destination `i`: `new_call` for an initial
    /// INVITE; anything but ACK expects a reply (so silence can be
    /// noticed). An index out of range is ignored.
    #[inline]
    pub fn forwarded(&self, i: usize, method: Method, new_call: bool) {
        let Some(c) = self.per_dest.get(i) else {
            return;
        };
        bump(&c.methods[method as usize]);
        if new_call {
            bump(&c.calls);
        }
        if method != Method::Ack {
            bump(&c.expecting);
        }
    }

    /// Counts a response with status `code` received from destination `i`;
    /// 500, 503 and 408 count as bad (the server is failing, not the call).
    #[inline]
    pub fn answered(&self, i: usize, code: u16) {
        let Some(c) = self.per_dest.get(i) else {
            return;
        };
        bump(&c.classes[class_of(code)]);
        if is_bad(code) {
            bump(&c.bad);
        }
    }
}

impl Counters {
    /// Counts a request to destination `i` that got no final response in
    /// time (a transactional edge gave up on it): a failure like a 408
    /// from the server itself, but not a reply, so silence is still noticed.
    #[inline]
    pub fn timed_out(&self, i: usize) {
        let Some(c) = self.per_dest.get(i) else {
            return;
        };
        bump(&c.timeouts);
        bump(&c.bad);
    }
}

/// The final codes that say a server is in trouble rather than the call:
/// 500 Server Internal Error, 503 Service Unavailable, 408 Request Timeout.
fn is_bad(code: u16) -> bool {
    matches!(code, 500 | 503 | 408)
}

/// One destination's counts summed over every worker since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestTotals {
    /// Initial INVITEs dispatched to it.
    pub calls: u64,
    /// Every request sent to it.
    pub requests: u64,
    /// Requests sent to it that expect a reply (all but ACK).
    pub expecting: u64,
    /// Responses received from it, provisional ones included.
    pub replies: u64,
    /// Final responses (200..=699) received from it.
    pub finals: u64,
    /// Final responses 500, 503 and 408 received from it.
    pub bad: u64,
    /// Requests sent to it, by method (`Method as usize`).
    pub methods: [u64; Method::COUNT],
    /// Responses received from it, by class (0 for 1xx).
    pub classes: [u64; CLASSES],
}

impl DestTotals {
    /// What was counted since `earlier`, field by field; never negative.
    pub fn since(&self, earlier: &DestTotals) -> DestTotals {
        DestTotals {
            calls: self.calls.saturating_sub(earlier.calls),
            requests: self.requests.saturating_sub(earlier.requests),
            expecting: self.expecting.saturating_sub(earlier.expecting),
            replies: self.replies.saturating_sub(earlier.replies),
            finals: self.finals.saturating_sub(earlier.finals),
            bad: self.bad.saturating_sub(earlier.bad),
            methods: std::array::from_fn(|i| self.methods[i].saturating_sub(earlier.methods[i])),
            classes: std::array::from_fn(|i| self.classes[i].saturating_sub(earlier.classes[i])),
        }
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &DestTotals) {
        self.calls += other.calls;
        self.requests += other.requests;
        self.expecting += other.expecting;
        self.replies += other.replies;
        self.finals += other.finals;
        self.bad += other.bad;
        for (a, b) in self.methods.iter_mut().zip(other.methods) {
            *a += b;
        }
        for (a, b) in self.classes.iter_mut().zip(other.classes) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_view_is_all_usable_at_full_scale() {
        let v = HealthView::new(3);
        assert_eq!(v.len(), 3);
        assert!(!v.is_empty());
        for i in 0..3 {
            assert!(v.usable(i));
            assert_eq!(v.scale(i), 1.0);
        }
    }

    #[test]
    fn out_of_range_is_unusable_and_ignored() {
        let v = HealthView::new(2);
        assert!(!v.usable(2));
        assert!(!v.usable(usize::MAX));
        assert_eq!(v.scale(2), 1.0);
        v.set_usable(5, false);
        v.set_scale(5, 0.5);
        assert!(HealthView::new(0).is_empty());
    }

    #[test]
    fn set_usable_and_scale() {
        let v = HealthView::new(2);
        v.set_usable(1, false);
        v.set_scale(0, 0.25);
        assert!(v.usable(0));
        assert!(!v.usable(1));
        assert_eq!(v.scale(0), 0.25);
        assert_eq!(v.scale(1), 1.0);
        v.set_usable(1, true);
        assert!(v.usable(1));
    }

    #[test]
    fn scale_is_clamped_into_zero_one() {
        let v = HealthView::new(1);
        for (given, kept) in [
            (2.0, 1.0),
            (0.0, 1.0),
            (-1.0, 1.0),
            (f64::NAN, 1.0),
            (f64::INFINITY, 1.0),
            (1e-9, 1e-9),
        ] {
            v.set_scale(0, given);
            assert_eq!(v.scale(0), kept, "{given}");
        }
    }

    #[test]
    fn view_answers_the_dispatch_lookup() {
        let v = HealthView::new(2);
        v.set_usable(0, false);
        v.set_scale(1, 0.5);
        let lookup: &dyn HealthLookup = &v;
        assert!(!lookup.usable(0));
        assert!(lookup.usable(1));
        assert_eq!(lookup.scale(1), 0.5);
    }

    #[test]
    fn totals_sum_every_registered_worker() {
        let v = HealthView::new(2);
        let a = v.register();
        let b = v.register();
        a.forwarded(0, Method::Invite, true); // INVITE
        a.forwarded(0, Method::Ack, false); // ACK
        b.forwarded(0, Method::Bye, false); // BYE
        b.forwarded(1, Method::Invite, true);
        a.answered(0, 100);
        a.answered(0, 200);
        b.answered(0, 503);
        b.answered(1, 408);
        b.answered(1, 500);
        b.answered(1, 486);
        let t = v.totals();
        assert_eq!(
            t[0],
            DestTotals {
                calls: 1,
                requests: 3,
                expecting: 2,
                replies: 3,
                finals: 2,
                bad: 1,
                methods: {
                    let mut m = [0; Method::COUNT];
                    m[Method::Invite as usize] = 1;
                    m[Method::Ack as usize] = 1;
                    m[Method::Bye as usize] = 1;
                    m
                },
                classes: [1, 1, 0, 0, 1, 0],
            }
        );
        assert_eq!(
            t[1],
            DestTotals {
                calls: 1,
                requests: 1,
                expecting: 1,
                replies: 3,
                finals: 3,
                bad: 2,
                methods: {
                    let mut m = [0; Method::COUNT];
                    m[Method::Invite as usize] = 1;
                    m
                },
                classes: [0, 0, 0, 2, 1, 0],
            }
        );
    }

    #[test]
    fn counters_ignore_out_of_range_destinations() {
        let v = HealthView::new(1);
        let c = v.register();
        c.forwarded(1, Method::Invite, true);
        c.answered(7, 503);
        assert_eq!(v.totals(), [DestTotals::default()]);
    }

    #[test]
    fn counters_from_many_threads_add_up() {
        let v = Arc::new(HealthView::new(1));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = v.register();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.forwarded(0, Method::Bye, false);
                        c.answered(0, 200);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("worker thread");
        }
        let t = v.totals()[0];
        assert_eq!(
            (t.requests, t.expecting, t.replies, t.finals),
            (4000, 4000, 4000, 4000)
        );
    }

    #[test]
    fn a_carried_view_keeps_state_and_totals_by_destination() {
        let old = HealthView::new(3);
        let w = old.register();
        w.forwarded(2, Method::Invite, true);
        w.answered(2, 200);
        old.set_usable(1, false);
        old.set_scale(2, 0.5);
        // New order: the old third, a new one, the old second.
        let new = HealthView::carried(&old, &[Some(2), None, Some(1)]);
        assert_eq!(new.len(), 3);
        assert!(new.usable(0) && new.usable(1) && !new.usable(2));
        assert_eq!((new.scale(0), new.scale(1)), (0.5, 1.0));
        let t = new.totals();
        assert_eq!((t[0].calls, t[0].finals), (1, 1));
        assert_eq!(t[1], DestTotals::default());
        new.register().forwarded(0, Method::Invite, true);
        assert_eq!(new.totals()[0].calls, 2);
    }

    #[test]
    fn dest_counter_has_cache_lines_of_its_own() {
        assert_eq!(std::mem::align_of::<DestCounter>(), 64);
        assert_eq!(std::mem::size_of::<DestCounter>() % 64, 0);
    }

    #[test]
    fn a_timeout_is_a_bad_final_but_no_reply() {
        let v = HealthView::new(1);
        let c = v.register();
        c.forwarded(0, Method::Invite, true);
        c.timed_out(0);
        let t = v.totals()[0];
        assert_eq!((t.replies, t.finals, t.bad), (0, 1, 1));
        assert_eq!(t.classes, [0; CLASSES]);
    }

    #[test]
    fn a_carried_view_shares_the_edge_board() {
        let old = HealthView::new(1);
        let mut stats = crate::stats::Stats::default();
        old.board().register(stats.tally());
        stats.count(crate::stats::Event::Failover);
        let new = HealthView::carried(&old, &[Some(0)]);
        assert_eq!(new.board().totals().get(crate::stats::Event::Failover), 1);
    }

    #[test]
    fn since_and_add() {
        let a = DestTotals {
            calls: 5,
            requests: 10,
            expecting: 9,
            replies: 20,
            finals: 9,
            bad: 2,
            ..DestTotals::default()
        };
        let b = DestTotals {
            calls: 7,
            requests: 10,
            expecting: 12,
            replies: 25,
            finals: 12,
            bad: 1,
            ..DestTotals::default()
        };
        let d = b.since(&a);
        assert_eq!(
            d,
            DestTotals {
                calls: 2,
                requests: 0,
                expecting: 3,
                replies: 5,
                finals: 3,
                bad: 0,
                ..DestTotals::default()
            }
        );
        let mut sum = a;
        sum.add(&d);
        assert_eq!(sum.calls, 7);
        assert_eq!(sum.bad, 2);
    }
}
