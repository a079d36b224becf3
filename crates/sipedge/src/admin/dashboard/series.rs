//! The last 15 minutes of each edge, second by second, for the dashboard's
//! graphs: new calls (CPS), CPS and channel breaches, calls in progress.
//!
//! A task samples the edges' counters once a second (sums of the workers'
//! cells, off the forwarding path) and keeps the differences in a ring per
//! edge, so a dashboard opened now shows the last 15 minutes at once, and
//! one that is open asks only for the seconds it has not seen.

use crate::health::Health;
use arc_swap::ArcSwap;
use edge::stats::Event;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds kept per edge: 15 minutes.
pub const KEPT: usize = 900;

/// One second of one edge: `[unix second, new calls, CPS breaches,
/// channel breaches, calls in progress]` (the last `null` when the edge
/// does not count them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point(pub u64, pub u64, pub u64, pub u64, pub Option<u32>);

/// An edge's counters at one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counts {
    calls: u64,
    cps_breaches: u64,
    channel_breaches: u64,
}

#[derive(Debug, Default)]
struct Ring {
    points: VecDeque<Point>,
    last: Option<Counts>,
}

/// Every edge's last 15 minutes.
#[derive(Debug, Default)]
pub struct History {
    edges: Mutex<Vec<(String, Ring)>>,
}

/// `GET /api/series`.
#[derive(Debug, Serialize)]
pub struct SeriesBody {
    /// The last second sampled.
    pub now: u64,
    /// One per edge, in config order.
    pub edges: Vec<EdgeSeries>,
}

/// One edge's seconds after the one asked from.
#[derive(Debug, Serialize)]
pub struct EdgeSeries {
    /// The edge's name.
    pub name: String,
    /// Oldest first.
    pub points: Vec<Point>,
}

impl History {
    /// Records second `now` of every edge of `health`; an edge no longer
    /// configured is forgotten, one added starts empty (its first sample
    /// only sets the base the next one counts from).
    pub fn sample(&self, health: &Health, now: u64) {
        let mut edges = self.lock();
        let mut old: HashMap<String, Ring> = edges.drain(..).collect();
        for e in &health.edges {
            let mut ring = old.remove(&e.name).unwrap_or_default();
            let limits = e.proxy().map(|p| p.limits());
            let (cps_breaches, channel_breaches) = limits.map_or((0, 0), |l| l.breaches());
            let counts = Counts {
                calls: e.view.board().totals().get(Event::NewCall),
                cps_breaches,
                channel_breaches,
            };
            let in_progress = limits
                .filter(|l| l.counts_channels())
                .map(|l| l.channels_in_use().0);
            if let Some(last) = ring.last {
                ring.points.push_back(Point(
                    now,
                    counts.calls.saturating_sub(last.calls),
                    counts.cps_breaches.saturating_sub(last.cps_breaches),
                    counts
                        .channel_breaches
                        .saturating_sub(last.channel_breaches),
                    in_progress,
                ));
                while ring.points.len() > KEPT {
                    ring.points.pop_front();
                }
            }
            ring.last = Some(counts);
            edges.push((e.name.clone(), ring));
        }
    }

    /// The seconds after `since` (all kept when 0).
    pub fn since(&self, since: u64) -> SeriesBody {
        let edges = self.lock();
        let now = edges
            .iter()
            .filter_map(|(_, r)| r.points.back().map(|p| p.0))
            .max()
            .unwrap_or(0);
        SeriesBody {
            now,
            edges: edges
                .iter()
                .map(|(name, r)| EdgeSeries {
                    name: name.clone(),
                    points: r.points.iter().filter(|p| p.0 > since).copied().collect(),
                })
                .collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Ring)>> {
        self.edges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Samples every edge once a second, on the current runtime, for as long
/// as it runs.
pub fn spawn(health: Arc<ArcSwap<Health>>, history: Arc<History>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            history.sample(&health.load(), now);
        }
    });
}
