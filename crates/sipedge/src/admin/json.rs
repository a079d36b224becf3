//! The JSON bodies of the admin API. Field names are part of the interface
//! (`sipedge ctl`, scripts and tests read them), so they are spelled out
//! here rather than derived from internal types.

use crate::health::{DestStatus, EdgeHealth, Health};
use edge::health::DestTotals;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `GET /health`.
#[derive(Serialize)]
pub struct HealthBody<'a> {
    /// `ok` when at least one edge is routable, else `unavailable`.
    pub status: &'static str,
    /// One per edge, in config order.
    pub edges: Vec<EdgeSummary<'a>>,
    /// The cluster store, with `[cluster] redis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::StatusBody>,
}

/// One edge in `GET /health`.
#[derive(Serialize)]
pub struct EdgeSummary<'a> {
    /// The edge's name.
    pub name: &'a str,
    /// At least one destination this node may use is usable.
    pub routable: bool,
    /// Usable destinations this node may use (any tier).
    pub usable: usize,
    /// Configured destinations.
    pub destinations: usize,
}

impl<'a> EdgeSummary<'a> {
    /// The summary of one edge now.
    pub fn of(edge: &'a EdgeHealth) -> Self {
        let usable = edge.usable_count();
        EdgeSummary {
            name: &edge.name,
            routable: usable > 0,
            usable,
            destinations: edge.destinations.len(),
        }
    }
}

/// `GET /api/destinations`.
#[derive(Serialize)]
pub struct DestinationsBody<'a> {
    /// `[node] id`.
    pub node: &'a str,
    /// `[node] zone`.
    pub zone: Option<&'a str>,
    /// One per edge, in config order.
    pub edges: Vec<EdgeBody<'a>>,
}

/// One edge in `GET /api/destinations`.
#[derive(Serialize)]
pub struct EdgeBody<'a> {
    /// The edge's name.
    pub name: &'a str,
    /// The dispatch algorithm's config name.
    pub algorithm: &'static str,
    /// At least one destination this node may use is usable.
    pub routable: bool,
    /// `stateless` or `transactional`.
    pub insertion: &'static str,
    /// What the edge writes into Via and Record-Route for each listen
    /// address (`host:port`): `advertise`, the address STUN found, or
    /// the listen address itself.
    pub addresses: Vec<String>,
    /// Transactions held now (transactional edges; `null` otherwise).
    pub transactions: Option<usize>,
    /// Requests forwarded statelessly since start because no transaction
    /// could be kept (`max_transactions` reached; transactional edges).
    pub untracked: Option<u64>,
    /// Calls in progress through this edge on this node, counted when a
    /// channel limit is configured (0 otherwise).
    pub channels_in_use: u32,
    /// New calls beyond the edge's `cps` since start (answered 503, or
    /// redirected by `capacity_failover`).
    pub cps_breaches: u64,
    /// New calls beyond the edge's `channels` since start.
    pub channel_breaches: u64,
    /// Messages that failed the edge's `validate` checks since start, by
    /// reason token (`no-max-forwards`: 3); reasons never seen are left out.
    pub validation_failures: std::collections::BTreeMap<&'static str, u64>,
    /// NAT detection (`nat_test`) since start: requests from outside found
    /// behind NAT, and how often each configured test fired; `null` when
    /// the edge runs no test.
    pub nat: Option<NatBody>,
    /// Packets dropped unanswered since start, by reason (`deny`,
    /// `restrict`, `user_agent`): the edge's traffic hygiene.
    pub blocked: std::collections::BTreeMap<&'static str, u64>,
    /// The built-in registrar (`flags = ["registrations"]`): what it
    /// holds now; `null` on an edge without it.
    pub registrations: Option<RegistrationsBody>,
    /// In config order; `index` is the position.
    pub destinations: Vec<DestinationBody<'a>>,
    /// URIs of destinations a reload removed that still get the in-dialog
    /// requests of their calls (for `max_call_duration` after removal).
    pub retired: Vec<&'a str>,
}

/// What the built-in registrar of one edge holds.
#[derive(Serialize)]
pub struct RegistrationsBody {
    /// Addresses of record with at least one contact bound.
    pub aors: usize,
    /// Contacts bound, over all of them.
    pub bindings: usize,
}

/// NAT detection counts of one edge.
#[derive(Serialize)]
pub struct NatBody {
    /// Requests from outside any configured test fired for.
    pub behind_nat: u64,
    /// Per configured test, by name (`received`: 12), counted once per
    /// request it fired for.
    pub tests: std::collections::BTreeMap<&'static str, u64>,
}

/// One destination, in `GET /api/destinations` and as the answer to a
/// `POST` that sets its state.
#[derive(Serialize)]
pub struct DestinationBody<'a> {
    /// 0-based position in the edge's config.
    pub index: usize,
    /// The URI exactly as configured, or for a server DNS found for a
    /// destination's name, its own (`sip:TARGET:PORT`).
    pub uri: &'a str,
    /// For a server DNS found: the destination URI (as configured) whose
    /// name led to it; `null` otherwise.
    pub named_by: Option<&'a str>,
    /// Its backup rank among its name's servers (SRV priority order: 0
    /// first); 0 for a destination given as one server.
    pub rank: u8,
    /// Where requests go (looked up at load and when the DNS answer
    /// expires).
    pub address: String,
    /// The destination's zone.
    pub zone: Option<&'a str>,
    /// Zone tier for this node (1, 2, 3); `null` when `limit_zones` keep
    /// this node from using it at all.
    pub tier: Option<u8>,
    /// Configured weight.
    pub weight: u32,
    /// Configured priority (lower is tried first).
    pub priority: i32,
    /// `active`, `inactive` or `probing`.
    pub state: &'static str,
    /// Held in this state by the operator.
    pub manual: bool,
    /// Why it is in this state.
    pub reason: String,
    /// Probe round-trip times; `null` until a probe was answered.
    pub latency_ms: Option<LatencyMs>,
    /// The latest finished probe; `null` before the first.
    pub last_probe: Option<LastProbeBody>,
    /// Probe counts.
    pub probes: Probes,
    /// Initial INVITEs dispatched to it.
    pub calls_sent: u64,
    /// Every request sent to it.
    pub requests_sent: u64,
    /// Responses received from it.
    pub replies: u64,
    /// Calls in progress on it through this node, counted when a channel
    /// limit is configured (0 otherwise).
    pub channels_in_use: u32,
}

impl<'a> DestinationBody<'a> {
    /// Destination `index` of `edge`, given its status from the prober and
    /// its traffic totals from the view.
    pub fn of(
        edge: &'a EdgeHealth,
        index: usize,
        status: DestStatus,
        totals: DestTotals,
    ) -> Option<Self> {
        let conf = edge.destinations.get(index)?;
        Some(DestinationBody {
            index,
            uri: &conf.uri,
            named_by: conf.named_by.as_deref(),
            rank: conf.rank,
            address: conf.addr.to_string(),
            zone: conf.zone.as_deref(),
            tier: edge.tiers.get(index).copied().flatten(),
            weight: conf.weight,
            priority: conf.priority,
            state: status.state.name(),
            manual: status.manual,
            reason: status.reason,
            latency_ms: status.latency.map(|(last, avg)| LatencyMs {
                last: millis(last),
                avg: millis(avg),
            }),
            last_probe: status.last_probe.map(|p| LastProbeBody {
                ago_s: round3(p.ago.as_secs_f64()),
                result: p.result,
                ok: p.ok,
            }),
            probes: Probes {
                sent: status.probes_sent,
                failed: status.probes_failed,
            },
            calls_sent: totals.calls,
            requests_sent: totals.requests,
            replies: totals.replies,
            channels_in_use: edge.proxy().map_or(0, |p| {
                p.limits()
                    .channels_in_use()
                    .1
                    .get(index)
                    .copied()
                    .unwrap_or(0)
            }),
        })
    }
}

/// Latency in milliseconds, to the microsecond.
#[derive(Serialize)]
pub struct LatencyMs {
    /// The last probe's round trip.
    pub last: f64,
    /// Moving average of the round trips.
    pub avg: f64,
}

/// The latest finished probe.
#[derive(Serialize)]
pub struct LastProbeBody {
    /// Seconds since it finished.
    pub ago_s: f64,
    /// What came of it (`200 OK`, `timeout after 2 s`...).
    pub result: String,
    /// Whether it counted as alive.
    pub ok: bool,
}

/// Probe counts of a destination.
#[derive(Serialize)]
pub struct Probes {
    /// Sent so far.
    pub sent: u64,
    /// Failed so far.
    pub failed: u64,
}

/// The body of `POST /api/destinations/{edge}/{dest}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBody {
    /// `active`, `inactive` or `probing`.
    pub state: String,
}

/// The answer to `POST /api/reload`.
#[derive(Serialize)]
pub struct ReloadBody<'a> {
    /// `reloaded`.
    pub status: &'static str,
    /// From the file read to the last snapshot swapped in.
    pub took_ms: f64,
    /// What changed and applies now.
    pub changes: &'a [String],
    /// What changed in the file but keeps its running value until a
    /// restart (listen addresses, the node's id...).
    pub needs_restart: &'a [String],
}

impl<'a> ReloadBody<'a> {
    /// The body for `report`.
    pub fn of(report: &'a crate::reload::Report) -> Self {
        ReloadBody {
            status: "reloaded",
            took_ms: millis(report.took),
            changes: &report.changes,
            needs_restart: &report.needs_restart,
        }
    }
}

/// Every error answer: `{"error": "..."}`.
#[derive(Serialize)]
pub struct ErrorBody {
    /// What went wrong, for the operator.
    pub error: String,
}

/// The whole node: every edge with every destination.
pub async fn destinations(health: &Health) -> Result<DestinationsBody<'_>, crate::health::Stopped> {
    let mut edges = Vec::with_capacity(health.edges.len());
    for edge in &health.edges {
        let statuses = edge.status().await?;
        let totals = edge.view.totals();
        let destinations = statuses
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let t = totals.get(i).copied().unwrap_or_default();
                DestinationBody::of(edge, i, s, t)
            })
            .collect();
        let proxy = edge.proxy();
        let stateful = proxy.and_then(|p| p.stateful());
        edges.push(EdgeBody {
            name: &edge.name,
            algorithm: edge.algorithm.name(),
            routable: edge.routable(),
            insertion: if stateful.is_some() {
                "transactional"
            } else {
                "stateless"
            },
            addresses: proxy.map_or_else(Vec::new, |p| {
                p.locals().iter().map(|l| l.sent_by.clone()).collect()
            }),
            transactions: stateful.map(|s| s.len()),
            untracked: stateful.map(|s| s.untracked()),
            channels_in_use: proxy.map_or(0, |p| p.limits().channels_in_use().0),
            cps_breaches: proxy.map_or(0, |p| p.limits().breaches().0),
            channel_breaches: proxy.map_or(0, |p| p.limits().breaches().1),
            validation_failures: proxy
                .map(|p| {
                    p.invalid_counts()
                        .into_iter()
                        .map(|(f, n)| (f.token(), n))
                        .collect()
                })
                .unwrap_or_default(),
            registrations: proxy.and_then(|p| p.registrar()).map(|r| {
                let (aors, bindings) = r.store().count();
                RegistrationsBody { aors, bindings }
            }),
            nat: proxy.and_then(|p| {
                let (behind_nat, per_test) = p.nat_counts();
                (!per_test.is_empty()).then(|| NatBody {
                    behind_nat,
                    tests: per_test.into_iter().map(|(t, n)| (t.name(), n)).collect(),
                })
            }),
            blocked: proxy
                .map(|p| p.blocked_counts().map(|(b, n)| (b.name(), n)).into())
                .unwrap_or_default(),
            destinations,
            retired: proxy.map_or_else(Vec::new, |p| {
                p.retired().iter().map(|d| d.uri.as_str()).collect()
            }),
        });
    }
    Ok(DestinationsBody {
        node: &health.node,
        zone: health.zone.as_deref(),
        edges,
    })
}

fn millis(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// Three decimals: microseconds for milliseconds, milliseconds for seconds.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
