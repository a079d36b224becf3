//! The outbound proxy's DNS answers (RFC 3263): where a request from the
//! pool to a host name goes, in the order its targets are tried.
//!
//! Sans-IO: the daemon looks names up (NAPTR, SRV, A/AAAA) off the
//! forwarding path and stores each answer here under its query; a request
//! whose query has no answer yet is handed back to the daemon to wait for
//! one ([`crate::proxy::Outcome::Resolve`]), then handled again. The daemon
//! also removes an answer when its TTL runs out, so nothing here reads a
//! clock.

use crate::dispatch::rendezvous::{draw, id_mix, score, tx_seed};
use crate::flow::Transport;
use sip::{Host, Scheme, Uri};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// Most targets one request is tried on (serial failover of a
/// transactional edge); a stateless edge sends to the first.
pub const MAX_TRIES: usize = 4;
/// Most queries held at once per edge; beyond it the oldest answers give
/// way (a pool that calls a million domains must not grow the edge
/// without bound).
const MAX_NAMES: usize = 10_000;

/// One address an answer offers: an SRV target's address (or the name's
/// own A/AAAA address), with its SRV priority and weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Lower is tried first (RFC 2782).
    pub priority: u16,
    /// Share among the targets of one priority; 0 only when no other
    /// target of the priority is left.
    pub weight: u16,
    /// Identity for the weighted order: a hash of the target's name and
    /// port, the same on every node, so every instance tries the targets
    /// of one transaction in the same order.
    pub id: u64,
    /// The server's host name: the SRV target, or the name looked up for
    /// its address (lower case, no trailing dot).
    pub host: Box<str>,
    /// The transport the NAPTR or SRV record (or the URI) chose.
    pub transport: Transport,
    /// Where to send.
    pub addr: SocketAddr,
}

/// What a query found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Targets, any order (sorted by [`Answer::order`] per request).
    Targets(Vec<Target>),
    /// The name does not exist or has no usable record: 404.
    NoSuchName,
    /// The lookup itself failed (timeout, server failure): 503.
    Failed,
}

impl Answer {
    /// The targets one request tries, into `out` (at most [`MAX_TRIES`]),
    /// of those `usable` accepts (the edge can send there, and it is not
    /// the edge itself): by priority, and within a priority by weighted
    /// rendezvous over the transaction key — RFC 2782's weighted random
    /// choice, made the same way by every instance of a cluster (the key
    /// is signed with its secret) for every retransmission and CANCEL of
    /// the transaction.
    pub fn order(
        &self,
        tx_key: u64,
        out: &mut Vec<(Transport, SocketAddr)>,
        usable: impl Fn(Transport, SocketAddr) -> bool,
    ) {
        out.clear();
        let Answer::Targets(targets) = self else {
            return;
        };
        let key = tx_seed(tx_key);
        let rank = |t: &Target| {
            // SRV weight 0: chosen only when nothing else of its priority
            // is left (RFC 2782), i.e. a tiny share.
            let weight = if t.weight == 0 {
                0.01
            } else {
                f64::from(t.weight)
            };
            score(draw(key, id_mix(t.id)), weight)
        };
        let mut picked = [usize::MAX; MAX_TRIES];
        for slot in 0..MAX_TRIES.min(targets.len()) {
            let best = targets
                .iter()
                .enumerate()
                .filter(|(i, t)| !picked[..slot].contains(i) && usable(t.transport, t.addr))
                .min_by(|(_, a), (_, b)| {
                    a.priority
                        .cmp(&b.priority)
                        .then_with(|| rank(b).total_cmp(&rank(a)))
                });
            match best {
                Some((i, t)) => {
                    picked[slot] = i;
                    out.push((t.transport, t.addr));
                }
                None => break,
            }
        }
    }
}

/// The query a next hop named by host makes: its host, port, transport
/// and scheme as the URI gives them (RFC 3263 §4: each changes which
/// records are asked for).
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The host name.
    pub host: &'a [u8],
    /// The port, if the URI names one (then only A/AAAA is asked).
    pub port: Option<u16>,
    /// `;transport=`, if the URI names one (then no NAPTR is asked).
    pub transport: Option<Transport>,
    /// A `sips:` URI: TLS targets only.
    pub secure: bool,
}

impl<'a> Query<'a> {
    /// The query of `uri`, if its host is a name.
    pub fn of(uri: &Uri<'a>) -> Option<Query<'a>> {
        let Host::Name(host) = uri.host else {
            return None;
        };
        Some(Query {
            host,
            port: uri.port,
            transport: uri
                .param(b"transport")
                .flatten()
                .and_then(Transport::from_name),
            secure: uri.scheme == Scheme::Sips,
        })
    }

    /// The query's text, the key answers are stored under: a SIP URI of
    /// just the parts that matter, host in lower case
    /// (`sips:example.com:5061;transport=tcp`). Written into `out`
    /// (cleared), so a worker reuses one buffer.
    pub fn write_key(&self, out: &mut String) {
        out.clear();
        out.push_str(if self.secure { "sips:" } else { "sip:" });
        for &b in self.host {
            out.push(char::from(b.to_ascii_lowercase()));
        }
        if let Some(p) = self.port {
            let _ = write!(out, ":{p}");
        }
        if let Some(t) = self.transport {
            let _ = write!(out, ";transport={}", t.name());
        }
    }
}

/// An edge's answers, by query key. Read by every shard for each request
/// to a host name (one read lock, no allocation), written by the daemon
/// when an answer arrives or expires.
#[derive(Debug, Default)]
pub struct Names {
    answers: RwLock<HashMap<Box<str>, Arc<Answer>>>,
    /// The SIP domain a TLS target was found for: the name its
    /// certificate must cover (RFC 5922 §4), by the target's address.
    tls_names: RwLock<HashMap<SocketAddr, Box<str>>>,
}

impl Names {
    /// The answer stored for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<Answer>> {
        let map = self.answers.read().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    /// Stores the answer to `key` (replacing an older one).
    pub fn put(&self, key: &str, answer: Arc<Answer>) {
        let mut map = self.answers.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_NAMES && !map.contains_key(key) {
            // Rare, and every answer is a lookup away: start over rather
            // than keep an eviction order on the read path.
            map.clear();
        }
        map.insert(key.into(), answer);
    }

    /// Removes `key`'s answer if it is still `answer` (its TTL ran out),
    /// so the next request looks it up again. A weak reference: what
    /// waits to expire an answer does not keep it alive.
    pub fn expire(&self, key: &str, answer: &std::sync::Weak<Answer>) {
        let mut map = self.answers.write().unwrap_or_else(|e| e.into_inner());
        if map
            .get(key)
            .is_some_and(|a| Arc::as_ptr(a) == answer.as_ptr())
        {
            map.remove(key);
        }
    }

    /// Remembers that the TLS target at `addr` serves SIP domain `domain`.
    pub fn name_tls(&self, addr: SocketAddr, domain: &str) {
        let mut map = self.tls_names.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_NAMES && !map.contains_key(&addr) {
            map.clear();
        }
        map.insert(addr, domain.into());
    }

    /// The SIP domain the TLS target at `addr` was found for, if any: the
    /// name a connection to it verifies.
    pub fn tls_name(&self, addr: SocketAddr) -> Option<Box<str>> {
        let map = self.tls_names.read().unwrap_or_else(|e| e.into_inner());
        map.get(&addr).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(priority: u16, weight: u16, id: u64, port: u16) -> Target {
        Target {
            priority,
            weight,
            id,
            host: "carrier.test".into(),
            transport: Transport::Udp,
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
        }
    }

    #[test]
    fn keys_name_what_changes_the_lookup() {
        let mut k = String::new();
        let uri = sip::Uri::parse(b"sip:alice@Example.COM;transport=TCP").unwrap();
        Query::of(&uri).unwrap().write_key(&mut k);
        assert_eq!(k, "sip:example.com;transport=tcp");
        let uri = sip::Uri::parse(b"sips:bob@example.com:5071").unwrap();
        Query::of(&uri).unwrap().write_key(&mut k);
        assert_eq!(k, "sips:example.com:5071");
        let uri = sip::Uri::parse(b"sip:10.0.0.1").unwrap();
        assert!(Query::of(&uri).is_none());
    }

    #[test]
    fn lower_priority_first_then_by_weight_the_same_for_a_transaction() {
        let a = Answer::Targets(vec![
            target(20, 1, 1, 5001),
            target(10, 1, 2, 5002),
            target(10, 3, 3, 5003),
        ]);
        let mut out = Vec::new();
        let mut firsts = [0usize; 2];
        for tx in 0..4000u64 {
            a.order(tx, &mut out, |_, _| true);
            assert_eq!(out.len(), 3);
            assert_eq!(out[2].1.port(), 5001, "priority 20 comes last");
            firsts[usize::from(out[0].1.port() == 5003)] += 1;
            let again = out.clone();
            a.order(tx, &mut out, |_, _| true);
            assert_eq!(out, again, "a transaction's order never changes");
        }
        // Weight 3 against 1: about three quarters of first picks.
        let share = firsts[1] as f64 / 4000.0;
        assert!((0.70..0.80).contains(&share), "{share}");
    }

    #[test]
    fn at_most_max_tries_and_nothing_for_a_failure() {
        let many = Answer::Targets((0..10).map(|i| target(0, 1, i, 5000)).collect());
        let mut out = Vec::new();
        many.order(7, &mut out, |_, _| true);
        assert_eq!(out.len(), MAX_TRIES);
        many.order(7, &mut out, |_, a| a.port() == 5003);
        assert!(out.is_empty(), "none usable");
        let a = Answer::Targets(vec![target(10, 1, 1, 5001), target(20, 1, 2, 5002)]);
        a.order(7, &mut out, |_, a| a.port() != 5001);
        assert_eq!(out.len(), 1, "only what the edge can use");
        assert_eq!(out[0].1.port(), 5002);
        Answer::Failed.order(7, &mut out, |_, _| true);
        assert!(out.is_empty());
    }

    #[test]
    fn expiry_removes_only_the_answer_it_was_for() {
        let names = Names::default();
        let old = Arc::new(Answer::NoSuchName);
        names.put("sip:a", Arc::clone(&old));
        let new = Arc::new(Answer::Failed);
        names.put("sip:a", Arc::clone(&new));
        names.expire("sip:a", &Arc::downgrade(&old));
        assert_eq!(names.get("sip:a").as_deref(), Some(&Answer::Failed));
        names.expire("sip:a", &Arc::downgrade(&new));
        assert!(names.get("sip:a").is_none());
    }
}
