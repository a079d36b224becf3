//! Shards: one thread per core, each with its own current-thread tokio
//! runtime, holding one core [`Worker`] per edge and its own SO_REUSEPORT
//! sockets and listeners for every listen address of every edge (the
//! kernel spreads datagrams and connections over the shards), and the
//! connections it accepted or opened. Nothing is shared on the UDP
//! forwarding path but the immutable edge snapshots and their health
//! views, which the shards only read (relaxed atomic loads): no locks.
//! Each edge's snapshot sits behind an `ArcSwap`, read once per batch: a
//! reload stores the next one there, and each shard moves its worker onto
//! it at its next batch ([`Served::current`]).
//! Connections are found through the node's connection registry (a lock
//! held for one lookup); a message for a connection of another shard goes
//! into that connection's queue. A transactional edge also shares its
//! transaction table (sharded locks, held for one message); shard 0 runs
//! its timers, asleep while it holds no transaction.
//!
//! The thread count is the shard count, whatever the number of edges and
//! listen addresses.

mod keepalive;
pub(crate) mod link;
mod resolve;
mod send;
mod tcp;
mod timers;
mod udp;

pub(crate) use tcp::Registry;

use crate::tls::Tls;
use arc_swap::ArcSwap;
use edge::config::Config;
use edge::flow::Transport;
use edge::keyring::KeyRing;
use edge::proxy::{Edge, Worker};
use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;

/// What was started.
pub struct Running {
    /// Shard (thread) count.
    pub shards: usize,
    /// Sockets and listeners bound, over all shards.
    pub sockets: usize,
    /// Each edge's current snapshot, in config order: a reload stores the
    /// next one here; the shards pick it up at their next batch.
    pub edges: Vec<Arc<ArcSwap<Edge>>>,
    /// The node's connections.
    pub registry: Arc<Registry>,
    /// One STUN task to start per edge with `stun`, its socket bound.
    pub stun: Vec<crate::stun::Client>,
    /// The node's bans, which every edge shares.
    pub bans: Arc<edge::bans::Bans>,
    /// The other nodes on the link (`[cluster] listen`), for the cluster
    /// store to add the members it lists.
    pub peers: Option<Arc<link::Peers>>,
}

/// One local address of an edge as one shard binds it.
enum Bound {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
}

/// Binds every socket and listener of every shard (so a bind failure is
/// reported before anything runs), then starts the shard threads.
pub fn start(
    cfg: &Config,
    keys: &KeyRing,
    tls: &Arc<ArcSwap<Tls>>,
    dns: &crate::dns::Dns,
    trace: Option<Arc<dyn edge::trace::Sink>>,
    records: Option<Arc<dyn edge::records::Sink>>,
) -> Result<Running, String> {
    let shards = cfg
        .node
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let relay = cfg.cluster.as_ref().and_then(|c| c.listen);
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let bans = Arc::new(edge::bans::Bans::new(std::time::Instant::now(), unix_ms));
    let edges: Vec<Arc<ArcSwap<Edge>>> = cfg
        .edges
        .iter()
        .map(|e| {
            Arc::new(ArcSwap::from_pointee(
                Edge::new(e, &cfg.node, keys)
                    .on_link(relay)
                    .with_bans(Arc::clone(&bans))
                    .with_trace(trace.clone())
                    .with_records(records.clone()),
            ))
        })
        .collect();
    let peers = cfg.cluster.as_ref().and_then(|c| {
        let listen = c.listen?;
        Some((listen, Arc::new(link::Peers::new(&c.peers))))
    });
    let mut bound: Vec<Vec<Vec<Option<Bound>>>> = Vec::with_capacity(shards);
    let mut links: Vec<Option<std::net::UdpSocket>> = Vec::with_capacity(shards);
    let mut sockets = 0;
    for _ in 0..shards {
        let mut per_edge = Vec::with_capacity(edges.len());
        for conf in &cfg.edges {
            let mut socks = Vec::with_capacity(conf.listen.len());
            for l in &conf.listen {
                let fail =
                    |err: std::io::Error| format!("line {}: listen {}: {err}", l.line, l.addr);
                let b = match l.transport {
                    Transport::Udp => Some(Bound::Udp(udp::bind(l.addr).map_err(fail)?)),
                    Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => {
                        Some(Bound::Tcp(tcp::bind(l.addr).map_err(fail)?))
                    }
                };
                sockets += usize::from(b.is_some());
                socks.push(b);
            }
            per_edge.push(socks);
        }
        bound.push(per_edge);
        if let Some(listen) = cfg.cluster.as_ref().and_then(|c| c.listen) {
            let link = udp::bind(listen).map_err(|e| format!("[cluster] listen {listen}: {e}"))?;
            links.push(Some(link));
            sockets += 1;
        } else {
            links.push(None);
        }
    }
    let wakes: Arc<Vec<Option<Arc<timers::Wake>>>> = Arc::new(
        edges
            .iter()
            .map(|e| e.load().stateful().map(|_| Arc::default()))
            .collect(),
    );
    let registry = Arc::new(Registry::new(cfg.connections.clone()));
    let (inboxes, stun) = stun_clients(cfg, &bound)?;
    // Each shard says when its sockets are registered with its runtime:
    // only then is sipedge ready.
    let (started, up) = std::sync::mpsc::channel::<Result<(), String>>();
    for (index, (per_edge, link)) in bound.into_iter().zip(links).enumerate() {
        let shared = Shared {
            edges: edges.clone(),
            wakes: Arc::clone(&wakes),
            registry: Arc::clone(&registry),
            tls: Arc::clone(tls),
            dns: dns.clone(),
            peers: peers.clone(),
            stun: Arc::clone(&inboxes),
        };
        let started = started.clone();
        std::thread::Builder::new()
            .name(format!("sipedge-shard{index}"))
            .spawn(move || run(index, shared, per_edge, link, started))
            .map_err(|e| format!("cannot start shard thread: {e}"))?;
    }
    for _ in 0..shards {
        up.recv()
            .map_err(|_| "a shard stopped while starting".to_owned())??;
    }
    Ok(Running {
        shards,
        sockets,
        edges,
        registry,
        stun,
        bans,
        peers: peers.as_ref().map(|(_, p)| Arc::clone(p)),
    })
}

/// The STUN task of each edge with `stun`, sending from a duplicate of
/// shard 0's socket for the edge's first `udp:` listen address, and the
/// inbox (per edge, in config order) where the shards put its answers.
#[allow(clippy::type_complexity)]
fn stun_clients(
    cfg: &Config,
    bound: &[Vec<Vec<Option<Bound>>>],
) -> Result<
    (
        Arc<Vec<Option<Arc<crate::stun::Inbox>>>>,
        Vec<crate::stun::Client>,
    ),
    String,
> {
    let mut inboxes = Vec::with_capacity(cfg.edges.len());
    let mut clients = Vec::new();
    for (ei, conf) in cfg.edges.iter().enumerate() {
        let Some(stun) = &conf.stun else {
            inboxes.push(None);
            continue;
        };
        let found = conf
            .listen
            .iter()
            .enumerate()
            .find(|(_, l)| l.transport == Transport::Udp);
        let Some((li, listen)) = found else {
            return Err(format!(
                "line {}: stun: the edge has no udp: listen address",
                stun.line
            ));
        };
        let Some(Some(Bound::Udp(socket))) = bound.first().and_then(|b| b[ei].get(li)) else {
            return Err(format!(
                "line {}: stun: no socket for {}",
                stun.line, listen.addr
            ));
        };
        let socket = socket
            .try_clone()
            .map_err(|e| format!("line {}: stun: {}: {e}", stun.line, listen.addr))?;
        let (inbox, answers) = crate::stun::Inbox::new();
        inboxes.push(Some(Arc::clone(&inbox)));
        clients.push(crate::stun::Client {
            edge: ei,
            name: conf.name.clone(),
            conf: stun.clone(),
            socket,
            advertised_port: conf
                .advertise
                .as_ref()
                .and_then(|a| a.port)
                .unwrap_or(listen.addr.port()),
            needs_address: conf.advertise.is_none()
                && conf.listen.iter().any(|l| l.addr.ip().is_unspecified()),
            inbox,
            answers,
            dns: cfg.node.dns.clone(),
        });
    }
    Ok((Arc::new(inboxes), clients))
}

/// A socket for `addr` that every shard binds too (`SO_REUSEPORT`: the
/// kernel spreads datagrams and connections over them). IPv6 sockets are
/// v6-only, so that v4 and v6 listen addresses on one port do not collide.
fn shared_socket(
    addr: std::net::SocketAddr,
    ty: socket2::Type,
    protocol: socket2::Protocol,
) -> std::io::Result<socket2::Socket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, ty, Some(protocol))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    Ok(s)
}

/// What every shard shares.
struct Shared {
    edges: Vec<Arc<ArcSwap<Edge>>>,
    wakes: Arc<Vec<Option<Arc<timers::Wake>>>>,
    registry: Arc<Registry>,
    tls: Arc<ArcSwap<Tls>>,
    dns: crate::dns::Dns,
    /// This node's link address and the other nodes of the cluster, with
    /// `[cluster]`.
    peers: Option<(std::net::SocketAddr, Arc<link::Peers>)>,
    /// Each edge's STUN inbox, for edges with `stun`.
    stun: Arc<Vec<Option<Arc<crate::stun::Inbox>>>>,
}

/// One edge as a shard serves it: the snapshot in use and the core worker
/// its tasks share (one task runs at a time on a current-thread runtime,
/// and none holds the borrow across an await), its UDP sockets, and what
/// it shares with the other shards.
pub(super) struct Served {
    /// Where a reload stores the edge's next snapshot.
    slot: Arc<ArcSwap<Edge>>,
    /// The edge's position in the config (the registry's edge number).
    index: usize,
    /// The edge's name, for logs (a reload never renames an edge).
    name: String,
    current: RefCell<Current>,
    /// Indexed like the edge's local addresses; `None` where a local is
    /// not UDP.
    sockets: Vec<Option<AsyncFd<std::net::UdpSocket>>>,
    /// Wakes the edge's timer task (a transactional edge's).
    wake: Option<Arc<timers::Wake>>,
    registry: Arc<Registry>,
    /// The connections this shard holds (shared by its edges).
    locals: Rc<tcp::Locals>,
    /// The node's TLS material (this edge's is at `index`).
    tls: Arc<ArcSwap<Tls>>,
    /// The node's resolver, for requests to host names.
    dns: crate::dns::Dns,
    /// This shard's end of the node-to-node link, with `[cluster]`.
    link: Option<Rc<link::Link>>,
    /// Where STUN answers to the edge's requests go (`stun`): the edge's
    /// UDP sockets share their port with them.
    stun: Option<Arc<crate::stun::Inbox>>,
}

/// The snapshot a shard serves an edge with, and its worker for it.
pub(super) struct Current {
    pub edge: Arc<Edge>,
    pub worker: Worker,
}

impl Served {
    /// The snapshot and the worker, moved onto the edge's latest snapshot
    /// first if a reload stored one (a pointer comparison otherwise). Read
    /// once per batch, and never held across an await.
    fn current(&self) -> RefMut<'_, Current> {
        let mut c = self.current.borrow_mut();
        let latest = self.slot.load();
        if !Arc::ptr_eq(&latest, &c.edge) {
            let edge = arc_swap::Guard::into_inner(latest);
            c.worker.renew(&edge);
            c.edge = edge;
        }
        c
    }

    /// The edge's latest snapshot, for what does not change on a reload
    /// (its local addresses).
    fn edge(&self) -> Arc<Edge> {
        self.slot.load_full()
    }
}

/// The shard thread: its runtime, and on it one task per UDP socket and
/// per listener (and per connection), and on shard 0 the transaction
/// timers of each transactional edge.
fn run(
    index: usize,
    shared: Shared,
    bound: Vec<Vec<Option<Bound>>>,
    link: Option<std::net::UdpSocket>,
    started: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(format!("shard {index}: cannot start its runtime: {e}")));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let mut tasks = Vec::new();
        let locals = Rc::new(tcp::Locals::default());
        let link = match (link, &shared.peers) {
            (Some(socket), Some((listen, peers))) => match sysio::watch::readable_only(socket) {
                Ok(fd) => Some(Rc::new(link::Link::new(fd, *listen, Arc::clone(peers)))),
                Err(e) => {
                    let _ = started.send(Err(format!(
                        "shard {index}: cannot watch the [cluster] socket: {e}"
                    )));
                    return;
                }
            },
            _ => None,
        };
        let mut all_served = Vec::new();
        for (ei, per_local) in bound.into_iter().enumerate() {
            let edge = shared.edges[ei].load_full();
            let name = &edge.name;
            let mut sockets = Vec::with_capacity(per_local.len());
            let mut listeners = Vec::new();
            for (li, b) in per_local.into_iter().enumerate() {
                let registered = match b {
                    Some(Bound::Udp(s)) => sysio::watch::readable_only(s).map(Some),
                    Some(Bound::Tcp(l)) => tokio::net::TcpListener::from_std(l).map(|l| {
                        listeners.push((li, l));
                        None
                    }),
                    None => Ok(None),
                };
                match registered {
                    Ok(s) => sockets.push(s),
                    Err(e) => {
                        let _ = started.send(Err(format!(
                            "shard {index}: edge {name}: cannot watch a socket: {e}"
                        )));
                        return;
                    }
                }
            }
            let served = Rc::new(Served {
                slot: Arc::clone(&shared.edges[ei]),
                index: ei,
                name: name.clone(),
                current: RefCell::new(Current {
                    worker: edge.worker(),
                    edge: Arc::clone(&edge),
                }),
                sockets,
                wake: shared.wakes.get(ei).cloned().flatten(),
                registry: Arc::clone(&shared.registry),
                locals: Rc::clone(&locals),
                tls: Arc::clone(&shared.tls),
                dns: shared.dns.clone(),
                link: link.clone(),
                stun: shared.stun.get(ei).cloned().flatten(),
            });
            all_served.push(Rc::clone(&served));
            for li in 0..served.sockets.len() {
                if served.sockets[li].is_some() {
                    let served = Rc::clone(&served);
                    tasks.push(tokio::task::spawn_local(async move {
                        udp::serve(&served, li).await;
                    }));
                }
            }
            for (li, listener) in listeners {
                tasks.push(tokio::task::spawn_local(tcp::accept(
                    Rc::clone(&served),
                    li,
                    listener,
                )));
            }
            if index == 0 {
                tasks.push(tokio::task::spawn_local(keepalive::run(Rc::clone(&served))));
            }
            if index == 0 && served.edge().stateful().is_some() {
                let served = Rc::clone(&served);
                tasks.push(tokio::task::spawn_local(async move {
                    timers::run(&served).await;
                }));
            }
        }
        if let Some(link) = &link {
            if index == 0 {
                if let Some(first) = all_served.first() {
                    tasks.push(tokio::task::spawn_local(link::say_alive(
                        Rc::clone(link),
                        Rc::clone(first),
                    )));
                }
            }
            tasks.push(tokio::task::spawn_local(link::serve(
                Rc::clone(link),
                all_served,
            )));
        }
        let _ = started.send(Ok(()));
        for t in tasks {
            let _ = t.await;
        }
    });
}
