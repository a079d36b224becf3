//! Named peers (`[[edge.peer]]`): which carrier or customer a request
//! comes from, by its source network, User-Agent and transport — the
//! first peer whose every condition holds. An edge with none configured
//! asks nothing.

use crate::config::{self, Rewrites};
use crate::flow::{Flow, Transport};
use sip::{HeaderName, Message};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An edge's peers, in config order.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    list: Box<[Peer]>,
    /// Some peer has rewrites in either direction: the one question an
    /// edge without any asks per request.
    rewrites: bool,
}

#[derive(Debug, Clone)]
struct Peer {
    name: Arc<str>,
    /// New calls from it (`sipedge_peer_calls_total`), kept across
    /// reloads by name.
    calls: Arc<AtomicU64>,
    sources: Box<[ipnet::IpNet]>,
    /// Lower case.
    user_agent: Option<Box<[u8]>>,
    transport: Option<Transport>,
    from_peer: Rewrites,
    to_peer: Rewrites,
}

impl Peers {
    /// The peers `peers` configure; each keeps the call count of the
    /// peer of the same name in `previous` (the snapshot a reload
    /// replaces).
    pub fn new(peers: &[config::Peer], previous: Option<&Peers>) -> Peers {
        let counted = |name: &str| {
            previous
                .and_then(|p| p.list.iter().find(|q| &*q.name == name))
                .map_or_else(Arc::default, |q| Arc::clone(&q.calls))
        };
        Peers {
            rewrites: peers
                .iter()
                .any(|p| !p.from_peer.is_empty() || !p.to_peer.is_empty()),
            list: peers
                .iter()
                .map(|p| Peer {
                    name: Arc::from(p.name.as_str()),
                    calls: counted(&p.name),
                    sources: p.sources.clone().into(),
                    user_agent: p
                        .user_agent
                        .as_ref()
                        .map(|u| u.to_ascii_lowercase().into_bytes().into()),
                    transport: p.transport,
                    from_peer: p.from_peer.clone(),
                    to_peer: p.to_peer.clone(),
                })
                .collect(),
        }
    }

    /// No peer is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The peer `m`, read on `from`, comes from, if one.
    pub fn of(&self, from: &Flow, m: &Message<'_>) -> Option<usize> {
        if self.list.is_empty() {
            return None;
        }
        let ip = from.remote.ip();
        let agent = m.first_value(HeaderName::UserAgent);
        self.list.iter().position(|p| {
            p.transport.is_none_or(|t| t == from.transport)
                && (p.sources.is_empty() || p.sources.iter().any(|n| n.contains(&ip)))
                && p.user_agent
                    .as_deref()
                    .is_none_or(|want| agent.is_some_and(|a| contains_ignoring_case(a, want)))
        })
    }

    /// The peer at `ip` over `transport` (where a message goes, or where
    /// a response came from): the first whose `sources` hold the address
    /// (and whose transport it is, if one is named). A User-Agent says
    /// nothing about where a request goes.
    pub fn at(&self, transport: Transport, ip: std::net::IpAddr) -> Option<usize> {
        self.list.iter().position(|p| {
            p.transport.is_none_or(|t| t == transport) && p.sources.iter().any(|n| n.contains(&ip))
        })
    }

    /// Whether any peer rewrites anything.
    pub fn rewrites(&self) -> bool {
        self.rewrites
    }

    /// What peer `i` has rewritten in what it sends (`in`) or in what is
    /// sent to it (`out`), when there is something.
    pub fn rewrites_of(&self, i: usize, to_peer: bool) -> Option<&Rewrites> {
        let p = self.list.get(i)?;
        Some(if to_peer { &p.to_peer } else { &p.from_peer }).filter(|r| !r.is_empty())
    }

    /// A new call came from peer `i`.
    pub fn count_call(&self, i: usize) {
        if let Some(p) = self.list.get(i) {
            p.calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every peer's name and new calls.
    pub fn calls(&self) -> Vec<(Arc<str>, u64)> {
        self.list
            .iter()
            .map(|p| (Arc::clone(&p.name), p.calls.load(Ordering::Relaxed)))
            .collect()
    }

    /// Peer `i`'s name.
    pub fn name(&self, i: usize) -> Option<&Arc<str>> {
        self.list.get(i).map(|p| &p.name)
    }
}

/// `hay` holds `needle` (lower case), in any case.
fn contains_ignoring_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Peers {
        let text = "[node]\nid = \"t\"\n[[edge]]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
            [[edge.peer]]\nname = \"carrier-a\"\nsources = [\"127.0.0.2\"]\n\
            [[edge.peer]]\nname = \"carrier-b\"\nsources = [\"127.0.0.0/24\"]\nuser_agent = \"Acme\"\n\
            [[edge.peer]]\nname = \"tls-customers\"\nsources = [\"127.0.0.0/24\"]\ntransport = \"tls\"\n\
            [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n";
        let cfg = config::parse(text, "t.toml").expect("config");
        Peers::new(&cfg.edges[0].peers, None)
    }

    fn which<'p>(p: &'p Peers, from: &str, transport: Transport, ua: &str) -> Option<&'p str> {
        let msg = format!(
            "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK1\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\
             {ua}Content-Length: 0\r\n\r\n"
        );
        let mut index = sip::HeaderIndex::new();
        let m = sip::parse(msg.as_bytes(), &mut index).expect("parses");
        let flow = Flow {
            transport,
            ..Flow::udp(0, from.parse().expect("address"))
        };
        p.of(&flow, &m).and_then(|i| p.name(i)).map(|n| &**n)
    }

    #[test]
    fn the_first_peer_whose_every_condition_holds_names_a_request() {
        let p = peers();
        assert_eq!(p.len(), 3);
        let udp = Transport::Udp;
        assert_eq!(which(&p, "127.0.0.2:5060", udp, ""), Some("carrier-a"));
        // carrier-a first, whatever the User-Agent.
        assert_eq!(
            which(&p, "127.0.0.2:5060", udp, "User-Agent: ACME\r\n"),
            Some("carrier-a")
        );
        assert_eq!(
            which(&p, "127.0.0.3:5060", udp, "User-Agent: acme-sbc 2.1\r\n"),
            Some("carrier-b")
        );
        assert_eq!(
            which(&p, "127.0.0.3:5060", udp, "User-Agent: other\r\n"),
            None
        );
        assert_eq!(
            which(&p, "127.0.0.3:5060", Transport::Tls, ""),
            Some("tls-customers")
        );
        assert_eq!(which(&p, "10.0.0.3:5060", Transport::Tls, ""), None);
        assert!(Peers::default().is_empty());
    }

    #[test]
    fn call_counts_carry_over_a_reload_by_name() {
        let before = peers();
        before.count_call(1);
        before.count_call(1);
        let after = Peers::new(
            &[config::Peer {
                name: "carrier-b".into(),
                sources: Vec::new(),
                user_agent: Some("x".into()),
                transport: None,
                from_peer: Rewrites::default(),
                to_peer: Rewrites::default(),
            }],
            Some(&before),
        );
        assert_eq!(after.calls(), [(Arc::from("carrier-b"), 2)]);
    }
}
