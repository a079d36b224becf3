//! Destination health in the daemon: the I/O shell around the sans-IO
//! [`edge::health`] prober and passive checker.
//!
//! Every edge gets one task on the main thread's runtime (see [`task`]):
//! it owns the edge's [`Prober`](edge::health::Prober), its probe sockets
//! and its [`Passive`](edge::health::Passive) checker, and pushes every
//! change into the edge's [`HealthView`], which the forwarding threads read
//! without locks. Thousands of destinations therefore cost one task and one
//! or two sockets per edge, never a thread each.
//!
//! The admin API talks to a task through an [`EdgeHealth`] handle: a
//! command channel for what only the task may do (read the trackers, set a
//! state by hand) and the shared view for what anyone may read (usable
//! flags, traffic totals), so `/health` never waits on a task.

pub(crate) mod socket;
mod stream;
mod task;

pub use edge::health::State;

use edge::config::{self, Config};
use edge::dispatch::Algorithm;
use edge::health::HealthView;
use edge::proxy::Edge;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What the prober knows about one destination at one moment, owned so
/// that it can leave the prober task.
#[derive(Debug, Clone)]
pub struct DestStatus {
    /// Whether the destination is in use (`Active`) or not.
    pub state: State,
    /// Held in its state by the operator rather than by probe results.
    pub manual: bool,
    /// Why it is in this state, for humans.
    pub reason: String,
    /// Last probe round-trip and its moving average; `None` until a probe
    /// was answered.
    pub latency: Option<(Duration, Duration)>,
    /// The outcome of the latest probe; `None` before the first one ended.
    pub last_probe: Option<LastProbe>,
    /// Probes sent so far.
    pub probes_sent: u64,
    /// Probes that failed so far (timeout, unreachable, code not alive).
    pub probes_failed: u64,
    /// Every answered probe's round trip, bucketed.
    pub latencies: edge::health::Latencies,
}

/// The latest finished probe of a destination.
#[derive(Debug, Clone)]
pub struct LastProbe {
    /// How long ago it finished.
    pub ago: Duration,
    /// What came of it, e.g. `200 OK` or `timeout after 2 s`.
    pub result: String,
    /// Whether it counted as alive.
    pub ok: bool,
}

/// A request to an edge's prober task.
enum Command {
    /// The config was reloaded: probe `edge`'s destinations from now on
    /// (keeping what is known of those still configured), publish into
    /// `view`, and use `sockets` if the families probed changed.
    Reseed {
        edge: Box<config::Edge>,
        node: Box<config::Node>,
        view: Arc<HealthView>,
        sockets: Option<socket::Sockets>,
        done: oneshot::Sender<()>,
    },
    /// Report every destination's status.
    Status(oneshot::Sender<Vec<DestStatus>>),
    /// Set a destination's state by hand (operator), then report it.
    Set {
        index: usize,
        state: State,
        reply: oneshot::Sender<Option<DestStatus>>,
    },
}

/// The edge's prober task has ended; it only ends with the process, so
/// this is an internal error if a request ever sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the edge's prober is not running")
    }
}

/// One edge's health as the admin API sees it: the configured
/// destinations, what this node may use of them, the shared view and a line
/// to the edge's prober task.
pub struct EdgeHealth {
    /// The edge's name (unique within the config).
    pub name: String,
    /// The edge's dispatch algorithm.
    pub algorithm: Algorithm,
    /// The destinations as configured, in config order (the API's indices).
    pub destinations: Vec<config::Destination>,
    /// Each destination's zone tier for this node (1, 2, 3), or `None` when
    /// its `limit_zones` keep this node from using it.
    pub tiers: Vec<Option<u8>>,
    /// What the forwarding threads read: usable flags and traffic totals.
    pub view: Arc<HealthView>,
    /// The snapshot the forwarding threads use: its transactions and
    /// calls in progress, for the API.
    proxy: Arc<Edge>,
    commands: mpsc::Sender<Command>,
}

impl EdgeHealth {
    fn new(conf: &config::Edge, proxy: Arc<Edge>, commands: mpsc::Sender<Command>) -> Self {
        EdgeHealth {
            name: conf.name.clone(),
            algorithm: conf.algorithm,
            destinations: conf.destinations.clone(),
            tiers: (0..conf.destinations.len())
                .map(|i| proxy.tier(i))
                .collect(),
            view: Arc::clone(proxy.health()),
            proxy,
            commands,
        }
    }

    /// The running edge the forwarding threads use.
    pub fn proxy(&self) -> Option<&Edge> {
        Some(&self.proxy)
    }

    /// The edge after a reload: its prober task is re-seeded with `conf`
    /// and publishes into `proxy`'s health view — every destination's
    /// state is in that view when this returns, so the snapshot can be
    /// handed to the shards. `sockets` replace the probe sockets when the
    /// address families probed changed.
    pub(crate) async fn reloaded(
        &self,
        conf: &config::Edge,
        node: &config::Node,
        proxy: Arc<Edge>,
        sockets: Option<socket::Sockets>,
    ) -> Result<EdgeHealth, Stopped> {
        let (done, finished) = oneshot::channel();
        self.commands
            .send(Command::Reseed {
                edge: Box::new(conf.clone()),
                node: Box::new(node.clone()),
                view: Arc::clone(proxy.health()),
                sockets,
                done,
            })
            .await
            .map_err(|_| Stopped)?;
        finished.await.map_err(|_| Stopped)?;
        Ok(EdgeHealth::new(conf, proxy, self.commands.clone()))
    }

    /// Destinations this node may use (any tier) that are usable now.
    pub fn usable_count(&self) -> usize {
        self.tiers
            .iter()
            .enumerate()
            .filter(|&(i, tier)| tier.is_some() && self.view.usable(i))
            .count()
    }

    /// Whether this node can route the edge at all: at least one
    /// destination it may use is usable. What `/health` reports, so that a
    /// BGP speaker withdraws the anycast route of a node that cannot serve.
    pub fn routable(&self) -> bool {
        self.usable_count() > 0
    }

    /// The destination an API path names: its 0-based index, or its URI
    /// exactly as configured.
    pub fn find(&self, dest: &str) -> Option<usize> {
        if let Ok(i) = dest.parse::<usize>() {
            return (i < self.destinations.len()).then_some(i);
        }
        self.destinations.iter().position(|d| d.uri == dest)
    }

    /// Every destination's status, in config order.
    pub async fn status(&self) -> Result<Vec<DestStatus>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status(reply))
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// Sets destination `index` to `state` by hand (like Kamailio's
    /// `dispatcher.set_state`) and returns its status after the change,
    /// already applied to the view. `Ok(None)` when there is no such index.
    pub async fn set_state(
        &self,
        index: usize,
        state: State,
    ) -> Result<Option<DestStatus>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Set {
                index,
                state,
                reply,
            })
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

/// The health of every edge of this node, shared with the admin API.
pub struct Health {
    /// `[node] id`.
    pub node: String,
    /// `[node] zone`.
    pub zone: Option<String>,
    /// One per `[[edge]]`, in config order.
    pub edges: Vec<EdgeHealth>,
}

impl Health {
    /// The edge called `name`.
    pub fn edge(&self, name: &str) -> Option<&EdgeHealth> {
        self.edges.iter().find(|e| e.name == name)
    }
}

/// Binds every edge's probe sockets and spawns its prober task on the
/// current runtime. A socket that cannot be bound is a start error, like a
/// listen address that cannot be bound. `edges` are the running edges built
/// from `cfg.edges`, in the same order.
pub async fn start(
    cfg: &Config,
    edges: &[Arc<Edge>],
    tls: &Arc<arc_swap::ArcSwap<crate::tls::Tls>>,
) -> Result<Health, String> {
    let mut out = Vec::with_capacity(edges.len());
    for (index, (conf, edge)) in cfg.edges.iter().zip(edges.iter()).enumerate() {
        let sockets = probe_sockets(conf, &cfg.node).await?;
        let (commands, requests) = mpsc::channel(16);
        task::spawn(
            conf,
            &cfg.node,
            sockets,
            Arc::clone(edge.health()),
            requests,
            (Arc::clone(tls), index),
        );
        out.push(EdgeHealth::new(conf, Arc::clone(edge), commands));
    }
    Ok(Health {
        node: cfg.node.id.clone(),
        zone: cfg.node.zone.clone(),
        edges: out,
    })
}

/// Binds `conf`'s probe sockets (see [`socket::Sockets`]).
pub(crate) async fn probe_sockets(
    conf: &config::Edge,
    node: &config::Node,
) -> Result<socket::Sockets, String> {
    socket::Sockets::bind(conf, node)
        .await
        .map_err(|e| format!("line {}: edge {}: probe socket: {e}", conf.line, conf.name))
}

/// Whether `a` and `b` probe over the same address families (so the same
/// probe sockets serve both).
pub(crate) fn same_families(a: &config::Edge, b: &config::Edge) -> bool {
    let families = |e: &config::Edge| {
        (
            e.destinations.iter().any(|d| d.addr.is_ipv4()),
            e.destinations.iter().any(|d| d.addr.is_ipv6()),
        )
    };
    families(a) == families(b)
}
