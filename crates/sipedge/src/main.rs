//! sipedge: a SIP edge proxy and load balancer.
//!
//! This binary is the thin runtime around the sans-IO core in the `edge`
//! crate: command line, sockets, worker threads, health probing, the admin
//! HTTP API and its command-line client, logging.

#![forbid(unsafe_code)]

mod admin;
mod apiban;
mod bans;
mod cli;
mod cluster;
mod config_file;
mod ctl;
mod dns;
mod explain;
mod health;
mod hep;
mod metrics;
mod offload;
mod records;
mod reload;
mod secret;
mod shard;
mod stun;
mod tls;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The process's TLS provider, for clients that use the default one
    // (Redis over rediss://); sipedge's own TLS names its provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIPEDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,stun_types=off"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    match cli.command {
        cli::Command::Check { config } => cli::check(&config),
        cli::Command::Run { config } => cli::run(&config),
        cli::Command::Ctl(ctl) => ctl::run(&ctl),
        cli::Command::Explain(args) => explain::run(&args),
        cli::Command::Completions { shell } => cli::completions(shell),
    }
}
