//! A hasher for keys that are already uniform 64-bit hashes (keyed MACs,
//! xxh3 digests): hashing them again in a `HashMap` would cost time and
//! buy nothing.

use std::hash::Hasher;

/// Passes a `u64` key through as its own hash (other input is folded in
/// byte by byte, so the type is safe to use with any key).
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
