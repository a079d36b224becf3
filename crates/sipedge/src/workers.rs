//! Worker threads: each owns one socket per listen address (SO_REUSEPORT),
//! a current-thread runtime, and a per-edge [`edge::proxy::Worker`]. Nothing
//! is shared between workers on the forwarding path: no locks, no atomics.

use edge::config::Config;
use edge::proxy::{Edge, Outcome, Worker};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;

/// What was started.
pub struct Running {
    /// Worker threads.
    pub workers: usize,
    /// Sockets bound, over all workers.
    pub sockets: usize,
}

/// Largest datagram accepted (and the receive buffer size).
const MAX_DATAGRAM: usize = 65_535;

/// Binds every socket (so a bind failure is reported before anything
/// runs), then starts the worker threads.
pub fn start(cfg: &Config, secret: &[u8]) -> Result<Running, String> {
    let workers = cfg
        .node
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let edges: Arc<Vec<Edge>> = Arc::new(
        cfg.edges
            .iter()
            .map(|e| Edge::new(e, &cfg.node, secret))
            .collect(),
    );
    let mut bound: Vec<Vec<Vec<std::net::UdpSocket>>> = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut per_edge = Vec::with_capacity(edges.len());
        for (e, conf) in edges.iter().zip(&cfg.edges) {
            let mut socks = Vec::with_capacity(e.locals().len());
            for l in &conf.listen {
                let s = crate::udp::bind(l.addr)
                    .map_err(|err| format!("line {}: listen {}: {err}", l.line, l.addr))?;
                socks.push(s);
            }
            per_edge.push(socks);
        }
        bound.push(per_edge);
    }
    let sockets = bound
        .iter()
        .map(|w| w.iter().map(Vec::len).sum::<usize>())
        .sum();
    let epoch = Instant::now();
    for (n, socks) in bound.into_iter().enumerate() {
        let edges = Arc::clone(&edges);
        std::thread::Builder::new()
            .name(format!("sipedge-w{n}"))
            .spawn(move || worker_main(n, edges, socks, epoch))
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
    }
    Ok(Running { workers, sockets })
}

fn worker_main(
    n: usize,
    edges: Arc<Vec<Edge>>,
    socks: Vec<Vec<std::net::UdpSocket>>,
    epoch: Instant,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = n, "cannot build runtime: {e}");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut tasks = Vec::new();
        for (ei, edge_socks) in socks.into_iter().enumerate() {
            let mut tokio_socks = Vec::with_capacity(edge_socks.len());
            for s in edge_socks {
                match UdpSocket::from_std(s) {
                    Ok(t) => tokio_socks.push(t),
                    Err(e) => {
                        tracing::error!(worker = n, "cannot register socket: {e}");
                        return;
                    }
                }
            }
            let tokio_socks: Rc<[UdpSocket]> = tokio_socks.into();
            let worker = Rc::new(RefCell::new(edges[ei].worker()));
            for li in 0..tokio_socks.len() {
                tasks.push(tokio::task::spawn_local(serve(
                    Arc::clone(&edges),
                    ei,
                    li,
                    Rc::clone(&tokio_socks),
                    Rc::clone(&worker),
                    epoch,
                )));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Receives on one socket and sends what the pipeline says, forever.
async fn serve(
    edges: Arc<Vec<Edge>>,
    ei: usize,
    li: usize,
    socks: Rc<[UdpSocket]>,
    worker: Rc<RefCell<Worker>>,
    epoch: Instant,
) {
    let edge = &edges[ei];
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, src) = match socks[li].recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some
                // systems; they concern that send, not this socket.
                tracing::debug!(edge = %edge.name, "recv: {e}");
                continue;
            }
        };
        let now = epoch.elapsed().as_secs();
        // The worker is shared by the edge's sockets on this thread: the
        // borrow ends before any await.
        let pending = {
            let mut w = worker.borrow_mut();
            match w.handle(edge, &buf[..len], src, li, now) {
                Outcome::Send { to, local } => match socks[local].try_send_to(w.output(), to) {
                    Ok(_) => None,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        Some((w.output().to_vec(), to, local))
                    }
                    Err(e) => {
                        tracing::debug!(edge = %edge.name, %to, "send: {e}");
                        None
                    }
                },
                Outcome::Drop(_) => None,
            }
        };
        if let Some((bytes, to, local)) = pending {
            if let Err(e) = socks[local].send_to(&bytes, to).await {
                tracing::debug!(edge = %edge.name, %to, "send: {e}");
            }
        }
    }
}
