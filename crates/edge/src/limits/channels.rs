//! Channels: the calls in progress through this node, counted per edge
//! and per destination from what passes by — an INVITE's 2xx opens one,
//! a BYE closes it — for the channel limits of capacity failover.
//!
//! The count is this node's view. Under anycast the BYE of a call may
//! reach another instance; a call whose BYE never passes here is forgotten
//! after `max_call_duration`, so the count drifts up at worst by the calls
//! whose BYE went elsewhere, and only for that long.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::keyhash::KeyHasher;
use xxhash_rust::xxh3::xxh3_64_with_seed;

const SHARDS: usize = 16;

/// Seed of the Call-ID hash (any fixed value: the table is per node).
const SEED: u64 = 0xc4a2_2e15;

#[derive(Debug, Default)]
struct Shard {
    /// Call key → (destination, when it was answered).
    calls: HashMap<u64, (u32, u64), BuildHasherDefault<KeyHasher>>,
    /// (answered at, key) in order, for expiry.
    order: VecDeque<(u64, u64)>,
}

/// The calls in progress of one edge (see the module documentation).
#[derive(Debug)]
pub struct Channels {
    shards: Box<[Mutex<Shard>]>,
    total: AtomicU32,
    per_dest: Box<[AtomicU32]>,
    max_age_ns: u64,
}

impl Channels {
    /// Counts for `destinations` destinations; a call is forgotten
    /// `max_age_ns` after it was answered.
    pub fn new(destinations: usize, max_age_ns: u64) -> Channels {
        Channels {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            total: AtomicU32::new(0),
            per_dest: (0..destinations).map(|_| AtomicU32::new(0)).collect(),
            max_age_ns,
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A 2xx to an INVITE of call `call_id` came from destination `dest`:
    /// the call is up (a re-INVITE's 2xx finds it counted already).
    pub fn answered(&self, call_id: &[u8], dest: usize, now_ns: u64) {
        let key = xxh3_64_with_seed(call_id, SEED);
        let mut s = self.shard(key);
        self.expire(&mut s, now_ns);
        if s.calls.contains_key(&key) {
            return;
        }
        s.calls.insert(key, (dest as u32, now_ns));
        s.order.push_back((now_ns, key));
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.per_dest.get(dest) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A BYE of call `call_id` passed: the call is over.
    pub fn ended(&self, call_id: &[u8], now_ns: u64) {
        let key = xxh3_64_with_seed(call_id, SEED);
        let mut s = self.shard(key);
        self.expire(&mut s, now_ns);
        if let Some((dest, _)) = s.calls.remove(&key) {
            self.release(dest);
        }
    }

    /// Calls in progress through this edge.
    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    /// Calls in progress on destination `i`.
    pub fn of(&self, i: usize) -> u32 {
        self.per_dest
            .get(i)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn release(&self, dest: u32) {
        let dec = |c: &AtomicU32| {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        };
        dec(&self.total);
        if let Some(c) = self.per_dest.get(dest as usize) {
            dec(c);
        }
    }

    /// Forgets the calls of this shard answered more than `max_age_ns` ago.
    fn expire(&self, s: &mut Shard, now_ns: u64) {
        while let Some(&(at, key)) = s.order.front() {
            if now_ns.saturating_sub(at) < self.max_age_ns {
                break;
            }
            s.order.pop_front();
            // Only if the entry is still that call (not ended and re-made).
            if s.calls.get(&key).is_some_and(|&(_, started)| started == at) {
                if let Some((dest, _)) = s.calls.remove(&key) {
                    self.release(dest);
                }
            }
        }
        // Ended calls leave their order entries behind: drop them once
        // they outnumber the live calls, so the queue stays bounded.
        if s.order.len() > 2 * s.calls.len() + 64 {
            let calls = &s.calls;
            s.order
                .retain(|(at, key)| calls.get(key).is_some_and(|&(_, started)| started == *at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn answered_calls_count_until_their_bye() {
        let c = Channels::new(2, 3600 * S);
        c.answered(b"a", 0, S);
        c.answered(b"b", 1, S);
        c.answered(b"a", 0, 2 * S); // a re-INVITE's 2xx
        assert_eq!((c.total(), c.of(0), c.of(1)), (2, 1, 1));
        c.ended(b"a", 3 * S);
        c.ended(b"a", 3 * S); // a retransmitted BYE
        c.ended(b"zzz", 3 * S); // a BYE of a call never counted
        assert_eq!((c.total(), c.of(0), c.of(1)), (1, 0, 1));
    }

    #[test]
    fn calls_whose_bye_never_came_are_forgotten() {
        let c = Channels::new(1, 10 * S);
        for i in 0..100u32 {
            c.answered(&i.to_le_bytes(), 0, S);
        }
        assert_eq!(c.total(), 100);
        // Expiry runs on the shards touched; touch them all.
        for i in 0..1000u32 {
            c.ended(&(1_000_000 + i).to_le_bytes(), 12 * S);
        }
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn the_expiry_queue_stays_bounded_under_churn() {
        let c = Channels::new(1, 3600 * S);
        for i in 0..100_000u32 {
            c.answered(&i.to_le_bytes(), 0, S + u64::from(i));
            c.ended(&i.to_le_bytes(), S + u64::from(i));
        }
        let queued: usize = c.shards.iter().map(|s| s.lock().unwrap().order.len()).sum();
        assert!(queued < 16 * 200, "{queued}");
        assert_eq!(c.total(), 0);
    }
}
