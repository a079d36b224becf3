//! Where the built-in registrar keeps its bindings: a trait, so that a
//! cluster can keep them in a shared store (Redis, `[cluster]`), and the
//! in-memory store one node uses.
//!
//! Times are whole seconds on the registrar's clock ([`super::Clock`]):
//! four bytes per time instead of sixteen, and what a shared store would
//! keep anyway.

use crate::token::Outside;
use std::collections::HashMap;
use std::sync::Mutex;
use xxhash_rust::xxh3::xxh3_64;

/// One contact bound to an address of record (RFC 3261 §10.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the phone wrote it (without `<>` and without the
    /// header's `expires` and `q`): the Request-URI of what is sent to it.
    pub contact: Box<[u8]>,
    /// Where its REGISTER came from: requests for it go there (its NAT
    /// binding, its connection), whatever the Contact says.
    pub flow: Outside,
    /// When it expires.
    pub expires: u32,
    /// When it was last registered (the newer wins among equal q).
    pub registered: u32,
    /// Its q-value in thousandths (RFC 3261 §20.10; 1000 when not given).
    pub q: u16,
    /// A hash of the Call-ID and the CSeq number of the REGISTER that made
    /// or refreshed it: later ones of the same Call-ID must count higher
    /// (§10.3 step 7). The hash keeps eight bytes instead of the whole ID.
    pub call_id: u64,
    pub cseq: u32,
    /// When its next keepalive is due.
    pub next_keepalive: u32,
    /// OPTIONS keepalives sent since the last answer.
    pub unanswered: u8,
    /// Its REGISTER came to this node, which keeps it alive; false for a
    /// binding another node of the cluster shared.
    pub owned: bool,
}

impl Binding {
    /// The hash [`Binding::call_id`] keeps.
    pub fn call_id_hash(call_id: &[u8]) -> u64 {
        xxh3_64(call_id)
    }
}

/// What a sweep does with a binding it visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    Yes,
    /// Remove it.
    No,
}

/// A store of bindings by address of record (the key the registrar
/// makes of the To URI, [`super::aor`]). Every update of one address of
/// record is atomic: a REGISTER's changes all land or none do.
pub trait BindingStore: Send + Sync + std::fmt::Debug {
    /// Runs `change` on the bindings of `aor` (empty when it has none),
    /// with no other change to `aor` in between, and keeps what it leaves
    /// (an address of record left with none is forgotten).
    fn update(&self, aor: &[u8], change: &mut dyn FnMut(&mut Vec<Binding>));

    /// Calls `read` with the bindings of `aor` (not called when it has
    /// none).
    fn read(&self, aor: &[u8], read: &mut dyn FnMut(&[Binding]));

    /// Visits every binding, removing those `visit` says not to keep
    /// (`visit` gets the address of record too).
    fn sweep(&self, visit: &mut dyn FnMut(&[u8], &mut Binding) -> Keep);

    /// Addresses of record and bindings held.
    fn count(&self) -> (usize, usize);
}

/// How many locks the in-memory store spreads its map over: updates of
/// different addresses of record on different shards rarely wait.
const SHARDS: usize = 64;

/// One shard's map: bindings by address of record.
type Shard = HashMap<Box<[u8]>, Vec<Binding>>;

/// The bindings of one node, in memory: a hash map per shard, each behind
/// its own lock, held for one update.
#[derive(Debug)]
pub struct Memory {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Memory {
    fn shard(&self, aor: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let i = (xxh3_64(aor) % SHARDS as u64) as usize;
        // A panic while a lock was held (none is expected: the closures
        // only edit vectors) leaves the map as consistent as Vec edits
        // are: carry on with it.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BindingStore for Memory {
    fn update(&self, aor: &[u8], change: &mut dyn FnMut(&mut Vec<Binding>)) {
        let mut map = self.shard(aor);
        match map.get_mut(aor) {
            Some(list) => {
                change(list);
                if list.is_empty() {
                    map.remove(aor);
                }
            }
            None => {
                let mut list = Vec::new();
                change(&mut list);
                if !list.is_empty() {
                    list.shrink_to_fit();
                    map.insert(aor.into(), list);
                }
            }
        }
    }

    fn read(&self, aor: &[u8], read: &mut dyn FnMut(&[Binding])) {
        if let Some(list) = self.shard(aor).get(aor) {
            read(list);
        }
    }

    fn sweep(&self, visit: &mut dyn FnMut(&[u8], &mut Binding) -> Keep) {
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|aor, list| {
                list.retain_mut(|b| visit(aor, b) == Keep::Yes);
                !list.is_empty()
            });
        }
    }

    fn count(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(a, b), shard| {
            let map = shard.lock().unwrap_or_else(|p| p.into_inner());
            (a + map.len(), b + map.values().map(Vec::len).sum::<usize>())
        })
    }
}
