//! STUN discovery of an edge's public address (`[[edge]] stun`): one
//! task per such edge, on the main runtime, asks the servers in turn with
//! a Binding request sent from the edge's own UDP socket (a duplicate of
//! shard 0's descriptor for its first `udp:` listener, so the NAT mapping
//! asked about is the one SIP uses), and hands the address it learns to
//! the [`Reloader`], which rebuilds the edge's snapshot with it — like a
//! reload, without restart. The answer comes back to whichever shard's
//! socket the kernel picks; the shards hand STUN datagrams to the edge's
//! [`Inbox`] before the SIP pipeline sees them.

use crate::reload::Reloader;
use edge::config;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The STUN port when a server is named without one (RFC 5389 §9).
const PORT: u16 = 3478;
/// How long each try waits for an answer: RFC 5389's 500 ms, doubled at
/// each retransmission, three tries per server address (3.5 s), then the
/// next one.
const TRIES: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// How long the node waits for an edge's first STUN round before it says
/// it is ready: one unanswered server's three tries, and a little more.
pub const FIRST_ROUND: Duration = Duration::from_secs(4);

/// The request an edge's STUN task waits on, and where its answer goes.
/// Shared with the shards, which call [`Inbox::deliver`]: only the answer
/// to that request, from that server, gets through.
pub struct Inbox {
    asked: Mutex<Option<Asked>>,
    answers: mpsc::Sender<SocketAddr>,
}

/// A request in flight.
#[derive(Clone, Copy)]
struct Asked {
    id: u128,
    server: SocketAddr,
}

impl Inbox {
    /// An inbox, and the receiving end its task reads answers from.
    pub fn new() -> (Arc<Inbox>, mpsc::Receiver<SocketAddr>) {
        let (answers, rx) = mpsc::channel(1);
        let inbox = Inbox {
            asked: Mutex::new(None),
            answers,
        };
        (Arc::new(inbox), rx)
    }

    /// A STUN datagram (`edge::stun::looks_like`) that came to one of the
    /// edge's sockets from `from`: the address it says, if it answers the
    /// request in flight. Anything else is dropped here, uncounted.
    pub fn deliver(&self, datagram: &[u8], from: SocketAddr) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = *asked else {
            return;
        };
        if a.server != from {
            return;
        }
        if let Some(mapped) = edge::stun::mapped(datagram, a.id) {
            *asked = None;
            let _ = self.answers.try_send(mapped);
        }
    }

    fn ask(&self, asked: Option<Asked>) {
        *self.asked.lock().unwrap_or_else(|e| e.into_inner()) = asked;
    }
}

/// One edge's STUN task, before it starts.
pub struct Client {
    /// The edge's position in the config.
    pub edge: usize,
    /// Its name, for the log.
    pub name: String,
    /// Its `stun` settings.
    pub conf: config::Stun,
    /// The edge's socket the requests leave from (shard 0's, duplicated).
    pub socket: UdpSocket,
    /// The port the edge advertises for that socket: a NAT that maps it
    /// to another port is worth a warning.
    pub advertised_port: u16,
    /// Whether nothing but STUN can say the edge's address (a wildcard
    /// listen address and no `advertise`): then, while no server answers,
    /// the local address toward the server stands in.
    pub needs_address: bool,
    /// Where the shards put the answers.
    pub inbox: Arc<Inbox>,
    /// What the task reads them from.
    pub answers: mpsc::Receiver<SocketAddr>,
    /// `[node] dns`, for servers given by name.
    pub dns: Vec<SocketAddr>,
}

/// Starts the task on the current runtime; the receiver resolves once its
/// first round is over (answered or not), so that the node says it is
/// ready with the address it learnt.
pub fn follow(client: Client, reloader: Arc<Reloader>) -> oneshot::Receiver<()> {
    let (first, rx) = oneshot::channel();
    tokio::spawn(client.run(reloader, first));
    rx
}

impl Client {
    async fn run(mut self, reloader: Arc<Reloader>, first: oneshot::Sender<()>) {
        let mut first = Some(first);
        let mut silent = false;
        let mut warned_port = None;
        let resolver = if self.conf.servers.iter().all(|s| ip_of(s).is_some()) {
            None
        } else {
            crate::dns::resolver(&self.dns)
                .map_err(|e| tracing::warn!(edge = %self.name, "stun: {e}"))
                .ok()
        };
        loop {
            match self.round(resolver.as_ref()).await {
                Ok((server, mapped)) => {
                    if silent {
                        tracing::info!(edge = %self.name, %server, "stun: answered again");
                        silent = false;
                    }
                    if mapped.port() != self.advertised_port && warned_port != Some(mapped.port()) {
                        tracing::warn!(
                            edge = %self.name,
                            %server,
                            "stun: the NAT maps the edge's port {} to {}: requests from \
                             outside reach the edge only if the NAT forwards port {} to it",
                            self.advertised_port,
                            mapped.port(),
                            self.advertised_port
                        );
                        warned_port = Some(mapped.port());
                    }
                    self.learnt(&reloader, mapped.ip(), &server.to_string())
                        .await;
                }
                Err(tried) => {
                    if !silent {
                        tracing::warn!(
                            edge = %self.name,
                            "stun: no server answered; the edge keeps the address it has"
                        );
                        silent = true;
                    }
                    if self.needs_address && reloader.learnt_of(self.edge).await.is_none() {
                        if let Some(ip) = tried.first().and_then(|s| local_toward(*s)) {
                            self.learnt(&reloader, ip, "the local address toward the server")
                                .await;
                        }
                    }
                }
            }
            if let Some(f) = first.take() {
                let _ = f.send(());
            }
            tokio::time::sleep(self.conf.interval).await;
        }
    }

    /// Applies `ip` as the edge's address, and logs a change.
    async fn learnt(&self, reloader: &Reloader, ip: IpAddr, from: &str) {
        match reloader.learnt(self.edge, ip).await {
            Ok(Some(was)) => tracing::info!(
                edge = %self.name,
                was = %was.map_or_else(|| "(configured)".to_owned(), |w| w.to_string()),
                now = %ip,
                from,
                "stun: the edge's public address changed; Via and Record-Route now name it"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(edge = %self.name, "stun: cannot apply {ip}: {e}"),
        }
    }

    /// Asks each server in turn; the server that answered and the address
    /// it saw, or the addresses tried.
    async fn round(
        &mut self,
        resolver: Option<&TokioResolver>,
    ) -> Result<(SocketAddr, SocketAddr), Vec<SocketAddr>> {
        let local = self.socket.local_addr().ok();
        let mut tried = Vec::new();
        for server in self.conf.servers.clone() {
            for addr in addresses(&server, resolver).await {
                if local.is_some_and(|l| l.is_ipv4() != addr.is_ipv4()) {
                    continue;
                }
                tried.push(addr);
                if let Some(mapped) = self.ask(addr).await {
                    return Ok((addr, mapped));
                }
            }
        }
        Err(tried)
    }

    /// One Binding transaction with `server`, retransmitted per [`TRIES`].
    async fn ask(&mut self, server: SocketAddr) -> Option<SocketAddr> {
        while self.answers.try_recv().is_ok() {}
        // Retransmissions are the same transaction: a late answer to the
        // first try is as good as one to the last.
        let (request, id) = edge::stun::binding_request();
        self.inbox.ask(Some(Asked { id, server }));
        for wait in TRIES {
            if let Err(e) = self.socket.send_to(&request, server) {
                tracing::debug!(edge = %self.name, %server, "stun: send: {e}");
            }
            if let Ok(Some(mapped)) = tokio::time::timeout(wait, self.answers.recv()).await {
                return Some(mapped);
            }
        }
        self.inbox.ask(None);
        None
    }
}

/// A server given as an address.
fn ip_of(server: &config::HostPort) -> Option<IpAddr> {
    server.host.parse().ok()
}

/// The addresses of `server`: itself, or what DNS says of its name (none
/// when the lookup fails).
async fn addresses(server: &config::HostPort, resolver: Option<&TokioResolver>) -> Vec<SocketAddr> {
    let port = server.port.unwrap_or(PORT);
    if let Some(ip) = ip_of(server) {
        return vec![SocketAddr::new(ip, port)];
    }
    let Some(resolver) = resolver else {
        return Vec::new();
    };
    match resolver.lookup_ip(server.host.as_str()).await {
        Ok(l) => l.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
        Err(e) => {
            tracing::debug!(server = %server, "stun: lookup: {e}");
            Vec::new()
        }
    }
}

/// The address this host sends from toward `to` (its route's source).
fn local_toward(to: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}
