//! Where the contexts of a transactional edge live: a hash map keyed by
//! transaction MAC, split into shards behind their own locks so workers
//! seldom meet, each with a heap of deadlines for the timer thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::context::Context;
use crate::keyhash::KeyHasher;

/// Shards per table: enough that workers on a few dozen cores rarely wait
/// for each other.
const SHARDS: usize = 64;

/// The key of a context: the transaction MAC with its lowest bit replaced
/// by "is INVITE", so an INVITE and a non-INVITE request that happened to
/// share a MAC (only a broken client sends both with one branch) are kept
/// apart. An INVITE's CANCEL and ACK look up the INVITE's key.
pub(super) fn key(mac: u64, invite: bool) -> u64 {
    (mac & !1) | u64::from(invite)
}

/// One shard: its contexts and when each is next due.
#[derive(Default)]
pub(super) struct Shard {
    map: HashMap<u64, Context, BuildHasherDefault<KeyHasher>>,
    /// (deadline, key); entries made stale by a later change stay until
    /// they come up and are then skipped.
    due: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Shard {
    /// The context with `key`, if its full MAC is `mac`.
    pub fn get_mut(&mut self, key: u64, mac: u64) -> Option<&mut Context> {
        self.map.get_mut(&key).filter(|c| c.mac == mac)
    }

    /// Number of contexts.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Adds a context (replacing a finished one with the same key).
    pub fn insert(&mut self, key: u64, ctx: Context) {
        self.map.insert(key, ctx);
        self.settle(key);
    }

    /// After a context changed: forget it when it is done, else make sure
    /// the heap holds an entry no later than its next deadline.
    pub fn settle(&mut self, key: u64) {
        let Some(ctx) = self.map.get_mut(&key) else {
            return;
        };
        if ctx.is_done() {
            self.map.remove(&key);
            return;
        }
        if let Some(d) = ctx.next_deadline() {
            if ctx.scheduled.is_none_or(|s| d < s) {
                ctx.scheduled = Some(d);
                self.due.push(Reverse((d, key)));
            }
        }
    }

    /// The key of a context with a timer due at `now`, taken off the heap.
    pub fn pop_due(&mut self, now: Instant) -> Option<u64> {
        loop {
            let Reverse((at, key)) = *self.due.peek()?;
            if at > now {
                return None;
            }
            self.due.pop();
            if let Some(ctx) = self.map.get_mut(&key) {
                if ctx.scheduled == Some(at) {
                    ctx.scheduled = None;
                }
                return Some(key);
            }
        }
    }

    /// The context with `key`, whatever its MAC (for the timer path).
    pub fn by_key(&mut self, key: u64) -> Option<&mut Context> {
        self.map.get_mut(&key)
    }

    /// When the earliest entry of the heap is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }
}

/// Every context of one edge. How many it may hold is the snapshot's
/// business ([`per_shard`]), so that a reload can change the limit of a
/// table it keeps.
pub(super) struct Table {
    shards: Box<[Mutex<Shard>]>,
}

/// Contexts allowed per shard for at most about `max` in the table.
pub(super) fn per_shard(max: usize) -> usize {
    max.div_ceil(SHARDS).max(1)
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// The shard holding `key`, locked. A worker that panicked while
    /// holding it left contexts that are still consistent enough to time
    /// out, so a poisoned lock is used as is.
    pub fn shard(&self, key: u64) -> MutexGuard<'_, Shard> {
        let i = (key >> 1) as usize % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shard number `i`, locked (for the timer thread's sweep).
    pub fn shard_at(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Contexts held, over every shard (locks each in turn).
    pub fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.shard_at(i).len()).sum()
    }
}
