//! The parts of the interface contract this version does not implement yet.
//!
//! They are refused with "not supported by this version of sipedge" rather
//! than ignored, so that an operator never believes, say, a CPS limit is in
//! force when it is not. Implementing a feature means deleting its line in
//! [`not_supported_yet`] (and, for a key, adding it to the parser's key list).

use super::model::Transport;

/// The message every refused feature gets, after its name.
pub(super) const NOT_SUPPORTED: &str = "not supported by this version of sipedge";

/// Something in a config file that the interface contract defines (every
/// key of the contract is implemented; a key not yet would be a variant
/// here, passed by the parser's key check).
#[derive(Debug, Clone, Copy)]
pub(super) enum Contract {
    /// The transport of a destination's `uri` (`;transport=`, `sips:`).
    Destination(Transport),
}

/// Whether `item` is part of the contract but not implemented by this version.
///
/// The single list of what is missing: lift a feature by deleting its line.
pub(super) fn not_supported_yet(item: Contract) -> bool {
    match item {
        // sipedge takes WebSocket connections, it never opens one.
        Contract::Destination(Transport::Ws | Transport::Wss) => true,
        _ => false,
    }
}
