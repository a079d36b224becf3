//! Bindings shared by the nodes of a cluster (`[cluster] redis`): every
//! node keeps all of them in memory — any node routes a request to any
//! registered phone without asking Redis — and Redis carries the
//! changes. A REGISTER taken here marks its address of record; the
//! cluster task writes the address of record's bindings to Redis and
//! announces the change, and the other nodes replace their copy with it.
//!
//! What is shared is what routing needs (contact, flow, expiry, q, the
//! REGISTER's Call-ID and CSeq), with times in Unix seconds: each node's
//! registrar counts its own clock. Keepalives are not: only the node that
//! took a binding's REGISTER sends them (its NAT binding is the phone's
//! path to that node's address anyway, and one OPTIONS per interval is
//! enough), so a binding a node learnt from another is not its to ping.

use super::store::Binding;
use crate::flow::ConnId;
use crate::token::{Conn, Outside};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Addresses of record waiting for the cluster task, at most: past it,
/// changes are not shared (the bindings still hold on this node).
const MAX_CHANGED: usize = 1_000_000;

/// The addresses of record REGISTERs changed on this node since the
/// cluster task last took them.
#[derive(Debug, Default)]
pub struct Outbox {
    on: AtomicBool,
    changed: Mutex<HashSet<Box<[u8]>>>,
}

impl Outbox {
    /// Starts (or stops) noting changes: the cluster task, while Redis is
    /// configured.
    pub fn share(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Notes that `aor`'s bindings changed here.
    pub fn note(&self, aor: &[u8]) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let mut set = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() < MAX_CHANGED && !set.contains(aor) {
            set.insert(aor.into());
        }
    }

    /// The addresses of record changed since the last call (taken).
    pub fn take(&self) -> Vec<Box<[u8]>> {
        let mut set = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        set.drain().collect()
    }

    /// Puts back what could not be shared (Redis down).
    pub fn requeue(&self, aors: Vec<Box<[u8]>>) {
        let mut set = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        for a in aors {
            if set.len() >= MAX_CHANGED {
                break;
            }
            set.insert(a);
        }
    }
}

/// One binding as the cluster stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The Contact URI.
    pub contact: String,
    /// The flow its REGISTER came on: transport name, local address
    /// index, the phone's address, and for a connection its id and owner.
    pub transport: String,
    pub local: u8,
    pub remote: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<(u64, Option<SocketAddr>)>,
    /// When it expires and when it was first registered, Unix seconds.
    pub expires: u64,
    pub registered: u64,
    pub q: u16,
    pub call_id: u64,
    pub cseq: u32,
}

impl Record {
    /// `b` as shared; `to_unix` turns registrar seconds into Unix ones.
    pub fn of(b: &Binding, to_unix: i64) -> Option<Record> {
        Some(Record {
            contact: String::from_utf8(b.contact.to_vec()).ok()?,
            transport: b.flow.transport.name().to_owned(),
            local: b.flow.local,
            remote: b.flow.remote,
            conn: b.flow.conn.map(|c| (c.id.0, c.owner)),
            expires: u64::try_from(i64::from(b.expires) + to_unix).ok()?,
            registered: u64::try_from(i64::from(b.registered) + to_unix).ok()?,
            q: b.q,
            call_id: b.call_id,
            cseq: b.cseq,
        })
    }

    /// The binding this record is on this node (not its to ping):
    /// `to_unix` as for [`Record::of`]; `None` when it names a transport
    /// this version does not know or a time this clock cannot hold.
    pub fn binding(&self, to_unix: i64) -> Option<Binding> {
        let secs = |unix: u64| u32::try_from(i64::try_from(unix).ok()? - to_unix).ok();
        Some(Binding {
            contact: self.contact.as_bytes().into(),
            flow: Outside {
                transport: crate::flow::Transport::from_name(self.transport.as_bytes())?,
                local: self.local,
                remote: self.remote,
                conn: self.conn.map(|(id, owner)| Conn {
                    id: ConnId(id),
                    owner,
                }),
            },
            expires: secs(self.expires)?,
            registered: secs(self.registered).unwrap_or(0),
            q: self.q,
            call_id: self.call_id,
            cseq: self.cseq,
            next_keepalive: u32::MAX,
            unanswered: 0,
            owned: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_survives_the_trip_between_clocks() {
        let b = Binding {
            contact: b"sip:alice@192.168.1.20:5062;ob".as_slice().into(),
            flow: Outside {
                transport: crate::flow::Transport::Tcp,
                local: 1,
                remote: "203.0.113.7:40000".parse().expect("addr"),
                conn: Some(Conn {
                    id: ConnId(42),
                    owner: Some("10.0.0.1:5070".parse().expect("addr")),
                }),
            },
            expires: 3700,
            registered: 100,
            q: 500,
            call_id: 7,
            cseq: 9,
            next_keepalive: 130,
            unanswered: 1,
            owned: true,
        };
        // This node's clock started at Unix 1,000,000; the other's at
        // 1,000,050.
        let r = Record::of(&b, 1_000_000).expect("shareable");
        assert_eq!(r.expires, 1_003_700);
        let text = serde_json::to_string(&r).expect("json");
        let back: Record = serde_json::from_str(&text).expect("json");
        let there = back.binding(1_000_050).expect("a binding");
        assert_eq!(there.expires, 3650);
        assert_eq!(there.flow, b.flow);
        assert!(!there.owned, "not the other node's to ping");
        assert_eq!(there.next_keepalive, u32::MAX);
        assert_eq!(Record::of(&there, 1_000_050), Some(r));
    }

    #[test]
    fn the_outbox_notes_only_while_sharing() {
        let o = Outbox::default();
        o.note(b"a@x");
        assert!(o.take().is_empty());
        o.share(true);
        o.note(b"a@x");
        o.note(b"a@x");
        o.note(b"b@x");
        let mut got = o.take();
        got.sort();
        assert_eq!(
            got,
            vec![b"a@x".as_slice().into(), b"b@x".as_slice().into()]
        );
        o.requeue(got);
        assert_eq!(o.take().len(), 2);
    }
}
