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

pub use channels::Channels;
pub use rate::Rate;

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

/// The capacity state of one edge on this node.
#[derive(Debug)]
pub struct Limits {
    cps: Option<Rate>,
    channels: Option<u32>,
    dest_cps: Box<[Option<Rate>]>,
    dest_channels: Box<[Option<u32>]>,
    /// Calls in progress, kept only when some channel limit is set.
    calls: Option<Channels>,
    epoch: Instant,
}

impl Limits {
    /// The limits `edge` configures; `epoch` is the origin of the clock
    /// the rate limits count on.
    pub fn new(edge: &config::Edge, epoch: Instant) -> Limits {
        let rate = |n: Option<u32>| n.map(|n| Rate::new(f64::from(n)));
        let counts_channels = edge.capacity.channels.is_some()
            || edge.destinations.iter().any(|d| d.channels.is_some());
        let max_age = u64::try_from(edge.capacity.max_call_duration.as_nanos()).unwrap_or(u64::MAX);
        Limits {
            cps: rate(edge.capacity.cps),
            channels: edge.capacity.channels,
            dest_cps: edge.destinations.iter().map(|d| rate(d.cps)).collect(),
            dest_channels: edge.destinations.iter().map(|d| d.channels).collect(),
            calls: counts_channels.then(|| Channels::new(edge.destinations.len(), max_age)),
            epoch,
        }
    }

    fn ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
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
                return Err(Full::Channels);
            }
        }
        match &self.cps {
            Some(r) => r.take(self.ns(now)).map_err(Full::Cps),
            None => Ok(()),
        }
    }

    /// Whether destination `i` may take a new call at `now`.
    pub fn dest_has_room(&self, i: usize, now: Instant) -> bool {
        let cps_ok = match self.dest_cps.get(i) {
            Some(Some(r)) => r.has_room(self.ns(now)),
            _ => true,
        };
        let channels_ok = match (self.dest_channels.get(i), &self.calls) {
            (Some(Some(max)), Some(calls)) => calls.of(i) < *max,
            _ => true,
        };
        cps_ok && channels_ok
    }

    /// A new call was sent to destination `i` at `now`: it counts against
    /// that destination's calls per second.
    pub fn dest_take(&self, i: usize, now: Instant) {
        if let Some(Some(r)) = self.dest_cps.get(i) {
            let _ = r.take(self.ns(now));
        }
    }

    /// A 2xx to an INVITE of `call_id` came from destination `dest`.
    pub fn call_answered(&self, call_id: &[u8], dest: usize, now: Instant) {
        if let Some(c) = &self.calls {
            c.answered(call_id, dest, self.ns(now));
        }
    }

    /// A BYE of `call_id` passed.
    pub fn call_ended(&self, call_id: &[u8], now: Instant) {
        if let Some(c) = &self.calls {
            c.ended(call_id, self.ns(now));
        }
    }

    /// Calls in progress counted on this edge and per destination (zeros
    /// when channels are not counted).
    pub fn channels_in_use(&self) -> (u32, Vec<u32>) {
        match &self.calls {
            Some(c) => (
                c.total(),
                (0..self.dest_cps.len()).map(|i| c.of(i)).collect(),
            ),
            None => (0, vec![0; self.dest_cps.len()]),
        }
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
        let l = Limits::new(&edge("", ""), t0);
        assert!(!l.limits_destinations() && !l.counts_channels());
        for _ in 0..10_000 {
            assert_eq!(l.admit(t0), Ok(()));
        }
        assert!(l.dest_has_room(0, t0));
    }

    #[test]
    fn edge_cps_and_channels() {
        let t0 = Instant::now();
        let l = Limits::new(&edge("cps = 2\nchannels = 1", ""), t0);
        assert_eq!(l.admit(t0), Ok(()));
        l.call_answered(b"c1", 0, t0);
        assert_eq!(l.admit(t0), Err(Full::Channels));
        l.call_ended(b"c1", t0);
        assert_eq!(l.admit(t0), Ok(()));
        let Err(full) = l.admit(t0) else {
            panic!("third call in the same instant admitted")
        };
        assert_eq!(full, Full::Cps(Duration::from_millis(500)));
        assert_eq!(full.retry_after_secs(), 1);
        assert_eq!(l.admit(t0 + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn destination_limits() {
        let t0 = Instant::now();
        let l = Limits::new(&edge("", "cps = 1\nchannels = 1"), t0);
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
}
