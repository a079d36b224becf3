//! The command line: `sipedge run --config FILE`, `sipedge check --config FILE`.

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
}

/// Exit code for a configuration that does not validate.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure to start (a socket that cannot be bound...).
const EXIT_START: u8 = 1;

/// `sipedge check`: parse and validate, print a one-line summary.
pub fn check(path: &Path) -> ExitCode {
    match edge::config::load(path) {
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

/// `sipedge run`: load, bind every socket, announce readiness, serve until
/// SIGINT or SIGTERM.
pub fn run(path: &Path) -> ExitCode {
    let cfg = match edge::config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cfg.admin.is_some() {
        tracing::warn!(
            "[admin] is accepted but the admin HTTP server is not part of this version yet"
        );
    }
    let secret = crate::secret::cluster_secret(&cfg.node);
    let running = match crate::workers::start(&cfg, &secret) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(EXIT_START);
        }
    };
    tracing::info!(
        node = %cfg.node.id,
        workers = running.workers,
        sockets = running.sockets,
        "sipedge ready"
    );
    wait_for_shutdown();
    tracing::info!("shutting down");
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_shutdown() {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot wait for signals: {e}");
            return;
        }
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    });
}
