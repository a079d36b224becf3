//! TCP and TLS (RFC 3261 §18, §26.2): one SO_REUSEPORT listener per shard
//! per `tcp:` or `tls:` listen address, the connections it accepts, and
//! the ones sipedge opens to destinations and to callers whose connection
//! has closed (§18.2.2). A connection lives on the shard that accepted or
//! opened it; any shard writes to it through the node's [`Registry`]. A
//! TLS connection is a TCP one with a handshake first (see `crate::tls`);
//! from then on both run the same reader and writer. A WebSocket
//! connection (`ws:`, and `wss:` over TLS) has its own (`ws.rs`).

mod conn;
mod local;
mod registry;
mod ws;

pub(crate) use conn::Queue;
pub(crate) use local::Locals;
pub(crate) use registry::{Closed, Found, Handle, Registry};

use super::Served;
use edge::flow::{Flow, Transport};
use socket2::{Protocol, SockRef, TcpKeepalive, Type};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Connections waiting to be accepted, per listener.
const BACKLOG: i32 = 1024;

/// Binds a non-blocking listener that shares its address with the other
/// shards' listeners.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = super::shared_socket(addr, Type::STREAM, Protocol::TCP)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// SO_KEEPALIVE with probes after `idle` of silence: a peer that vanished
/// without a FIN is found out.
fn keepalive(stream: &tokio::net::TcpStream, idle: Duration) {
    let ka = TcpKeepalive::new().with_time(idle);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&ka) {
        tracing::debug!("SO_KEEPALIVE: {e}");
    }
}

/// Accepts connections on the edge's listener `li` for as long as the
/// shard runs; one over the caps, or from a source the edge's hygiene
/// blocks, is closed at once (and counted). On a
/// TLS or WebSocket listener each connection's handshake runs in its own
/// task, under `header_timeout`.
pub(super) async fn accept(served: Rc<Served>, li: usize, listener: tokio::net::TcpListener) {
    let transport = served
        .edge()
        .locals()
        .get(li)
        .map_or(Transport::Tcp, |l| l.transport);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!(edge = %served.name, "accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A source the edge does not serve gets its connection closed at
        // once, before it takes a slot or a handshake.
        if served.edge().refuses(peer.ip(), std::time::Instant::now()) {
            continue;
        }
        let registry = &served.registry;
        let Ok(slot) = registry.reserve(peer.ip(), true) else {
            continue;
        };
        keepalive(&stream, registry.limits.keepalive);
        let _ = stream.set_nodelay(true);
        let served = Rc::clone(&served);
        match transport {
            Transport::Tcp | Transport::Udp => {
                tokio::task::spawn_local(conn::run(served, stream.into(), li, peer, slot, None));
            }
            Transport::Ws => {
                tokio::task::spawn_local(ws::run(served, stream, transport, li, peer, slot));
            }
            Transport::Tls | Transport::Wss => {
                tokio::task::spawn_local(async move {
                    let Some((tls, client)) = handshake(&served, stream, peer).await else {
                        return;
                    };
                    if transport == Transport::Wss {
                        ws::run(served, tls, transport, li, peer, slot).await;
                    } else {
                        let stream = conn::Stream::TlsIn(Box::new(tls), client);
                        conn::run(served, stream, li, peer, slot, None).await;
                    }
                });
            }
        }
    }
}

/// The server side of a TLS handshake on an accepted connection, and the
/// subject of the client's certificate if it presented one (verified);
/// `None` (counted) when it fails.
async fn handshake(
    served: &Served,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    Option<String>,
)> {
    let limit = served.registry.limits.header_timeout;
    match crate::tls::accept(&served.tls, served.index, stream, limit).await {
        Ok(a) => {
            tracing::debug!(edge = %served.name, from = %peer, domain = %a.domain, "TLS connection");
            if let Some(subject) = &a.client {
                tracing::info!(edge = %served.name, from = %peer, %subject, "TLS client certificate");
            }
            Some((a.stream, a.client))
        }
        Err(why) => {
            tracing::debug!(edge = %served.name, from = %peer, "TLS: {why}");
            served.registry.count(Closed::Handshake);
            None
        }
    }
}

/// What became of a message for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// On its way: queued on a connection (or one being opened), or
    /// dropped the way a datagram would be (a full queue, no room for a
    /// connection).
    Queued,
    /// For a pinned flow whose connection is gone.
    FlowGone,
}

/// Sends `message` on the connection for `flow`: the one it names, the
/// one open to its address, or a new one (to a destination, or back to a
/// caller whose connection closed) from the edge's local address
/// `flow.local`. A new one is registered at once, so what else is sent to
/// the same address meanwhile waits in the same queue.
///
/// [`Sent::FlowGone`] for a pinned flow (a flow token's) with no
/// connection here, nor a live node holding it: it is never dialled, and
/// the caller answers 430.
pub(super) fn send(served: &Rc<Served>, flow: Flow, message: &[u8]) -> Sent {
    if let Some(out) = served.locals.find(served.index, &flow) {
        if !out.push(message, registry::QUEUE_BYTES) {
            served.registry.dropped_one();
        }
        return Sent::Queued;
    }
    let registry = Arc::clone(&served.registry);
    if let Some(h) = registry.handle(served.index, &flow) {
        h.push(message.to_vec(), &registry);
        return Sent::Queued;
    }
    if flow.pinned {
        // Another node's connection goes there over the node-to-node link.
        return match flow.owner {
            Some(owner) => super::link::relay(served, owner, flow, message),
            None => Sent::FlowGone,
        };
    }
    if matches!(flow.transport, Transport::Ws | Transport::Wss) {
        // A WebSocket client cannot be dialled: its connection is gone.
        registry.dropped_one();
        return Sent::Queued;
    }
    let message = message.to_vec();
    let (handle, rx) = Handle::new();
    let to = flow.reconnect_to();
    let slot = match registry.open_or_reserve(served.index, &flow, to, &handle) {
        Ok(Found::Open(h)) => {
            h.push(message, &registry);
            return Sent::Queued;
        }
        Ok(Found::New(slot)) => slot,
        Err(_) => return Sent::Queued,
    };
    handle.push(message, &registry);
    let flow = Flow { remote: to, ..flow };
    let served = Rc::clone(served);
    tokio::task::spawn_local(async move {
        let local_ip = served.edge().locals().get(flow.local).map(|l| l.addr.ip());
        let socket = if flow.remote.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let connected = async {
            let socket = socket?;
            // From the edge's own address (its port is the listener's,
            // named in Via; the connection's is any).
            if let Some(ip) = local_ip.filter(|ip| !ip.is_unspecified()) {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            socket.connect(flow.remote).await
        };
        let limit = registry.limits.connect_timeout;
        match tokio::time::timeout(limit, connected).await {
            Ok(Ok(stream)) => {
                keepalive(&stream, registry.limits.keepalive);
                let _ = stream.set_nodelay(true);
                let stream = if flow.transport == Transport::Tls {
                    let domain = served.edge().names().tls_name(flow.remote);
                    let tls = served.tls.load();
                    let Some(client) = tls.client(served.index, flow.remote, domain.as_deref())
                    else {
                        return;
                    };
                    match tokio::time::timeout(limit, crate::tls::connect(client, stream)).await {
                        Ok(Ok(s)) => conn::Stream::TlsOut(Box::new(s)),
                        Ok(Err(why)) => {
                            tracing::debug!(to = %flow.remote, "TLS: {why}");
                            registry.count(Closed::Handshake);
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(to = %flow.remote, "TLS: handshake timed out");
                            registry.count(Closed::Handshake);
                            return;
                        }
                    }
                } else {
                    stream.into()
                };
                let queue = Queue { handle, rx };
                conn::run(served, stream, flow.local, flow.remote, slot, Some(queue)).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(to = %flow.remote, "connect: {e}");
                registry.count(Closed::ConnectFailed);
            }
            Err(_) => {
                tracing::debug!(to = %flow.remote, "connect: timed out");
                registry.count(Closed::ConnectFailed);
            }
        }
    });
    Sent::Queued
}
