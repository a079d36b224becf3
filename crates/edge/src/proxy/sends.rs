//! Several messages out of one step: a transactional edge answers the
//! caller (100 Trying, 200 to a CANCEL) and sends downstream in the same
//! step, and a timer may retransmit many messages at once.

use crate::flow::Flow;

/// Datagrams to send, queued in one reused buffer: no allocation per
/// message once it has grown to the usual size.
#[derive(Debug, Default)]
pub struct Sends {
    buf: Vec<u8>,
    items: Vec<Item>,
}

#[derive(Clone, Copy, Debug)]
struct Item {
    start: usize,
    end: usize,
    to: Flow,
}

impl Sends {
    /// Queues a copy of `bytes` to send on flow `to`.
    pub fn push(&mut self, bytes: &[u8], to: Flow) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.items.push(Item {
            start,
            end: self.buf.len(),
            to,
        });
    }

    /// Forgets everything queued.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Lets `f` rewrite every queued datagram in place (the compact/compress
    /// stage); `f` says whether it changed anything.
    pub(crate) fn rewrite(&mut self, mut f: impl FnMut(&mut Vec<u8>, &Flow) -> bool) {
        let mut buf = Vec::with_capacity(self.buf.len());
        let mut one = Vec::new();
        for item in &mut self.items {
            one.clear();
            one.extend_from_slice(&self.buf[item.start..item.end]);
            f(&mut one, &item.to);
            let start = buf.len();
            buf.extend_from_slice(&one);
            item.start = start;
            item.end = buf.len();
        }
        self.buf = buf;
    }

    /// Drops the queued datagrams for which `keep` says no; returns how
    /// many were dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let before = self.items.len();
        let buf = &self.buf;
        self.items.retain(|i| keep(&buf[i.start..i.end]));
        before - self.items.len()
    }

    /// The queued messages in order, each with the flow to send it on.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Flow)> + '_ {
        self.items.iter().map(|i| (&self.buf[i.start..i.end], i.to))
    }
}
