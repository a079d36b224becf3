//! The distribution of a destination's probe round trips, for the
//! `sipedge_probe_duration_seconds` histogram: fixed buckets, counted by
//! the prober that measures them and copied out when scraped.

use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from half a millisecond (a
/// server on the same LAN) to 2.5 s (past any sane probe timeout's
/// answer). A round trip above the last falls only into `+Inf`.
pub const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Answered probes by round trip.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latencies {
    /// Per bucket of [`BOUNDS`], not cumulative.
    pub buckets: [u64; BOUNDS.len()],
    /// Every round trip counted, the ones above the last bound included.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Latencies {
    /// Counts one round trip.
    pub fn observe(&mut self, rtt: Duration) {
        let s = rtt.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|&b| s <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += s;
    }

    /// `(upper bound, count in that bucket alone)` per bucket.
    pub fn bucketed(&self) -> Vec<(f64, u64)> {
        BOUNDS.iter().copied().zip(self.buckets).collect()
    }

    /// Round trips above the last bound.
    pub fn above(&self) -> u64 {
        self.count - self.buckets.iter().sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rtt_lands_in_the_first_bucket_that_holds_it() {
        let mut l = Latencies::default();
        l.observe(Duration::from_micros(500)); // on the bound: that bucket
        l.observe(Duration::from_micros(700));
        l.observe(Duration::from_millis(30));
        l.observe(Duration::from_secs(3)); // only +Inf
        assert_eq!(l.count, 4);
        assert!((l.sum - 3.0312).abs() < 1e-9);
        let b = l.bucketed();
        assert_eq!(b[0], (0.0005, 1));
        assert_eq!(b[1], (0.001, 1));
        assert_eq!(b[5], (0.025, 0));
        assert_eq!(b[6], (0.05, 1));
        assert_eq!(b.last(), Some(&(2.5, 0)));
        assert_eq!(l.above(), 1);
    }
}
