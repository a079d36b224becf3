//! Choosing a destination for a request: the algorithms and the selection snapshot.

mod algorithm;

pub use algorithm::{Algorithm, UnknownAlgorithm};
