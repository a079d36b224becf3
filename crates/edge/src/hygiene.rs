//! Traffic hygiene (`allow`, `deny`, `restrict`, `user_agent_deny`): which
//! sources an edge serves at all, decided before anything else reads a
//! packet, and which User-Agents it ignores. Blocked traffic is dropped
//! without a word (an answer would tell a scanner the port is alive) and
//! counted by reason.
//!
//! The address lists are sorted, merged ranges found by binary search:
//! O(log n) per packet in the list's size, no allocation and no lock (the
//! lists belong to an edge snapshot, built off the forwarding path when
//! the config is read and swapped in with it).

use aho_corasick::AhoCorasick;
use ipnet::IpNet;
use std::net::IpAddr;

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Its source is in `deny` (and not in `allow`).
    Denied,
    /// `restrict = true` and its source is neither in `allow` nor one of
    /// the edge's destinations.
    Unlisted,
    /// A request whose User-Agent matches `user_agent_deny`.
    UserAgent,
    /// Its source sent more than `flood_threshold` requests in
    /// `flood_window`, or is banned for having done so.
    Flood,
    /// Its source is on the APIBAN feed.
    Apiban,
    /// Its source was banned by the operator.
    Banned,
}

impl Block {
    /// Every reason, in the order of [`Block::index`].
    pub const ALL: [Block; 6] = [
        Block::Denied,
        Block::Unlisted,
        Block::UserAgent,
        Block::Flood,
        Block::Apiban,
        Block::Banned,
    ];

    /// Why a banned source's packet is dropped.
    pub fn of_ban(r: crate::bans::Reason) -> Block {
        match r {
            crate::bans::Reason::Flood => Block::Flood,
            crate::bans::Reason::Apiban => Block::Apiban,
            crate::bans::Reason::Admin => Block::Banned,
        }
    }

    /// A stable name for the admin API and logs.
    pub fn name(self) -> &'static str {
        match self {
            Block::Denied => "deny",
            Block::Unlisted => "restrict",
            Block::UserAgent => "user_agent",
            Block::Flood => "flood",
            Block::Apiban => "apiban",
            Block::Banned => "ban",
        }
    }

    /// Position in [`Block::ALL`], for counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// User-Agents of the scanners and attack tools seen on every public SIP
/// port, matched as case-insensitive substrings: the default of
/// `user_agent_deny`.
pub const SCANNERS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "sip-scan",
    "iwar",
    "sundayddr",
    "sivus",
];

/// A set of addresses given as networks: disjoint, sorted ranges over one
/// 128-bit space (an IPv4 address is its IPv4-mapped IPv6 address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges {
    /// First address of each range, ascending.
    starts: Vec<u128>,
    /// Last address of the range at the same index.
    ends: Vec<u128>,
}

/// The 128-bit key of an address.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // Already mapped: the same key as the IPv4 address.
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

impl Ranges {
    /// The set of `nets`, merged where they touch or overlap.
    pub fn new(nets: &[IpNet]) -> Ranges {
        let mut spans: Vec<(u128, u128)> = nets
            .iter()
            .map(|n| (key(n.network()), key(n.broadcast())))
            .collect();
        spans.sort_unstable();
        let mut r = Ranges::default();
        for (start, end) in spans {
            match r.ends.last_mut() {
                Some(last) if start <= last.saturating_add(1) => *last = (*last).max(end),
                _ => {
                    r.starts.push(start);
                    r.ends.push(end);
                }
            }
        }
        r
    }

    /// True when no address is in the set.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// True when `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let k = key(ip);
        let i = self.starts.partition_point(|&s| s <= k);
        i > 0 && k <= self.ends[i - 1]
    }
}

/// One edge's hygiene, as the pipeline asks it.
#[derive(Clone, Debug, Default)]
pub struct Hygiene {
    allow: Ranges,
    deny: Ranges,
    restrict: bool,
    /// The User-Agent patterns, all found in one pass over the header
    /// (Aho-Corasick, ASCII case ignored); `None`: no patterns.
    user_agents: Option<AhoCorasick>,
}

impl Hygiene {
    /// From the edge's config.
    pub fn new(c: &crate::config::Hygiene) -> Hygiene {
        Hygiene {
            allow: Ranges::new(&c.allow),
            deny: Ranges::new(&c.deny),
            restrict: c.restrict,
            // Patterns are short, configured strings: the automaton cannot
            // fail to build; were it to, no User-Agent is refused.
            user_agents: (!c.user_agent_deny.is_empty())
                .then(|| {
                    AhoCorasick::builder()
                        .ascii_case_insensitive(true)
                        // A few states per pattern: a full DFA is small
                        // and scans a header in a few instructions a byte.
                        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                        .build(&c.user_agent_deny)
                        .ok()
                })
                .flatten(),
        }
    }

    /// Why a packet from `ip` is not served, if it is not; `pool` says
    /// whether `ip` is one of the edge's destinations (asked only in
    /// restrict mode). `allow` wins over `deny`.
    #[inline]
    pub fn source(&self, ip: IpAddr, pool: impl FnOnce() -> bool) -> Option<Block> {
        if !self.restrict && self.deny.is_empty() {
            return None;
        }
        if self.allow.contains(ip) {
            return None;
        }
        if self.deny.contains(ip) {
            return Some(Block::Denied);
        }
        (self.restrict && !pool()).then_some(Block::Unlisted)
    }

    /// True when `ip` is in `allow`: never counted for floods nor banned.
    pub fn allows(&self, ip: IpAddr) -> bool {
        !self.allow.is_empty() && self.allow.contains(ip)
    }

    /// Whether a request with this User-Agent is ignored.
    pub fn user_agent(&self, ua: &[u8]) -> bool {
        self.user_agents.as_ref().is_some_and(|a| a.is_match(ua))
    }

    /// True when requests' User-Agents are checked at all.
    pub fn checks_user_agents(&self) -> bool {
        self.user_agents.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("a network")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ranges_merge_and_find_both_families() {
        let r = Ranges::new(&nets(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "192.0.2.0/25",
            "192.0.2.128/25",
            "2001:db8::/32",
            "198.51.100.7/32",
        ]));
        assert_eq!(r.starts.len(), 4, "overlapping and touching ranges merge");
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.0.2.200",
            "198.51.100.7",
            "2001:db8::1",
            "::ffff:10.2.3.4",
        ] {
            assert!(r.contains(ip(yes)), "{yes}");
        }
        for no in [
            "9.255.255.255",
            "11.0.0.0",
            "198.51.100.8",
            "2001:db9::",
            "::",
        ] {
            assert!(!r.contains(ip(no)), "{no}");
        }
        assert!(!Ranges::new(&[]).contains(ip("0.0.0.0")));
        assert!(Ranges::new(&nets(&["0.0.0.0/0"])).contains(ip("255.255.255.255")));
        assert!(!Ranges::new(&nets(&["0.0.0.0/0"])).contains(ip("2001:db8::1")));
    }

    #[test]
    fn ranges_agree_with_a_linear_scan() {
        // A fixed pseudo-random walk over small networks near each other.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50 {
            let list: Vec<IpNet> = (0..(next() % 40))
                .map(|_| {
                    let a = std::net::Ipv4Addr::from(0x0a00_0000 | (next() as u32 & 0xffff));
                    IpNet::new(IpAddr::V4(a), 16 + (next() % 17) as u8)
                        .expect("prefix")
                        .trunc()
                })
                .collect();
            let r = Ranges::new(&list);
            for _ in 0..500 {
                let a = IpAddr::V4(std::net::Ipv4Addr::from(
                    0x0a00_0000 | (next() as u32 & 0x1_ffff),
                ));
                assert_eq!(r.contains(a), list.iter().any(|n| n.contains(&a)), "{a}");
            }
        }
    }

    fn hygiene(allow: &[&str], deny: &[&str], restrict: bool) -> Hygiene {
        Hygiene::new(&crate::config::Hygiene {
            allow: nets(allow),
            deny: nets(deny),
            restrict,
            user_agent_deny: SCANNERS.iter().map(|s| s.to_string()).collect(),
            flood: None,
        })
    }

    #[test]
    fn allow_wins_over_deny_and_restrict_admits_the_pool() {
        let h = hygiene(&["203.0.113.5/32"], &["203.0.113.0/24"], false);
        assert_eq!(h.source(ip("203.0.113.9"), || false), Some(Block::Denied));
        assert_eq!(h.source(ip("203.0.113.5"), || false), None);
        assert_eq!(h.source(ip("198.51.100.1"), || false), None);

        let h = hygiene(&["203.0.113.0/24"], &[], true);
        assert_eq!(h.source(ip("203.0.113.9"), || false), None);
        assert_eq!(h.source(ip("198.51.100.1"), || true), None, "a destination");
        assert_eq!(
            h.source(ip("198.51.100.1"), || false),
            Some(Block::Unlisted)
        );
        let open = hygiene(&[], &[], false);
        assert_eq!(
            open.source(ip("198.51.100.1"), || unreachable!("not asked")),
            None
        );
    }

    #[test]
    fn scanners_are_known_by_their_user_agent_in_any_case() {
        let h = hygiene(&[], &[], false);
        for ua in [
            &b"friendly-scanner"[..],
            b"sipvicious 0.3.4",
            b"SIPVicious",
            b"VaxSIPUserAgent/3.1",
            b"x sip-scan x",
        ] {
            assert!(h.user_agent(ua), "{}", String::from_utf8_lossy(ua));
        }
        for ua in [&b"Linphone/5.2"[..], b"Asterisk PBX 20", b"", b"sip"] {
            assert!(!h.user_agent(ua), "{}", String::from_utf8_lossy(ua));
        }
    }
}
