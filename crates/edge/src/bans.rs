//! Bans: source addresses the node drops for a while, on every edge —
//! sources that flooded an edge (`flood_threshold`), addresses the
//! operator banned (admin API, `sipedge ctl bans`), and the known-bad
//! addresses of the APIBAN feed.
//!
//! The forwarding path only reads: one atomic load when nothing is
//! banned, else a hash lookup in an immutable snapshot (lock-free, O(1)).
//! Changes — from the forwarding path when a source crosses the flood
//! threshold, from the admin API, from the APIBAN poll, from the cluster
//! — are queued and applied off the forwarding path ([`Bans::apply`]),
//! which builds the next snapshot and swaps it in. Until a flood ban is
//! applied, the flood counter itself keeps dropping the source.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why an address is banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// It sent more than an edge's `flood_threshold` requests in its
    /// `flood_window`.
    Flood,
    /// The operator banned it (admin API, `sipedge ctl bans add`).
    Admin,
    /// The APIBAN feed lists it.
    Apiban,
}

impl Reason {
    /// Every reason, in declaration order (`ALL[r as usize] == r`).
    pub const ALL: [Reason; 3] = [Reason::Flood, Reason::Admin, Reason::Apiban];

    /// A stable name for the admin API, logs and the cluster store.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Flood => "flood",
            Reason::Admin => "admin",
            Reason::Apiban => "apiban",
        }
    }

    /// The reason a [`Reason::name`] names.
    pub fn of_name(s: &str) -> Option<Reason> {
        [Reason::Flood, Reason::Admin, Reason::Apiban]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

/// One ban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// When it ends, in milliseconds since the Unix epoch (wall-clock
    /// time: the nodes of a cluster agree on it).
    pub until_ms: u64,
    /// Why.
    pub reason: Reason,
    /// The edge whose flood threshold it crossed, for a flood ban.
    pub edge: Option<Arc<str>>,
}

/// A queued change, and whether it was made on this node (rather than
/// shared by another through the cluster store: not to be shared again).
#[derive(Clone, Debug)]
enum Change {
    Add(IpAddr, Ban, bool),
    Lift(IpAddr, bool),
}

/// Changes queued and not yet applied, at most: a flood of sources each
/// crossing the threshold between two applies cannot grow the queue
/// without bound (the flood counter keeps dropping those it could not
/// queue).
const MAX_QUEUED: usize = 65_536;

/// Addresses banned at once, at most (a few tens of bytes each): past
/// it, new bans other than the operator's are not taken.
pub const MAX_BANS: usize = 1_048_576;

/// The node's bans, shared by every edge and worker.
#[derive(Debug)]
pub struct Bans {
    live: ArcSwap<HashMap<IpAddr, Ban>>,
    /// Entries in `live`: the forwarding path's one load when none.
    len: AtomicUsize,
    /// When the first ban in `live` runs out (Unix ms): until then an
    /// apply with nothing queued has nothing to do, however many bans
    /// (the APIBAN feed's hundred thousand) there are.
    earliest: AtomicU64,
    queued: Mutex<Vec<Change>>,
    /// A moment of the monotonic clock and the wall-clock time then:
    /// the forwarding path's `Instant`s turned into Unix milliseconds.
    origin: (Instant, u64),
}

/// What one [`Bans::apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Bans made on this node, added or extended (for the cluster store to
    /// share), not counting those of the APIBAN feed (every node polls
    /// it).
    pub added: Vec<(IpAddr, Ban)>,
    /// Addresses lifted by hand on this node (for the cluster store to
    /// share).
    pub lifted: Vec<IpAddr>,
    /// Bans that ran out and were removed.
    pub expired: usize,
}

/// An address as a ban key: an IPv4-mapped IPv6 address is its IPv4
/// address (a dual-stack socket reports IPv4 peers so).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Bans {
    /// No bans; `now` is the monotonic clock when the wall clock read
    /// `unix_ms`.
    pub fn new(now: Instant, unix_ms: u64) -> Bans {
        Bans {
            live: ArcSwap::from_pointee(HashMap::new()),
            len: AtomicUsize::new(0),
            earliest: AtomicU64::new(u64::MAX),
            queued: Mutex::new(Vec::new()),
            origin: (now, unix_ms),
        }
    }

    /// `now` as milliseconds since the Unix epoch.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let (at, ms) = self.origin;
        let since = now.saturating_duration_since(at).as_millis();
        ms.saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// True when nothing is banned (the forwarding path's fast way out).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Why `ip` is banned at `now`, if it is.
    #[inline]
    pub fn find(&self, ip: IpAddr, now: Instant) -> Option<Reason> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let live = self.live.load();
        let ban = live.get(&canonical(ip))?;
        (ban.until_ms > self.unix_ms(now)).then_some(ban.reason)
    }

    /// Queues a ban of `ip` for `time` from `now` (an existing ban is
    /// extended, never shortened). False when the queue is full.
    pub fn ban(
        &self,
        ip: IpAddr,
        time: Duration,
        reason: Reason,
        edge: Option<Arc<str>>,
        now: Instant,
    ) -> bool {
        let until_ms = self.unix_ms(now).saturating_add(time.as_millis() as u64);
        let ban = Ban {
            until_ms,
            reason,
            edge,
        };
        // The operator's and the feed's are always taken (the feed is
        // trusted and as long as it is); a flood's only while the queue
        // has room.
        self.queue(
            Change::Add(canonical(ip), ban, true),
            reason != Reason::Flood,
        )
    }

    /// Queues a ban another node of the cluster shared.
    pub fn shared_ban(&self, ip: IpAddr, ban: Ban) -> bool {
        let always = ban.reason == Reason::Admin;
        self.queue(Change::Add(canonical(ip), ban, false), always)
    }

    /// Queues the lifting of any ban of `ip`.
    pub fn lift(&self, ip: IpAddr) -> bool {
        self.queue(Change::Lift(canonical(ip), true), true)
    }

    /// Queues a lift another node of the cluster shared.
    pub fn shared_lift(&self, ip: IpAddr) -> bool {
        self.queue(Change::Lift(canonical(ip), false), true)
    }

    fn queue(&self, c: Change, always: bool) -> bool {
        // A poisoned lock only means a panic elsewhere mid-push: the
        // vector is still a vector.
        let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_QUEUED && !always {
            return false;
        }
        q.push(c);
        true
    }

    /// Applies the queued changes and drops the bans that ran out by
    /// `now`; swaps a new snapshot in when anything changed. Off the
    /// forwarding path (a timer, the admin API).
    pub fn apply(&self, now: Instant) -> Applied {
        let changes = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()));
        let now_ms = self.unix_ms(now);
        if changes.is_empty() && now_ms < self.earliest.load(Ordering::Relaxed) {
            return Applied::default();
        }
        let live = self.live.load_full();
        let mut out = Applied {
            expired: live.values().filter(|b| b.until_ms <= now_ms).count(),
            ..Applied::default()
        };
        let mut next: HashMap<IpAddr, Ban> = live
            .iter()
            .filter(|(_, b)| b.until_ms > now_ms)
            .map(|(ip, b)| (*ip, b.clone()))
            .collect();
        for c in changes {
            match c {
                Change::Add(_, ban, _) if ban.until_ms <= now_ms => {}
                Change::Add(ip, ban, local) => {
                    let shared = local && ban.reason != Reason::Apiban;
                    let full = next.len() >= MAX_BANS && ban.reason != Reason::Admin;
                    match next.get_mut(&ip) {
                        // An operator's ban replaces whatever was there;
                        // any other only extends.
                        Some(old)
                            if ban.reason != Reason::Admin && old.until_ms >= ban.until_ms => {}
                        Some(old) => {
                            *old = ban.clone();
                            if shared {
                                out.added.push((ip, ban));
                            }
                        }
                        None if full => {}
                        None => {
                            next.insert(ip, ban.clone());
                            if shared {
                                out.added.push((ip, ban));
                            }
                        }
                    }
                }
                Change::Lift(ip, local) => {
                    if next.remove(&ip).is_some() && local {
                        out.lifted.push(ip);
                    }
                }
            }
        }
        self.len.store(next.len(), Ordering::Relaxed);
        let earliest = next.values().map(|b| b.until_ms).min().unwrap_or(u64::MAX);
        self.earliest.store(earliest, Ordering::Relaxed);
        self.live.store(Arc::new(next));
        out
    }

    /// Every ban in force at `now`, by address.
    pub fn list(&self, now: Instant) -> Vec<(IpAddr, Ban)> {
        let now_ms = self.unix_ms(now);
        let mut all: Vec<(IpAddr, Ban)> = self
            .live
            .load()
            .iter()
            .filter(|(_, b)| b.until_ms > now_ms)
            .map(|(ip, b)| (*ip, b.clone()))
            .collect();
        all.sort_by_key(|(ip, _)| *ip);
        all
    }

    /// Bans in force at `now`, per reason (in the order of
    /// [`Reason::Flood`], `Admin`, `Apiban`).
    pub fn counts(&self, now: Instant) -> [usize; 3] {
        let now_ms = self.unix_ms(now);
        let mut n = [0; 3];
        for b in self.live.load().values().filter(|b| b.until_ms > now_ms) {
            n[b.reason as usize] += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn a_ban_applies_lasts_and_runs_out() {
        let t0 = Instant::now();
        let bans = Bans::new(t0, 1_000_000);
        let a = ip("203.0.113.9");
        assert_eq!(bans.find(a, t0), None);
        assert!(bans.ban(a, Duration::from_secs(60), Reason::Flood, None, t0));
        assert_eq!(bans.find(a, t0), None, "queued, not yet applied");
        let applied = bans.apply(t0);
        assert_eq!(applied.added.len(), 1);
        assert_eq!(bans.find(a, t0), Some(Reason::Flood));
        assert_eq!(
            bans.find(ip("::ffff:203.0.113.9"), t0),
            Some(Reason::Flood),
            "the same address, IPv4-mapped"
        );
        assert_eq!(bans.find(ip("203.0.113.10"), t0), None);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(bans.find(a, later), None, "ran out");
        assert_eq!(bans.apply(later).expired, 1);
        assert!(bans.list(later).is_empty());
    }

    #[test]
    fn bans_extend_lift_and_the_operator_wins() {
        let t0 = Instant::now();
        let bans = Bans::new(t0, 0);
        let a = ip("2001:db8::1");
        bans.ban(
            a,
            Duration::from_secs(100),
            Reason::Flood,
            Some("e".into()),
            t0,
        );
        bans.ban(a, Duration::from_secs(10), Reason::Flood, None, t0);
        let applied = bans.apply(t0);
        assert_eq!(applied.added.len(), 1, "the shorter ban does not shorten");
        assert_eq!(bans.list(t0)[0].1.until_ms, 100_000);
        bans.ban(a, Duration::from_secs(5), Reason::Admin, None, t0);
        bans.apply(t0);
        assert_eq!(bans.list(t0)[0].1.until_ms, 5_000, "the operator sets it");
        assert_eq!(bans.counts(t0), [0, 1, 0]);
        bans.lift(a);
        assert_eq!(bans.apply(t0).lifted, vec![a]);
        assert_eq!(bans.find(a, t0), None);
        bans.lift(a);
        assert!(bans.apply(t0).lifted.is_empty(), "nothing to lift");
    }

    #[test]
    fn what_the_cluster_shared_is_not_shared_again() {
        let t0 = Instant::now();
        let bans = Bans::new(t0, 0);
        let a = ip("192.0.2.1");
        let ban = Ban {
            until_ms: 60_000,
            reason: Reason::Flood,
            edge: Some("e".into()),
        };
        bans.shared_ban(a, ban.clone());
        let applied = bans.apply(t0);
        assert!(applied.added.is_empty());
        assert_eq!(bans.list(t0), vec![(a, ban)]);
        bans.shared_lift(a);
        assert!(bans.apply(t0).lifted.is_empty());
        assert!(bans.list(t0).is_empty());
    }

    #[test]
    fn the_feed_is_not_shared_and_the_queue_is_bounded() {
        let t0 = Instant::now();
        let bans = Bans::new(t0, 0);
        bans.ban(
            ip("198.51.100.1"),
            Duration::from_secs(9),
            Reason::Apiban,
            None,
            t0,
        );
        let applied = bans.apply(t0);
        assert!(applied.added.is_empty());
        assert_eq!(bans.find(ip("198.51.100.1"), t0), Some(Reason::Apiban));
        for i in 0..MAX_QUEUED as u32 {
            assert!(bans.ban(
                IpAddr::V4(i.into()),
                Duration::from_secs(9),
                Reason::Flood,
                None,
                t0
            ));
        }
        assert!(!bans.ban(
            ip("10.9.9.9"),
            Duration::from_secs(9),
            Reason::Flood,
            None,
            t0
        ));
        assert!(bans.ban(
            ip("10.9.9.9"),
            Duration::from_secs(9),
            Reason::Admin,
            None,
            t0
        ));
        bans.apply(t0);
        assert_eq!(bans.list(t0).len(), MAX_QUEUED + 2);
    }
}
