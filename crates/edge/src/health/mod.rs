//! Destination health, sans-IO: OPTIONS probing, passive suspicion from
//! real traffic, and the view the forwarding workers read.
//!
//! The daemon drives a [`Prober`] per edge (sockets and clock are its
//! business), feeds [`Passive`] the workers' [`Counters`] about once a
//! second, and pushes each change into the edge's [`HealthView`], which the
//! workers read lock-free when they pick a destination. One [`Tracker`] per
//! destination decides its [`State`] from consecutive probe results and the
//! operator's overrides.

mod latencies;
mod passive;
mod prober;
mod tracker;
mod view;

pub use latencies::Latencies;
pub use passive::Passive;
pub use prober::Prober;
pub use tracker::{ProbeRecord, ProbeResult, State, Tracker, UnknownState};
pub use view::{Counters, DestTotals, HealthView};
