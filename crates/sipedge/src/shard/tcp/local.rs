//! The connections one shard holds, as that shard's own tasks reach them:
//! a message for one of them is appended to its output buffer and its
//! writer woken — no lock, no channel, no copy into a message of its own —
//! and everything appended while the shard handled one batch goes out in
//! one write. Messages from other shards still come through the node's
//! [`Registry`](super::Registry) and the connection's queue.

use edge::flow::{ConnId, Flow, Transport};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

/// What a connection's writer sends: bytes appended by this shard's tasks
/// (and by the writer itself, from the queue), in order.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) buf: RefCell<Vec<u8>>,
    /// Wakes the writer when there is something to write.
    pub(crate) ready: tokio::sync::Notify,
    /// Closed: the writer is gone and nothing more is taken.
    pub(crate) closed: Cell<bool>,
}

impl Output {
    /// Appends `bytes` for the writer; `false` (nothing taken) when more
    /// than `limit` bytes would be waiting or the connection is closing.
    pub(crate) fn push(&self, bytes: &[u8], limit: usize) -> bool {
        if self.closed.get() {
            return false;
        }
        let mut buf = self.buf.borrow_mut();
        if buf.len() + bytes.len() > limit {
            return false;
        }
        let was_empty = buf.is_empty();
        buf.extend_from_slice(bytes);
        if was_empty {
            self.ready.notify_one();
        }
        true
    }
}

/// Where a connection is found: the edge, transport and address at its
/// other end.
type Key = (usize, Transport, SocketAddr);

/// The shard's connections (see the module documentation).
#[derive(Default)]
pub(crate) struct Locals {
    by_id: RefCell<HashMap<ConnId, (Key, Rc<Output>)>>,
    by_remote: RefCell<HashMap<Key, Vec<ConnId>>>,
}

impl Locals {
    /// Adds connection `id` over `transport` to `remote` of edge `edge`.
    pub(crate) fn add(
        &self,
        id: ConnId,
        edge: usize,
        transport: Transport,
        remote: SocketAddr,
        out: &Rc<Output>,
    ) {
        let key = (edge, transport, remote);
        self.by_id.borrow_mut().insert(id, (key, Rc::clone(out)));
        self.by_remote.borrow_mut().entry(key).or_default().push(id);
    }

    /// Removes connection `id` (it is closing).
    pub(crate) fn remove(&self, id: ConnId) {
        let Some((key, _)) = self.by_id.borrow_mut().remove(&id) else {
            return;
        };
        let mut by_remote = self.by_remote.borrow_mut();
        if let Some(ids) = by_remote.get_mut(&key) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                by_remote.remove(&key);
            }
        }
    }

    /// The output of the connection `flow` names, or of the latest one to
    /// its remote address, if this shard holds it (the same choice as
    /// [`Registry::handle`](super::Registry::handle)).
    pub(crate) fn find(&self, edge: usize, flow: &Flow) -> Option<Rc<Output>> {
        let by_id = self.by_id.borrow();
        if let Some((key, out)) = flow.conn.and_then(|id| by_id.get(&id)) {
            // A flow token's id names a connection to its address only (an
            // id from before a restart may name another now).
            return (!flow.pinned || key.2 == flow.remote).then(|| Rc::clone(out));
        }
        if flow.conn.is_some() {
            // Named, but not ours: another shard's, or closed.
            return None;
        }
        let key = (edge, flow.transport, flow.remote);
        let id = *self.by_remote.borrow().get(&key)?.last()?;
        by_id.get(&id).map(|(_, out)| Rc::clone(out))
    }
}
