//! Weighted rendezvous (highest random weight) hashing.
//!
//! Every destination scores every key; the key goes to the best score. A
//! destination's score for a key does not depend on the other destinations,
//! so removing one moves only the keys it held, and adding one takes only
//! the keys it now wins — unlike `hash % n`, which reshuffles almost all
//! keys when `n` changes (Kamailio's dispatcher). With score
//! `weight / -ln(u)`, `u` uniform in (0, 1), a destination wins a share of
//! keys proportional to its weight (the scores are exponential races).
//!
//! Every node must pick the same destination for the same key, so the key
//! hash uses a fixed seed, never a random one. The key bytes are hashed once
//! per request; each destination then costs one 64-bit mix.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the key hash. Part of the cluster's wire behaviour: changing it
/// moves every hashed key, and nodes with different seeds disagree.
const KEY_SEED: u64 = 0x5349_5045_4447_4531; // "SIPEDGE1"

/// Salt separating the transaction-key seed from the key hash domain.
const TX_SALT: u64 = 0x7478_2d73_6565_6421; // "tx-seed!"

/// Salt of the per-destination mix, so ids that are small integers (tests,
/// hand-built configs) still mix well.
const ID_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// The request key's hash: computed once per request, then mixed with each
/// destination's [`id_mix`].
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, KEY_SEED)
}

/// The rendezvous key of a transaction, for the algorithms that have no
/// request key (`random`, `least-latency`, and stateful algorithms when no
/// state may be kept): the same transaction key always gives the same pick.
pub(crate) fn tx_seed(tx_key: u64) -> u64 {
    fmix64(tx_key ^ TX_SALT)
}

/// The per-destination half of the mix, precomputed when the selector is
/// built.
pub(crate) fn id_mix(id: u64) -> u64 {
    fmix64(id.wrapping_add(ID_SALT))
}

/// The pseudo-random 64-bit draw of one destination for one key.
#[inline]
pub(crate) fn draw(key: u64, id_mix: u64) -> u64 {
    fmix64(key ^ id_mix)
}

/// The weighted score of a draw: `weight / -ln(u)` with `u` in (0, 1).
///
/// `u` keeps the top 53 bits of the draw and is offset by half a step, so it
/// is never 0 or 1 and `-ln(u)` is finite and positive. Scores are
/// monotonic in `draw >> 11`, which is what the equal-weight fast path
/// compares instead.
///
/// The weight is a float so that `least-latency` can pass `weight × scale`;
/// integer weights convert exactly (`f64::from(u32)`), at the cost of the
/// one conversion the score always made.
#[inline]
pub(crate) fn score(draw: u64, weight: f64) -> f64 {
    const STEP: f64 = 1.0 / (1u64 << 53) as f64;
    let u = ((draw >> 11) as f64 + 0.5) * STEP;
    weight / -u.ln()
}

/// MurmurHash3's 64-bit finaliser: full avalanche, bijective, cheap.
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}
