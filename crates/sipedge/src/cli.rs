//! The command line: `sipedge run --config FILE`, `sipedge check --config
//! FILE`, `sipedge ctl …`.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// SIP edge proxy and load balancer.
#[derive(Parser, Debug)]
#[command(name = "sipedge", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy with a configuration file.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (non-zero on error, with file:line: key: problem).
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask a running sipedge through its admin API: destinations, set a
    /// destination's state, health.
    Ctl(crate::ctl::Ctl),
}

/// Exit code for a configuration that does not validate.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure to start (a socket that cannot be bound...).
const EXIT_START: u8 = 1;

/// `sipedge check`: parse and validate, print a one-line summary.
pub fn check(path: &Path) -> ExitCode {
    match crate::config_file::load(path) {
        Ok(cfg) => {
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

/// `sipedge run`: load, bind every socket (forwarding, probes, admin),
/// announce readiness, serve until SIGINT or SIGTERM.
///
/// The forwarding threads run on their own; the main thread runs one
/// current-thread runtime with the prober tasks, the admin server and the
/// signal wait, so neither probing nor the admin API ever waits on the
/// forwarding path (nor the other way round).
pub fn run(path: &Path) -> ExitCode {
    let cfg = match crate::config_file::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
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
        let running = crate::shard::start(&cfg, &keys)?;
        let health = std::sync::Arc::new(crate::health::start(&cfg, &running.edges).await?);
        let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(listener) = admin {
            crate::admin::spawn(listener, health, std::sync::Arc::clone(&running.registry));
        }
        Ok::<_, String>((running, admin_addr))
    });
    let (running, admin) = match started {
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
    rt.block_on(wait_for_shutdown());
    tracing::info!("shutting down");
    ExitCode::SUCCESS
}

/// Completes on SIGINT or SIGTERM; meanwhile the runtime runs the prober
/// tasks and the admin server.
async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM ({e}); stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
