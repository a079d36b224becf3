//! Passive suspicion: noticing from real traffic that a destination is in
//! trouble, so it is probed at once instead of at its next interval.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::view::DestTotals;

/// How far back the counts are looked at.
const WINDOW: Duration = Duration::from_secs(2);
/// The fewest final replies that say anything about a destination's error rate.
const MIN_FINALS: u64 = 5;
/// The fewest unanswered requests that say a destination went silent.
const MIN_REQUESTS: u64 = 5;
/// The least time between two suspicions of one destination.
const HOLD: Duration = Duration::from_secs(2);

/// What is kept per destination.
#[derive(Clone, Debug, Default)]
struct Watch {
    /// The totals at the previous check; `None` before the first.
    last: Option<DestTotals>,
    /// What each recent check added, with when it was taken.
    window: VecDeque<(Instant, DestTotals)>,
    /// When it was last suspected.
    suspected_at: Option<Instant>,
}

/// Watches the workers' counters of one edge over a sliding window of about
/// two seconds and names the destinations to probe at once: those whose
/// final replies are mostly 500/503/408, and those that stopped answering.
#[derive(Clone, Debug)]
pub struct Passive {
    dests: Vec<Watch>,
}

impl Passive {
    /// A watch over `destinations` destinations.
    pub fn new(destinations: usize) -> Passive {
        Passive {
            dests: vec![Watch::default(); destinations],
        }
    }

    /// Takes the edge's [`HealthView::totals`](super::HealthView::totals) at
    /// `now` (call about once a second) and returns the destinations to probe
    /// at once, each with why (`suspected: 8 of 10 replies were 503/500/408`,
    /// `suspected: 12 requests, no reply`).
    ///
    /// Over the last ~2 s: at least 5 final replies of which more than half
    /// were 500, 503 or 408; or at least 5 requests that expect a reply and
    /// no reply at all. The first call only sets the baseline, and a
    /// destination is not suspected again within 2 s.
    pub fn check(&mut self, totals: &[DestTotals], now: Instant) -> Vec<(usize, String)> {
        let mut suspects = Vec::new();
        for (i, (w, t)) in self.dests.iter_mut().zip(totals).enumerate() {
            let Some(last) = w.last.replace(*t) else {
                continue;
            };
            w.window.push_back((now, t.since(&last)));
            while w.window.front().is_some_and(|(at, _)| *at + WINDOW <= now) {
                w.window.pop_front();
            }
            if w.suspected_at.is_some_and(|at| now < at + HOLD) {
                continue;
            }
            let mut sum = DestTotals::default();
            for (_, delta) in &w.window {
                sum.add(delta);
            }
            let why = if sum.finals >= MIN_FINALS && sum.bad * 2 > sum.finals {
                format!(
                    "suspected: {} of {} replies were 503/500/408",
                    sum.bad, sum.finals
                )
            } else if sum.expecting >= MIN_REQUESTS && sum.replies == 0 {
                format!("suspected: {} requests, no reply", sum.expecting)
            } else {
                continue;
            };
            w.suspected_at = Some(now);
            suspects.push((i, why));
        }
        suspects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Totals with `finals` final replies of which `bad` were 503, and
    /// `expecting` requests sent (one provisional reply per final).
    fn totals(expecting: u64, finals: u64, bad: u64) -> DestTotals {
        DestTotals {
            calls: 0,
            requests: expecting,
            expecting,
            replies: finals * 2,
            finals,
            bad,
            ..DestTotals::default()
        }
    }

    #[test]
    fn the_first_check_is_only_a_baseline() {
        let t0 = Instant::now();
        let mut p = Passive::new(1);
        assert!(p.check(&[totals(1000, 1000, 1000)], t0).is_empty());
        assert!(p
            .check(&[totals(1000, 1000, 1000)], t0 + secs(1))
            .is_empty());
    }

    #[test]
    fn mostly_server_errors_are_suspected() {
        let t0 = Instant::now();
        let mut p = Passive::new(2);
        p.check(&[totals(0, 0, 0), totals(0, 0, 0)], t0);
        let got = p.check(&[totals(10, 10, 2), totals(10, 10, 8)], t0 + secs(1));
        assert_eq!(
            got,
            [(1, "suspected: 8 of 10 replies were 503/500/408".to_owned())]
        );
    }

    #[test]
    fn half_or_few_errors_are_not_enough() {
        let t0 = Instant::now();
        let mut p = Passive::new(2);
        p.check(&[totals(0, 0, 0), totals(0, 0, 0)], t0);
        // Exactly half; and all bad but only 4 replies.
        let got = p.check(&[totals(10, 10, 5), totals(4, 4, 4)], t0 + secs(1));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn silence_is_suspected() {
        let t0 = Instant::now();
        let mut p = Passive::new(1);
        p.check(&[DestTotals::default()], t0);
        let silent = DestTotals {
            requests: 14,
            expecting: 12,
            ..DestTotals::default()
        };
        assert_eq!(
            p.check(&[silent], t0 + secs(1)),
            [(0, "suspected: 12 requests, no reply".to_owned())]
        );
    }

    #[test]
    fn a_few_unanswered_or_provisionally_answered_requests_are_not_silence() {
        let t0 = Instant::now();
        let mut p = Passive::new(2);
        p.check(&[DestTotals::default(); 2], t0);
        let few = DestTotals {
            expecting: 4,
            requests: 4,
            ..DestTotals::default()
        };
        let ringing = DestTotals {
            expecting: 10,
            requests: 10,
            replies: 10,
            ..DestTotals::default()
        };
        assert!(p.check(&[few, ringing], t0 + secs(1)).is_empty());
    }

    #[test]
    fn counts_add_up_over_the_window() {
        let t0 = Instant::now();
        let mut p = Passive::new(1);
        p.check(&[totals(0, 0, 0)], t0);
        assert!(p.check(&[totals(3, 3, 3)], t0 + secs(1)).is_empty());
        // 3 + 3 bad of 6 within 2 s.
        assert_eq!(
            p.check(&[totals(6, 6, 6)], t0 + secs(2)),
            [(0, "suspected: 6 of 6 replies were 503/500/408".to_owned())]
        );
    }

    #[test]
    fn old_counts_leave_the_window() {
        let t0 = Instant::now();
        let mut p = Passive::new(1);
        p.check(&[totals(0, 0, 0)], t0);
        assert!(p.check(&[totals(3, 3, 3)], t0 + secs(1)).is_empty());
        // The 3 bad replies of the first second are 2 s old by now.
        assert!(p.check(&[totals(3, 3, 3)], t0 + secs(2)).is_empty());
        assert!(p.check(&[totals(6, 6, 6)], t0 + secs(3)).is_empty());
    }

    #[test]
    fn not_suspected_again_within_two_seconds() {
        let t0 = Instant::now();
        let mut p = Passive::new(1);
        p.check(&[totals(0, 0, 0)], t0);
        let mut n = 0;
        let mut suspected = Vec::new();
        for k in 1..=6u64 {
            n += 10;
            if !p.check(&[totals(n, n, n)], t0 + secs(k)).is_empty() {
                suspected.push(k);
            }
        }
        assert_eq!(suspected, [1, 3, 5]);
    }

    #[test]
    fn counters_going_backwards_are_no_traffic() {
        let t0 = Instant::now();
        let mut p = Passive::new(1);
        p.check(&[totals(100, 100, 100)], t0);
        assert!(p.check(&[totals(0, 0, 0)], t0 + secs(1)).is_empty());
    }

    #[test]
    fn totals_of_another_length_are_taken_as_far_as_they_go() {
        let t0 = Instant::now();
        let mut p = Passive::new(2);
        p.check(&[totals(0, 0, 0)], t0);
        assert!(p.check(&[totals(9, 9, 9)], t0 + secs(1)).len() == 1);
        let mut empty = Passive::new(0);
        assert!(empty.check(&[totals(9, 9, 9)], t0).is_empty());
    }
}
