//! The stateless proxy: one edge's request and response pipelines as a
//! function from (datagram, source, time) to what to send where.
//!
//! [`Edge`] is the immutable snapshot built from one `[[edge]]` of the
//! config; [`Worker`] is the mutable, per-thread part (parse index, splicer,
//! output buffer, dispatch counters, statistics). The daemon owns sockets
//! and calls [`Worker::handle`] for every datagram.

mod addresses;
mod reply;
mod request;
mod response;
mod splices;

pub use addresses::{Destination, Local};

use crate::branch::BranchKey;
use crate::config;
use crate::dispatch::{Selector, Target, WorkerState};
use crate::health::{Counters, HealthView};
use crate::stats::{Event, Stats};
use sip::{HeaderIndex, ParseError, Splicer};
use std::net::SocketAddr;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

/// What the daemon should do with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send [`Worker::output`] to `to` from the edge's local address number `local`.
    Send {
        /// Where to.
        to: SocketAddr,
        /// Index into [`Edge::locals`] of the socket to send from.
        local: usize,
    },
    /// Nothing to send; the event says why (already counted).
    Drop(Event),
}

/// One edge, ready to route: addresses, destinations, selector, keys.
#[derive(Debug)]
pub struct Edge {
    /// The edge's name from the config.
    pub name: String,
    locals: Vec<Local>,
    destinations: Vec<Destination>,
    selector: Selector,
    health: Arc<HealthView>,
    ping_replies: bool,
    key: BranchKey,
}

impl Edge {
    /// Builds the snapshot of one configured edge. `secret` is the
    /// cluster's shared secret (it keys the Via branch MAC).
    pub fn new(edge: &config::Edge, node: &config::Node, secret: &[u8]) -> Edge {
        let locals = edge
            .listen
            .iter()
            .map(|l| Local::new(l.addr, edge.advertise.as_ref()))
            .collect();
        let destinations: Vec<Destination> =
            edge.destinations.iter().map(Destination::new).collect();
        let targets: Vec<Target> = edge
            .destinations
            .iter()
            .map(|d| Target {
                id: xxh3_64(d.uri.as_bytes()),
                weight: d.weight,
                priority: d.priority,
                zone: d.zone.clone(),
                limit_zones: d.limit_zones.clone(),
                backup_zones: d.backup_zones.clone(),
            })
            .collect();
        Edge {
            name: edge.name.clone(),
            locals,
            destinations,
            selector: Selector::new(edge.algorithm, &targets, node.zone.as_deref()),
            health: Arc::new(HealthView::new(edge.destinations.len())),
            ping_replies: edge.ping_replies,
            key: BranchKey::from_secret(secret),
        }
    }

    /// The health view the workers dispatch by; the prober writes it.
    pub fn health(&self) -> &Arc<HealthView> {
        &self.health
    }

    /// The tier (1, 2 or 3) of destination `i` as this node's zone sees it,
    /// or `None` when its `limit_zones` keep this node from using it.
    pub fn tier(&self, i: usize) -> Option<u8> {
        self.selector.tier(i)
    }

    /// The local addresses, in config order.
    pub fn locals(&self) -> &[Local] {
        &self.locals
    }

    /// The destinations, in config order.
    pub fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    /// The local address to send to `to` from: the one the message came in
    /// on when the family matches, else the first of the right family.
    pub fn local_for(&self, to: SocketAddr, received_on: usize) -> Option<usize> {
        if self
            .locals
            .get(received_on)
            .is_some_and(|l| l.addr.is_ipv4() == to.is_ipv4())
        {
            return Some(received_on);
        }
        self.locals
            .iter()
            .position(|l| l.addr.is_ipv4() == to.is_ipv4())
    }

    /// A fresh per-thread worker for this edge.
    pub fn worker(&self) -> Worker {
        Worker {
            index: HeaderIndex::new(),
            splicer: Splicer::new(),
            out: Vec::with_capacity(4096),
            dispatch: WorkerState::for_algorithm(self.selector.algorithm()),
            counters: self.health.register(),
            stats: Stats {
                per_destination: vec![0; self.destinations.len()],
                ..Stats::default()
            },
        }
    }
}

/// The per-thread state of one edge: reused buffers and counters.
#[derive(Debug)]
pub struct Worker {
    index: HeaderIndex,
    splicer: Splicer,
    out: Vec<u8>,
    dispatch: WorkerState,
    counters: Arc<Counters>,
    /// What this worker has done.
    pub stats: Stats,
}

/// The parts of a worker the pipelines use, borrowed separately from the
/// parse index (which the parsed message borrows).
pub(crate) struct Scratch<'w> {
    pub splicer: &'w mut Splicer,
    pub out: &'w mut Vec<u8>,
    pub dispatch: &'w mut WorkerState,
    pub counters: &'w Counters,
    pub stats: &'w mut Stats,
}

impl Worker {
    /// Handles one datagram received on `edge.locals()[local]` from `src`.
    /// `now_secs` is a monotonic clock in seconds.
    pub fn handle(
        &mut self,
        edge: &Edge,
        datagram: &[u8],
        src: SocketAddr,
        local: usize,
        now_secs: u64,
    ) -> Outcome {
        let Worker {
            index,
            splicer,
            out,
            dispatch,
            counters,
            stats,
        } = self;
        out.clear();
        let msg = match sip::parse(datagram, index) {
            Ok(m) => m,
            Err(ParseError::Empty) => {
                stats.count(Event::KeepAlive);
                return Outcome::Drop(Event::KeepAlive);
            }
            Err(e) => {
                let mut s = Scratch {
                    splicer,
                    out,
                    dispatch,
                    counters,
                    stats,
                };
                return reply::malformed(edge, &mut s, datagram, e, src, local);
            }
        };
        let mut s = Scratch {
            splicer,
            out,
            dispatch,
            counters,
            stats,
        };
        let outcome = if msg.is_request() {
            request::handle(edge, &mut s, &msg, src, local, now_secs)
        } else {
            response::handle(edge, &mut s, &msg, src, local)
        };
        match outcome {
            Outcome::Drop(e) => s.stats.count(e),
            Outcome::Send { .. } => {}
        }
        outcome
    }

    /// The bytes to send after [`Outcome::Send`].
    pub fn output(&self) -> &[u8] {
        &self.out
    }
}

#[cfg(test)]
mod tests;
