//! Capacity: how many new calls an edge and each of its destinations take
//! on this node (calls per second, calls in progress), sans-IO and shared
//! by the workers without locks on the common path.
//!
//! The request pipeline's limits stage asks [`Limits::admit`] for every
//! new call; dispatch skips destinations without [`Limits::dest_has_room`]
//! and [`Limits::dest_take`]s from the one chosen. What happens to a call
//! beyond capacity (302 to another node, or 503) is the proxy's business.

mod channels;
mod rate;
mod shared;

pub use channels::{Change as ChannelChange, Channels, DestCalls};
pub use rate::Rate;
pub use shared::{Mode, SharedRate};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config;

/// Why a new call is beyond capacity, and when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The calls-per-second limit: a call would conform after this long.
    Cps(Duration),
    /// The channel limit: calls in progress must end first.
    Channels,
    /// Every destination the call could go to is at its own limit.
    Destinations,
}

impl Full {
    /// Whole seconds for a `Retry-After` (RFC 3261 §20.33), at least 1.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Full::Cps(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
            Full::Channels | Full::Destinations => 1,
        }
        .max(1)
    }
}

/// The capacity state of one edge on this node: the configured limits,
/// and the buckets and counts they are measured with, which a reload
/// hands on to the next snapshot (see [`Limits::new`]).
#[derive(Debug)]
pub struct Limits {
    cps: Option<Cps>,
    channels: Option<u32>,
    dest_cps: Box<[Option<Cps>]>,
    dest_channels: Box<[Option<u32>]>,
    /// Calls in progress per destination.
    dest_calls: Box<[DestCalls]>,
    /// Calls in progress, kept only when some channel limit is set.
    calls: Option<Arc<Channels>>,
    /// New calls beyond the edge's limits since start: over `cps`, over
    /// `channels` (kept across reloads; counted only on a breach).
    breaches: Arc<[AtomicU64; 2]>,
    epoch: Instant,
}

/// A calls-per-second limit and its bucket.
#[derive(Debug, Clone)]
struct Cps {
    limit: u32,
    rate: Arc<SharedRate>,
}

impl Cps {
    /// A bucket for `limit`: `previous`'s when it had the same limit (a
    /// reload then neither refills nor empties it).
    fn new(limit: Option<u32>, previous: Option<&Option<Cps>>, epoch: Instant) -> Option<Cps> {
        let limit = limit?;
        match previous {
            Some(Some(p)) if p.limit == limit => Some(p.clone()),
            _ => Some(Cps {
                limit,
                rate: Arc::new(SharedRate::new(limit, epoch)),
            }),
        }
    }
}

impl Limits {
    /// The limits `edge` configures; `epoch` is the origin of the clock
    /// the rate limits count on. On a reload, `previous` is the snapshot's
    /// limits being replaced and `carried[i]` the index there of new
    /// destination `i` (the same URI), whose calls in progress and
    /// unchanged CPS bucket are kept; the edge's own are kept likewise.
    pub fn new(
        edge: &config::Edge,
        epoch: Instant,
        previous: Option<&Limits>,
        carried: &[Option<usize>],
    ) -> Limits {
        let counts_channels = edge.capacity.channels.is_some()
            || edge.destinations.iter().any(|d| d.channels.is_some());
        let max_age = u64::try_from(edge.capacity.max_call_duration.as_nanos()).unwrap_or(u64::MAX);
        let old = |i: usize| {
            let j = carried.get(i).copied().flatten()?;
            Some((previous?, j))
        };
        let calls = counts_channels.then(|| match previous.and_then(|p| p.calls.as_ref()) {
            Some(c) => {
                c.set_max_age(max_age);
                Arc::clone(c)
            }
            None => Arc::new(Channels::new(max_age)),
        });
        Limits {
            cps: Cps::new(edge.capacity.cps, previous.map(|p| &p.cps), epoch),
            channels: edge.capacity.channels,
            dest_cps: edge
                .destinations
                .iter()
                .enumerate()
                .map(|(i, d)| Cps::new(d.cps, old(i).and_then(|(p, j)| p.dest_cps.get(j)), epoch))
                .collect(),
            dest_channels: edge.destinations.iter().map(|d| d.channels).collect(),
            dest_calls: (0..edge.destinations.len())
                .map(|i| {
                    old(i)
                        .and_then(|(p, j)| p.dest_calls.get(j).cloned())
                        .unwrap_or_default()
                })
                .collect(),
            calls,
            breaches: previous.map_or_else(Arc::default, |p| Arc::clone(&p.breaches)),
            epoch,
        }
    }

    /// New calls beyond the edge's own limits since start: over `cps`
    /// (the seeds' "CPS Breach"), over `channels`.
    pub fn breaches(&self) -> (u64, u64) {
        (
            self.breaches[0].load(Ordering::Relaxed),
            self.breaches[1].load(Ordering::Relaxed),
        )
    }

    fn ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The calls-per-second limits, for the cluster task that shares
    /// them: the edge's own (`None`), then each destination's (by index).
    pub fn rates(&self) -> impl Iterator<Item = (Option<usize>, &Arc<SharedRate>)> {
        let own = self.cps.iter().map(|c| (None, &c.rate));
        let dests = self
            .dest_cps
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((Some(i), &c.as_ref()?.rate)));
        own.chain(dests)
    }

    /// Whether any destination has a limit of its own (dispatch then has
    /// to ask [`dest_has_room`](Self::dest_has_room)).
    pub fn limits_destinations(&self) -> bool {
        self.dest_cps.iter().any(Option::is_some) || self.dest_channels.iter().any(Option::is_some)
    }

    /// Whether calls in progress are counted (some channel limit is set).
    pub fn counts_channels(&self) -> bool {
        self.calls.is_some()
    }

    /// The edge's own limits for a new call at `now`: room in the channels,
    /// then one call of the CPS budget taken.
    pub fn admit(&self, now: Instant) -> Result<(), Full> {
        if let (Some(max), Some(calls)) = (self.channels, &self.calls) {
            if calls.total() >= max {
                self.breaches[1].fetch_add(1, Ordering::Relaxed);
                return Err(Full::Channels);
            }
        }
        match &self.cps {
            Some(c) => c.rate.take(self.ns(now)).map_err(|wait| {
                self.breaches[0].fetch_add(1, Ordering::Relaxed);
                Full::Cps(wait)
            }),
            None => Ok(()),
        }
    }

    /// What [`Limits::admit`] would say at `now`, taking nothing and
    /// counting no breach: for `explain`, which must not spend a live
    /// edge's budget.
    pub fn would_admit(&self, now: Instant) -> Result<(), Full> {
        if let (Some(max), Some(calls)) = (self.channels, &self.calls) {
            if calls.total() >= max {
                return Err(Full::Channels);
            }
        }
        match &self.cps {
            Some(c) if !c.rate.has_room(self.ns(now)) => {
                Err(Full::Cps(std::time::Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// The edge's own limits as configured: calls per second and
    /// channels.
    pub fn configured(&self) -> (Option<u32>, Option<u32>) {
        (self.cps.as_ref().map(|c| c.limit), self.channels)
    }

    /// Whether destination `i` may take a new call at `now`.
    pub fn dest_has_room(&self, i: usize, now: Instant) -> bool {
        let cps_ok = match self.dest_cps.get(i) {
            Some(Some(c)) => c.rate.has_room(self.ns(now)),
            _ => true,
        };
        let channels_ok = match (self.dest_channels.get(i), self.dest_calls.get(i)) {
            (Some(Some(max)), Some(calls)) => calls.load(Ordering::Relaxed) < *max,
            _ => true,
        };
        cps_ok && channels_ok
    }

    /// A new call was sent to destination `i` at `now`: it counts against
    /// that destination's calls per second.
    pub fn dest_take(&self, i: usize, now: Instant) {
        if let Some(Some(c)) = self.dest_cps.get(i) {
            let _ = c.rate.take(self.ns(now));
        }
    }

    /// A 2xx to an INVITE of `call_id` came from destination `dest`.
    pub fn call_answered(&self, call_id: &[u8], dest: usize, now: Instant) {
        if let (Some(c), Some(d)) = (&self.calls, self.dest_calls.get(dest)) {
            c.answered(call_id, d, self.ns(now));
        }
    }

    /// A BYE of `call_id` passed.
    pub fn call_ended(&self, call_id: &[u8], now: Instant) {
        if let Some(c) = &self.calls {
            c.ended(call_id, self.ns(now));
        }
    }

    /// The edge's calls in progress, when counted (some channel limit is
    /// set), and each destination's counter (by index): for the cluster
    /// task, which shares them.
    pub fn channels(&self) -> Option<(&Arc<Channels>, &[DestCalls])> {
        Some((self.calls.as_ref()?, &self.dest_calls))
    }

    /// Calls in progress counted on this edge and per destination (zeros
    /// when channels are not counted).
    pub fn channels_in_use(&self) -> (u32, Vec<u32>) {
        let per_dest = self
            .dest_calls
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        (self.calls.as_ref().map_or(0, |c| c.total()), per_dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(extra: &str, dest_extra: &str) -> config::Edge {
        let text = format!(
            "[node]\nid = \"n\"\n[[edge]]\nlisten = [\"udp:127.0.0.1:5060\"]\n{extra}\n\
             [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n{dest_extra}\n\
             [[edge.destination]]\nuri = \"sip:127.0.0.1:5071\"\n"
        );
        config::parse(&text, "t.toml").unwrap().edges.remove(0)
    }

    #[test]
    fn no_limits_admit_everything() {
        let t0 = Instant::now();
        let l = Limits::new(&edge("", ""), t0, None, &[]);
        assert!(!l.limits_destinations() && !l.counts_channels());
        for _ in 0..10_000 {
            assert_eq!(l.admit(t0), Ok(()));
        }
        assert!(l.dest_has_room(0, t0));
    }

    #[test]
    fn edge_cps_and_channels() {
        let t0 = Instant::now();
        let l = Limits::new(&edge("cps = 2\nchannels = 1", ""), t0, None, &[]);
        assert_eq!(l.admit(t0), Ok(()));
        l.call_answered(b"c1", 0, t0);
        assert_eq!(l.admit(t0), Err(Full::Channels));
        l.call_ended(b"c1", t0);
        assert_eq!(l.admit(t0), Ok(()));
        let Err(full) = l.admit(t0) else {
            panic!("third call in the same instant admitted")
        };
        assert_eq!(l.breaches(), (1, 1));
        assert_eq!(full, Full::Cps(Duration::from_millis(500)));
        assert_eq!(full.retry_after_secs(), 1);
        assert_eq!(l.admit(t0 + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn destination_limits() {
        let t0 = Instant::now();
        let l = Limits::new(&edge("", "cps = 1\nchannels = 1"), t0, None, &[]);
        assert!(l.limits_destinations() && l.counts_channels());
        assert!(l.dest_has_room(0, t0));
        l.dest_take(0, t0);
        assert!(!l.dest_has_room(0, t0), "cps");
        assert!(l.dest_has_room(1, t0), "no limit on the second");
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.dest_has_room(0, t1));
        l.call_answered(b"c", 0, t1);
        assert!(!l.dest_has_room(0, t1), "channels");
        assert_eq!(l.channels_in_use(), (1, vec![1, 0]));
        l.call_ended(b"c", t1);
        assert!(l.dest_has_room(0, t1));
    }

    #[test]
    fn a_reload_keeps_buckets_of_unchanged_limits_and_counts_by_destination() {
        let t0 = Instant::now();
        let l = Limits::new(&edge("cps = 1\nchannels = 5", "cps = 1"), t0, None, &[]);
        assert_eq!(l.admit(t0), Ok(()));
        l.dest_take(0, t0);
        l.call_answered(b"c", 0, t0);
        // Same limits, destinations swapped: the buckets stay spent.
        let e = edge("cps = 1\nchannels = 5", "");
        let mut swapped = e.clone();
        swapped.destinations.swap(0, 1);
        swapped.destinations[1].cps = Some(1);
        let r = Limits::new(&swapped, t0, Some(&l), &[Some(1), Some(0)]);
        assert!(r.admit(t0).is_err(), "the edge's bucket was refilled");
        assert!(!r.dest_has_room(1, t0) && r.dest_has_room(0, t0));
        assert_eq!(r.channels_in_use(), (1, vec![0, 1]));
        r.call_ended(b"c", t0);
        assert_eq!(l.channels_in_use(), (0, vec![0, 0]), "one count, shared");
        // A changed limit gets a bucket of its own.
        let r = Limits::new(&edge("cps = 2", ""), t0, Some(&l), &[Some(0), Some(1)]);
        assert_eq!(r.admit(t0), Ok(()));
    }
}
