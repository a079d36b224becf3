//! The connections of the node, shared by every shard: who may open one
//! more (the caps in total and per source address), and where to send a
//! message for a connection — by its id, or by the address at its other
//! end (a response to the Via's `received`/`rport`, a request to a
//! destination: RFC 3261 §18.2.2, RFC 5923 connection reuse). A message
//! goes into the connection's queue, which its writer task empties,
//! whichever shard holds it.

use edge::config::Connections;
use edge::flow::{ConnId, Flow, Transport};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, Notify};

/// Messages a connection may have waiting to be written. One connection
/// may carry a trunk's thousands of calls per second: a peer that falls
/// behind loses messages beyond the limits (as it would over UDP), not its
/// connection; one that stops reading altogether is found out by the
/// writer's timeout.
pub(super) const QUEUE: usize = 16_384;
/// Bytes a connection may have waiting to be written.
pub(crate) const QUEUE_BYTES: usize = 4 << 20;

/// Why a connection ended or was refused, counted for the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Closed {
    /// Refused: the node holds `max` connections.
    OverTotal,
    /// Refused: its source holds `max_per_source`.
    OverPerSource,
    /// A message longer than `max_message` (answered 513).
    TooLarge,
    /// A message that could not be framed (answered 400).
    Unframed,
    /// No complete header section within `header_timeout`.
    HeaderTimeout,
    /// Nothing for `idle_timeout`.
    Idle,
    /// Its peer did not read what was written to it (a write timed out).
    Stuck,
    /// A connect to a destination failed or timed out.
    ConnectFailed,
    /// A TLS handshake failed or timed out, either way.
    Handshake,
    /// A WebSocket upgrade was refused (not a WebSocket request, or no
    /// `sip` subprotocol).
    Upgrade,
}

impl Closed {
    /// Every reason, in order.
    pub(crate) const ALL: [Closed; 10] = [
        Closed::OverTotal,
        Closed::OverPerSource,
        Closed::TooLarge,
        Closed::Unframed,
        Closed::HeaderTimeout,
        Closed::Idle,
        Closed::Stuck,
        Closed::ConnectFailed,
        Closed::Handshake,
        Closed::Upgrade,
    ];

    /// The name the admin API shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Closed::OverTotal => "refused_over_max",
            Closed::OverPerSource => "refused_over_max_per_source",
            Closed::TooLarge => "closed_message_too_large",
            Closed::Unframed => "closed_unframed",
            Closed::HeaderTimeout => "closed_header_timeout",
            Closed::Idle => "closed_idle",
            Closed::Stuck => "closed_stuck",
            Closed::ConnectFailed => "connect_failed",
            Closed::Handshake => "tls_handshake_failed",
            Closed::Upgrade => "ws_upgrade_refused",
        }
    }
}

/// How any shard reaches a connection: its write queue, and a way to
/// close it (its peer stopped reading).
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
    pub(crate) close: Arc<Notify>,
    /// Bytes queued and not yet written (the writer takes them off).
    pub(crate) queued: Arc<AtomicUsize>,
}

impl Handle {
    /// A new connection's handle, with the receiving end of its queue.
    pub(crate) fn new() -> (Handle, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Handle {
                tx,
                close: Arc::new(Notify::new()),
                queued: Arc::default(),
            },
            rx,
        )
    }

    /// Queues `message`. When the queue is full (in messages or bytes) the
    /// message is dropped and counted; when the writer is gone (its peer
    /// stopped reading: a write timed out), the connection is closed.
    pub(crate) fn push(&self, message: Vec<u8>, registry: &Registry) {
        let len = message.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            registry.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                registry.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                self.close.notify_one();
            }
        }
    }
}

/// What [`Registry::open_or_reserve`] found.
pub(crate) enum Found {
    /// A connection open to the address.
    Open(Handle),
    /// None: a new one is registered, to be opened holding this slot.
    New(Slot),
}

/// A connection as the other shards see it.
struct Entry {
    handle: Handle,
    key: Key,
}

/// A connection by what is at its ends: the edge, the transport, the
/// remote address.
type Key = (usize, Transport, SocketAddr);

#[derive(Default)]
struct Inner {
    by_id: HashMap<ConnId, Entry>,
    /// Every open connection to an address, newest last (two shards may
    /// have opened one each; when one closes, the other is still found).
    by_remote: HashMap<Key, Vec<ConnId>>,
    per_source: HashMap<IpAddr, usize>,
    open: usize,
}

/// The node's connections.
pub(crate) struct Registry {
    /// The limits (`[connections]`).
    pub(crate) limits: Connections,
    next: AtomicU64,
    inner: Mutex<Inner>,
    closed: [AtomicU64; Closed::ALL.len()],
    accepted: AtomicU64,
    opened: AtomicU64,
    /// Messages dropped because their connection's queue was full.
    dropped: AtomicU64,
}

/// A place among the node's connections, held while one is open; dropping
/// it (the connection ended) frees it.
pub(crate) struct Slot {
    registry: Arc<Registry>,
    source: IpAddr,
    id: Option<ConnId>,
}

impl Slot {
    /// The connection's id, once registered.
    pub(crate) fn id(&self) -> Option<ConnId> {
        self.id
    }

    /// Takes the connection out of the registry (no message finds it any
    /// more) while the slot stays held until the socket is closed.
    pub(crate) fn unregister(&mut self) {
        if let Some(id) = self.id.take() {
            self.registry.lock().unregister(id);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.open = inner.open.saturating_sub(1);
        if let Some(n) = inner.per_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.per_source.remove(&self.source);
            }
        }
        if let Some(id) = self.id.take() {
            inner.unregister(id);
        }
    }
}

impl Inner {
    fn unregister(&mut self, id: ConnId) {
        let Some(e) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_remote.get_mut(&e.key) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_remote.remove(&e.key);
            }
        }
    }

    fn find(&self, edge: usize, flow: &Flow) -> Option<&Entry> {
        if let Some(e) = flow.conn.and_then(|id| self.by_id.get(&id)) {
            // A flow token's id names a connection to its address only.
            if !flow.pinned || e.key.2 == flow.remote {
                return Some(e);
            }
        }
        let id = self
            .by_remote
            .get(&(edge, flow.transport, flow.remote))?
            .last()?;
        self.by_id.get(id)
    }
}

impl Registry {
    /// An empty registry under `limits`.
    pub(crate) fn new(limits: Connections) -> Registry {
        Registry {
            limits,
            next: AtomicU64::new(1),
            inner: Mutex::default(),
            closed: Default::default(),
            accepted: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A shard that panicked while holding the lock left the maps
        // consistent (every change is one insert or remove).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection ended or refused for `why`.
    /// A message dropped for a full connection output.
    pub(crate) fn dropped_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A place for one more connection with `source` at its other end, or
    /// why there is none (counted). The per-source cap holds both ways: a
    /// peer cannot make the edge open more connections to it (with Vias
    /// naming it over TCP, say) than it may open itself.
    pub(crate) fn reserve(self: &Arc<Self>, source: IpAddr, inbound: bool) -> Result<Slot, Closed> {
        let mut inner = self.lock();
        self.take(&mut inner, source, inbound)?;
        Ok(Slot {
            registry: Arc::clone(self),
            source,
            id: None,
        })
    }

    /// Counts one more connection with `source`, if the caps allow.
    fn take(&self, inner: &mut Inner, source: IpAddr, inbound: bool) -> Result<(), Closed> {
        let why = if inner.open >= self.limits.max {
            Some(Closed::OverTotal)
        } else if inner.per_source.get(&source).copied().unwrap_or(0) >= self.limits.max_per_source
        {
            Some(Closed::OverPerSource)
        } else {
            None
        };
        if let Some(why) = why {
            self.count(why);
            return Err(why);
        }
        inner.open += 1;
        *inner.per_source.entry(source).or_default() += 1;
        let counter = if inbound {
            &self.accepted
        } else {
            &self.opened
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Registers the connection holding `slot`, between `edge` and
    /// `remote`: from now on messages for it reach `handle`. Returns its
    /// id.
    pub(crate) fn register(
        &self,
        slot: &mut Slot,
        edge: usize,
        transport: Transport,
        remote: SocketAddr,
        handle: Handle,
    ) -> ConnId {
        let mut inner = self.lock();
        let id = self.insert(&mut inner, (edge, transport, remote), handle);
        slot.id = Some(id);
        id
    }

    fn insert(&self, inner: &mut Inner, key: Key, handle: Handle) -> ConnId {
        let id = ConnId(self.next.fetch_add(1, Ordering::Relaxed));
        inner.by_id.insert(id, Entry { handle, key });
        inner.by_remote.entry(key).or_default().push(id);
        id
    }

    /// Where a message for `flow` of `edge` goes: the connection it names
    /// while open, else the newest one open to its remote address.
    pub(crate) fn handle(&self, edge: usize, flow: &Flow) -> Option<Handle> {
        self.lock().find(edge, flow).map(|e| e.handle.clone())
    }

    /// The connection for `flow` (as [`handle`](Self::handle)), or — under
    /// the same lock, so that two shards never both open one — a new
    /// connection to `remote`, registered at once with `handle` and held
    /// by the returned slot until it is opened.
    pub(crate) fn open_or_reserve(
        self: &Arc<Self>,
        edge: usize,
        flow: &Flow,
        remote: SocketAddr,
        handle: &Handle,
    ) -> Result<Found, Closed> {
        let mut inner = self.lock();
        if let Some(e) = inner.find(edge, flow) {
            return Ok(Found::Open(e.handle.clone()));
        }
        self.take(&mut inner, remote.ip(), false)?;
        let id = self.insert(&mut inner, (edge, flow.transport, remote), handle.clone());
        Ok(Found::New(Slot {
            registry: Arc::clone(self),
            source: remote.ip(),
            id: Some(id),
        }))
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }

    /// What the admin API shows: open, accepted and opened so far, and
    /// every reason a connection ended or was refused.
    pub(crate) fn counts(&self) -> Vec<(&'static str, u64)> {
        // Open connections per transport (registered: past their TLS
        // handshake or WebSocket upgrade), counted under the lock once
        // per admin request.
        let (mut tcp, mut tls, mut ws, mut wss) = (0, 0, 0, 0);
        for e in self.lock().by_id.values() {
            match e.key.1 {
                Transport::Tcp => tcp += 1,
                Transport::Tls => tls += 1,
                Transport::Ws => ws += 1,
                Transport::Wss => wss += 1,
                Transport::Udp => {}
            }
        }
        let mut out = vec![
            ("open", self.open() as u64),
            ("open_tcp", tcp),
            ("open_tls", tls),
            ("open_ws", ws),
            ("open_wss", wss),
            ("accepted", self.accepted.load(Ordering::Relaxed)),
            ("opened", self.opened.load(Ordering::Relaxed)),
            (
                "messages_dropped_queue_full",
                self.dropped.load(Ordering::Relaxed),
            ),
        ];
        out.extend(
            Closed::ALL
                .iter()
                .map(|&c| (c.name(), self.closed[c as usize].load(Ordering::Relaxed))),
        );
        out
    }
}
