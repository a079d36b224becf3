//! A calls-per-second limit as a lock-free GCRA (generic cell rate
//! algorithm, the leaky bucket as a meter): one atomic word of state, time
//! passed in, shared by every worker of an edge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `rate` events per second with a burst of one second's worth.
///
/// The state is the "theoretical arrival time" of the next event, in
/// nanoseconds on the caller's clock. An event at `now` conforms when that
/// time is at most `tolerance` ahead of `now`; taking it moves the time on
/// by one `interval`. This is the algorithm the `governor` crate uses; it
/// is written out here because sipedge's core takes time as an argument
/// rather than reading a clock (DESIGN principle 3).
#[derive(Debug)]
pub struct Rate {
    /// Nanoseconds between events at the sustained rate.
    interval: AtomicU64,
    /// How far ahead the theoretical arrival time may run: (burst − 1)
    /// intervals.
    tolerance: AtomicU64,
    tat: AtomicU64,
}

/// The interval and tolerance of `per_second`.
fn pace(per_second: f64) -> (u64, u64) {
    let per_second = if per_second.is_finite() && per_second > 0.0 {
        per_second
    } else {
        1.0
    };
    let interval = (1e9 / per_second).round().max(1.0) as u64;
    let burst = per_second.ceil().max(1.0) as u64;
    (interval, interval.saturating_mul(burst - 1))
}

impl Rate {
    /// A limit of `per_second` events per second (> 0), allowing a burst of
    /// `ceil(per_second)` events at once.
    pub fn new(per_second: f64) -> Rate {
        let (interval, tolerance) = pace(per_second);
        Rate {
            interval: AtomicU64::new(interval),
            tolerance: AtomicU64::new(tolerance),
            tat: AtomicU64::new(0),
        }
    }

    /// Changes the rate (a cluster node's share of a limit), keeping what
    /// was taken.
    pub fn set(&self, per_second: f64) {
        let (interval, tolerance) = pace(per_second);
        self.interval.store(interval, Ordering::Relaxed);
        self.tolerance.store(tolerance, Ordering::Relaxed);
    }

    /// Spends the burst at `now_ns`: from then on only the sustained rate
    /// conforms (a node falling back to its share of a cluster limit,
    /// whose leases this second may have spent it already).
    pub fn drain(&self, now_ns: u64) {
        let tolerance = self.tolerance.load(Ordering::Relaxed);
        let interval = self.interval.load(Ordering::Relaxed);
        let spent = now_ns.saturating_add(tolerance).saturating_add(interval);
        self.tat.fetch_max(spent, Ordering::Relaxed);
    }

    /// Whether an event at `now_ns` would conform, without taking it.
    pub fn has_room(&self, now_ns: u64) -> bool {
        let tolerance = self.tolerance.load(Ordering::Relaxed);
        self.tat.load(Ordering::Relaxed).saturating_sub(now_ns) <= tolerance
    }

    /// Takes one event at `now_ns`, or says how long until one conforms.
    pub fn take(&self, now_ns: u64) -> Result<(), Duration> {
        let tolerance = self.tolerance.load(Ordering::Relaxed);
        let interval = self.interval.load(Ordering::Relaxed);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let ahead = tat.saturating_sub(now_ns);
            if ahead > tolerance {
                return Err(Duration::from_nanos(ahead - tolerance));
            }
            let next = tat.max(now_ns).saturating_add(interval);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_burst_of_one_second_then_the_sustained_rate() {
        let r = Rate::new(10.0);
        let t0 = 5 * S;
        for i in 0..10 {
            assert_eq!(r.take(t0), Ok(()), "burst call {i}");
        }
        let wait = r.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(!r.has_room(t0));
        // One interval later exactly one more conforms.
        assert!(r.has_room(t0 + S / 10));
        assert_eq!(r.take(t0 + S / 10), Ok(()));
        assert!(r.take(t0 + S / 10).is_err());
        // Over 10 s of calls three times faster than the limit: 10 per
        // second pass, plus the 9 of the burst that refilled in the 0.9 s
        // before.
        let mut passed = 0;
        for ms in 0..10_000u64 {
            for _ in 0..3 {
                if r.take(t0 + S + ms * 1_000_000).is_ok() {
                    passed += 1;
                }
            }
        }
        assert!((108..=110).contains(&passed), "{passed}");
    }

    #[test]
    fn fractional_and_tiny_rates() {
        let r = Rate::new(0.5);
        assert_eq!(r.take(0), Ok(()));
        assert_eq!(r.take(S), Err(Duration::from_secs(1)));
        assert_eq!(r.take(2 * S), Ok(()));
        // Nonsense rates fall back to 1 per second rather than dividing by 0.
        let r = Rate::new(0.0);
        assert_eq!(r.take(0), Ok(()));
        assert!(r.take(0).is_err());
    }

    #[test]
    fn threads_share_one_limit() {
        let r = std::sync::Arc::new(Rate::new(1000.0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let r = std::sync::Arc::clone(&r);
                std::thread::spawn(move || (0..1000).filter(|_| r.take(S).is_ok()).count())
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1000, "exactly the burst, whatever the interleaving");
    }
}
