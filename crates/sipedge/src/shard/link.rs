//! The node-to-node link as the shards run it (`[cluster]`; the datagrams
//! are [`edge::link`]'s): each shard binds the node's `listen` address
//! (SO_REUSEPORT, like the SIP sockets), relays on it the requests a flow
//! token sends to a connection of another node, and takes from it those
//! for this node's connections. Shard 0 tells the peers every second that
//! this node is alive; a request for a connection of a peer not heard
//! from lately is answered 430 Flow Failed here, at once.

use super::send::Gone;
use super::tcp::{self, Sent};
use super::{Current, Served};
use arc_swap::ArcSwap;
use edge::flow::Flow;
use edge::link::{self, Kind, Relayed};
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::unix::AsyncFd;

/// The other nodes: the configured `peers`, and with `[cluster] redis`
/// those the cluster store lists as alive (so a node that joins is
/// relayed to without a restart anywhere).
pub(crate) struct Peers {
    known: ArcSwap<Known>,
}

/// The peers now, and when each was last heard from (ms since the Unix
/// epoch; 0: never).
struct Known {
    addrs: Vec<SocketAddr>,
    heard: Vec<AtomicU64>,
}

impl Peers {
    pub(crate) fn new(addrs: &[SocketAddr]) -> Peers {
        Peers {
            known: ArcSwap::from_pointee(Known {
                addrs: addrs.to_vec(),
                heard: addrs.iter().map(|_| AtomicU64::new(0)).collect(),
            }),
        }
    }

    /// Makes `addrs` the peers (the cluster task, from the members Redis
    /// lists and the configured ones); a peer kept keeps when it was last
    /// heard from.
    pub(crate) fn set(&self, addrs: &[SocketAddr]) {
        let old = self.known.load();
        if old.addrs == addrs {
            return;
        }
        let heard = addrs
            .iter()
            .map(|a| {
                let was = old.addrs.iter().position(|o| o == a);
                AtomicU64::new(was.map_or(0, |i| old.heard[i].load(Ordering::Relaxed)))
            })
            .collect();
        self.known.store(std::sync::Arc::new(Known {
            addrs: addrs.to_vec(),
            heard,
        }));
    }

    fn heard_from(&self, from: SocketAddr, now_ms: u64) {
        let k = self.known.load();
        if let Some(i) = k.addrs.iter().position(|&a| a == from) {
            k.heard[i].store(now_ms, Ordering::Relaxed);
        }
    }

    /// Whether `node` is a peer heard from within [`link::SILENT_FOR`].
    fn alive(&self, node: SocketAddr, now_ms: u64) -> bool {
        let k = self.known.load();
        k.addrs.iter().position(|&a| a == node).is_some_and(|i| {
            let heard = k.heard[i].load(Ordering::Relaxed);
            heard > 0 && now_ms.saturating_sub(heard) <= link::SILENT_FOR.as_millis() as u64
        })
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.known.load().addrs.clone()
    }
}

/// One shard's end of the link.
pub(super) struct Link {
    socket: AsyncFd<UdpSocket>,
    /// This node's link address (`[cluster] listen`).
    listen: SocketAddr,
    peers: std::sync::Arc<Peers>,
}

impl Link {
    pub(super) fn new(
        socket: AsyncFd<UdpSocket>,
        listen: SocketAddr,
        peers: std::sync::Arc<Peers>,
    ) -> Link {
        Link {
            socket,
            listen,
            peers,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Relays `message`, for pinned `flow` whose connection `owner` holds, to
/// that node; [`Sent::FlowGone`] when there is no link, or the owner is
/// not a peer heard from lately.
pub(super) fn relay(served: &Served, owner: SocketAddr, flow: Flow, message: &[u8]) -> Sent {
    let (Some(link), Some(conn)) = (&served.link, flow.conn) else {
        return Sent::FlowGone;
    };
    let now = now_ms();
    if !link.peers.alive(owner, now) {
        return Sent::FlowGone;
    }
    let edge = served.edge();
    let Some(key) = edge.keys().link().first() else {
        return Sent::FlowGone;
    };
    let r = Relayed {
        edge: link::edge_id(&served.name),
        conn,
        transport: flow.transport,
        remote: flow.remote,
        message,
    };
    let mut d = Vec::with_capacity(64 + message.len());
    let ends = link::Ends {
        from: link.listen,
        to: owner,
    };
    link::relayed(key, now, ends, &r, &mut d);
    match link.socket.get_ref().send_to(&d, owner) {
        Ok(_) => Sent::Queued,
        // Too large for a datagram, or the link is down here: the owner
        // cannot get it, so it gets its 430 here.
        Err(e) => {
            tracing::debug!(to = %owner, "link: {e}");
            Sent::FlowGone
        }
    }
}

/// Takes what the other nodes send on this shard's link socket, for as
/// long as the shard runs: their being alive, and messages for this
/// node's connections (a message whose connection is gone gets its 430
/// here, from this node).
pub(super) async fn serve(link: Rc<Link>, served: Vec<Rc<Served>>) {
    let Some(first) = served.first() else {
        return;
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let got = link
            .socket
            .async_io(tokio::io::Interest::READABLE, |s| s.recv_from(&mut buf))
            .await;
        let (n, from) = match got {
            Ok(x) => x,
            // An ICMP error for an earlier send, and the like: the socket
            // goes on.
            Err(e) => {
                tracing::debug!("link: {e}");
                continue;
            }
        };
        let keys = first.edge();
        let now = now_ms();
        let ends = link::Ends {
            from,
            to: link.listen,
        };
        match link::read(keys.keys().link(), now, ends, &buf[..n]) {
            Some((Kind::Alive, _)) => link.peers.heard_from(from, now),
            Some((Kind::Relayed, Some(r))) => deliver(&served, &r),
            _ => tracing::debug!(%from, "link: a datagram that does not verify, dropped"),
        }
    }
}

/// A relayed message onto its connection here, or its 430.
fn deliver(served: &[Rc<Served>], r: &Relayed<'_>) {
    let Some(s) = served.iter().find(|s| link::edge_id(&s.name) == r.edge) else {
        return;
    };
    let flow = Flow {
        transport: r.transport,
        local: 0,
        remote: r.remote,
        conn: Some(r.conn),
        reconnect: None,
        pinned: true,
        owner: None,
    };
    if tcp::send(s, flow, r.message) == Sent::FlowGone {
        let mut current = s.current();
        let Current { edge, worker } = &mut *current;
        let mut gone = Gone::default();
        gone.add(r.message, flow);
        gone.answer(s, edge, worker);
    }
}

/// Tells every peer, every [`link::ALIVE_EVERY`], that this node is alive
/// (from shard 0's socket).
pub(super) async fn say_alive(link: Rc<Link>, served: Rc<Served>) {
    let mut d = Vec::with_capacity(64);
    let mut tick = tokio::time::interval(link::ALIVE_EVERY);
    loop {
        tick.tick().await;
        let edge = served.edge();
        let Some(key) = edge.keys().link().first() else {
            continue;
        };
        for peer in link.peers.addrs() {
            let ends = link::Ends {
                from: link.listen,
                to: peer,
            };
            link::alive(key, now_ms(), ends, &mut d);
            if let Err(e) = link.socket.get_ref().send_to(&d, peer) {
                tracing::debug!(to = %peer, "link: {e}");
            }
        }
    }
}
