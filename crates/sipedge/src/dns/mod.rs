//! The node's DNS: hickory-resolver configured from `[node] dns` or
//! /etc/resolv.conf, running on the main runtime, off the forwarding path.
//! A shard that meets a host name it has no answer for asks here
//! ([`Dns::ask`]) and carries on; the answer is stored in the edge's
//! [`Names`], the waiting request handled again, and the answer removed
//! when its TTL runs out.

mod rfc3263;

use edge::flow::Transport;
use edge::outbound::{Answer, Names};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub use rfc3263::{locate, Wanted};

/// The shortest time an answer is kept, whatever its TTL (0 is common on
/// small servers): a waiting request must find the answer it waited for,
/// and a busy name must not be asked for every request.
const MIN_HOLD: Duration = Duration::from_secs(5);
/// The longest, so a changed record is followed even under a huge TTL.
const MAX_HOLD: Duration = Duration::from_secs(3600);

/// How long an answer valid until `until` is kept, from now: its TTL,
/// within [`MIN_HOLD`] and [`MAX_HOLD`] (the outbound proxy's answers and
/// the destinations' names alike).
pub fn held_for(until: Instant) -> Duration {
    until
        .saturating_duration_since(Instant::now())
        .clamp(MIN_HOLD, MAX_HOLD)
}

/// Questions being looked up (by edge and query), with who waits for
/// each: retransmissions of a request ask once.
type Pending = Arc<Mutex<HashMap<(usize, String), Vec<oneshot::Sender<()>>>>>;

/// One question from a shard.
struct Ask {
    names: Arc<Names>,
    key: String,
    answered: oneshot::Sender<()>,
}

/// A handle on the node's resolver; cheap to clone, usable from any
/// thread.
#[derive(Clone)]
pub struct Dns {
    asks: mpsc::UnboundedSender<Ask>,
}

impl Dns {
    /// Asks for `key`'s answer to be stored in `names`; the receiver
    /// resolves once it is (or is dropped if the resolver stopped).
    pub fn ask(&self, names: Arc<Names>, key: String) -> oneshot::Receiver<()> {
        let (answered, rx) = oneshot::channel();
        let _ = self.asks.send(Ask {
            names,
            key,
            answered,
        });
        rx
    }
}

/// The resolver for `servers` (`[node] dns`), or the system's when empty.
pub fn resolver(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?
    } else {
        let name_servers = servers
            .iter()
            .map(|a| {
                let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                for c in &mut ns.connections {
                    c.port = a.port();
                }
                ns
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), name_servers);
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
    };
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder
        .build()
        .map_err(|e| format!("cannot start the resolver: {e}"))
}

/// Starts the resolver task on the current runtime.
pub fn start(servers: &[SocketAddr]) -> Result<Dns, String> {
    let resolver = Arc::new(resolver(servers)?);
    let (asks, mut rx) = mpsc::unbounded_channel::<Ask>();
    // Questions being looked up, with who waits for each: retransmissions
    // of a request ask once.
    let pending: Pending = Arc::default();
    tokio::spawn(async move {
        while let Some(ask) = rx.recv().await {
            let id = (Arc::as_ptr(&ask.names) as usize, ask.key.clone());
            {
                let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(waiting) = p.get_mut(&id) {
                    waiting.push(ask.answered);
                    continue;
                }
                p.insert(id.clone(), vec![ask.answered]);
            }
            let resolver = Arc::clone(&resolver);
            let pending = Arc::clone(&pending);
            tokio::spawn(async move {
                let wanted = Wanted::from_key(&ask.key);
                let (answer, until) = match &wanted {
                    Some(w) => rfc3263::locate(&resolver, w).await,
                    None => (Answer::NoSuchName, Instant::now()),
                };
                log(&ask.key, &answer);
                if let (Answer::Targets(targets), Some(w)) = (&answer, &wanted) {
                    for t in targets.iter().filter(|t| t.transport == Transport::Tls) {
                        ask.names.name_tls(t.addr, &w.host);
                    }
                }
                let answer = Arc::new(answer);
                ask.names.put(&ask.key, Arc::clone(&answer));
                let answer = Arc::downgrade(&answer);
                let waiting = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                    .unwrap_or_default();
                for w in waiting {
                    let _ = w.send(());
                }
                tokio::time::sleep(held_for(until)).await;
                ask.names.expire(&ask.key, &answer);
            });
        }
    });
    Ok(Dns { asks })
}

fn log(key: &str, answer: &Answer) {
    match answer {
        Answer::Targets(t) => {
            let to: Vec<String> = t
                .iter()
                .map(|t| {
                    format!(
                        "{}:{} (priority {}, weight {})",
                        t.transport.name(),
                        t.addr,
                        t.priority,
                        t.weight
                    )
                })
                .collect();
            tracing::debug!(name = key, "resolved: {}", to.join(", "));
        }
        Answer::NoSuchName => tracing::info!(name = key, "DNS: no such name or no SIP records"),
        Answer::Failed => tracing::warn!(name = key, "DNS lookup failed"),
    }
}
