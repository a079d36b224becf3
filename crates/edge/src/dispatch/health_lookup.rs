//! What the selector asks of destination health, per destination index.

/// The selector's read-only view of destination health.
///
/// Health is passed in per call rather than built into the [`Selector`]
/// snapshot, so a destination going down or coming back (written by the
/// prober while workers forward) needs no rebuild, and the selector stays
/// sans-IO: it never locks, waits or reads a clock. Indices are those of the
/// `targets` slice given to [`Selector::new`].
///
/// A plain predicate `Fn(usize) -> bool` is a `HealthLookup` whose every
/// destination has scale 1.0, so callers and tests with only an up/down
/// answer (`&|_| true`, `&|i| i != 2`) pass a closure.
///
/// [`Selector`]: super::Selector
/// [`Selector::new`]: super::Selector::new
pub trait HealthLookup {
    /// Whether new requests may go to destination `i`. Unusable destinations
    /// are skipped by every algorithm and in every tier.
    fn usable(&self, i: usize) -> bool;

    /// Relative speed of destination `i` for `least-latency`, in (0, 1]:
    /// 1.0 for the fastest (or not yet measured) destination, smaller for
    /// slower ones. `least-latency` multiplies the configured weight by it;
    /// the other algorithms ignore it, because there weights mean capacity
    /// and nothing else.
    fn scale(&self, i: usize) -> f64 {
        let _ = i;
        1.0
    }
}

impl<F: Fn(usize) -> bool> HealthLookup for F {
    #[inline]
    fn usable(&self, i: usize) -> bool {
        self(i)
    }
}
