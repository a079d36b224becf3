//! Choosing a destination for a request: the algorithms and the selection
//! snapshot.
//!
//! Sans-IO (DESIGN principle 3): the caller extracts the keys from the SIP
//! message and passes health in as a [`HealthLookup`]; nothing here parses,
//! locks or reads a clock. One concept per module: [`Target`] (a
//! destination), the health lookup, zone tiers, weighted rendezvous hashing,
//! weighted round-robin, the recent-picks memo, and the [`Selector`] that
//! puts them together.

mod algorithm;
mod health_lookup;
mod recent;
pub(crate) mod rendezvous;
mod round_robin;
mod selector;
mod target;
mod tiers;

#[cfg(test)]
mod tests;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use health_lookup::HealthLookup;
pub use selector::{Input, Selector, WorkerState};
pub use target::{Target, MAX_RANK};
