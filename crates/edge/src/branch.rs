//! Our Via branch: a deterministic, signed token (DESIGN principles 1 and 2).
//!
//! `z9hG4bK` + `sE` + 16 hex digits of a keyed MAC + `.` + 8 hex digits of
//! a loop hash, and for the second and later destinations a transactional
//! edge tries for one request, `.` + one hex digit of the attempt number.
//! Every digit is authenticated: a response whose branch was changed
//! anywhere is dropped.
//!
//! * The MAC covers the previous hop's Via branch and sent-by, the Call-ID,
//!   the CSeq number and the loop hash: everything that identifies the
//!   client transaction and comes back unchanged in its responses. So a
//!   retransmission, the CANCEL and the ACK of a non-2xx response get the
//!   same branch (RFC 3261 §16.11), and a response can be checked by
//!   recomputing the MAC from its own next Via and the loop hash it
//!   carries — on any instance that shares the cluster secret, with no
//!   state. A response whose MAC does not verify is dropped (it was not
//!   sent by us: a reflection attempt, garbage, or a branch someone
//!   edited).
//! * The loop hash covers what a spiral changes but a loop does not
//!   (Request-URI, Route, the side the request came from, From tag,
//!   Call-ID, CSeq number): a request that comes back carrying one of our
//!   Vias with the same loop hash has looped (§16.3 step 4, §16.6 step 8).
//! * The attempt number tells the client transactions of one request apart
//!   when a transactional edge fails over (each needs a branch of its own,
//!   §16.6 step 8). Attempt 0 has no suffix, so the first destination gets
//!   exactly the branch a stateless instance would give: a CANCEL that
//!   reaches another instance is forwarded with the branch that cancels it.
//!   A later attempt's MAC is the first one's masked with a keyed hash of
//!   the loop hash and the attempt number ([`BranchKey::branch_mac`]), so
//!   the digit is authenticated too while the transaction stays findable
//!   from the branch alone (a response to a CANCEL sipedge wrote carries
//!   no other Via to recompute the MAC from).

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
        BranchKey(blake3::derive_key("sipedge 2026 via branch v2", secret))
    }

    /// The transaction MAC (the branch MAC of attempt 0): keyed over the
    /// previous hop's Via, the transaction's Call-ID and CSeq number, and
    /// the loop hash. `from_tag` only counts for RFC 2543 peers (no magic
    /// cookie); callers may pass empty otherwise.
    pub fn tx_mac(
        &self,
        prev: &Via<'_>,
        call_id: &[u8],
        cseq: u32,
        from_tag: &[u8],
        loop_hash: u32,
    ) -> u64 {
        let cookie = prev.has_cookie();
        let ident = if cookie {
            prev.branch.unwrap_or_default()
        } else {
            from_tag
        };
        let port = prev.port.unwrap_or(0).to_le_bytes();
        let cseq = cseq.to_le_bytes();
        let loop_hash = loop_hash.to_le_bytes();
        let parts: [&[u8]; 9] = [
            if cookie { b"b" } else { b"t" },
            ident,
            &[0],
            prev.host_text,
            &port,
            &[0],
            &loop_hash,
            &cseq,
            call_id,
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
        first_u64(out.as_bytes())
    }

    /// The MAC written in the branch of `attempt` for a transaction whose
    /// MAC is `tx_mac`: itself for attempt 0, masked with a keyed hash of
    /// the loop hash and the attempt number for the others. Changing the
    /// attempt digit of a branch therefore needs the key, and so does
    /// moving a mask from one transaction to another (their loop hashes
    /// differ). Costs a hash only on failover.
    pub fn branch_mac(&self, tx_mac: u64, loop_hash: u32, attempt: u8) -> u64 {
        if attempt == 0 {
            return tx_mac;
        }
        let mut buf = [0u8; 6];
        buf[0] = b'a';
        buf[1..5].copy_from_slice(&loop_hash.to_le_bytes());
        buf[5] = attempt;
        tx_mac ^ first_u64(blake3::keyed_hash(&self.0, &buf).as_bytes())
    }

    /// The transaction MAC behind a branch read back (the inverse of
    /// [`branch_mac`](Self::branch_mac)).
    pub fn tx_mac_of(&self, b: &Branch) -> u64 {
        self.branch_mac(b.mac, b.loop_hash, b.attempt)
    }
}

fn first_u64(bytes: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// Which side a request came from: it decides where the edge sends it
/// (from outside into the pool, from a pool destination outward), so it is
/// part of what a loop must repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// From anyone who is not a destination of the edge.
    Outside,
    /// From one of the edge's destinations.
    Pool,
}

/// The loop hash of a request (RFC 3261 §16.3 step 4, §16.6 step 8): over
/// everything that decides where the edge sends it — the Request-URI, the
/// URIs of the Route set and the side it came from — and the
/// transaction (Call-ID, From tag, CSeq number). A request that comes back
/// with all of these unchanged has looped; one that a pool server, acting
/// as a proxy, sends back out through the edge comes from the other side
/// (or with another Route), and is a spiral that goes on. The To tag is
/// left out: the ACK of a non-2xx answer carries one its INVITE did not,
/// and must get the INVITE's branch.
pub fn loop_hash<'r>(
    request_uri: &[u8],
    call_id: &[u8],
    from_tag: &[u8],
    cseq: u32,
    route_uris: impl IntoIterator<Item = &'r [u8]>,
    side: Side,
) -> u32 {
    let mut h = Xxh3::with_seed(0x5ed6_e100b);
    h.update(request_uri);
    h.update(&[0]);
    h.update(call_id);
    h.update(&[0]);
    h.update(from_tag);
    h.update(&cseq.to_le_bytes());
    for r in route_uris {
        h.update(&[0]);
        h.update(r);
    }
    h.update(&[side as u8]);
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

/// Reads lower-case hex only, as [`hex`] writes it: a branch with a digit
/// in upper case is not one of ours (otherwise `a` and `A` would read the
/// same, and a changed branch could still verify).
fn unhex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
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
        let mut upper = Vec::new();
        write_branch(&mut upper, 0xabcd, 0xef);
        upper[24] = upper[24].to_ascii_uppercase();
        assert_eq!(
            parse_branch(&upper),
            None,
            "{}",
            String::from_utf8_lossy(&upper)
        );
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
                &9u32.to_le_bytes(),
                &7u32.to_le_bytes(),
                b"c",
            ] {
                h.update(p);
            }
            let want = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap());
            assert_eq!(k.tx_mac(v, b"c", 7, b"", 9), want);
        }
    }

    #[test]
    fn mac_depends_on_key_and_transaction() {
        let via = Via::parse(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1").unwrap();
        let other = Via::parse(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK2").unwrap();
        let k1 = BranchKey::from_secret(b"one secret of sixteen");
        let k2 = BranchKey::from_secret(b"another secret, 16+");
        let a = k1.tx_mac(&via, b"call", 1, b"t", 5);
        assert_eq!(
            a,
            k1.tx_mac(&via, b"call", 1, b"other-tag-ignored-with-cookie", 5)
        );
        assert_ne!(a, k2.tx_mac(&via, b"call", 1, b"t", 5));
        assert_ne!(a, k1.tx_mac(&other, b"call", 1, b"t", 5));
        assert_ne!(a, k1.tx_mac(&via, b"call", 2, b"t", 5));
        assert_ne!(a, k1.tx_mac(&via, b"call", 1, b"t", 6));
    }

    #[test]
    fn every_digit_of_a_branch_is_authenticated() {
        let k = BranchKey::from_secret(b"one secret of sixteen");
        let other = BranchKey::from_secret(b"another secret, 16+");
        let via = Via::parse(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1").unwrap();
        let lh = 0x1234_5678;
        let tx = k.tx_mac(&via, b"call", 1, b"", lh);
        // The branch of each attempt reads back to the transaction MAC,
        // and only with the key it was written under.
        for attempt in 0..MAX_ATTEMPTS as u8 {
            let mut out = Vec::new();
            write_attempt_branch(&mut out, k.branch_mac(tx, lh, attempt), lh, attempt);
            let b = parse_branch(&out).unwrap();
            assert_eq!(k.tx_mac_of(&b), tx);
            if attempt > 0 {
                assert_ne!(other.tx_mac_of(&b), tx);
            }
        }
        // Any other loop hash or attempt digit reads back to another MAC.
        let written = k.branch_mac(tx, lh, 3);
        for (l, a) in [(lh ^ 1, 3), (lh, 2), (lh, 4), (lh ^ 0x8000_0000, 3)] {
            let b = Branch {
                mac: written,
                loop_hash: l,
                attempt: a,
            };
            let recomputed = k.tx_mac(&via, b"call", 1, b"", l);
            assert_ne!(k.tx_mac_of(&b), recomputed, "loop hash {l:x}, attempt {a}");
        }
    }
}
