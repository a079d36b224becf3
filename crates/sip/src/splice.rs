//! Forwarding by splicing: the few changed bytes are inserted or replaced,
//! everything else is copied from the receive buffer as it came.

use std::io::Write;
use std::ops::Range;

/// One change to the original message.
#[derive(Clone, Copy, Debug)]
struct Edit {
    /// Offset in the original where the change applies.
    at: usize,
    /// How many original bytes it removes from `at`.
    remove: usize,
    /// What it writes there, as a range of the splicer's scratch buffer.
    insert: (usize, usize),
    /// Order among edits at the same offset (insertion order).
    seq: u16,
}

/// Collects edits against an original message and writes the result.
///
/// Reused across messages: after the first few, `clear` + edits + `write`
/// allocate nothing.
#[derive(Debug, Default)]
pub struct Splicer {
    edits: Vec<Edit>,
    scratch: Vec<u8>,
}

impl Splicer {
    /// A splicer with room for the usual handful of edits.
    pub fn new() -> Splicer {
        Splicer {
            edits: Vec::with_capacity(16),
            scratch: Vec::with_capacity(512),
        }
    }

    /// Forgets all edits.
    pub fn clear(&mut self) {
        self.edits.clear();
        self.scratch.clear();
    }

    /// Inserts bytes at an offset of the original.
    pub fn insert(&mut self, at: usize, bytes: &[u8]) {
        self.replace_with(at..at, |w| w.extend_from_slice(bytes));
    }

    /// Inserts bytes produced by `f` (formatting goes straight into scratch).
    pub fn insert_with(&mut self, at: usize, f: impl FnOnce(&mut Vec<u8>)) {
        self.replace_with(at..at, f);
    }

    /// Removes a range of the original.
    pub fn remove(&mut self, r: Range<usize>) {
        self.replace_with(r, |_| {});
    }

    /// Replaces a range of the original with bytes.
    pub fn replace(&mut self, r: Range<usize>, bytes: &[u8]) {
        self.replace_with(r, |w| w.extend_from_slice(bytes));
    }

    /// Replaces a range of the original with what `f` writes.
    pub fn replace_with(&mut self, r: Range<usize>, f: impl FnOnce(&mut Vec<u8>)) {
        let s = self.scratch.len();
        f(&mut self.scratch);
        let seq = self.edits.len() as u16;
        self.edits.push(Edit {
            at: r.start,
            remove: r.end.saturating_sub(r.start),
            insert: (s, self.scratch.len()),
            seq,
        });
    }

    /// Writes `orig[..end]` with the edits applied into `out` (appending).
    /// Edits are applied in offset order; overlapping removals are clipped
    /// so the output is always well defined.
    pub fn write(&mut self, orig: &[u8], end: usize, out: &mut Vec<u8>) {
        self.write_range(orig, 0..end, out);
    }

    /// Writes message `m` with the edits applied into `out` (appending):
    /// from its start line to the end of its body, so that blank lines
    /// before the start line (RFC 3261 §7.5) and octets after the body are
    /// never passed on.
    pub fn write_message(&mut self, m: &crate::Message<'_>, out: &mut Vec<u8>) {
        self.write_range(m.buf(), m.start_line_span().start as usize..m.end(), out);
    }

    /// Writes `orig[range]` with the edits that fall inside it applied.
    /// At one offset, pure insertions come first (in insertion order),
    /// then the edit that removes from there: a line inserted where
    /// another edit removes a line is never lost to that removal.
    pub fn write_range(&mut self, orig: &[u8], range: Range<usize>, out: &mut Vec<u8>) {
        let end = range.end.min(orig.len());
        self.edits
            .sort_unstable_by_key(|e| (e.at, e.remove != 0, e.seq));
        let mut pos = range.start.min(end);
        for e in &self.edits {
            if e.at < pos || e.at > end {
                continue;
            }
            let at = e.at;
            if at > pos {
                out.extend_from_slice(&orig[pos..at]);
                pos = at;
            }
            out.extend_from_slice(&self.scratch[e.insert.0..e.insert.1]);
            pos = pos.max((at + e.remove).min(end));
        }
        out.extend_from_slice(&orig[pos.min(end)..end]);
    }
}

/// Writes a number without allocating.
pub fn write_num(w: &mut Vec<u8>, n: impl itoa::Integer) {
    let mut b = itoa::Buffer::new();
    w.extend_from_slice(b.format(n).as_bytes());
}

/// Writes an IP address the way SIP wants it in a Via `received` (IPv6
/// without brackets, RFC 3261 §20.42 grammar) or a host (`bracket` = true).
pub fn write_ip(w: &mut Vec<u8>, ip: std::net::IpAddr, bracket: bool) {
    match ip {
        std::net::IpAddr::V4(a) => {
            let [a, b, c, d] = a.octets();
            write_num(w, a);
            w.push(b'.');
            write_num(w, b);
            w.push(b'.');
            write_num(w, c);
            w.push(b'.');
            write_num(w, d);
        }
        std::net::IpAddr::V6(a) if bracket => {
            let _ = write!(w, "[{a}]");
        }
        std::net::IpAddr::V6(a) => {
            let _ = write!(w, "{a}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_offset_order() {
        let orig = b"0123456789trailing";
        let mut s = Splicer::new();
        s.replace(4..6, b"xy");
        s.insert(0, b"<");
        s.remove(8..9);
        s.insert(0, b"<");
        s.insert_with(10, |w| write_num(w, 42u16));
        let mut out = Vec::new();
        s.write(orig, 10, &mut out);
        assert_eq!(out, b"<<0123xy67942");
    }

    #[test]
    fn an_insertion_is_kept_where_a_removal_starts_whatever_came_first() {
        let mut s = Splicer::new();
        s.remove(2..4);
        s.insert(2, b"new");
        s.insert(4, b"!");
        let mut out = Vec::new();
        s.write(b"ab--cd", 6, &mut out);
        assert_eq!(out, b"abnew!cd");
    }

    #[test]
    fn range_writes_only_its_edits() {
        let mut s = Splicer::new();
        s.insert(1, b"A");
        s.insert(5, b"B");
        let mut out = Vec::new();
        s.write_range(b"0123456789", 3..7, &mut out);
        assert_eq!(out, b"34B56");
    }

    #[test]
    fn reuse_does_not_leak_edits() {
        let mut s = Splicer::new();
        s.insert(1, b"X");
        let mut out = Vec::new();
        s.write(b"ab", 2, &mut out);
        s.clear();
        out.clear();
        s.write(b"ab", 2, &mut out);
        assert_eq!(out, b"ab");
    }
}
