//! The security stage: which sources and requests the edge serves at all.
//! It runs first, before anything else reads a packet, and what it turns
//! away is dropped without a word (an answer would tell a scanner the
//! port is alive) and counted by reason.
//!
//! Two kinds of verdict. Hygiene (`deny`, `restrict`, `user_agent_deny`)
//! drops outright. A ban (a flood, the operator's, the APIBAN feed's) or
//! a source over its flood threshold right now makes the source a
//! *suspect*: what it sends is dropped unless it proves it belongs to a
//! call the edge already carries — an in-dialog request (To tag) whose
//! first Route is this edge's Record-Route with a flow token the cluster
//! sealed for this edge, or a response (which goes nowhere unless its
//! top Via is one the edge signed). A banned phone's established calls
//! therefore go on — re-INVITE, ACK, BYE — while it can start none.
//!
//! Sources in `allow` and the pool side (destinations, `outbound_from`)
//! are never counted, suspected or banned.

use super::Edge;
use crate::flow::Flow;
use crate::hygiene::Block;
use sip::{HeaderName, NameAddr};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Edge {
    /// Packets dropped by the edge's hygiene and bans since start, per
    /// reason.
    pub fn blocked_counts(&self) -> [(Block, u64); 6] {
        Block::ALL.map(|b| (b, self.blocked[b.index()].load(Ordering::Relaxed)))
    }

    fn count_block(&self, why: Block) {
        self.blocked[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Why a packet from `from` is dropped unanswered by hygiene, if it
    /// is (and counts it).
    #[inline]
    pub(super) fn blocks(&self, from: &Flow) -> Option<Block> {
        self.blocks_source(from.remote.ip())
    }

    /// Whether a connection from `ip` is closed as soon as it is accepted:
    /// its source is not served, or is banned (counted like a packet).
    pub fn refuses(&self, ip: IpAddr, now: Instant) -> bool {
        if self.blocks_source(ip).is_some() {
            return true;
        }
        let banned = self
            .bans
            .find(ip, now)
            .filter(|_| !self.exempt(ip))
            .map(Block::of_ban);
        banned.inspect(|&why| self.count_block(why)).is_some()
    }

    /// True when `ip` is on the pool side: a destination, or a network
    /// allowed to send out through the edge.
    fn is_pool(&self, ip: IpAddr) -> bool {
        self.destinations.iter().any(|d| d.addr.ip() == ip)
            || self.outbound_from.iter().any(|n| n.contains(&ip))
    }

    /// Never counted for floods, never banned.
    fn exempt(&self, ip: IpAddr) -> bool {
        self.hygiene.allows(ip) || self.is_pool(ip)
    }

    #[inline]
    fn blocks_source(&self, ip: IpAddr) -> Option<Block> {
        let why = self.hygiene.source(ip, || self.is_pool(ip))?;
        self.count_block(why);
        Some(why)
    }

    /// Whether `from` is a suspect (see the module comment) and why:
    /// banned, or over its flood threshold with this `datagram` (a
    /// request counts; a response does not). A source crossing the
    /// threshold is banned for `ban_time`.
    #[inline]
    pub(super) fn suspect(&self, from: &Flow, datagram: &[u8], now: Instant) -> Option<Block> {
        if self.flood.is_none() && self.bans.is_empty() {
            return None;
        }
        let ip = from.remote.ip();
        if self.exempt(ip) {
            return None;
        }
        if let Some(r) = self.bans.find(ip, now) {
            return Some(Block::of_ban(r));
        }
        let (cfg, sketch) = self.flood.as_ref()?;
        // Responses and keepalives are not requests.
        if datagram.starts_with(b"SIP/") || datagram.len() < 8 {
            return None;
        }
        let since = now.saturating_duration_since(self.epoch).as_millis();
        let window = since / cfg.window.as_millis().max(1);
        let n = sketch.count(ip, window as u32);
        if n <= cfg.threshold {
            return None;
        }
        if n == cfg.threshold + 1 {
            let edge = Some(std::sync::Arc::from(self.name.as_str()));
            self.bans
                .ban(ip, cfg.ban_time, crate::bans::Reason::Flood, edge, now);
        }
        Some(Block::Flood)
    }

    /// Whether a suspect's message `m` is served all the same (see the
    /// module comment); counts it as blocked for `why` if not.
    pub(super) fn excuses(&self, m: &sip::Message<'_>, why: Block) -> bool {
        let ok = !m.is_request() || self.in_a_call(m);
        if !ok {
            self.count_block(why);
        }
        ok
    }

    /// An in-dialog request along this edge's own Record-Route, carrying
    /// a token the cluster sealed for this edge.
    fn in_a_call(&self, m: &sip::Message<'_>) -> bool {
        let to = m.first_value(HeaderName::To).unwrap_or_default();
        if NameAddr::parse(to).ok().and_then(|t| t.tag()).is_none() {
            return false;
        }
        let Some(route) = m.elements(HeaderName::Route).next() else {
            return false;
        };
        let Ok(uri) = NameAddr::parse(route.text).and_then(|n| n.parse_uri()) else {
            return false;
        };
        let here = self.locals.iter().any(|l| l.is(&uri.host, uri.port));
        here && uri.user.is_some_and(|user| {
            crate::token::open(self.keys.opening(), user, self.name.as_bytes()).is_some()
        })
    }

    /// Whether a request is from a User-Agent the edge ignores (and
    /// counts it).
    #[inline]
    pub(super) fn ignores(&self, m: &sip::Message<'_>) -> bool {
        if !self.hygiene.checks_user_agents() || !m.is_request() {
            return false;
        }
        let hit = m
            .first_value(HeaderName::UserAgent)
            .is_some_and(|ua| self.hygiene.user_agent(ua));
        if hit {
            self.count_block(Block::UserAgent);
        }
        hit
    }
}
