//! Live reload (`SIGHUP`, `POST /api/reload`, `sipedge ctl reload`): the
//! config file is read and checked again and each edge's next snapshot
//! swapped in, while calls and transactions in flight carry on.
//!
//! The order matters and is the same for every edge: the next snapshot is
//! built from the running one ([`Edge::reloaded`] hands its live state on
//! by edge name and destination URI), the edge's prober task is re-seeded
//! and has published every destination's state into the new snapshot's
//! health view, and only then is the snapshot stored where the shards
//! read it. A shard moves its worker onto it at its next batch.
//!
//! What cannot change while running — the node's id, shard count, name servers and
//! public address, the admin address, the connection limits, which edges
//! exist and where they listen, stateless or transactional — keeps its
//! running value and is reported as needing a restart; everything else
//! applies. A file that does not check is refused whole, with the same
//! `file:line: key: problem` as `sipedge check`, and the running config
//! stays.

use crate::health::{self, Health};
use crate::tls::Tls;
use arc_swap::ArcSwap;
use edge::config::{self, Config};
use edge::keyring::KeyRing;
use edge::proxy::Edge;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a reload did.
#[derive(Debug, Clone)]
pub struct Report {
    /// What changed and now applies, one line each.
    pub changes: Vec<String>,
    /// What changed in the file but keeps its running value until a
    /// restart, one line each (with its file and line).
    pub needs_restart: Vec<String>,
    /// From the file read to the last snapshot stored.
    pub took: Duration,
}

/// What runs now: the config as applied (restart-only parts as they were
/// started) and the cluster's keys.
struct Applied {
    cfg: Config,
    keys: KeyRing,
    /// The text `cfg` was parsed from: a DNS refresh parses it again
    /// (never the file, whose edits wait for a reload).
    text: String,
    /// When its destinations' DNS answers run out.
    dns_until: Option<Instant>,
    /// The public address STUN found for each edge (`[[edge]] stun`), in
    /// config order: the host of its Via and Record-Route in place of
    /// `advertise`'s, kept across reloads.
    learnt: Vec<Option<IpAddr>>,
}

/// Reloads the node's config; one reload at a time.
pub struct Reloader {
    path: PathBuf,
    applied: tokio::sync::Mutex<Applied>,
    /// Each edge's snapshot slot, as the shards read it, in config order.
    slots: Vec<Arc<ArcSwap<Edge>>>,
    /// What the admin API reads: replaced whole after each reload.
    health: Arc<ArcSwap<Health>>,
    /// The certificates the TLS listeners present, and what TLS
    /// destinations are verified by.
    tls: Arc<ArcSwap<Tls>>,
    /// Told when a config was applied: its names expire at another time.
    dns_changed: tokio::sync::Notify,
    /// Reloads of the file applied, and refused (`sipedge_reloads_total`).
    outcomes: [std::sync::atomic::AtomicU64; 2],
}

impl Reloader {
    /// The reloader of a node started from `path` with `cfg` and `keys`.
    pub fn new(
        path: PathBuf,
        parsed: &crate::config_file::Parsed,
        keys: KeyRing,
        slots: Vec<Arc<ArcSwap<Edge>>>,
        health: Arc<ArcSwap<Health>>,
        tls: Arc<ArcSwap<Tls>>,
    ) -> Reloader {
        Reloader {
            path,
            applied: tokio::sync::Mutex::new(Applied {
                cfg: parsed.cfg.clone(),
                keys,
                text: parsed.text.clone(),
                dns_until: parsed.dns_until,
                learnt: vec![None; parsed.cfg.edges.len()],
            }),
            slots,
            health,
            tls,
            dns_changed: tokio::sync::Notify::new(),
            outcomes: Default::default(),
        }
    }

    /// Reloads of the file so far: (applied, refused).
    pub fn outcomes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.outcomes[0].load(Relaxed),
            self.outcomes[1].load(Relaxed),
        )
    }

    /// Reads the file again and applies it (see the module documentation).
    /// `Err` carries what is wrong with the file (or, should a prober task
    /// have stopped, that); the running config then stays as it was.
    pub async fn reload(&self) -> Result<Report, String> {
        let result = self.reload_file().await;
        let i = usize::from(result.is_err());
        self.outcomes[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        result
    }

    async fn reload_file(&self) -> Result<Report, String> {
        let mut applied = self.applied.lock().await;
        let started = Instant::now();
        let path = self.path.clone();
        let servers = Some(applied.cfg.node.dns.clone());
        let loaded = tokio::task::spawn_blocking(move || crate::config_file::load(&path, servers))
            .await
            .map_err(|e| format!("reading the config stopped: {e}"))?;
        let parsed = loaded.map_err(|e| e.to_string())?;
        self.apply(&mut applied, parsed, started).await
    }

    /// Looks the destinations' DNS names up again (their TTL ran out) by
    /// parsing the running config's text again, and applies what changed
    /// like a reload; `Ok(None)` when every name still names the same
    /// servers. A name whose lookup fails keeps the servers it had.
    pub async fn refresh_dns(&self) -> Result<Option<Report>, String> {
        // Looked up without holding the lock: a reload meanwhile is not
        // kept waiting by a slow name server (and wins: see below).
        let (text, servers) = {
            let applied = self.applied.lock().await;
            (applied.text.clone(), applied.cfg.node.dns.clone())
        };
        let started = Instant::now();
        let file = self.path.display().to_string();
        let parsed = {
            let text = text.clone();
            tokio::task::spawn_blocking(move || {
                crate::config_file::parse_text(text, &file, Some(servers))
            })
            .await
            .map_err(|e| format!("reading the config stopped: {e}"))?
            .map_err(|e| e.to_string())?
        };
        let mut applied = self.applied.lock().await;
        if applied.text != text {
            // A reload came first, with answers of its own.
            return Ok(None);
        }
        // Compared by edge name: the running config may keep edges a
        // reload could not change (see `merge`).
        let same = applied.cfg.edges.iter().all(|running| {
            parsed
                .cfg
                .edges
                .iter()
                .find(|e| e.name == running.name)
                .is_none_or(|e| e.destinations == running.destinations)
        });
        if same {
            applied.dns_until = parsed.dns_until;
            return Ok(None);
        }
        self.apply(&mut applied, parsed, started).await.map(Some)
    }

    /// Makes `ip` edge `edge`'s public address (STUN found it): its next
    /// snapshot names it in Via and Record-Route, the port as before.
    /// `Ok(Some(previous))` when that changed the address, `Ok(None)` when
    /// it already was.
    pub async fn learnt(&self, edge: usize, ip: IpAddr) -> Result<Option<Option<IpAddr>>, String> {
        let mut applied = self.applied.lock().await;
        let Some(slot) = applied.learnt.get_mut(edge) else {
            return Err(format!("no edge number {edge}"));
        };
        if *slot == Some(ip) {
            return Ok(None);
        }
        let previous = slot.replace(ip);
        let sockets = applied.cfg.edges.iter().map(|_| None).collect();
        if let Err(e) = self.install(&applied, sockets).await {
            applied.learnt[edge] = previous;
            return Err(e);
        }
        Ok(Some(previous))
    }

    /// The public address STUN found for edge `edge`, if any yet.
    pub async fn learnt_of(&self, edge: usize) -> Option<IpAddr> {
        self.applied
            .lock()
            .await
            .learnt
            .get(edge)
            .copied()
            .flatten()
    }

    /// What the running edge `edge` (default: the first) would do with
    /// `message` from `from` (`POST /api/explain`): explained on a shadow
    /// of its snapshot, built from the config it runs.
    pub async fn explain(
        &self,
        edge: Option<&str>,
        from: Option<std::net::SocketAddr>,
        message: &[u8],
    ) -> Result<edge::proxy::explain::Explanation, String> {
        let applied = self.applied.lock().await;
        let cfg = &applied.cfg;
        let i = crate::explain::edge_index(cfg, edge)?;
        let slot = self.slots.get(i).ok_or("the edge is not running")?;
        let learnt = applied.learnt.get(i).copied().flatten();
        let conf = addressed(&cfg.edges[i], learnt);
        let live = slot.load_full();
        crate::explain::live(&conf, &cfg.node, &applied.keys, &live, from, message)
    }

    /// When the running config's DNS answers run out (`None`: it names no
    /// host).
    pub async fn dns_until(&self) -> Option<Instant> {
        self.applied.lock().await.dns_until
    }

    /// Applies a parsed config (see the module documentation).
    async fn apply(
        &self,
        applied: &mut Applied,
        parsed: crate::config_file::Parsed,
        started: Instant,
    ) -> Result<Report, String> {
        let crate::config_file::Parsed {
            cfg: new,
            text,
            dns_until,
        } = parsed;
        let file = self.path.display().to_string();
        let (cfg, needs_restart) = merge(&applied.cfg, new, &file);
        check_merged(&cfg, &file)?;
        // The certificates of the config that will run, read and checked
        // before anything changed: a bad one refuses the reload.
        let tls = {
            let (cfg, file) = (cfg.clone(), file.clone());
            tokio::task::spawn_blocking(move || {
                crate::tls::load(&cfg, &file, std::time::SystemTime::now())
            })
            .await
            .map_err(|e| format!("reading the certificates stopped: {e}"))?
            .map_err(|e| e.to_string())?
        };
        for w in &tls.warnings {
            tracing::warn!("{w}");
        }
        let keys = if cfg.node.secret.is_none() && applied.cfg.node.secret.is_none() {
            // A lone node's random secret lives as long as the process.
            applied.keys.clone()
        } else {
            crate::secret::key_ring(&cfg.node)
        };
        // Probe sockets first: a family that cannot be bound refuses the
        // reload before anything changed.
        let mut sockets = Vec::with_capacity(cfg.edges.len());
        for (old, conf) in applied.cfg.edges.iter().zip(&cfg.edges) {
            sockets.push(match health::same_families(old, conf) {
                true => None,
                false => Some(health::probe_sockets(conf, &cfg.node).await?),
            });
        }
        let names: Vec<String> = cfg.edges.iter().map(|e| e.name.clone()).collect();
        let mut renewed = tls.tls.renewed(&self.tls.load(), &names);
        self.tls.store(Arc::new(tls.tls));
        let mut changes = describe(&applied.cfg, &cfg);
        changes.append(&mut renewed);
        let was = std::mem::replace(&mut applied.cfg, cfg);
        let old_keys = std::mem::replace(&mut applied.keys, keys);
        if let Err(e) = self.install(applied, sockets).await {
            applied.cfg = was;
            applied.keys = old_keys;
            return Err(e);
        }
        applied.text = text;
        applied.dns_until = dns_until;
        self.dns_changed.notify_one();
        Ok(Report {
            changes,
            needs_restart,
            took: started.elapsed(),
        })
    }

    /// Builds each edge's next snapshot from `applied` (its config, keys
    /// and learnt addresses), has its prober re-seeded with it (on the
    /// new probe sockets where `sockets` has some), and stores it where
    /// the shards read it.
    async fn install(
        &self,
        applied: &Applied,
        sockets: Vec<Option<health::socket::Sockets>>,
    ) -> Result<(), String> {
        let cfg = &applied.cfg;
        let running = self.health.load_full();
        let mut edges = Vec::with_capacity(cfg.edges.len());
        for ((((conf, slot), sockets), was), learnt) in cfg
            .edges
            .iter()
            .zip(&self.slots)
            .zip(sockets)
            .zip(&running.edges)
            .zip(&applied.learnt)
        {
            let conf = addressed(conf, *learnt);
            let next =
                Arc::new(
                    slot.load()
                        .reloaded(&conf, &cfg.node, &applied.keys, Instant::now()),
                );
            let seeded = was
                .reloaded(&conf, &cfg.node, Arc::clone(&next), sockets)
                .await
                .map_err(|e| format!("edge {}: {e}", conf.name))?;
            slot.store(next);
            edges.push(seeded);
        }
        self.health.store(Arc::new(Health {
            node: cfg.node.id.clone(),
            zone: cfg.node.zone.clone(),
            edges,
        }));
        Ok(())
    }

    /// Reloads and logs what came of it (for `SIGHUP`, which has no one
    /// to answer).
    pub async fn reload_and_log(&self) -> Result<Report, String> {
        let result = self.reload().await;
        match &result {
            Ok(report) => log(report),
            Err(e) => tracing::error!("reload refused, the running config stays: {e}"),
        }
        result
    }
}

/// Follows the DNS names of the destinations: each time their answers run
/// out, looks them up again and applies what changed (a task on the
/// current runtime, for as long as it runs).
pub fn follow_dns(reloader: Arc<Reloader>) {
    tokio::spawn(async move {
        loop {
            let at = reloader
                .dns_until()
                .await
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            tokio::time::sleep_until(at.into()).await;
            if reloader
                .dns_until()
                .await
                .is_none_or(|u| u > Instant::now())
            {
                continue;
            }
            match reloader.refresh_dns().await {
                Ok(Some(report)) => {
                    for c in &report.changes {
                        tracing::info!("dns: {c}");
                    }
                }
                Ok(None) => tracing::debug!("dns: the destinations' names name the same servers"),
                Err(e) => {
                    tracing::warn!("dns: refresh refused, the running config stays: {e}");
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            }
        }
    });
}

/// Logs a reload's report.
pub fn log(report: &Report) {
    for c in &report.changes {
        tracing::info!("reload: {c}");
    }
    for r in &report.needs_restart {
        tracing::warn!("reload: {r}");
    }
    tracing::info!(
        changes = report.changes.len(),
        needs_restart = report.needs_restart.len(),
        took_us = report.took.as_micros() as u64,
        "config reloaded"
    );
}

/// `conf` with `learnt` (STUN's answer) as its advertised host, the port
/// as `advertise` had it.
fn addressed(conf: &config::Edge, learnt: Option<IpAddr>) -> std::borrow::Cow<'_, config::Edge> {
    let Some(ip) = learnt else {
        return std::borrow::Cow::Borrowed(conf);
    };
    let mut e = conf.clone();
    e.advertise = Some(config::HostPort {
        host: ip.to_string(),
        port: conf.advertise.as_ref().and_then(|a| a.port),
    });
    std::borrow::Cow::Owned(e)
}

/// The config to run after a reload: `new`, except that what cannot
/// change while running keeps its `running` value; and a line for each
/// such difference.
fn merge(running: &Config, new: Config, file: &str) -> (Config, Vec<String>) {
    let mut out = new.clone();
    let mut restart = Vec::new();
    let mut keep = |what: &str| {
        restart.push(format!(
            "{file}: {what}: changed; the running value stays until a restart"
        ));
    };
    if new.node.id != running.node.id {
        keep("[node] id");
        out.node.id = running.node.id.clone();
    }
    if new.node.workers != running.node.workers {
        keep("[node] workers");
        out.node.workers = running.node.workers;
    }
    if new.node.dns != running.node.dns {
        keep("[node] dns");
        out.node.dns = running.node.dns.clone();
    }
    if new.node.public_address != running.node.public_address {
        keep("[node] public_address");
        out.node.public_address = running.node.public_address.clone();
    }
    if new.admin != running.admin {
        keep("[admin]");
        out.admin = running.admin.clone();
    }
    if new.connections != running.connections {
        keep("[connections]");
        out.connections = running.connections.clone();
    }
    if new.cluster != running.cluster {
        keep("[cluster]");
        out.cluster = running.cluster.clone();
    }
    if new.apiban != running.apiban {
        keep("[apiban]");
        out.apiban = running.apiban.clone();
    }
    if new.hep != running.hep {
        keep("[hep]");
        out.hep = running.hep.clone();
    }
    if new.records != running.records {
        keep("[records]");
        out.records = running.records.clone();
    }
    // The running edges, in their order: each takes its new config by name.
    out.edges = running
        .edges
        .iter()
        .map(|was| {
            let Some(now) = new.edges.iter().find(|e| e.name == was.name) else {
                restart.push(format!(
                    "{file}: edge {}: removed from the file; it keeps running until a restart",
                    was.name
                ));
                return was.clone();
            };
            let mut e = now.clone();
            let addrs = |e: &config::Edge| {
                e.listen
                    .iter()
                    .map(|l| (l.transport, l.addr))
                    .collect::<Vec<_>>()
            };
            // Where the key sits in the file is no change.
            let asks =
                |e: &config::Edge| e.stun.as_ref().map(|s| (s.servers.clone(), s.interval));
            if addrs(now) != addrs(was) || now.advertise != was.advertise || asks(now) != asks(was)
            {
                restart.push(format!(
                    "{file}:{}: edge {}: listen, advertise or stun: changed; the running addresses stay until a restart",
                    now.line, now.name
                ));
                e.listen = was.listen.clone();
                e.advertise = was.advertise.clone();
                e.stun = was.stun.clone();
            }
            if now.insertion != was.insertion {
                restart.push(format!(
                    "{file}:{}: edge {}: insertion: changed; it stays {} until a restart",
                    now.line,
                    now.name,
                    was.insertion.name()
                ));
                e.insertion = was.insertion;
            }
            e
        })
        .collect();
    for e in &new.edges {
        if !running.edges.iter().any(|r| r.name == e.name) {
            restart.push(format!(
                "{file}:{}: edge {}: new; it starts at the next restart",
                e.line, e.name
            ));
        }
    }
    (out, restart)
}

/// What must hold between an edge's listeners, which a reload keeps until
/// a restart, and the rest of its new config, which the file's own checks
/// saw only against the file's listen addresses.
fn check_merged(cfg: &Config, file: &str) -> Result<(), String> {
    for e in &cfg.edges {
        if let Some((line, key, problem)) = e.unfit_listener() {
            return Err(format!(
                "{file}:{line}: {key}: {problem} (edge {}: its running listen addresses \
                 stay until a restart)",
                e.name
            ));
        }
    }
    if let Some((line, problem)) = cfg.unfit_failover() {
        return Err(format!(
            "{file}:{line}: capacity_failover: {problem} ([node] public_address and [cluster] \
             keep their running values until a restart)"
        ));
    }
    Ok(())
}

/// What differs between two configs that a reload applies, one line each.
fn describe(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.node.zone != new.node.zone {
        out.push(format!(
            "[node] zone: {} -> {}",
            old.node.zone.as_deref().unwrap_or("(none)"),
            new.node.zone.as_deref().unwrap_or("(none)")
        ));
    }
    if old.node.secret != new.node.secret || old.node.previous_secrets != new.node.previous_secrets
    {
        out.push(format!(
            "[node] secret: new key ring ({} previous secret(s) still verify)",
            new.node.previous_secrets.len()
        ));
    }
    for (was, now) in old.edges.iter().zip(&new.edges) {
        let name = &now.name;
        if was.algorithm != now.algorithm {
            out.push(format!(
                "edge {name}: algorithm {} -> {}",
                was.algorithm.name(),
                now.algorithm.name()
            ));
        }
        for d in &now.destinations {
            match was.destinations.iter().find(|o| o.uri == d.uri) {
                None => out.push(format!("edge {name}: destination {} added", d.uri)),
                Some(o) if without_line(o) != without_line(d) => {
                    out.push(format!("edge {name}: destination {} changed", d.uri));
                }
                Some(_) => {}
            }
        }
        for o in &was.destinations {
            if !now.destinations.iter().any(|d| d.uri == o.uri) {
                out.push(format!(
                    "edge {name}: destination {} removed (its calls in progress carry on)",
                    o.uri
                ));
            }
        }
        if settings(was) != settings(now) {
            out.push(format!(
                "edge {name}: settings changed (limits, probes, transactions or checks)"
            ));
        }
    }
    out
}

/// A destination with its line number cleared, to compare what it says.
fn without_line(d: &config::Destination) -> config::Destination {
    config::Destination {
        line: 0,
        ..d.clone()
    }
}

/// An edge's settings besides its name, algorithm and destinations, line
/// numbers cleared: what [`describe`] sums up as "settings changed".
fn settings(e: &config::Edge) -> config::Edge {
    let mut e = e.clone();
    e.destinations.clear();
    e.algorithm = edge::dispatch::Algorithm::WeightedRoundRobin;
    e.line = 0;
    e.probe.line = 0;
    e.transaction.line = 0;
    e.capacity.failover_cluster = e.capacity.failover_cluster.map(|_| 0);
    for l in &mut e.listen {
        l.line = 0;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        match config::parse(text, "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    const BASE: &str = "[node]\nid = \"n1\"\nworkers = 2\n\
        [[edge]]\nname = \"a\"\nlisten = [\"udp:127.0.0.1:5060\"]\n\
        [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n\
        [[edge]]\nname = \"b\"\nlisten = [\"udp:127.0.0.1:5062\"]\n\
        [[edge.destination]]\nuri = \"sip:127.0.0.1:5071\"\n";

    #[test]
    fn what_cannot_change_live_keeps_its_running_value() {
        let running = cfg(BASE);
        let text = BASE
            .replace("workers = 2", "workers = 4\ndns = [\"127.0.0.1:5353\"]")
            .replace("insertion", "x")
            .replace("udp:127.0.0.1:5062", "tcp:127.0.0.1:5062")
            .replace("name = \"a\"", "name = \"c\"");
        let (out, restart) = merge(&running, cfg(&text), "t.toml");
        assert_eq!(out.node.workers, Some(2));
        assert!(out.node.dns.is_empty(), "the resolver is built at start");
        let names: Vec<&str> = out.edges.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "the running edges, in their order");
        assert_eq!(out.edges[1].listen, running.edges[1].listen);
        let all = restart.join("\n");
        for want in [
            "[node] workers",
            "[node] dns",
            "edge a: removed",
            "edge c: new",
            "edge b: listen",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        assert!(all.contains("t.toml:"), "{all}");
    }

    #[test]
    fn stun_is_read_at_start_but_moving_its_line_is_no_change() {
        let with = |extra: &str, interval: u32| {
            BASE.replace(
                "name = \"a\"\n",
                &format!(
                    "name = \"a\"\n{extra}stun = [\"192.0.2.1\"]\nstun_interval = {interval}\n"
                ),
            )
        };
        let running = cfg(&with("", 60));
        let (_, restart) = merge(&running, cfg(&with("cps = 10\n", 60)), "t.toml");
        assert!(restart.is_empty(), "{restart:?}");
        let (out, restart) = merge(&running, cfg(&with("", 30)), "t.toml");
        assert_eq!(out.edges[0].stun, running.edges[0].stun);
        assert!(
            restart
                .join("\n")
                .contains("edge a: listen, advertise or stun"),
            "{restart:?}"
        );
    }

    #[test]
    fn capacity_failover_to_the_cluster_needs_what_only_a_restart_brings() {
        let node =
            "public_address = \"198.51.100.1\"\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\n";
        let with = |node: &str, extra: &str| {
            BASE.replace("workers = 2\n", &format!("workers = 2\n{node}"))
                .replace(
                    "name = \"a\"\n",
                    &format!("name = \"a\"\n{extra}capacity_failover = [\"cluster\"]\n"),
                )
        };
        // Started without Redis and a public address: the reload that asks
        // for them is refused at the entry's line, not run as a silent 503.
        let running = cfg(BASE);
        let (merged, _) = merge(&running, cfg(&with(node, "")), "t.toml");
        let refused = check_merged(&merged, "t.toml").unwrap_err();
        assert!(
            refused.starts_with("t.toml:9: capacity_failover: \"cluster\" needs [cluster] redis"),
            "{refused}"
        );
        // Started with them: fine, and moving the entry's line is no change.
        let running = cfg(&with(node, ""));
        let (merged, _) = merge(&running, cfg(&with(node, "cps = 10\n")), "t.toml");
        assert_eq!(check_merged(&merged, "t.toml"), Ok(()));
        let moved = cfg(&with(node, "\n"));
        let (merged, _) = merge(&running, moved, "t.toml");
        assert!(describe(&running, &merged).is_empty());
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let running = cfg(BASE);
        let (out, restart) = merge(&running, cfg(BASE), "t.toml");
        assert_eq!(out, running);
        assert!(restart.is_empty() && describe(&running, &out).is_empty());
    }

    #[test]
    fn changes_are_described_by_destination() {
        let old = cfg(BASE);
        let text = BASE
            .replace(
                "sip:127.0.0.1:5070\"\n",
                "sip:127.0.0.1:5070\"\nweight = 7\n",
            )
            .replace("sip:127.0.0.1:5071", "sip:127.0.0.1:5072");
        let new = cfg(&text);
        let d = describe(&old, &new);
        assert_eq!(
            d,
            [
                "edge a: destination sip:127.0.0.1:5070 changed",
                "edge b: destination sip:127.0.0.1:5072 added",
                "edge b: destination sip:127.0.0.1:5071 removed (its calls in progress carry on)",
            ]
        );
    }
}
