//! The cluster secrets that key signed tokens.

use std::hash::{BuildHasher, Hasher};

/// The configured `[node] secret` and `previous_secrets` as a key ring.
pub fn key_ring(node: &edge::config::Node) -> edge::keyring::KeyRing {
    let current = cluster_secret(node);
    let previous = node.previous_secrets.iter().map(|s| s.as_bytes());
    edge::keyring::KeyRing::new(std::iter::once(&current[..]).chain(previous))
}

/// The configured `[node] secret`, or — for a lone instance that has none —
/// a random one for this process, with a warning: tokens then stop
/// verifying across restarts and across instances.
fn cluster_secret(node: &edge::config::Node) -> Vec<u8> {
    if let Some(s) = &node.secret {
        return s.as_bytes().to_vec();
    }
    tracing::warn!(
        "[node] secret is not set: using a random per-process secret; \
         set it (the same on every instance) so that tokens verify across restarts and instances"
    );
    let mut out = Vec::with_capacity(32);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out
}
