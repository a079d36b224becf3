//! The names of the dispatch algorithms, as users write them in `algorithm = "…"`.

use std::fmt;
use std::str::FromStr;

/// How an edge spreads new requests over its destinations.
///
/// The names are part of the interface contract (DESIGN.md); configs and
/// acceptance checks spell them exactly as [`Algorithm::name`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Rendezvous hash over the Call-ID: every message of a call sticks.
    HashCallId,
    /// Rendezvous hash over the From URI: a caller sticks to one server.
    HashFromUri,
    /// Rendezvous hash over the To URI: a callee sticks to one server.
    HashToUri,
    /// Rendezvous hash over the Request-URI.
    HashRequestUri,
    /// A destination gets `weight` consecutive picks before the next one.
    WeightedRoundRobin,
    /// Rendezvous hash over the digest username; weighted round-robin without one.
    HashAuthUsername,
    /// Weighted random, seeded from the transaction key so retransmissions agree.
    Random,
    /// The highest-priority usable destination.
    First,
    /// Weighted rendezvous over the transaction key with each weight scaled
    /// by the destination's measured speed (`weight × scale`, see
    /// [`HealthLookup::scale`](super::HealthLookup::scale)).
    ///
    /// A spread, not winner-takes-all: a destination with twice the latency
    /// of an equal-weight one gets half its share, so the fastest server is
    /// not flooded the moment it measures a millisecond better, and a slow
    /// one keeps a trickle that keeps its measurement honest. Weights stay
    /// what they are everywhere else, capacity; latency only scales them.
    LeastLatency,
}

impl Algorithm {
    /// Every algorithm, in the order the documentation lists them.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::HashCallId,
        Algorithm::HashFromUri,
        Algorithm::HashToUri,
        Algorithm::HashRequestUri,
        Algorithm::WeightedRoundRobin,
        Algorithm::HashAuthUsername,
        Algorithm::Random,
        Algorithm::First,
        Algorithm::LeastLatency,
    ];

    /// The config name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HashCallId => "hash-call-id",
            Algorithm::HashFromUri => "hash-from-uri",
            Algorithm::HashToUri => "hash-to-uri",
            Algorithm::HashRequestUri => "hash-request-uri",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::HashAuthUsername => "hash-auth-username",
            Algorithm::Random => "random",
            Algorithm::First => "first",
            Algorithm::LeastLatency => "least-latency",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name was not one of [`Algorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm;

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or(UnknownAlgorithm)
    }
}
