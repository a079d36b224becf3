//! One scrape: what the node counted, copied out of the running edges,
//! the probers, the connection registry, the bans and the cluster store,
//! then written as metric families.
//!
//! Nothing here is on the forwarding path: the workers only ever bump
//! their own cells (see `edge::stats`), and a scrape sums them.

use crate::admin::Admin;
use crate::health::DestStatus;
use edge::health::{DestTotals, Latencies};
use edge::stats::{EdgeTotals, Event, CLASS_NAMES};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use sip::Method;
use std::borrow::Cow;
use std::time::Instant;

/// Everything one scrape writes, owned (the encoder runs after the
/// prober tasks answered).
#[derive(Debug, Default)]
pub struct Scrape {
    edges: Vec<EdgeSnap>,
    connections: Vec<(&'static str, u64)>,
    bans: [usize; 3],
    reloads: (u64, u64),
    cluster: Option<ClusterSnap>,
    /// SIP traces sent, dropped with the queue full, failed.
    hep: Option<[u64; 3]>,
    /// Call-record lines written, facts dropped with the queue full,
    /// lines failed.
    records: Option<[u64; 3]>,
}

#[derive(Debug)]
struct EdgeSnap {
    name: String,
    totals: EdgeTotals,
    routable: bool,
    breaches: (u64, u64),
    /// Calls in progress, when the edge counts them (a `channels` limit).
    channels: Option<u32>,
    invalid: Vec<(&'static str, u64)>,
    nat: Option<(u64, Vec<(&'static str, u64)>)>,
    blocked: Vec<(&'static str, u64)>,
    transactions: Option<usize>,
    registrations: Option<(usize, usize)>,
    /// New calls per `[[edge.peer]]`.
    peers: Vec<(std::sync::Arc<str>, u64)>,
    destinations: Vec<DestSnap>,
}

#[derive(Debug)]
struct DestSnap {
    uri: String,
    state: &'static str,
    totals: DestTotals,
    channels: Option<u32>,
    probes: (u64, u64),
    latencies: Latencies,
}

#[derive(Debug)]
struct ClusterSnap {
    up: bool,
    nodes: u32,
    redis_calls: u64,
}

impl Scrape {
    /// Copies what `admin` reaches; `Err` when a prober task has stopped.
    pub async fn gather(admin: &Admin) -> Result<Scrape, crate::health::Stopped> {
        let health = admin.health.load_full();
        let mut edges = Vec::with_capacity(health.edges.len());
        for e in &health.edges {
            let statuses = e.status().await?;
            edges.push(EdgeSnap::of(e, statuses));
        }
        let now = Instant::now();
        Ok(Scrape {
            edges,
            connections: admin.connections.counts(),
            bans: admin.bans.bans.counts(now),
            reloads: admin.reloader.outcomes(),
            hep: admin.hep.as_ref().map(|h| h.read()),
            records: admin.records.as_ref().map(|r| r.read()),
            cluster: admin.cluster.as_ref().map(|c| {
                let b = c.body();
                ClusterSnap {
                    up: b.redis == "up",
                    nodes: b.nodes,
                    redis_calls: b.redis_calls,
                }
            }),
        })
    }
}

impl EdgeSnap {
    fn of(e: &crate::health::EdgeHealth, statuses: Vec<DestStatus>) -> EdgeSnap {
        let proxy = e.proxy();
        let limits = proxy.map(|p| p.limits());
        let counted = limits.is_some_and(|l| l.counts_channels());
        let (in_use, per_dest) = limits.map_or((0, Vec::new()), |l| l.channels_in_use());
        let totals = e.view.totals();
        let destinations = statuses
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let conf = e.destinations.get(i)?;
                Some(DestSnap {
                    uri: conf.uri.clone(),
                    state: s.state.name(),
                    totals: totals.get(i).cloned().unwrap_or_default(),
                    channels: counted.then(|| per_dest.get(i).copied().unwrap_or(0)),
                    probes: (s.probes_sent, s.probes_failed),
                    latencies: s.latencies,
                })
            })
            .collect();
        EdgeSnap {
            name: e.name.clone(),
            totals: e.view.board().totals(),
            routable: e.routable(),
            breaches: limits.map_or((0, 0), |l| l.breaches()),
            channels: counted.then_some(in_use),
            invalid: proxy.map_or_else(Vec::new, |p| {
                p.invalid_counts()
                    .into_iter()
                    .map(|(f, n)| (f.token(), n))
                    .collect()
            }),
            nat: proxy.and_then(|p| {
                let (behind, per_test) = p.nat_counts();
                (!per_test.is_empty()).then(|| {
                    (
                        behind,
                        per_test.into_iter().map(|(t, n)| (t.name(), n)).collect(),
                    )
                })
            }),
            blocked: proxy.map_or_else(Vec::new, |p| {
                p.blocked_counts().map(|(b, n)| (b.name(), n)).into()
            }),
            transactions: proxy.and_then(|p| p.stateful()).map(|s| s.len()),
            registrations: proxy.and_then(|p| p.registrar()).map(|r| r.store().count()),
            peers: proxy.map_or_else(Vec::new, |p| p.peers().calls()),
            destinations,
        }
    }
}

/// A label value as the text formats want it: `\`, `"` and newlines
/// escaped (the encoder writes values as given).
fn escaped(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

type Fmt = Result<(), std::fmt::Error>;

/// The label set of a family with one series.
const NO_LABELS: [(&str, &str); 0] = [];

/// A destination's labels and one more.
fn with<'a>(
    labels: &[(&'static str, Cow<'a, str>); 2],
    k: &'static str,
    v: &'static str,
) -> [(&'static str, Cow<'a, str>); 3] {
    [labels[0].clone(), labels[1].clone(), (k, Cow::Borrowed(v))]
}

/// Writes one family: `kind` counter (the encoder adds `_total`) or gauge.
fn family<L, I>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    series: I,
) -> Fmt
where
    L: EncodeLabelSet,
    I: IntoIterator<Item = (L, u64)>,
{
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in series {
        let mut s = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => s.encode_counter::<NoLabelSet, u64, f64>(&v, None)?,
            _ => s.encode_gauge(&v)?,
        }
    }
    Ok(())
}

impl Scrape {
    fn edge_families(&self, enc: &mut DescriptorEncoder<'_>) -> Fmt {
        let edges: Vec<_> = self.edges.iter().map(|e| (e, escaped(&e.name))).collect();
        let per_edge = |f: &dyn Fn(&EdgeSnap) -> Option<u64>| {
            edges
                .iter()
                .filter_map(|(e, n)| f(e).map(|v| ([("edge", n.clone())], v)))
                .collect::<Vec<_>>()
        };
        family(
            enc,
            "sipedge_requests_received",
            "SIP requests read by the edge, by method (retransmissions included; blocked traffic not).",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                Method::ALL.iter().map(move |m| {
                    (
                        [("edge", n.clone()), ("method", Cow::Borrowed(m.name()))],
                        e.totals.requests[*m as usize],
                    )
                })
            }),
        )?;
        family(
            enc,
            "sipedge_responses_received",
            "SIP responses read by the edge, by class.",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                CLASS_NAMES.iter().enumerate().map(move |(i, c)| {
                    (
                        [("edge", n.clone()), ("class", Cow::Borrowed(*c))],
                        e.totals.responses[i],
                    )
                })
            }),
        )?;
        family(
            enc,
            "sipedge_calls",
            "New calls: INVITEs outside a dialog to be dispatched, before the limits judge them.",
            MetricType::Counter,
            per_edge(&|e| Some(e.totals.get(Event::NewCall))),
        )?;
        family(
            enc,
            "sipedge_cps_breaches",
            "New calls beyond the edge's cps, refused or redirected.",
            MetricType::Counter,
            per_edge(&|e| Some(e.breaches.0)),
        )?;
        family(
            enc,
            "sipedge_channel_breaches",
            "New calls beyond the edge's channels, refused or redirected.",
            MetricType::Counter,
            per_edge(&|e| Some(e.breaches.1)),
        )?;
        family(
            enc,
            "sipedge_calls_in_progress",
            "Calls from 2xx to BYE through the edge on this node (counted on edges with a channels limit).",
            MetricType::Gauge,
            per_edge(&|e| e.channels.map(u64::from)),
        )?;
        family(
            enc,
            "sipedge_failovers",
            "Requests sent on to the next destination after one failed (transactional edges).",
            MetricType::Counter,
            per_edge(&|e| Some(e.totals.get(Event::Failover))),
        )?;
        family(
            enc,
            "sipedge_edge_up",
            "1 when the edge has a usable destination this node may use.",
            MetricType::Gauge,
            per_edge(&|e| Some(u64::from(e.routable))),
        )?;
        family(
            enc,
            "sipedge_validation_failures",
            "Messages that failed a validate check, by check.",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                e.invalid
                    .iter()
                    .map(move |(c, v)| ([("edge", n.clone()), ("check", Cow::Borrowed(*c))], *v))
            }),
        )?;
        family(
            enc,
            "sipedge_peer_calls",
            "New calls per [[edge.peer]] they came from.",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                e.peers
                    .iter()
                    .map(move |(peer, v)| ([("edge", n.clone()), ("peer", escaped(peer))], *v))
            }),
        )?;
        family(
            enc,
            "sipedge_nat_requests",
            "Requests from outside found behind NAT by any nat_test.",
            MetricType::Counter,
            per_edge(&|e| e.nat.as_ref().map(|n| n.0)),
        )?;
        family(
            enc,
            "sipedge_nat_detections",
            "Requests each nat_test fired for, by test.",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                e.nat.iter().flat_map(move |(_, tests)| {
                    tests
                        .iter()
                        .map(move |(t, v)| ([("edge", n.clone()), ("test", Cow::Borrowed(*t))], *v))
                })
            }),
        )?;
        family(
            enc,
            "sipedge_token_rejections",
            "Tokens refused: flow tokens in a Route (answered 403) and Via branches of responses.",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                [
                    ("flow", e.totals.get(Event::FlowTokenRefused)),
                    ("branch", e.totals.get(Event::BadToken)),
                ]
                .map(|(t, v)| ([("edge", n.clone()), ("token", Cow::Borrowed(t))], v))
            }),
        )?;
        family(
            enc,
            "sipedge_blocked",
            "Packets dropped unanswered by the edge's protection, by reason.",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                e.blocked
                    .iter()
                    .map(move |(r, v)| ([("edge", n.clone()), ("reason", Cow::Borrowed(*r))], *v))
            }),
        )?;
        family(
            enc,
            "sipedge_transactions",
            "Transactions held now (transactional edges).",
            MetricType::Gauge,
            per_edge(&|e| e.transactions.map(|t| t as u64)),
        )?;
        family(
            enc,
            "sipedge_registered_aors",
            "Addresses of record with a contact bound in the built-in registrar.",
            MetricType::Gauge,
            per_edge(&|e| e.registrations.map(|r| r.0 as u64)),
        )?;
        family(
            enc,
            "sipedge_registered_contacts",
            "Contacts bound in the built-in registrar.",
            MetricType::Gauge,
            per_edge(&|e| e.registrations.map(|r| r.1 as u64)),
        )?;
        family(
            enc,
            "sipedge_events",
            "What the edge did with each message, by outcome.",
            MetricType::Counter,
            edges.iter().flat_map(|(e, n)| {
                Event::ALL.iter().map(move |ev| {
                    (
                        [("edge", n.clone()), ("event", Cow::Borrowed(ev.name()))],
                        e.totals.get(*ev),
                    )
                })
            }),
        )
    }

    fn destination_families(&self, enc: &mut DescriptorEncoder<'_>) -> Fmt {
        let dests: Vec<_> = self
            .edges
            .iter()
            .flat_map(|e| {
                let n = escaped(&e.name);
                e.destinations
                    .iter()
                    .map(move |d| (d, [("edge", n.clone()), ("destination", escaped(&d.uri))]))
            })
            .collect();
        family(
            enc,
            "sipedge_destination_requests",
            "Requests sent to the destination, by method.",
            MetricType::Counter,
            dests.iter().flat_map(|(d, l)| {
                Method::ALL
                    .iter()
                    .map(move |m| (with(l, "method", m.name()), d.totals.methods[*m as usize]))
            }),
        )?;
        family(
            enc,
            "sipedge_destination_responses",
            "Responses received from the destination, by class.",
            MetricType::Counter,
            dests.iter().flat_map(|(d, l)| {
                CLASS_NAMES
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (with(l, "class", c), d.totals.classes[i]))
            }),
        )?;
        family(
            enc,
            "sipedge_destination_calls",
            "New calls (initial INVITEs) dispatched to the destination.",
            MetricType::Counter,
            dests.iter().map(|(d, l)| (l.clone(), d.totals.calls)),
        )?;
        family(
            enc,
            "sipedge_destination_calls_in_progress",
            "Calls in progress on the destination through this node (counted on edges with a channels limit).",
            MetricType::Gauge,
            dests
                .iter()
                .filter_map(|(d, l)| d.channels.map(|c| (l.clone(), u64::from(c)))),
        )?;
        family(
            enc,
            "sipedge_destination_state",
            "1 for the destination's state (active, inactive, probing), 0 for the others.",
            MetricType::Gauge,
            dests.iter().flat_map(|(d, l)| {
                ["active", "inactive", "probing"]
                    .map(|s| (with(l, "state", s), u64::from(d.state == s)))
            }),
        )?;
        family(
            enc,
            "sipedge_probes",
            "OPTIONS probes sent to the destination.",
            MetricType::Counter,
            dests.iter().map(|(d, l)| (l.clone(), d.probes.0)),
        )?;
        family(
            enc,
            "sipedge_probe_failures",
            "Probes that failed: timeout, unreachable, or a code not counted alive.",
            MetricType::Counter,
            dests.iter().map(|(d, l)| (l.clone(), d.probes.1)),
        )?;
        let mut m = enc.encode_descriptor(
            "sipedge_probe_duration_seconds",
            "Round trip of each answered probe.",
            None,
            MetricType::Histogram,
        )?;
        for (d, l) in &dests {
            // Per bucket: the encoder sums them up, and writes `+Inf` for
            // the last bound.
            let mut buckets = d.latencies.bucketed();
            buckets.push((f64::MAX, d.latencies.above()));
            m.encode_family(l)?.encode_histogram::<NoLabelSet>(
                d.latencies.sum,
                d.latencies.count,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }

    fn node_families(&self, enc: &mut DescriptorEncoder<'_>) -> Fmt {
        let conn = |name: &str| {
            self.connections
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, v)| *v)
        };
        family(
            enc,
            "sipedge_connections",
            "Connections open now, by transport.",
            MetricType::Gauge,
            ["tcp", "tls", "ws", "wss"].map(|t| {
                let open = format!("open_{t}");
                ([("transport", t)], conn(&open))
            }),
        )?;
        family(
            enc,
            "sipedge_connections_accepted",
            "Connections accepted from clients.",
            MetricType::Counter,
            [(NO_LABELS, conn("accepted"))],
        )?;
        family(
            enc,
            "sipedge_connections_opened",
            "Connections opened to destinations and clients.",
            MetricType::Counter,
            [(NO_LABELS, conn("opened"))],
        )?;
        family(
            enc,
            "sipedge_connections_closed",
            "Connections ended or refused, by reason.",
            MetricType::Counter,
            self.connections
                .iter()
                .filter(|(n, _)| {
                    !n.starts_with("open")
                        && !matches!(*n, "accepted" | "opened" | "messages_dropped_queue_full")
                })
                .map(|(n, v)| ([("reason", *n)], *v)),
        )?;
        family(
            enc,
            "sipedge_stream_messages_dropped",
            "Messages for a connection dropped because its send queue was full.",
            MetricType::Counter,
            [(NO_LABELS, conn("messages_dropped_queue_full"))],
        )?;
        family(
            enc,
            "sipedge_bans",
            "Source addresses banned now, by reason.",
            MetricType::Gauge,
            edge::bans::Reason::ALL
                .iter()
                .map(|r| ([("reason", r.name())], self.bans[*r as usize] as u64)),
        )?;
        family(
            enc,
            "sipedge_reloads",
            "Config reloads, by result.",
            MetricType::Counter,
            [
                ([("result", "applied")], self.reloads.0),
                ([("result", "refused")], self.reloads.1),
            ],
        )?;
        if let Some(c) = &self.cluster {
            family(
                enc,
                "sipedge_redis_up",
                "1 while the cluster store answers; 0 while limits count a local share.",
                MetricType::Gauge,
                [(NO_LABELS, u64::from(c.up))],
            )?;
            family(
                enc,
                "sipedge_cluster_nodes",
                "Live nodes each shared limit is divided by.",
                MetricType::Gauge,
                [(NO_LABELS, u64::from(c.nodes))],
            )?;
            family(
                enc,
                "sipedge_redis_calls",
                "Calls made to the cluster store.",
                MetricType::Counter,
                [(NO_LABELS, c.redis_calls)],
            )?;
        }
        if let Some([sent, full, failed]) = self.hep {
            family(
                enc,
                "sipedge_hep_messages",
                "SIP traces for the [hep] capture server: sent, dropped with the queue full, failed.",
                MetricType::Counter,
                [
                    ([("result", "sent")], sent),
                    ([("result", "queue_full")], full),
                    ([("result", "failed")], failed),
                ],
            )?;
        }
        if let Some([written, full, failed]) = self.records {
            family(
                enc,
                "sipedge_call_records",
                "Call records ([records]): lines written, facts dropped with the queue full, lines that could not be written.",
                MetricType::Counter,
                [
                    ([("result", "written")], written),
                    ([("result", "queue_full")], full),
                    ([("result", "failed")], failed),
                ],
            )?;
        }
        let mut m = enc.encode_descriptor(
            "sipedge_build",
            "The running build.",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Fmt {
        self.edge_families(&mut enc)?;
        self.destination_families(&mut enc)?;
        self.node_families(&mut enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_only_when_needed() {
        assert!(matches!(escaped("sip:a:5060"), Cow::Borrowed(_)));
        assert_eq!(escaped("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
