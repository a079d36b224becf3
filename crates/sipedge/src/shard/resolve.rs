//! Requests waiting for a DNS answer (the outbound proxy to a host name):
//! a copy of the message waits on the shard while the node's resolver
//! looks the name up, then goes through the pipeline again. The shard
//! itself never waits.

use super::{send, Served};
use edge::flow::Flow;
use std::cell::Cell;
use std::rc::Rc;

/// Most requests one shard holds waiting for DNS; beyond it a request is
/// dropped (its sender retransmits, by then the answer is there).
const MAX_WAITING: usize = 1024;

thread_local! {
    static WAITING: Cell<usize> = const { Cell::new(0) };
}

/// Holds `bytes`, which arrived on `from` and whose next hop is the query
/// `key`, until the resolver has answered; then handles it again.
pub(super) fn park(served: &Rc<Served>, key: &str, bytes: &[u8], from: Flow) {
    if WAITING.get() >= MAX_WAITING {
        tracing::debug!(name = key, "too many requests waiting for DNS: dropped");
        return;
    }
    WAITING.set(WAITING.get() + 1);
    let answered = served
        .dns
        .ask(std::sync::Arc::clone(served.edge().names()), key.to_owned());
    let served = Rc::clone(served);
    let bytes = bytes.to_vec();
    tokio::task::spawn_local(async move {
        let ok = answered.await.is_ok();
        WAITING.set(WAITING.get().saturating_sub(1));
        if ok {
            send::handle_answered(&served, &bytes, from);
        }
    });
}
