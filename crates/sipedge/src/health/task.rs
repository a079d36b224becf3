//! The prober task of one edge: drives the sans-IO
//! [`Prober`](edge::health::Prober) with a clock and real sockets, runs the
//! passive check about once a second, answers the admin API's commands,
//! and pushes every change into the edge's [`HealthView`].

use super::socket::Sockets;
use super::stream::{Event, Streams};
use super::{Command, DestStatus, LastProbe, State};
use edge::config::{self, Transport};
use edge::health::{HealthView, Passive, Prober, Tracker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

/// Room for any UDP datagram, so a large reply is never truncated.
const DATAGRAM: usize = 65_535;

/// How often the passive check reads the workers' counters, and how often
/// the least-latency scales are refreshed in the view.
const TICK: Duration = Duration::from_secs(1);

/// Starts the task of one edge on the current runtime.
pub(super) fn spawn(
    edge: &config::Edge,
    node: &config::Node,
    sockets: Sockets,
    view: Arc<HealthView>,
    commands: mpsc::Receiver<Command>,
    tls: (Arc<arc_swap::ArcSwap<crate::tls::Tls>>, usize),
) {
    let prober = Prober::new(edge, node, &sockets.locals(), Instant::now());
    let states = prober.trackers().iter().map(Tracker::state).collect();
    let (events_tx, events) = mpsc::channel(64);
    let driver = Driver {
        streams: Streams::new(events_tx, edge.probe.timeout, tls),
        edge: edge.name.clone(),
        uris: edge.destinations.iter().map(|d| d.uri.clone()).collect(),
        prober,
        // A disabled probe config also means no passive suspicion.
        passive: edge
            .probe
            .enabled
            .then(|| Passive::new(edge.destinations.len())),
        view,
        states,
    };
    tokio::spawn(driver.run(sockets, events, commands));
}

/// The mutable side of the task, apart from the sockets and buffers the
/// receive futures borrow.
struct Driver {
    /// Probe connections to destinations reached over TCP.
    streams: Streams,
    edge: String,
    uris: Vec<String>,
    prober: Prober,
    passive: Option<Passive>,
    view: Arc<HealthView>,
    /// Each destination's state as last logged.
    states: Vec<State>,
}

impl Driver {
    /// Runs until the command channel closes (the process ends).
    async fn run(
        mut self,
        sockets: Sockets,
        mut events: mpsc::Receiver<Event>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        self.prober.apply(&self.view);
        let mut out = Vec::with_capacity(1024);
        let mut buf4 = vec![0u8; if sockets.v4.is_some() { DATAGRAM } else { 0 }];
        let mut buf6 = vec![0u8; if sockets.v6.is_some() { DATAGRAM } else { 0 }];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sockets = sockets;
        loop {
            self.transmit(&sockets, &mut out).await;
            self.publish();
            let deadline = self.prober.next_timeout();
            let reseed = tokio::select! {
                r = recv(sockets.v4.as_ref(), &mut buf4) => {
                    self.received(r, &buf4);
                    None
                }
                r = recv(sockets.v6.as_ref(), &mut buf6) => {
                    self.received(r, &buf6);
                    None
                }
                Some(event) = events.recv() => {
                    self.streamed(event);
                    None
                }
                () = sleep(deadline) => {
                    self.prober.handle_timeout(Instant::now());
                    None
                }
                _ = tick.tick() => {
                    self.tick();
                    None
                }
                command = commands.recv() => match command {
                    Some(Command::Reseed { edge, node, view, sockets, done }) => {
                        Some((edge, node, view, sockets, done))
                    }
                    Some(command) => {
                        self.command(command);
                        None
                    }
                    None => return,
                },
            };
            if let Some((edge, node, view, new_sockets, done)) = reseed {
                if let Some(s) = new_sockets {
                    sockets = s;
                    buf4.resize(if sockets.v4.is_some() { DATAGRAM } else { 0 }, 0);
                    buf6.resize(if sockets.v6.is_some() { DATAGRAM } else { 0 }, 0);
                }
                self.reseed(&edge, &node, &sockets, view);
                let _ = done.send(());
            }
        }
    }

    /// The config was reloaded: the prober carries on with `edge`'s
    /// destinations (see [`Prober::reseeded`]) and publishes into `view`,
    /// the new snapshot's, at once.
    fn reseed(
        &mut self,
        edge: &config::Edge,
        node: &config::Node,
        sockets: &Sockets,
        view: Arc<HealthView>,
    ) {
        self.prober = self
            .prober
            .reseeded(edge, node, &sockets.locals(), Instant::now());
        self.uris = edge.destinations.iter().map(|d| d.uri.clone()).collect();
        self.passive = edge
            .probe
            .enabled
            .then(|| Passive::new(edge.destinations.len()));
        self.states = self.prober.trackers().iter().map(Tracker::state).collect();
        self.view = view;
        self.prober.changed();
        self.prober.apply(&self.view);
    }

    /// Sends every probe that is due. A send that fails (no route, no
    /// socket of the family) is a failed probe, reported at once.
    async fn transmit(&mut self, sockets: &Sockets, out: &mut Vec<u8>) {
        loop {
            let now = Instant::now();
            out.clear();
            let Some((transport, to)) = self.prober.poll_transmit(now, out) else {
                return;
            };
            match transport {
                Transport::Udp => {}
                Transport::Tcp | Transport::Tls => {
                    self.streams.send(to, transport, out);
                    continue;
                }
                Transport::Ws | Transport::Wss => {
                    self.prober
                        .handle_send_error(to, "ws: not supported by this version", now);
                    continue;
                }
            }
            let Some(socket) = sockets.for_addr(to) else {
                self.prober
                    .handle_send_error(to, "no probe socket of this address family", now);
                continue;
            };
            if let Err(e) = socket.send_to(out, to).await {
                self.prober
                    .handle_send_error(to, &e.to_string(), Instant::now());
            }
        }
    }

    /// What a probe connection reported.
    fn streamed(&mut self, event: Event) {
        match event {
            Event::Message(from, m) => self.prober.handle_datagram(&m, from, Instant::now()),
            Event::Failed(to, n, why) => {
                self.streams.forget(to, n);
                self.prober.handle_send_error(to, &why, Instant::now());
            }
        }
    }

    /// A datagram (or an error) from a probe socket.
    fn received(&mut self, r: io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        match r {
            Ok((n, from)) => {
                if let Some(bytes) = buf.get(..n) {
                    self.prober.handle_datagram(bytes, from, Instant::now());
                }
            }
            // An ICMP error from an earlier send (e.g. ECONNREFUSED) is
            // reported once and cleared by this very call, so the loop
            // cannot spin on it; it does not say which destination it
            // concerns, so the probe's timeout decides.
            Err(e) => tracing::debug!(edge = %self.edge, "probe socket: {e}"),
        }
    }

    /// Once a second: suspect destinations whose real traffic goes wrong,
    /// and refresh the least-latency scales (which move with every probe
    /// without being a state change).
    fn tick(&mut self) {
        if let Some(passive) = &mut self.passive {
            let now = Instant::now();
            for (i, why) in passive.check(&self.view.totals(), now) {
                tracing::info!(
                    edge = %self.edge,
                    destination = %self.uris.get(i).map_or("?", String::as_str),
                    "{why}: probing at once"
                );
                self.prober.suspect(i, &why, now);
            }
        }
        self.prober.apply(&self.view);
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            // Taken by the run loop, which may swap the sockets for it.
            Command::Reseed { .. } => {}
            Command::Status(reply) => {
                let all = self
                    .prober
                    .trackers()
                    .iter()
                    .map(|t| status(t, now))
                    .collect();
                let _ = reply.send(all);
            }
            Command::Set {
                index,
                state,
                reply,
            } => {
                let Some(uri) = self.uris.get(index) else {
                    let _ = reply.send(None);
                    return;
                };
                tracing::info!(
                    edge = %self.edge,
                    destination = %uri,
                    "the operator sets the destination {}",
                    state.name()
                );
                self.prober.set_state(index, state, now);
                // Apply before answering, so that the caller's next request
                // already sees the new state.
                self.publish();
                self.prober.apply(&self.view);
                let _ = reply.send(self.prober.trackers().get(index).map(|t| status(t, now)));
            }
        }
    }

    /// After a state change: pushes it into the view and logs every
    /// destination whose state moved.
    fn publish(&mut self) {
        if !self.prober.changed() {
            return;
        }
        self.prober.apply(&self.view);
        for (i, t) in self.prober.trackers().iter().enumerate() {
            let (Some(before), Some(uri)) = (self.states.get_mut(i), self.uris.get(i)) else {
                continue;
            };
            let now = t.state();
            if *before == now {
                continue;
            }
            *before = now;
            match now {
                State::Inactive => tracing::warn!(
                    edge = %self.edge,
                    destination = %uri,
                    reason = t.reason(),
                    "destination inactive"
                ),
                State::Active => tracing::info!(
                    edge = %self.edge,
                    destination = %uri,
                    reason = t.reason(),
                    "destination active"
                ),
                State::Probing => tracing::info!(
                    edge = %self.edge,
                    destination = %uri,
                    reason = t.reason(),
                    "destination probing"
                ),
            }
        }
    }
}

/// A tracker's status as the admin API reports it.
fn status(t: &Tracker, now: Instant) -> DestStatus {
    let (probes_sent, probes_failed) = t.probes();
    DestStatus {
        state: t.state(),
        manual: t.manual(),
        reason: t.reason().to_owned(),
        latency: t.latency(),
        last_probe: t.last_probe().map(|p| LastProbe {
            ago: now.saturating_duration_since(p.at),
            result: p.result.clone(),
            ok: p.ok,
        }),
        probes_sent,
        probes_failed,
        latencies: t.latencies().clone(),
    }
}

/// Receives on `socket`; never completes when there is none.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; forever when there is none.
async fn sleep(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
