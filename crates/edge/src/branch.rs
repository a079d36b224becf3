//! Our Via branch: a deterministic, signed token (DESIGN principles 1 and 2).
//!
//! `z9hG4bK` + `sE` + 16 hex digits of a keyed MAC + `.` + 8 hex digits of
//! a loop hash, and for the second and later destinations a transactional
//! edge tries for one request, `.` + one hex digit of the attempt number.
//!
//! * The MAC covers the previous hop's Via branch and sent-by, the Call-ID
//!   and the CSeq number: everything that identifies the client transaction
//!   and comes back unchanged in its responses. So a retransmission, the
//!   CANCEL and the ACK of a non-2xx response get the same branch (RFC 3261
//!   §16.11), and a response can be checked by recomputing the MAC from its
//!   own next Via — on any instance that shares the cluster secret, with no
//!   state. A response whose MAC does not verify is dropped (it was not sent
//!   by us: a reflection attempt or garbage).
//! * The loop hash covers what a spiral changes but a loop does not
//!   (Request-URI, From tag, Call-ID, CSeq number): a request that comes
//!   back carrying one of our Vias with the same loop hash has looped
//!   (§16.3 step 4, §16.6 step 8).
//! * The attempt number tells the client transactions of one request apart
//!   when a transactional edge fails over (each needs a branch of its own,
//!   §16.6 step 8). Attempt 0 has no suffix, so the first destination gets
//!   exactly the branch a stateless instance would give: a CANCEL that
//!   reaches another instance is forwarded with the branch that cancels it.

use sip::via::MAGIC_COOKIE;
use sip::{HeaderName, Message, NameAddr, Via};

/// What every one of our branches starts with.
pub const PREFIX: &[u8] = b"z9hG4bKsE";
use xxhash_rust::xxh3::Xxh3;

/// After the magic cookie: marks a branch as one of ours.
const OURS: &[u8] = b"sE";
/// Length of our whole branch value for attempt 0.
pub const BRANCH_LEN: usize = 7 + 2 + 16 + 1 + 8;
/// Attempts a branch can number: one hex digit.
pub const MAX_ATTEMPTS: usize = 16;

/// One of our branches, read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch {
    /// The transaction MAC ([`BranchKey::tx_mac`]).
    pub mac: u64,
    /// The loop hash ([`loop_hash`]).
    pub loop_hash: u32,
    /// Which destination of a transactional failover, 0 for the first.
    pub attempt: u8,
}

/// The cluster's key for branch MACs, derived from the node secret.
#[derive(Clone)]
pub struct BranchKey([u8; 32]);

impl std::fmt::Debug for BranchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BranchKey(..)")
    }
}

impl BranchKey {
    /// Derives the key; every node of a cluster configured with the same
    /// secret derives the same key.
    pub fn from_secret(secret: &[u8]) -> BranchKey {
        BranchKey(blake3::derive_key("sipedge 2026 via branch v1", secret))
    }

    /// The transaction MAC: keyed over the previous hop's Via and the
    /// transaction's Call-ID and CSeq number. `from_tag` only counts for
    /// RFC 2543 peers (no magic cookie); callers may pass empty otherwise.
    pub fn tx_mac(&self, prev: &Via<'_>, call_id: &[u8], cseq: u32, from_tag: &[u8]) -> u64 {
        let cookie = prev.has_cookie();
        let ident = if cookie {
            prev.branch.unwrap_or_default()
        } else {
            from_tag
        };
        let port = prev.port.unwrap_or(0).to_le_bytes();
        let cseq = cseq.to_le_bytes();
        let parts: [&[u8]; 8] = [
            if cookie { b"b" } else { b"t" },
            ident,
            &[0],
            prev.host_text,
            &port,
            &[0],
            call_id,
            &cseq,
        ];
        // One keyed hash over a stack copy: the same bytes as feeding the
        // parts to a streaming hasher, at a fraction of the cost.
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let out = if total <= 512 {
            let mut buf = [0u8; 512];
            let mut at = 0;
            for p in parts {
                buf[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
            blake3::keyed_hash(&self.0, &buf[..at])
        } else {
            let mut h = blake3::Hasher::new_keyed(&self.0);
            for p in parts {
                h.update(p);
            }
            h.finalize()
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(&out.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }
}

/// The loop hash of a request (§16.3 step 4): unchanged when the same
/// request comes back, changed by a spiral's new Request-URI.
pub fn loop_hash(request_uri: &[u8], call_id: &[u8], from_tag: &[u8], cseq: u32) -> u32 {
    let mut h = Xxh3::with_seed(0x5ed6_e100b);
    h.update(request_uri);
    h.update(&[0]);
    h.update(call_id);
    h.update(&[0]);
    h.update(from_tag);
    h.update(&cseq.to_le_bytes());
    h.digest() as u32
}

/// The From tag, or empty.
pub fn from_tag<'a>(m: &Message<'a>) -> &'a [u8] {
    m.first_value(HeaderName::From)
        .and_then(|v| NameAddr::parse(v).ok())
        .and_then(|n| n.tag())
        .unwrap_or_default()
}

fn hex(out: &mut Vec<u8>, v: u64, digits: usize) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(H[((v >> (i * 4)) & 0xf) as usize]);
    }
}

fn unhex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

/// Writes our branch value for a transaction MAC and loop hash.
pub fn write_branch(out: &mut Vec<u8>, mac: u64, loop_hash: u32) {
    write_attempt_branch(out, mac, loop_hash, 0);
}

/// Writes our branch value for `attempt` (taken modulo [`MAX_ATTEMPTS`]).
pub fn write_attempt_branch(out: &mut Vec<u8>, mac: u64, loop_hash: u32, attempt: u8) {
    out.extend_from_slice(MAGIC_COOKIE);
    out.extend_from_slice(OURS);
    hex(out, mac, 16);
    out.push(b'.');
    hex(out, u64::from(loop_hash), 8);
    if attempt > 0 {
        out.push(b'.');
        hex(out, u64::from(attempt), 1);
    }
}

/// The parts of one of our branches, or None if it is not in our format.
pub fn parse_branch(b: &[u8]) -> Option<Branch> {
    let base = b.get(..BRANCH_LEN)?;
    if !base.starts_with(MAGIC_COOKIE) || &base[7..9] != OURS || base[25] != b'.' {
        return None;
    }
    let attempt = match &b[BRANCH_LEN..] {
        [] => 0,
        [b'.', d] => unhex(&[*d]).filter(|&n| n > 0)? as u8,
        _ => return None,
    };
    Some(Branch {
        mac: unhex(&base[9..25])?,
        loop_hash: unhex(&base[26..34])? as u32,
        attempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_round_trips() {
        let mut out = Vec::new();
        write_branch(&mut out, 0x0123_4567_89ab_cdef, 0xdead_beef);
        assert_eq!(out.len(), BRANCH_LEN);
        let want = Branch {
            mac: 0x0123_4567_89ab_cdef,
            loop_hash: 0xdead_beef,
            attempt: 0,
        };
        assert_eq!(parse_branch(&out), Some(want));
        assert_eq!(parse_branch(b"z9hG4bK776asdhds"), None);
        for attempt in 1..MAX_ATTEMPTS as u8 {
            let mut a = Vec::new();
            write_attempt_branch(&mut a, want.mac, want.loop_hash, attempt);
            assert_eq!(a.len(), BRANCH_LEN + 2);
            assert_eq!(parse_branch(&a), Some(Branch { attempt, ..want }));
        }
        for bad in [".0", ".", ".g", ".10", "x1"] {
            let mut a = out.clone();
            a.extend_from_slice(bad.as_bytes());
            assert_eq!(parse_branch(&a), None, "{bad}");
        }
        out[20] = b'x';
        assert_eq!(parse_branch(&out), None);
    }

    #[test]
    fn one_shot_and_streaming_macs_agree() {
        let long = format!(
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{}",
            "x".repeat(600)
        );
        let via = Via::parse(long.as_bytes()).unwrap();
        let k = BranchKey::from_secret(b"one secret of sixteen");
        let short = Via::parse(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1").unwrap();
        // Both paths hash the same byte stream: check against a streaming hasher.
        for (v, ident) in [(&via, via.branch.unwrap()), (&short, short.branch.unwrap())] {
            let mut h = blake3::Hasher::new_keyed(&k.0);
            for p in [
                &b"b"[..],
                ident,
                &[0],
                v.host_text,
                &5060u16.to_le_bytes(),
                &[0],
                b"c",
                &7u32.to_le_bytes(),
            ] {
                h.update(p);
            }
            let want = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap());
            assert_eq!(k.tx_mac(v, b"c", 7, b""), want);
        }
    }

    #[test]
    fn mac_depends_on_key_and_transaction() {
        let via = Via::parse(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1").unwrap();
        let other = Via::parse(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK2").unwrap();
        let k1 = BranchKey::from_secret(b"one secret of sixteen");
        let k2 = BranchKey::from_secret(b"another secret, 16+");
        let a = k1.tx_mac(&via, b"call", 1, b"t");
        assert_eq!(
            a,
            k1.tx_mac(&via, b"call", 1, b"other-tag-ignored-with-cookie")
        );
        assert_ne!(a, k2.tx_mac(&via, b"call", 1, b"t"));
        assert_ne!(a, k1.tx_mac(&other, b"call", 1, b"t"));
        assert_ne!(a, k1.tx_mac(&via, b"call", 2, b"t"));
    }
}
