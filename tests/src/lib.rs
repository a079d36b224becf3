//! End-to-end test harness for sipedge.
//!
//! The tests in `tests/tests/*.rs` start the real `sipedge` binary and real
//! SIP peers (SIPp, or raw UDP sockets for crafted messages), and look at
//! what went over the wire. This library is the plumbing they share:
//!
//! - [`require_private_netns`]: every test runs inside a private network
//!   namespace with only loopback, because a proxy sends where messages say
//!   and a test message must never leave the machine. `scripts/test` sets
//!   that up; the harness refuses to run anywhere else.
//! - [`ports`]: distinct free ports for tests that run in parallel threads.
//! - [`Sipedge`]: the binary under test, started from a TOML string, ready
//!   when it says so on stderr, killed on drop.
//! - [`SippUas`] / [`SippUac`]: SIPp servers of the pool and SIPp callers,
//!   with every message they received parsed from SIPp's message trace.
//! - [`AdminApi`] and [`admin::ctl`]: the admin HTTP API and
//!   `sipedge ctl`, with waits that poll the API until a destination is
//!   in the state a test expects; [`Json`] reads the answers.
//! - [`Udp`], [`FakePool`] and [`sip`]: raw sockets (a caller, a pool of
//!   servers that report which of them got what) and string helpers for
//!   hand-made messages and the answers to them.
//!
//! Readiness is always checked (a line on stderr, a socket in
//! `/proc/net/udp`), never waited for with a sleep; every wait and loop has
//! a time bound and panics with the captured output when it runs out.

#![forbid(unsafe_code)]

pub mod admin;
pub mod browser;
pub mod certs;
pub mod config;
pub mod corpus;
pub mod coturn;
pub mod dnsmasq;
pub mod expect;
mod fake;
pub mod hep;
pub mod hosts;
pub mod json;
pub mod junk;
pub mod kamailio;
pub mod netns;
pub mod openssl;
pub mod ports;
mod process;
pub mod prometheus;
pub mod redis;
pub mod sip;
pub mod sipedge;
mod sipp;
mod tempdir;
pub mod trace;
mod udp;
pub mod websocket;

pub use admin::{AdminApi, CtlOutput, HttpResponse};
pub use fake::{Arrival, FakePool};
pub use json::Json;
pub use netns::require_private_netns;
pub use ports::{free_port, free_port_block, free_ports};
pub use sipedge::{Sipedge, StartFailure};
pub use sipp::{
    calls_on_one_server, scenario_path, InjectionFile, SippUac, SippUas, UacResult, UasResult,
    SIPP_GLOBAL_TIMEOUT, SIPP_RECV_TIMEOUT,
};
pub use tempdir::TempDir;
pub use trace::{Direction, TracedMessage};
pub use udp::Udp;

/// The loopback address every peer and every sipedge listener binds to.
pub const LOCALHOST: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;
