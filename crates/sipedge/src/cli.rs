//! The command line: `sipedge run --config FILE`, `sipedge check --config
//! FILE`, `sipedge ctl …`.

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// SIP edge proxy and load balancer.
#[derive(Parser, Debug)]
#[command(name = "sipedge", version, about)]
pub struct Cli {
    /// How the daemon's own log lines are written on stderr: `text` for
    /// people, `json` (one object per line) for a log pipeline.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: time, level, target, message and fields.
    Json,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy with a configuration file.
    #[command(after_long_help = RUN_HELP)]
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (non-zero on error, with file:line: key: problem).
    #[command(after_long_help = CHECK_HELP)]
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show what the pipeline would do with one SIP message read from
    /// stdin, stage by stage, without sending anything: validation,
    /// security, limits, the algorithm's ranked destinations, and the
    /// message that would leave and where to.
    #[command(after_long_help = EXPLAIN_HELP)]
    Explain(crate::explain::Args),
    /// Ask a running sipedge through its admin API: destinations, set a
    /// destination's state, health.
    Ctl(crate::ctl::Ctl),
    /// Print a completion script for a shell (e.g. `sipedge completions bash
    /// > /etc/bash_completion.d/sipedge`).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `sipedge run --help`: what a man page would say besides the options.
const RUN_HELP: &str = "\
Signals:
  SIGHUP   read the config file again and apply it (an invalid file is refused;
           the running config stays); also `sipedge ctl reload`, POST /api/reload
  SIGUSR1  reopen the call-record file ([records] file), for logrotate
  SIGTERM, SIGINT  stop

Environment:
  SIPEDGE_LOG  log filter (tracing's EnvFilter syntax), default `info`

Exit status:
  0  stopped by a signal
  1  could not start (an address in use, a certificate that does not load...)
  2  the config file does not check (file:line: key: what is wrong on stderr)

Example:
  sipedge run --config /etc/sipedge/sipedge.toml
  sipedge --log-format json run -c /etc/sipedge/sipedge.toml 2>>/var/log/sipedge/sipedge.log";

/// `sipedge check --help`.
const CHECK_HELP: &str = "\
Prints `FILE: ok (N edge(s), M destination(s))` and warnings (an admin API open
to the network without credentials, a certificate near its expiry...) on
stderr.

Exit status:
  0  the file checks
  2  it does not: `file:line: key: what is wrong` on stderr

Example:
  sipedge check --config /etc/sipedge/sipedge.toml && systemctl reload sipedge";

/// `sipedge explain --help`.
const EXPLAIN_HELP: &str = "\
The stages, in the pipeline's order: security, parse, size, validate, sanity,
local, hops, route, limits, dispatch (every destination ranked, with weight,
priority, zone, tier and state) and send (each message that would leave, in
full). On the command line the edge is fresh: every destination usable, the
limits full; a running node answers with its live states and limits at
POST /api/explain?edge=NAME&from=ADDR:PORT (the message as the body).

Exit status:
  0  the message would be sent on
  1  a stage stops it (the edge would answer it itself, or drop it)
  2  the config does not load, or no such edge

Example:
  sipedge explain --config /etc/sipedge/sipedge.toml < invite.sip
  sipedge explain -c sipedge.toml --edge carrier-in --from 10.20.0.5:5060 --json < bye.sip";

/// `sipedge completions SHELL`: the script clap writes for every
/// subcommand and option.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "sipedge", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Exit code for a configuration that does not validate.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure to start (a socket that cannot be bound...).
const EXIT_START: u8 = 1;

/// `sipedge check`: parse and validate, print a one-line summary.
pub fn check(path: &Path) -> ExitCode {
    match crate::config_file::load_all(path) {
        Ok(crate::config_file::Loaded { parsed, tls }) => {
            let cfg = parsed.cfg;
            if let Err(e) = admin_auth(&cfg) {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(EXIT_CONFIG);
            }
            for w in tls.warnings.iter().chain(&warnings(&cfg)) {
                eprintln!("warning: {w}");
            }
            let dests: usize = cfg.edges.iter().map(|e| e.destinations.len()).sum();
            println!(
                "{}: ok ({} edge(s), {} destination(s))",
                path.display(),
                cfg.edges.len(),
                dests
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The admin API's credentials, read from their files; an unreadable or
/// empty file is an error of the config, at `check` as at `run`.
fn admin_auth(cfg: &edge::config::Config) -> Result<Option<Arc<crate::admin::Auth>>, String> {
    match &cfg.admin {
        Some(a) => crate::admin::Auth::load(a),
        None => Ok(None),
    }
}

/// What is valid but likely wrong: an admin API open to the network
/// without credentials; an APIBAN key that cannot be read; what makes a
/// node of a cluster unable to work with its peers (the nodes must share a
/// secret, since tokens and relayed messages are sealed with it, and relay
/// to each other only what names the same address, every node's edge
/// advertising the anycast address).
fn warnings(cfg: &edge::config::Config) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = &cfg.admin {
        if !a.listen.ip().is_loopback() && a.token_file.is_none() && a.basic.is_none() {
            out.push(format!(
                "[admin] listen {} is reachable from the network and asks for no credentials: \
                 set token_file (or user and password_file), or listen on 127.0.0.1",
                a.listen
            ));
        }
    }
    if let Some(a) = &cfg.apiban {
        if let Err(e) = std::fs::read_to_string(&a.key_file) {
            out.push(format!(
                "[apiban] key_file {}: cannot read it ({e}): the feed is not polled until it can be",
                a.key_file.display()
            ));
        }
    }
    out.extend(unreached_offers(cfg));
    let Some(c) = cfg.cluster.as_ref() else {
        return out;
    };
    if (!c.peers.is_empty() || c.redis.is_some()) && cfg.node.secret.is_none() {
        out.push(
            "[cluster], but no [node] secret: this node draws one of its own, and the other \
             nodes cannot open its flow tokens nor it theirs"
                .to_owned(),
        );
    }
    if c.peers.is_empty() {
        return out;
    }
    for e in cfg.edges.iter().filter(|e| e.advertise.is_none()) {
        out.push(format!(
            "[cluster] peers, but edge {} has no advertise: a request relayed between nodes \
             is answered only where every node's edge advertises the same (anycast) address",
            e.name
        ));
    }
    out
}

/// Edges whose `capacity_failover = ["cluster"]` offers the other nodes
/// `[node] public_address` (an IP) on a listener bound to another
/// address: their redirects reach it only if that address is forwarded
/// to the listener's.
fn unreached_offers(cfg: &edge::config::Config) -> Vec<String> {
    let public = cfg
        .node
        .public_address
        .as_deref()
        .and_then(crate::health::socket::ip_literal);
    let Some(ip) = public else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in cfg
        .edges
        .iter()
        .filter(|e| e.capacity.failover_cluster.is_some())
    {
        for (t, uri) in e.own_uris(&cfg.node) {
            let Some(l) = e.own_listener(&cfg.node, t) else {
                continue;
            };
            let bound = l.addr.ip();
            let reached =
                bound == ip || (bound.is_unspecified() && bound.is_ipv4() == ip.is_ipv4());
            if !reached {
                out.push(format!(
                    "edge {}: capacity_failover = [\"cluster\"] offers the other nodes {uri}, \
                     but its {t}: listener there is bound to {bound}, not {ip} (nor a wildcard \
                     of its family): their redirects reach it only if {ip} is forwarded to {bound}",
                    e.name
                ));
            }
        }
    }
    out
}

/// `sipedge run`: load, bind every socket (forwarding, probes, admin),
/// announce readiness, serve until SIGINT or SIGTERM; reload the config
/// on SIGHUP.
///
/// The forwarding threads run on their own; the main thread runs one
/// current-thread runtime with the prober tasks, the admin server and the
/// signal wait, so neither probing nor the admin API ever waits on the
/// forwarding path (nor the other way round).
pub fn run(path: &Path) -> ExitCode {
    let (parsed, tls) = match crate::config_file::load_all(path) {
        Ok(l) => (l.parsed, l.tls),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let cfg = parsed.cfg.clone();
    let auth = match admin_auth(&cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for w in tls.warnings.iter().chain(&warnings(&cfg)) {
        tracing::warn!("{w}");
    }
    let tls = Arc::new(ArcSwap::from_pointee(tls.tls));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the runtime: {e}", path.display());
            return ExitCode::from(EXIT_START);
        }
    };
    let keys = crate::secret::key_ring(&cfg.node);
    let started = rt.block_on(async {
        // The admin address first: it is the one most likely in use.
        let admin = match &cfg.admin {
            Some(a) => Some(crate::admin::bind(a.listen).await?),
            None => None,
        };
        let dns = crate::dns::start(&cfg.node.dns)?;
        // The HEP sender, with `[hep]`: the edges that trace share it.
        let hep = cfg.hep.as_ref().map(crate::hep::start).transpose()?;
        let sink = hep
            .as_ref()
            .map(|(s, _)| Arc::clone(s) as Arc<dyn edge::trace::Sink>);
        // The call-record writer, with `[records]`.
        let records = cfg
            .records
            .as_ref()
            .map(|r| crate::records::start(r, &cfg.node.id))
            .transpose()?;
        let record_sink = records
            .as_ref()
            .map(|(s, _)| Arc::clone(s) as Arc<dyn edge::records::Sink>);
        let mut running = crate::shard::start(&cfg, &keys, &tls, &dns, sink, record_sink)?;
        let snapshots: Vec<_> = running.edges.iter().map(|s| s.load_full()).collect();
        let health = Arc::new(ArcSwap::from_pointee(
            crate::health::start(&cfg, &snapshots, &tls).await?,
        ));
        let reloader = Arc::new(crate::reload::Reloader::new(
            path.to_path_buf(),
            &parsed,
            keys.clone(),
            running.edges.clone(),
            Arc::clone(&health),
            tls,
        ));
        crate::reload::follow_dns(Arc::clone(&reloader));
        // The cluster store, with `[cluster] redis`: it shares what this
        // node's ban upkeep applies.
        let (bans_out, bans_in) = tokio::sync::mpsc::channel(1024);
        let cluster = crate::cluster::spawn(
            &cfg,
            running.edges.clone(),
            Arc::clone(&running.bans),
            bans_in,
            running.peers.clone(),
        );
        let bans_out = cluster.is_some().then_some(bans_out);
        crate::bans::spawn(Arc::clone(&running.bans), bans_out.clone());
        if let Some(a) = &cfg.apiban {
            crate::apiban::spawn(a.clone(), Arc::clone(&running.bans));
        }
        // An edge that asks its address of STUN says it is ready once it
        // has an answer (or none came in time; its task keeps asking).
        let first: Vec<_> = running
            .stun
            .drain(..)
            .map(|c| crate::stun::follow(c, Arc::clone(&reloader)))
            .collect();
        for f in first {
            let _ = tokio::time::timeout(crate::stun::FIRST_ROUND, f).await;
        }
        let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(listener) = admin {
            let history = Arc::new(crate::admin::dashboard::series::History::default());
            crate::admin::dashboard::series::spawn(Arc::clone(&health), Arc::clone(&history));
            let admin = crate::admin::Admin {
                history,
                auth,
                hep: hep.map(|(_, counts)| counts),
                records: records.map(|(_, counts)| counts),
                health,
                connections: Arc::clone(&running.registry),
                reloader: Arc::clone(&reloader),
                bans: crate::bans::Banning {
                    bans: Arc::clone(&running.bans),
                    cluster: bans_out,
                },
                cluster: cluster.clone(),
            };
            crate::admin::spawn(listener, admin);
        }
        // Watched before sipedge says it is ready: a SIGHUP sent after
        // that must reload, never end the process (the default action).
        let signals = Signals::watch();
        Ok::<_, String>((running, admin_addr, reloader, signals, cluster))
    });
    let (running, admin, reloader, signals, cluster) = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(EXIT_START);
        }
    };
    tracing::info!(
        node = %cfg.node.id,
        shards = running.shards,
        sockets = running.sockets,
        admin = %admin.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        "sipedge ready"
    );
    rt.block_on(signals.serve(&reloader));
    tracing::info!("shutting down");
    if let Some(c) = &cluster {
        rt.block_on(c.leave());
    }
    crate::records::finish();
    ExitCode::SUCCESS
}

/// The signals sipedge acts on (SIGINT is tokio's `ctrl_c`).
struct Signals {
    hup: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    usr1: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts watching; must run inside the runtime.
    fn watch() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let hup = signal(SignalKind::hangup())
            .map_err(|e| tracing::warn!("cannot watch SIGHUP ({e}); reload through the admin API"))
            .ok();
        let term = signal(SignalKind::terminate())
            .map_err(|e| tracing::warn!("cannot watch SIGTERM ({e}); stop with SIGINT"))
            .ok();
        let usr1 = signal(SignalKind::user_defined1())
            .map_err(|e| {
                tracing::warn!("cannot watch SIGUSR1 ({e}); call records are not reopened")
            })
            .ok();
        Signals { hup, term, usr1 }
    }

    /// Reloads on SIGHUP; reopens the call-record file on SIGUSR1; completes on SIGINT or SIGTERM. Meanwhile the
    /// runtime runs the prober tasks and the admin server.
    async fn serve(mut self, reloader: &crate::reload::Reloader) {
        loop {
            tokio::select! {
                Some(()) = recv(&mut self.hup) => {
                    tracing::info!("SIGHUP: reloading the config");
                    let _ = reloader.reload_and_log().await;
                }
                Some(()) = recv(&mut self.usr1) => {
                    crate::records::REOPEN.store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!("SIGUSR1: reopening the call-record file");
                }
                Some(()) = recv(&mut self.term) => return,
                _ = tokio::signal::ctrl_c() => return,
            }
        }
    }
}

/// The next signal of `s`; never, when it is not watched.
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
