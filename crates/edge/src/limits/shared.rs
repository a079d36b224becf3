//! A calls-per-second limit the nodes of a cluster share through Redis,
//! without a Redis round trip per call.
//!
//! Redis counts each limit's calls per second of its own clock (a fixed
//! window). A node leases tokens from the current window in blocks — a
//! quarter of its share of the limit, at least 1 — and spends them
//! locally; a background task leases the next block when half the last
//! is spent, and a fresh one as each second starts, so the forwarding
//! path never waits. Near the limit Redis splits what is left between
//! the nodes, so no node sits on tokens another needs. When a second
//! starts and the new block has not come yet, a node admits a few calls
//! on credit (at most half a block) and owes them: the debt is charged
//! to the window with its next lease, so every call admitted is counted
//! in Redis.
//!
//! When Redis is unreachable, each node falls back to its share of the
//! limit (the limit over the nodes it last knew alive) on a local
//! meter, and owes what it admits in the current window: when Redis
//! comes back, the first lease charges it, so the return to shared
//! counting brings no burst over the limit.
//!
//! A node alone (no `[cluster] redis`) uses the local meter at the whole
//! limit: one atomic load more than a plain meter.

use super::Rate;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How the limit is counted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// On this node only, at the whole limit (no cluster store).
    Alone,
    /// With the cluster, through leases from Redis.
    Shared,
    /// With the cluster, Redis unreachable: this node's share, owed.
    LocalShare,
}

const ALONE: u8 = 0;
const SHARED: u8 = 1;
const LOCAL_SHARE: u8 = 2;

/// A limit used within this long is kept leased as each second starts.
const ACTIVE_MS: u64 = 2000;

/// One calls-per-second limit, shareable with a cluster.
#[derive(Debug)]
pub struct SharedRate {
    limit: u32,
    /// The meter when alone (the whole limit) or when Redis is down (the
    /// node's share).
    local: Rate,
    mode: AtomicU8,
    /// The lease: its window (Redis second, high 32 bits) and the tokens
    /// left (low 32).
    lease: AtomicU64,
    /// Calls admitted without a lease and not yet charged: their window
    /// (high 32 bits) and count (low 32).
    debt: AtomicU64,
    /// Redis's clock minus this one, in milliseconds (this one: since
    /// `epoch`).
    offset_ms: AtomicI64,
    /// Tokens leased at a time.
    block: AtomicU32,
    /// The window Redis said is full: no lease is asked for until the next.
    full: AtomicU32,
    /// The forwarding path asks for a lease.
    wanted: AtomicBool,
    /// When a call last asked, in milliseconds since `epoch`.
    used_ms: AtomicU64,
    epoch: Instant,
}

fn split(x: u64) -> (u32, u32) {
    ((x >> 32) as u32, x as u32)
}

fn join(window: u32, n: u32) -> u64 {
    (u64::from(window) << 32) | u64::from(n)
}

impl SharedRate {
    /// `limit` calls per second, counted alone until the cluster task
    /// says otherwise; `epoch` is the origin of the nanoseconds the
    /// forwarding path passes in.
    pub fn new(limit: u32, epoch: Instant) -> SharedRate {
        SharedRate {
            limit,
            local: Rate::new(f64::from(limit)),
            mode: AtomicU8::new(ALONE),
            lease: AtomicU64::new(0),
            debt: AtomicU64::new(0),
            offset_ms: AtomicI64::new(0),
            block: AtomicU32::new(1),
            full: AtomicU32::new(u32::MAX),
            wanted: AtomicBool::new(false),
            used_ms: AtomicU64::new(0),
            epoch,
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// How the limit is counted now.
    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            SHARED => Mode::Shared,
            LOCAL_SHARE => Mode::LocalShare,
            _ => Mode::Alone,
        }
    }

    fn window(&self, ms: u64) -> u32 {
        let redis = ms as i64 + self.offset_ms.load(Ordering::Relaxed);
        (redis.max(0) / 1000) as u32
    }

    /// Until the next Redis second.
    fn rest_of_window(&self, ms: u64) -> Duration {
        let redis = ms as i64 + self.offset_ms.load(Ordering::Relaxed);
        Duration::from_millis(1000 - redis.rem_euclid(1000) as u64)
    }

    /// Takes one call at `now_ns`, or says how long until one conforms.
    #[inline]
    pub fn take(&self, now_ns: u64) -> Result<(), Duration> {
        match self.mode.load(Ordering::Relaxed) {
            ALONE => self.local.take(now_ns),
            SHARED => self.take_leased(now_ns / 1_000_000),
            _ => {
                self.local.take(now_ns)?;
                self.owe(self.window(now_ns / 1_000_000), u32::MAX);
                Ok(())
            }
        }
    }

    /// Whether a call at `now_ns` would conform, without taking it.
    pub fn has_room(&self, now_ns: u64) -> bool {
        match self.mode.load(Ordering::Relaxed) {
            SHARED => {
                let ms = now_ns / 1_000_000;
                let (w, n) = split(self.lease.load(Ordering::Relaxed));
                n > 0 || w != self.window(ms)
            }
            _ => self.local.has_room(now_ns),
        }
    }

    fn take_leased(&self, ms: u64) -> Result<(), Duration> {
        self.used_ms.store(ms, Ordering::Relaxed);
        let w = self.window(ms);
        let block = self.block.load(Ordering::Relaxed);
        let mut seen = self.lease.load(Ordering::Relaxed);
        loop {
            let (lw, n) = split(seen);
            if lw != w {
                break;
            }
            if n == 0 {
                // Spent: the next lease is asked for (unless Redis said the
                // window is full); until then, or the next second, no.
                if self.full.load(Ordering::Relaxed) != w {
                    self.wanted.store(true, Ordering::Relaxed);
                }
                return Err(self.rest_of_window(ms));
            }
            match self.lease.compare_exchange_weak(
                seen,
                join(w, n - 1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if n - 1 <= block / 2 {
                        self.wanted.store(true, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(now) => seen = now,
            }
        }
        // A new second and no lease for it yet: a few on credit.
        self.wanted.store(true, Ordering::Relaxed);
        if self.owe(w, (block / 2).max(1)) {
            Ok(())
        } else {
            Err(Duration::from_millis(1))
        }
    }

    /// Adds a call to the debt of window `w`, if it stays within `cap`.
    fn owe(&self, w: u32, cap: u32) -> bool {
        let mut seen = self.debt.load(Ordering::Relaxed);
        loop {
            let (dw, n) = split(seen);
            let next = match (dw == w, n) {
                (true, n) if n >= cap => return false,
                (true, n) => join(w, n.saturating_add(1)),
                (false, _) => join(w, 1),
            };
            match self
                .debt
                .compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => seen = now,
            }
        }
    }

    /// Counts alone at the whole limit (the cluster store is gone from the
    /// config).
    pub fn alone(&self) {
        self.local.set(f64::from(self.limit));
        self.mode.store(ALONE, Ordering::Relaxed);
    }

    /// Counts with a cluster of `nodes` live nodes: through leases while
    /// Redis answers (`shared`), else at this node's share — without its
    /// burst, at `now`, when it falls back from leases (which may have
    /// spent this second's share already).
    pub fn with_cluster(&self, nodes: u32, shared: bool, now: Instant) {
        let nodes = nodes.max(1);
        let block = (self.limit / (4 * nodes)).clamp(1, 5000);
        self.block.store(block, Ordering::Relaxed);
        if shared {
            // Back to (or first to) Redis: lease at once, charging what
            // was admitted meanwhile.
            if self.mode.swap(SHARED, Ordering::Relaxed) != SHARED {
                self.wanted.store(true, Ordering::Relaxed);
            }
        } else {
            self.local.set(f64::from(self.limit) / f64::from(nodes));
            if self.mode.swap(LOCAL_SHARE, Ordering::Relaxed) == SHARED {
                let ns = now.saturating_duration_since(self.epoch).as_nanos();
                self.local.drain(u64::try_from(ns).unwrap_or(u64::MAX));
            }
        }
    }

    /// The lease to ask Redis for at `now`, if one is due: the tokens
    /// wanted and the calls owed (taken: they are charged with it).
    pub fn lease_due(&self, now: Instant) -> Option<(u32, u32)> {
        if self.mode() != Mode::Shared {
            return None;
        }
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let w = self.window(ms);
        let (lw, _) = split(self.lease.load(Ordering::Relaxed));
        let recent = ms.saturating_sub(self.used_ms.load(Ordering::Relaxed)) < ACTIVE_MS;
        let asked = self.wanted.swap(false, Ordering::Relaxed);
        let due = asked || (recent && lw != w);
        if !due {
            return None;
        }
        // Debt of this window or the one before (charged to this one);
        // older debt belongs to a second long gone.
        let (dw, n) = split(self.debt.swap(join(w, 0), Ordering::Relaxed));
        let owed = if dw.saturating_add(1) >= w { n } else { 0 };
        Some((self.block.load(Ordering::Relaxed), owed))
    }

    /// Redis granted `grant` tokens at its time `redis_ms` (Unix
    /// milliseconds), answering at `now`.
    pub fn leased(&self, now: Instant, redis_ms: u64, grant: u32) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as i64;
        self.offset_ms
            .store(redis_ms as i64 - ms, Ordering::Relaxed);
        let w = (redis_ms / 1000) as u32;
        if grant == 0 {
            self.full.store(w, Ordering::Relaxed);
        }
        let mut seen = self.lease.load(Ordering::Relaxed);
        loop {
            let (lw, n) = split(seen);
            let next = if lw == w {
                join(w, n.saturating_add(grant))
            } else {
                join(w, grant)
            };
            match self
                .lease
                .compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => seen = now,
            }
        }
    }

    /// A lease that failed (Redis did not answer): the calls it charged
    /// are owed again.
    pub fn unleased(&self, now: Instant, owed: u32) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let w = self.window(ms);
        for _ in 0..owed {
            self.owe(w, u32::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A Redis window counter as the lease script keeps it.
    struct Store {
        window: u64,
        used: u32,
        calls: u32,
    }

    impl Store {
        fn lease(&mut self, limit: u32, want: u32, owed: u32, nodes: u32, redis_ms: u64) -> u32 {
            self.calls += 1;
            let w = redis_ms / 1000;
            if w != self.window {
                self.window = w;
                self.used = 0;
            }
            self.used += owed;
            let left = limit.saturating_sub(self.used);
            let mut grant = want.min(left);
            if left < want * nodes {
                grant = grant.min(left.div_ceil(nodes));
            }
            self.used += grant;
            grant
        }
    }

    /// Nodes sharing `limit` through one store, each offered `offered`
    /// calls a second for `secs` seconds, the lease task running every
    /// 20 ms (as the daemon's does): calls admitted in total, and leases
    /// made.
    fn run(limit: u32, nodes: u32, offered: u32, secs: u64) -> (u32, u32) {
        let epoch = Instant::now();
        let rates: Vec<SharedRate> = (0..nodes).map(|_| SharedRate::new(limit, epoch)).collect();
        for r in &rates {
            r.with_cluster(nodes, true, epoch);
        }
        let mut store = Store {
            window: 0,
            used: 0,
            calls: 0,
        };
        let mut admitted = 0;
        // Calls due per node, a fraction each millisecond (offset per node).
        let mut due: Vec<f64> = (0..nodes)
            .map(|k| f64::from(k) / f64::from(nodes))
            .collect();
        let redis_base = 1_700_000_000_000u64;
        for ms in 0..secs * 1000 {
            if ms % 20 == 0 {
                let now = epoch + Duration::from_millis(ms);
                for r in &rates {
                    if let Some((want, owed)) = r.lease_due(now) {
                        let grant = store.lease(limit, want, owed, nodes, redis_base + ms);
                        r.leased(now, redis_base + ms, grant);
                    }
                }
            }
            for (r, due) in rates.iter().zip(due.iter_mut()) {
                *due += f64::from(offered) / 1000.0;
                while *due >= 1.0 {
                    *due -= 1.0;
                    if r.take(ms * MS).is_ok() {
                        admitted += 1;
                    }
                }
            }
        }
        (admitted, store.calls)
    }

    #[test]
    fn two_nodes_offered_three_times_the_limit_admit_the_limit() {
        for (limit, nodes) in [(20, 2), (20, 3), (100, 2), (1000, 4), (3000, 2), (8000, 4)] {
            let secs = 10;
            let (admitted, leases) = run(limit, nodes, limit * 3 / nodes, secs);
            let expected = f64::from(limit) * secs as f64;
            let off = (f64::from(admitted) - expected).abs() / expected;
            assert!(
                off < 0.05,
                "limit {limit} over {nodes} nodes: {admitted} admitted in {secs} s"
            );
            // At high rates (a thousand calls a second per node and more),
            // one Redis call per several dozen calls.
            if limit / nodes >= 1000 {
                assert!(
                    f64::from(admitted) / f64::from(leases) > 36.0,
                    "limit {limit}: {leases} leases for {admitted} calls"
                );
            }
        }
    }

    #[test]
    fn under_the_limit_nothing_is_refused() {
        let (admitted, _) = run(100, 2, 40, 5);
        assert_eq!(admitted, 2 * 40 * 5);
    }

    #[test]
    fn redis_down_each_node_takes_its_share_and_owes_it() {
        let epoch = Instant::now();
        let r = SharedRate::new(20, epoch);
        r.with_cluster(2, false, epoch);
        assert_eq!(r.mode(), Mode::LocalShare);
        let admitted = (0..100).filter(|_| r.take(0).is_ok()).count();
        assert_eq!(admitted, 10, "half of 20");
        // Back in the same second: the lease charges the ten.
        r.with_cluster(2, true, epoch);
        let (_, owed) = r
            .lease_due(epoch)
            .expect("due: a new window and recent calls");
        assert_eq!(owed, 10);
        // A failed lease owes them again.
        r.unleased(epoch, owed);
        r.wanted.store(true, Ordering::Relaxed);
        assert_eq!(r.lease_due(epoch).map(|(_, o)| o), Some(10));
    }

    #[test]
    fn falling_back_from_leases_brings_no_burst() {
        let epoch = Instant::now();
        let r = SharedRate::new(20, epoch);
        r.with_cluster(2, true, epoch);
        let later = epoch + Duration::from_secs(5);
        r.with_cluster(2, false, later);
        let at = 5_000 * MS;
        assert_eq!((0..100).filter(|_| r.take(at).is_ok()).count(), 0);
        // Then the share's sustained rate: one call each 100 ms.
        assert_eq!(r.take(at + 100 * MS), Ok(()));
        assert!(r.take(at + 100 * MS).is_err());
    }

    #[test]
    fn alone_is_a_plain_meter() {
        let r = SharedRate::new(5, Instant::now());
        assert_eq!(r.mode(), Mode::Alone);
        assert_eq!((0..20).filter(|_| r.take(0).is_ok()).count(), 5);
        assert_eq!(r.lease_due(Instant::now()), None);
    }
}
