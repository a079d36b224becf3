//! The recent-picks memo: which destination a stateful algorithm gave each
//! recent transaction, so its retransmissions, CANCEL and ACK follow it.
//!
//! A fixed-size direct-mapped table, allocated once: a new transaction
//! simply overwrites whatever shared its slot. Memory is bounded whatever the
//! load; the price is that under very high load a slot may be reused before
//! the transaction it held is over (see [`super::Selector`] for what happens
//! then).

use super::rendezvous::fmix64;

/// Slots in a worker's memo. At 24 bytes a slot this is 96 KiB per worker
/// per edge; it covers 4096 transactions per 32 s per worker (128 new
/// transactions per second per worker) without any collision loss, and
/// degrades gracefully beyond.
pub(crate) const SLOTS: usize = 4096;

/// How long an entry lives: RFC 3261 Timer B (64 × T1 = 32 s), after which an
/// INVITE client transaction has timed out and nothing more can follow it.
pub(crate) const TTL_SECS: u64 = 32;

/// One remembered pick.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    tx_key: u64,
    /// Monotonic second at which the entry dies; 0 = empty.
    expiry: u64,
    /// Index of the target in the selector's slice.
    index: u32,
    /// Low 32 bits of the target's id, to notice a selector rebuilt with a
    /// different destination at that index.
    id_check: u32,
}

/// A remembered pick, as [`RecentPicks::get`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Recalled {
    pub(crate) index: usize,
    pub(crate) id_check: u32,
}

/// The memo itself. `disabled()` has no slots: it never remembers anything,
/// for workers whose algorithm keeps no state.
#[derive(Clone)]
pub(crate) struct RecentPicks {
    slots: Box<[Slot]>,
}

impl RecentPicks {
    /// A memo of [`SLOTS`] slots, all empty.
    pub(crate) fn new() -> RecentPicks {
        RecentPicks {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
        }
    }

    /// A memo that remembers nothing and costs nothing.
    pub(crate) fn disabled() -> RecentPicks {
        RecentPicks {
            slots: Box::new([]),
        }
    }

    fn slot_of(&self, tx_key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        // SLOTS is a power of two; the caller's key is a hash already, the
        // mix only guards against keys that vary in their high bits only.
        Some((fmix64(tx_key) as usize) & (self.slots.len() - 1))
    }

    /// The live pick remembered for `tx_key` at time `now`, if any.
    pub(crate) fn get(&self, tx_key: u64, now: u64) -> Option<Recalled> {
        let slot = &self.slots[self.slot_of(tx_key)?];
        (slot.expiry > now && slot.tx_key == tx_key).then_some(Recalled {
            index: slot.index as usize,
            id_check: slot.id_check,
        })
    }

    /// Remembers that `tx_key` went to target `index` (whose id is `id`)
    /// until `now` + [`TTL_SECS`], replacing whatever held the slot.
    pub(crate) fn put(&mut self, tx_key: u64, index: usize, id: u64, now: u64) {
        let (Some(at), Ok(index)) = (self.slot_of(tx_key), u32::try_from(index)) else {
            return;
        };
        self.slots[at] = Slot {
            tx_key,
            expiry: now.saturating_add(TTL_SECS),
            index,
            id_check: id_check(id),
        };
    }

    /// Bytes held by the table (fixed from construction).
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> (usize, *const u8) {
        (
            std::mem::size_of_val(&*self.slots),
            self.slots.as_ptr().cast(),
        )
    }
}

/// The part of a target id the memo keeps to recognise it.
pub(crate) fn id_check(id: u64) -> u32 {
    id as u32
}
