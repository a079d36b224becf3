//! Flood detection per source address (`flood_threshold`, `flood_window`,
//! `ban_time`; Kamailio's pike): how many requests each source sent in
//! the current window.
//!
//! The counts live in two rows of fixed-size atomic cells rather than a
//! map of addresses: a flood from millions of forged sources cannot grow
//! it (memory is fixed at start), every worker counts without a lock,
//! and a count costs two atomic operations. An address has one cell in
//! each row (by a hash keyed at random per process, so nobody outside
//! can aim at a given cell); a cell belongs for one window to the first
//! address counted in it, known by a 16-bit fingerprint, and counts that
//! address only. So a count is exact — never another source's requests
//! added to an innocent one's (which a plain count-min sketch does when
//! two flooders take both of its cells) — short of a fingerprint
//! collision in a shared cell. A source that finds both its cells taken
//! this window is not counted in it: rare for a flooder, which sends
//! first in every window.
//!
//! Each cell holds its window (16 bits), its owner's fingerprint (16) and
//! the count (32): the first count of a new window claims it afresh, so
//! no sweeper is needed.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cells per row (a power of two).
const COLS: usize = 1 << 14;

/// The counts of one edge's sources.
#[derive(Debug)]
pub struct Sketch {
    cells: Box<[AtomicU64]>,
    seed: u64,
}

impl Default for Sketch {
    fn default() -> Sketch {
        Sketch::with_seed(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl Sketch {
    /// A sketch whose cells are chosen by `seed` (tests: a fixed one).
    pub fn with_seed(seed: u64) -> Sketch {
        Sketch {
            cells: (0..2 * COLS).map(|_| AtomicU64::new(0)).collect(),
            seed,
        }
    }

    /// Counts one request from `ip` in window number `window`, and
    /// returns how many `ip` has sent in it (0: not counted, see the
    /// module comment).
    #[inline]
    pub fn count(&self, ip: IpAddr, window: u32) -> u32 {
        let key = match crate::bans::canonical(ip) {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(&key.to_le_bytes(), self.seed);
        let a = (h as usize) & (COLS - 1);
        let b = COLS + ((h >> 16) as usize & (COLS - 1));
        // Window and fingerprint: the upper half of a cell.
        let owner = (u64::from(window as u16) << 48) | ((h >> 48) << 32);
        self.bump(a, owner).max(self.bump(b, owner))
    }

    fn bump(&self, i: usize, owner: u64) -> u32 {
        let cell = &self.cells[i];
        let window = owner & (0xffff << 48);
        let mut seen = cell.load(Ordering::Relaxed);
        loop {
            let next = if seen & !0xffff_ffff == owner {
                // Saturates rather than wrap into the owner's bits.
                seen + u64::from(seen as u32 != u32::MAX)
            } else if seen & (0xffff << 48) != window {
                owner | 1
            } else {
                // Another source's this window.
                return 0;
            };
            match cell.compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next as u32,
                Err(now) => seen = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_source_and_window() {
        let s = Sketch::default();
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.1".parse().expect("ip");
        for n in 1..=100 {
            assert_eq!(s.count(a, 7), n);
        }
        assert_eq!(s.count(b, 7), 1, "another source");
        assert_eq!(s.count(a, 8), 1, "a new window starts over");
        assert_eq!(s.count("::ffff:127.0.0.2".parse().expect("ip"), 8), 2);
    }

    #[test]
    fn flooders_never_add_to_quiet_sources() {
        let s = Sketch::with_seed(7);
        // 2,000 sources sending 1,000 each, then 20,000 others sending 5.
        let flooders = |k: u32| IpAddr::V4((0x0a00_0000 + k).into());
        for k in 0..2000 {
            for _ in 0..1000 {
                s.count(flooders(k), 1);
            }
        }
        let mut uncounted = 0;
        for k in 0..20_000u32 {
            let ip = IpAddr::V4((0xc000_0000 + k).into());
            let last = (0..5).fold(0, |_, _| s.count(ip, 1));
            assert!(last == 5 || last == 0, "a quiet source counted {last}");
            uncounted += usize::from(last == 0);
        }
        // 22,000 sources in one window over 2 × 16,384 cells: some find
        // both cells taken (and are simply not counted).
        assert!(
            uncounted < 20_000 / 3,
            "{uncounted} quiet sources found no cell"
        );
        // A flooder counted at all was counted in full; the few that found
        // both cells taken by other flooders are counted in the next
        // window, once the others are banned (and no longer counted).
        let missed: Vec<u32> = (0..2000)
            .filter(|&k| match s.count(flooders(k), 1) {
                1001 => false,
                0 => true,
                n => panic!("flooder {k} counted {n}"),
            })
            .collect();
        assert!(missed.len() < 20, "{} flooders missed", missed.len());
        for k in missed {
            assert_eq!(s.count(flooders(k), 2), 1);
        }
    }
}
