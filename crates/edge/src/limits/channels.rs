//! Channels: the calls in progress through this node, counted per edge
//! and per destination from what passes by — an INVITE's 2xx opens one,
//! a BYE closes it — for the channel limits of capacity failover.
//!
//! The count is this node's view. Under anycast the BYE of a call may
//! reach another instance; a call whose BYE never passes here is forgotten
//! after `max_call_duration`, so the count drifts up at worst by the calls
//! whose BYE went elsewhere, and only for that long.
//!
//! Each call remembers its destination's counter itself, not an index,
//! so a BYE after a reload that moved or removed the destination still
//! releases the right one.
//!
//! In a cluster with Redis ([`Channels::share`]), every call answered here
//! and every BYE seen here (whether or not the call was answered here) is
//! also queued for the cluster task, which records them in Redis and
//! writes the cluster's counts back into the counters: between two
//! exchanges a counter is the cluster's count plus what passed here
//! since. A call set up through one node and ended through another so
//! frees its channel everywhere.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::keyhash::KeyHasher;
use xxhash_rust::xxh3::xxh3_64_with_seed;

const SHARDS: usize = 16;

/// Seed of the Call-ID hash: fixed, so that the nodes of a cluster agree
/// on a call's key.
const SEED: u64 = 0xc4a2_2e15;

/// Calls in progress on one destination, shared by every snapshot that
/// has the destination.
pub type DestCalls = Arc<AtomicU32>;

/// A change the cluster task records in Redis.
#[derive(Debug, Clone)]
pub enum Change {
    /// A call (its key) answered by the destination whose count this is.
    Up(u64, DestCalls),
    /// A BYE of a call (its key) passed.
    Down(u64),
}

/// Changes queued for the cluster at most: past it, the oldest go (their
/// calls then count until `max_call_duration`, or never).
const MAX_QUEUED: usize = 100_000;

#[derive(Debug, Default)]
struct Shard {
    /// Call key → (its destination's count, when it was answered).
    calls: HashMap<u64, (DestCalls, u64), BuildHasherDefault<KeyHasher>>,
    /// (answered at, key) in order, for expiry.
    order: VecDeque<(u64, u64)>,
}

/// The calls in progress of one edge (see the module documentation).
#[derive(Debug)]
pub struct Channels {
    shards: Box<[Mutex<Shard>]>,
    total: AtomicU32,
    /// How long after its 2xx a call is forgotten; a reload may change it.
    max_age_ns: AtomicU64,
    /// Whether changes are queued for the cluster.
    shared: AtomicBool,
    queued: Mutex<VecDeque<Change>>,
}

impl Channels {
    /// No call yet; a call is forgotten `max_age_ns` after it was answered.
    pub fn new(max_age_ns: u64) -> Channels {
        Channels {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            total: AtomicU32::new(0),
            max_age_ns: AtomicU64::new(max_age_ns),
            shared: AtomicBool::new(false),
            queued: Mutex::default(),
        }
    }

    /// How long a call whose BYE never came is counted, in nanoseconds.
    pub fn max_age_ns(&self) -> u64 {
        self.max_age_ns.load(Ordering::Relaxed)
    }

    /// Counts with the cluster (the cluster task calls this while Redis
    /// is configured): changes are queued for it.
    pub fn share(&self, on: bool) {
        self.shared.store(on, Ordering::Relaxed);
    }

    fn queue(&self, c: Change) {
        if !self.shared.load(Ordering::Relaxed) {
            return;
        }
        let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_QUEUED {
            q.pop_front();
        }
        q.push_back(c);
    }

    /// The changes queued for the cluster, oldest first (taken).
    pub fn take_changes(&self) -> Vec<Change> {
        let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }

    /// Puts back changes the cluster task could not record (Redis down),
    /// ahead of those queued since.
    pub fn requeue(&self, changes: Vec<Change>) {
        let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        for c in changes.into_iter().rev() {
            if q.len() >= MAX_QUEUED {
                break;
            }
            q.push_front(c);
        }
    }

    /// The cluster's count of calls in progress on this edge (the cluster
    /// task, after recording this node's changes).
    pub fn set_total(&self, n: u32) {
        self.total.store(n, Ordering::Relaxed);
    }

    /// Sets how long a call whose BYE never came is counted (a reload).
    pub fn set_max_age(&self, max_age_ns: u64) {
        self.max_age_ns.store(max_age_ns, Ordering::Relaxed);
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A 2xx to an INVITE of call `call_id` came from the destination
    /// whose count is `dest`: the call is up (a re-INVITE's 2xx finds it
    /// counted already).
    pub fn answered(&self, call_id: &[u8], dest: &DestCalls, now_ns: u64) {
        let key = xxh3_64_with_seed(call_id, SEED);
        let mut s = self.shard(key);
        self.expire(&mut s, now_ns);
        if s.calls.contains_key(&key) {
            return;
        }
        s.calls.insert(key, (Arc::clone(dest), now_ns));
        s.order.push_back((now_ns, key));
        self.total.fetch_add(1, Ordering::Relaxed);
        dest.fetch_add(1, Ordering::Relaxed);
        drop(s);
        self.queue(Change::Up(key, Arc::clone(dest)));
    }

    /// A BYE of call `call_id` passed: the call is over.
    pub fn ended(&self, call_id: &[u8], now_ns: u64) {
        let key = xxh3_64_with_seed(call_id, SEED);
        let mut s = self.shard(key);
        self.expire(&mut s, now_ns);
        if let Some((dest, _)) = s.calls.remove(&key) {
            self.release(&dest);
        }
        drop(s);
        // Answered here or on another node: the cluster knows.
        self.queue(Change::Down(key));
    }

    /// Calls in progress through this edge.
    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    fn release(&self, dest: &DestCalls) {
        let dec = |c: &AtomicU32| {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        };
        dec(&self.total);
        dec(dest);
    }

    /// Forgets the calls of this shard answered more than `max_age_ns` ago.
    fn expire(&self, s: &mut Shard, now_ns: u64) {
        let max_age = self.max_age_ns.load(Ordering::Relaxed);
        while let Some(&(at, key)) = s.order.front() {
            if now_ns.saturating_sub(at) < max_age {
                break;
            }
            s.order.pop_front();
            // Only if the entry is still that call (not ended and re-made).
            if s.calls.get(&key).is_some_and(|&(_, started)| started == at) {
                if let Some((dest, _)) = s.calls.remove(&key) {
                    self.release(&dest);
                }
            }
        }
        // Ended calls leave their order entries behind: drop them once
        // they outnumber the live calls, so the queue stays bounded.
        if s.order.len() > 2 * s.calls.len() + 64 {
            let calls = &s.calls;
            s.order
                .retain(|(at, key)| calls.get(key).is_some_and(|(_, started)| started == at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn of(d: &DestCalls) -> u32 {
        d.load(Ordering::Relaxed)
    }

    #[test]
    fn answered_calls_count_until_their_bye() {
        let c = Channels::new(3600 * S);
        let (d0, d1) = (DestCalls::default(), DestCalls::default());
        c.answered(b"a", &d0, S);
        c.answered(b"b", &d1, S);
        c.answered(b"a", &d0, 2 * S); // a re-INVITE's 2xx
        assert_eq!((c.total(), of(&d0), of(&d1)), (2, 1, 1));
        c.ended(b"a", 3 * S);
        c.ended(b"a", 3 * S); // a retransmitted BYE
        c.ended(b"zzz", 3 * S); // a BYE of a call never counted
        assert_eq!((c.total(), of(&d0), of(&d1)), (1, 0, 1));
    }

    #[test]
    fn calls_whose_bye_never_came_are_forgotten() {
        let c = Channels::new(10 * S);
        let d = DestCalls::default();
        for i in 0..100u32 {
            c.answered(&i.to_le_bytes(), &d, S);
        }
        assert_eq!(c.total(), 100);
        // Expiry runs on the shards touched; touch them all.
        for i in 0..1000u32 {
            c.ended(&(1_000_000 + i).to_le_bytes(), 12 * S);
        }
        assert_eq!((c.total(), of(&d)), (0, 0));
    }

    #[test]
    fn shared_counts_queue_every_change_and_take_the_clusters_counts() {
        let c = Channels::new(3600 * S);
        let d = DestCalls::default();
        c.answered(b"before", &d, S);
        assert!(c.take_changes().is_empty(), "alone: nothing queued");
        c.share(true);
        c.answered(b"a", &d, S);
        c.answered(b"a", &d, S);
        c.ended(b"elsewhere", S);
        let changes = c.take_changes();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(matches!(&changes[0], Change::Up(_, dest) if Arc::ptr_eq(dest, &d)));
        let Change::Down(k) = changes[1] else {
            panic!("{changes:?}")
        };
        assert_eq!(
            k,
            xxh3_64_with_seed(b"elsewhere", SEED),
            "nodes agree on keys"
        );
        c.requeue(changes);
        assert_eq!(c.take_changes().len(), 2);
        c.set_total(7);
        assert_eq!(c.total(), 7);
    }

    #[test]
    fn the_expiry_queue_stays_bounded_under_churn() {
        let c = Channels::new(3600 * S);
        let d = DestCalls::default();
        for i in 0..100_000u32 {
            c.answered(&i.to_le_bytes(), &d, S + u64::from(i));
            c.ended(&i.to_le_bytes(), S + u64::from(i));
        }
        let queued: usize = c.shards.iter().map(|s| s.lock().unwrap().order.len()).sum();
        assert!(queued < 16 * 200, "{queued}");
        assert_eq!(c.total(), 0);
    }
}
