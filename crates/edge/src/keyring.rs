//! The cluster's keys: new messages are signed with the first, messages
//! signed with any of them verify. A cluster rotates its secret by making
//! the new one `[node] secret` and the old one `previous_secrets` on every
//! node: calls set up under the old secret keep working (their responses
//! and retransmitted answers carry branches signed with it) until the old
//! secret is dropped. Flow tokens rotate the same way: a dialog's
//! Record-Route, sealed under the old secret, keeps routing its requests.

use crate::branch::BranchKey;
use crate::token::TokenKey;

/// The keys derived from the cluster's secrets, current first.
#[derive(Clone, Debug)]
pub struct KeyRing {
    branch: Vec<BranchKey>,
    tokens: Vec<TokenKey>,
    link: Vec<LinkKey>,
}

/// A key of the node-to-node link ([`crate::link`]): what nodes send each
/// other is authenticated with it.
#[derive(Clone)]
pub struct LinkKey {
    id: u8,
    key: [u8; 32],
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkKey({})", self.id)
    }
}

impl LinkKey {
    fn from_secret(secret: &[u8]) -> LinkKey {
        let key = blake3::derive_key("sipedge 2026 node link v1 key", secret);
        LinkKey {
            id: blake3::derive_key("sipedge 2026 node link v1 key id", secret)[0],
            key,
        }
    }

    /// Which key this is, as datagrams name it.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The MAC of `parts`, in order (16 bytes of a keyed BLAKE3).
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for p in parts {
            h.update(p);
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }
}

impl KeyRing {
    /// The ring of `secrets`, the one to sign with first. An empty list
    /// gives a ring of one key from the empty secret (which the config
    /// never yields: the daemon draws a random secret when none is set).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> KeyRing {
        let mut secrets: Vec<&[u8]> = secrets.into_iter().collect();
        if secrets.is_empty() {
            secrets.push(b"");
        }
        KeyRing {
            branch: secrets.iter().map(|s| BranchKey::from_secret(s)).collect(),
            tokens: secrets.iter().map(|s| TokenKey::from_secret(s)).collect(),
            link: secrets.iter().map(|s| LinkKey::from_secret(s)).collect(),
        }
    }

    /// A ring of one secret.
    pub fn single(secret: &[u8]) -> KeyRing {
        KeyRing::new([secret])
    }

    /// The branch key new messages are signed with.
    pub fn signing(&self) -> &BranchKey {
        &self.branch[0]
    }

    /// Every branch key a message may verify under, signing key first.
    pub fn verifying(&self) -> &[BranchKey] {
        &self.branch
    }

    /// The key new flow tokens are sealed with.
    pub fn sealing(&self) -> &TokenKey {
        &self.tokens[0]
    }

    /// Every key a flow token may open under, sealing key first.
    pub fn opening(&self) -> &[TokenKey] {
        &self.tokens
    }

    /// The node-to-node link's keys: the first signs, any verifies.
    pub fn link(&self) -> &[LinkKey] {
        &self.link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_secret_signs_and_every_one_verifies() {
        let old = KeyRing::single(b"the old secret, 16+");
        let ring = KeyRing::new([&b"the new secret, 16+"[..], b"the old secret, 16+"]);
        let signed_before = old.signing().branch_mac(42, 7, 1);
        let ours = ring.signing().branch_mac(42, 7, 1);
        assert_ne!(signed_before, ours, "the new secret signs");
        assert_eq!(ring.verifying().len(), 2);
        assert_eq!(ring.verifying()[1].branch_mac(42, 7, 1), signed_before);
    }
}
