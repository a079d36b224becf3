//! Weighted round-robin: a destination's weight is how many consecutive
//! picks it gets before the next one (weights 3, 1 give A A A B A A A B …),
//! as AnyEdge documents it.

use super::health_lookup::HealthLookup;

/// The position of one tier's round-robin: which destination is current and
/// how many picks it has had. Lives in a worker's state, never shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RoundRobin {
    /// Position in the tier's list of the current destination.
    pub(crate) pos: usize,
    /// Picks the current destination has had in this turn.
    used: u32,
}

impl RoundRobin {
    /// The next pick among `list` (indices into the targets), skipping those
    /// `health` calls unusable, or `None` (state unchanged) if none is
    /// usable.
    ///
    /// An unusable destination loses its turn; the next one starts a fresh
    /// turn. A list that shrank since the last call restarts at its head.
    pub(crate) fn pick(
        &mut self,
        list: &[usize],
        weight: impl Fn(usize) -> u32,
        health: &dyn HealthLookup,
    ) -> Option<usize> {
        let n = list.len();
        if n == 0 {
            return None;
        }
        let saved = *self;
        if self.pos >= n {
            *self = RoundRobin::default();
        }
        // n + 1 steps: the current destination may have used up its turn and
        // be the only usable one, in which case it starts a new turn.
        for _ in 0..=n {
            let index = list[self.pos];
            if self.used < weight(index) && health.usable(index) {
                self.used += 1;
                return Some(index);
            }
            self.pos = (self.pos + 1) % n;
            self.used = 0;
        }
        *self = saved;
        None
    }
}
