//! The configuration model: plain data, no parsing and no serde.
//!
//! Kept apart from the TOML parser (linkerd2-proxy style) so that the proxy
//! core and its tests can build a [`Config`] by hand, and so that the file
//! format can change without touching the code that uses the values. Every
//! value here has already been validated by [`parse`](super::parse()).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::dispatch::Algorithm;

/// A whole, validated configuration file: what one sipedge instance runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Who this instance is (`[node]`).
    pub node: Node,
    /// The admin HTTP listener (`[admin]`); `None` means no admin interface.
    pub admin: Option<Admin>,
    /// One entry per `[[edge]]`, in file order; never empty.
    pub edges: Vec<Edge>,
    /// Limits on connection transports (`[connections]`), for every edge.
    pub connections: Connections,
    /// The other nodes of the cluster (`[cluster]`); `None`: this node
    /// alone.
    pub cluster: Option<Cluster>,
    /// The APIBAN feed (`[apiban]`); `None`: not polled.
    pub apiban: Option<Apiban>,
    /// Where SIP traces go (`[hep]`); `None`: nothing is traced.
    pub hep: Option<Hep>,
    /// Where call records go (`[records]`); `None`: none are written.
    pub records: Option<Records>,
}

/// A Homer capture server (`[hep]`): every message of the edges that trace
/// goes there as HEPv3, the format of Kamailio's siptrace and heplify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hep {
    /// `udp` or `tcp` (`server = "udp:10.0.0.9:9060"`).
    pub transport: Transport,
    /// The capture server's address.
    pub server: SocketAddr,
    /// The capture agent id Homer shows (`capture_id`, 1 by default).
    pub capture_id: u32,
    /// The key the capture server expects (`password`), if it asks one.
    pub password: Option<String>,
    /// Messages waiting for the sender at most (`queue`, 10,000 by
    /// default); beyond it traces are dropped and counted, so tracing
    /// never holds up forwarding.
    pub queue: usize,
}

/// One named source of an edge's requests (`[[edge.peer]]`): the first
/// whose every condition holds names a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its name (`name`): in call records and `explain`.
    pub name: String,
    /// The networks it sends from (`sources`); empty: any.
    pub sources: Vec<ipnet::IpNet>,
    /// A User-Agent it sends, as a case-insensitive substring
    /// (`user_agent`).
    pub user_agent: Option<String>,
    /// The transport it comes over (`transport`).
    pub transport: Option<Transport>,
    /// What is rewritten in the requests it sends toward the pool
    /// (`[edge.peer.in]`).
    pub from_peer: Rewrites,
    /// What is rewritten in the requests sent to it (`[edge.peer.out]`),
    /// found by their next hop's address among `sources`.
    pub to_peer: Rewrites,
}

/// One direction's rewrites of a peer: numbers, then headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites {
    /// `number` rules, in order.
    pub numbers: crate::numbers::Rules,
    /// `tel`: the URI form numbers leave in, when set.
    pub tel: Option<crate::numbers::UriForm>,
    /// `remove`, `allow`, `replace`, `add`.
    pub headers: crate::header_policy::HeaderPolicy,
}

impl Rewrites {
    /// Nothing to rewrite.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty() && self.tel.is_none() && self.headers.is_empty()
    }
}

/// Call records (`[records]`): one JSON line per call attempt and per
/// call end, written by a thread of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    /// The file (`file`); `None` for stdout (`file = "-"`).
    pub file: Option<std::path::PathBuf>,
    /// Rotate when the file reaches this many bytes (`rotate_size`).
    pub rotate_size: Option<u64>,
    /// Rotate when the file is this old (`rotate_interval`, seconds).
    pub rotate_interval: Option<std::time::Duration>,
    /// Records waiting for the writer at most (`queue`, 10,000 by
    /// default); beyond it they are dropped and counted, so records never
    /// hold up forwarding.
    pub queue: usize,
}

/// The node-to-node link (`[cluster]`): a connection (TCP, TLS, WebSocket)
/// lives on one node, and a request for it that reaches another node —
/// along a flow token, after an anycast route moved — is relayed to the
/// owner over this link (UDP, each datagram authenticated with the
/// cluster secret). Nodes also tell each other they are alive on it: a
/// request for a connection of a node not heard from is answered 430
/// Flow Failed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// This node's own address on the link (`listen`): the owner a flow
    /// token names, so it must be this node's alone (not the anycast
    /// address). `None`: no link (a cluster sharing only Redis).
    pub listen: Option<SocketAddr>,
    /// The other nodes' link addresses (`peers`).
    pub peers: Vec<SocketAddr>,
    /// Where the cluster's shared state lives (`redis`, `redis_cluster`);
    /// `None`: each node counts alone.
    pub redis: Option<Redis>,
    /// The CA certificate (PEM file) a `rediss://` Redis's certificate is
    /// checked against (`redis_ca`); `None`: the system's roots.
    pub redis_ca: Option<std::path::PathBuf>,
}

/// The Redis the nodes of a cluster share (DESIGN principle 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redis {
    /// One server (`redis = "redis://host:port/db"`, or `rediss://` for
    /// TLS).
    Server(String),
    /// A Redis Cluster, given by some of its nodes (`redis_cluster =
    /// ["redis://host:port", …]`): the rest are learnt from them.
    Cluster(Vec<String>),
}

/// Limits on connections (TCP now; TLS and WebSocket share them), so that
/// no client can tie up a shard or exhaust the node's descriptors
/// (`[connections]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connections {
    /// Connections open at once on this node, in and out (`max`).
    pub max: usize,
    /// Connections open at once from one source address (`max_per_source`).
    pub max_per_source: usize,
    /// The longest message a connection may carry, in bytes (at most
    /// 65,507, what the pipeline forwards): a longer one is answered 513
    /// and the connection closed (`max_message`).
    pub max_message: usize,
    /// Time to send a complete header section once a message has begun
    /// (or a connection opened): a client trickling bytes is closed
    /// (`header_timeout`).
    pub header_timeout: Duration,
    /// A connection that carries nothing for this long is closed
    /// (`idle_timeout`); CRLF keep-alives count.
    pub idle_timeout: Duration,
    /// Time to open a connection to a destination; a connect that takes
    /// longer fails like an unanswered request (`connect_timeout`).
    pub connect_timeout: Duration,
    /// TCP keep-alive probes start after this much silence
    /// (`keepalive`, SO_KEEPALIVE).
    pub keepalive: Duration,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections {
            max: 20_000,
            max_per_source: 100,
            max_message: 65_507,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(3),
            keepalive: Duration::from_secs(60),
        }
    }
}

/// This instance's identity within a cluster (`[node]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Name of this instance in logs, metrics and the cluster; never empty.
    pub id: String,
    /// The zone (site) this instance runs in; picks tier 1 destinations.
    pub zone: Option<String>,
    /// The cluster's shared key for signing routing tokens, so any instance
    /// can route a later packet of a dialog it never saw; at least 16 bytes.
    pub secret: Option<String>,
    /// Secrets the cluster used before `secret` (`previous_secrets`):
    /// messages signed with them still verify, new ones are signed with
    /// `secret` only. Rotating a secret: add the new one as `secret` with
    /// the old one here on every node, then drop the old one once the
    /// longest call has ended.
    pub previous_secrets: Vec<String>,
    /// This node's own unicast address as `host[:port]`, for features that
    /// must reach this instance rather than the shared anycast address.
    pub public_address: Option<String>,
    /// Worker threads; `None` means one per CPU core. Always in 1..=256.
    pub workers: Option<usize>,
    /// The name servers the outbound proxy and destinations named by DNS
    /// ask (`dns`); empty: those of /etc/resolv.conf.
    pub dns: Vec<SocketAddr>,
}

impl Node {
    /// The host of `public_address` (IPv6 without brackets), if set.
    fn public_host(&self) -> Option<String> {
        let hp = super::addr::host_port(self.public_address.as_deref()?).ok()?;
        Some(hp.host)
    }
}

/// Traffic hygiene: sources and User-Agents an edge drops unanswered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hygiene {
    /// Networks always served (`allow`): exceptions to `deny`, and with
    /// `restrict` the only sources served besides the destinations.
    pub allow: Vec<ipnet::IpNet>,
    /// Networks never served (`deny`).
    pub deny: Vec<ipnet::IpNet>,
    /// Serve only `allow` and the destinations (`restrict = true`).
    pub restrict: bool,
    /// Substrings of User-Agents whose requests are dropped, any case
    /// (`user_agent_deny`; by default the scanners of
    /// [`crate::hygiene::SCANNERS`]).
    pub user_agent_deny: Vec<String>,
    /// Flood protection (`flood_threshold`); `None`: off.
    pub flood: Option<Flood>,
}

/// Flood protection per source address (Kamailio's pike): more than
/// `threshold` requests in `window` from one source bans it for
/// `ban_time`, on every edge of the node (and the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    /// Requests a source may send in one window (`flood_threshold`).
    pub threshold: u32,
    /// The window (`flood_window`, 2 s by default).
    pub window: Duration,
    /// How long a flooding source is banned (`ban_time`, 300 s by default).
    pub ban_time: Duration,
}

/// The APIBAN feed of known-bad addresses (`[apiban]`), polled by every
/// node and dropped on every edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apiban {
    /// The file holding the API key (`key_file`): kept out of the config.
    pub key_file: std::path::PathBuf,
    /// The API's base URL (`url`; `https://apiban.org/api` by default).
    pub url: String,
    /// Time between polls (`interval`, 300 s by default).
    pub interval: Duration,
    /// How long a listed address stays banned after the feed last named
    /// it (`ban_time`, 7 days by default: the feed's own).
    pub ban_time: Duration,
}

impl Default for Hygiene {
    fn default() -> Hygiene {
        Hygiene {
            allow: Vec::new(),
            deny: Vec::new(),
            restrict: false,
            flood: None,
            user_agent_deny: crate::hygiene::SCANNERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// STUN discovery of an edge's public address (`stun`, `stun_interval`):
/// for an edge behind a NAT whose public address is not known in advance
/// or may change. A Binding request leaves from the edge's first `udp:`
/// listen socket, so what the server sees is the NAT mapping SIP uses;
/// the address it answers becomes the host of Via and Record-Route (the
/// port stays `advertise`'s, or the listener's), applied without restart
/// and logged when it changes. Until the first answer, and while no
/// server answers, `advertise` (or, for a wildcard listen address, the
/// local address toward the server) stands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stun {
    /// The servers, tried in order until one answers; port 3478 when not
    /// given. Never empty.
    pub servers: Vec<HostPort>,
    /// How often the address is asked again (`stun_interval`, seconds).
    pub interval: Duration,
    /// Line of the `stun` key.
    pub line: usize,
}

/// The admin HTTP interface (`[admin]`): metrics, health, API and dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Address the admin HTTP server binds to.
    pub listen: SocketAddr,
    /// `token_file`: the file holding a bearer token every request but
    /// `/health` and the dashboard's page must carry.
    pub token_file: Option<std::path::PathBuf>,
    /// `user` and `password_file`: HTTP basic authentication, which a
    /// browser asks for by itself.
    pub basic: Option<(String, std::path::PathBuf)>,
}

/// One customer-facing edge (`[[edge]]`): its own listen addresses, its own
/// dispatch settings and its own pool of destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Name in logs and metrics; `edge-N` (1-based position) when not given.
    /// Unique within the file.
    pub name: String,
    /// Where this edge takes traffic; never empty, and no address is shared
    /// with another edge (the listen address is what picks the edge).
    pub listen: Vec<Listen>,
    /// What to write into Via / Record-Route instead of the listen address;
    /// always set when a listen address is a wildcard (0.0.0.0 or ::),
    /// because a wildcard cannot be routed back to.
    pub advertise: Option<HostPort>,
    /// Where the edge asks its public address (`stun`): what a server
    /// answers replaces `advertise`'s host (see [`Stun`]).
    pub stun: Option<Stun>,
    /// How new requests are spread over the destinations.
    pub algorithm: Algorithm,
    /// Whether the edge forwards statelessly or keeps per-transaction state.
    pub insertion: Insertion,
    /// Answer OPTIONS pings addressed to the edge itself (`flags = ["ping-replies"]`).
    pub ping_replies: bool,
    /// Destinations tried in tier 1 before moving on to tier 2; 1..=16.
    pub primary_attempts: u32,
    /// Destinations tried in tier 2 before moving on to tier 3; 1..=16.
    pub secondary_attempts: u32,
    /// The pool this edge dispatches to, in file order; never empty.
    pub destinations: Vec<Destination>,
    /// How the destinations are health-checked (`[edge.probe]`).
    pub probe: Probe,
    /// Timers and failover of the transactional mode (`[edge.transaction]`);
    /// the defaults on a stateless edge, which never reads them.
    pub transaction: Transaction,
    /// This edge's capacity on this node and what a call beyond it gets.
    pub capacity: Capacity,
    /// What is done to messages sent toward the destinations (`compress_in`).
    pub compress_in: Coding,
    /// What is done to messages sent anywhere else (`compress_out`).
    pub compress_out: Coding,
    /// Headers never compacted (`compact_keep`), for a peer that reads only
    /// the full names of some.
    pub compact_keep: Vec<sip::HeaderName>,
    /// The packet validation checks this edge runs (`validate`).
    pub validate: Vec<crate::validate::Check>,
    /// What happens to a message that fails them (`on_invalid`).
    pub on_invalid: OnInvalid,
    /// What an in-dialog request from outside the pool gets when its next
    /// hop is neither this edge nor a destination (`foreign_next_hop`).
    pub foreign_next_hop: ForeignNextHop,
    /// The SIP domains its `tls:` listeners serve (`[[edge.domain]]`); the
    /// first is the default. Never empty when the edge listens on TLS.
    pub domains: Vec<super::tls::Domain>,
    /// The CAs that TLS peers other than destinations (the next hop of a
    /// Route toward the outside, a caller whose connection closed) are
    /// verified against (`tls_ca`); `None`: the system's roots.
    pub tls_ca: Option<std::path::PathBuf>,
    /// The header that carries a verified TLS client certificate's subject
    /// toward the pool (`client_cert_header`); sipedge removes it from
    /// every other request from outside, so it cannot be forged.
    pub client_cert_header: Option<String>,
    /// Networks besides the destinations whose requests may go out
    /// through the edge (`outbound_from`): to anyone else it is no relay.
    pub outbound_from: Vec<ipnet::IpNet>,
    /// The NAT tests run on requests from outside (`nat_test`); empty:
    /// none.
    pub nat_test: crate::nat::NatTests,
    /// Replace the private addresses in the SDP `c=` lines of a party
    /// behind NAT with the address its packets come from (`nat_sdp`): of
    /// requests a NAT test found behind NAT, and of answers from outside
    /// the pool.
    pub nat_sdp: bool,
    /// Keep the pool's addresses from the outside (`topology_hiding`):
    /// its Contacts, Vias and Record-Route entries sealed into the
    /// edge's own, restored by any instance.
    pub topology_hiding: bool,
    /// Which sources the edge serves and which User-Agents it ignores
    /// (`allow`, `deny`, `restrict`, `user_agent_deny`).
    pub hygiene: Hygiene,
    /// The built-in registrar (`flags = ["registrations"]`, settings in
    /// `[edge.registrar]`); `None`: REGISTER goes to the pool.
    pub registrar: Option<Registrar>,
    /// Whether the edge's messages go to the `[hep]` server (`hep`, true
    /// by default when there is one).
    pub hep: bool,
    /// The share of calls traced (`hep_sample`, 0 to 1), in ten-thousandths:
    /// 10,000 traces all. Chosen by Call-ID, so a call is traced whole or
    /// not at all, by every node alike.
    pub hep_sample: u16,
    /// Whether the edge's calls are written to the `[records]` file
    /// (`records`, true by default when there is one).
    pub records: bool,
    /// Where its requests come from, by name (`[[edge.peer]]`): the
    /// carriers or customers an aggregating edge tells apart.
    pub peers: Vec<Peer>,
    /// Line of the `[[edge]]` header, for messages about this edge.
    pub line: usize,
}

impl Edge {
    /// What its listen addresses lack for the rest of it, as (line, key,
    /// problem): a `tls:` or `wss:` listener needs a domain, a TLS
    /// destination a `tls:` listener (its Via and Record-Route name it),
    /// one taking large requests over TCP a `tcp:` listener. Checked when
    /// a file is read, and again after a reload, which keeps the running
    /// listen addresses until a restart.
    pub fn unfit_listener(&self) -> Option<(usize, &'static str, String)> {
        let has = |t: Transport| self.listen.iter().any(|l| l.transport == t);
        if let Some(s) = self.stun.as_ref().filter(|_| !has(Transport::Udp)) {
            return Some((
                s.line,
                "stun",
                "needs a udp: listen address: the binding request leaves from the edge's own \
                 UDP socket, so that the NAT mapping it learns is the one SIP uses"
                    .to_owned(),
            ));
        }
        if self.domains.is_empty() {
            if let Some(l) = self.listen.iter().find(|l| l.transport.is_secure()) {
                return Some((
                    l.line,
                    "listen",
                    format!(
                        "{}:{} needs at least one [[edge.domain]] (name, cert, key): the \
                         certificate its handshakes present",
                        l.transport, l.addr
                    ),
                ));
            }
        }
        for d in &self.destinations {
            if d.large == Some(Transport::Tcp) && !has(Transport::Tcp) {
                return Some((
                    d.line,
                    "transports",
                    format!(
                        "{} takes large requests over TCP: the edge needs a tcp: listen \
                         address too, which its Via names",
                        d.uri
                    ),
                ));
            }
            if d.transport == Transport::Tls && !has(Transport::Tls) {
                return Some((
                    d.line,
                    "uri",
                    format!(
                        "{} is a TLS destination: the edge needs a tls: listen address too, \
                         which its Via and Record-Route name",
                        d.uri
                    ),
                ));
            }
        }
        None
    }

    /// The SIP URIs at which this node serves this edge on its own
    /// address (`[node] public_address`, not the shared anycast one): what
    /// it offers the other nodes of a cluster for their capacity failover,
    /// one per transport a redirected caller can follow — `sip:H:P` (UDP),
    /// `sip:H:P;transport=tcp`, `sips:H:P` (TLS) — so that a caller is
    /// sent on the transport it came on, never down from TLS. H is the
    /// public address's host (its port is not used: each edge has its
    /// own), P the port of the listener [`Edge::own_listener`] picks.
    /// Empty without a public address.
    pub fn own_uris(&self, node: &Node) -> Vec<(Transport, String)> {
        let Some(host) = node.public_host() else {
            return Vec::new();
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .filter_map(|t| {
                let port = self.own_listener(node, t)?.addr.port();
                Some((
                    t,
                    match t {
                        Transport::Udp => format!("sip:{host}:{port}"),
                        Transport::Tcp => format!("sip:{host}:{port};transport=tcp"),
                        _ => format!("sips:{host}:{port}"),
                    },
                ))
            })
            .collect()
    }

    /// The listener of `transport` whose port [`Edge::own_uris`] offers:
    /// the first on the public address itself, else on a wildcard of its
    /// family, else (a NAT may forward the address) the first of its
    /// family, else the first; never one on port 0 (any free port).
    pub fn own_listener(&self, node: &Node, transport: Transport) -> Option<&Listen> {
        let public: Option<std::net::IpAddr> = node.public_host().and_then(|h| h.parse().ok());
        let candidates = || {
            self.listen
                .iter()
                .filter(move |l| l.transport == transport && l.addr.port() != 0)
        };
        let family = |l: &&Listen| public.is_none_or(|ip| ip.is_ipv4() == l.addr.is_ipv4());
        candidates()
            .find(|l| Some(l.addr.ip()) == public)
            .or_else(|| candidates().find(|l| family(l) && l.addr.ip().is_unspecified()))
            .or_else(|| candidates().find(family))
            .or_else(|| candidates().next())
    }
}

impl Config {
    /// What `capacity_failover = ["cluster"]` lacks, as (line, problem):
    /// the cluster's Redis, where the nodes learn of each other, and this
    /// node's own address, which it offers the others to redirect to.
    /// Checked when a file is read, and again after a reload, which keeps
    /// the running `[cluster]` and `public_address` until a restart.
    pub fn unfit_failover(&self) -> Option<(usize, String)> {
        let redis = self.cluster.as_ref().is_some_and(|c| c.redis.is_some());
        self.edges.iter().find_map(|e| {
            let line = e.capacity.failover_cluster?;
            if !redis {
                return Some((
                    line,
                    "\"cluster\" needs [cluster] redis or redis_cluster: the nodes learn each \
                     other's addresses there"
                        .to_owned(),
                ));
            }
            e.own_uris(&self.node).is_empty().then(|| {
                (
                    line,
                    "\"cluster\" needs [node] public_address (and a udp:, tcp: or tls: listen \
                     address with a port): the address this node offers the others to redirect to"
                        .to_owned(),
                )
            })
        })
    }
}

/// Health probing of an edge's destinations (`[edge.probe]`): SIP OPTIONS
/// at an interval, so a dead server leaves the rotation within seconds and
/// comes back by itself when it recovers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `false`: no probes and no passive suspicion, every destination stays
    /// active (unless the operator says otherwise).
    pub enabled: bool,
    /// Time between probes of a healthy destination; 0.1 s..=3600 s.
    pub interval: Duration,
    /// How long to wait for a final reply; 0.05 s..=60 s and never more
    /// than `interval`, so at most one probe per destination is outstanding.
    pub timeout: Duration,
    /// Consecutive failed probes that mark a destination inactive; 1..=100.
    pub inactive_threshold: u32,
    /// Consecutive good probes that bring it back; 1..=100.
    pub active_threshold: u32,
    /// Final codes that count as alive; empty means any final response.
    pub alive_codes: Vec<CodeRange>,
    /// Line of the `[edge.probe]` header; 0 when the edge has none.
    pub line: usize,
}

impl Default for Probe {
    /// The documented defaults: every 10 s, 2 s timeout, down after 3
    /// failures, back after 1 success, any final response is alive.
    fn default() -> Self {
        Probe {
            enabled: true,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            inactive_threshold: 3,
            active_threshold: 1,
            alive_codes: Vec::new(),
            line: 0,
        }
    }
}

impl Probe {
    /// Whether a reply with status `code` shows the destination alive: a
    /// final response (200..=699) that `alive_codes` allows. Provisional
    /// responses never count; a probe waits for the final one.
    pub fn is_alive(&self, code: u16) -> bool {
        (200..=699).contains(&code)
            && (self.alive_codes.is_empty() || self.alive_codes.iter().any(|r| r.contains(code)))
    }
}

/// What an edge does with a message that fails its `validate` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// A request gets 400 with the failed check as reason phrase; a
    /// response or an ACK is dropped (they are never answered).
    #[default]
    Reject,
    /// The message goes on with an `X-Validate-Fail: <check>` header, for
    /// a server that decides itself.
    Tag,
}

/// What an edge does with an in-dialog request from outside the pool
/// whose next hop (the Route after the edge's own, else the Request-URI)
/// names a host that is neither the edge nor a destination. Either way the
/// edge never sends it to that host: it is not an open relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForeignNextHop {
    /// Into the pool by the edge's algorithm, whose servers own the
    /// dialog: a server whose Contact or Record-Route is not its configured
    /// address (a public IP, another port) still gets its BYEs, and the
    /// RFC 4475/5118 requests that a proxy must forward are forwarded. The
    /// request goes as it is, Route entries included, and the server
    /// decides, as it does for a new request naming a foreign host.
    #[default]
    Dispatch,
    /// 403 Relaying Denied (an ACK, never answered, still follows its
    /// INVITE into the pool: the ACK of a non-2xx answer repeats the
    /// INVITE's Request-URI and Route): for operators who want a stray
    /// in-dialog request stopped at the edge.
    Refuse,
}

/// What an edge does to the messages it sends in one direction: the seeds'
/// "Compaction and Compression", against UDP fragmentation (RFC 3261
/// §18.1.1) and for bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coding {
    /// Header names rewritten to their compact forms (RFC 3261 §7.3.3).
    pub compact: bool,
    /// What happens to message bodies.
    pub body: BodyCoding,
}

impl Coding {
    /// True when the direction changes nothing.
    pub fn is_identity(&self) -> bool {
        !self.compact && self.body == BodyCoding::Keep
    }
}

/// What a direction does to message bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyCoding {
    /// Bodies pass as they are.
    #[default]
    Keep,
    /// Bodies are compressed (zlib format, `Content-Encoding: deflate`).
    Deflate,
    /// Bodies are compressed (`Content-Encoding: gzip`).
    Gzip,
    /// A deflate or gzip body is decompressed and its Content-Encoding
    /// removed, for a peer that does not read compressed bodies.
    Decompress,
}

impl BodyCoding {
    /// The name used in config files (and as the Content-Encoding token).
    pub fn name(self) -> &'static str {
        match self {
            BodyCoding::Keep => "keep",
            BodyCoding::Deflate => "deflate",
            BodyCoding::Gzip => "gzip",
            BodyCoding::Decompress => "decompress",
        }
    }
}

/// How many new calls an edge takes on this node (`cps`, `channels`), and
/// where a call beyond that goes (`capacity_failover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// New calls (initial INVITEs) per second, with a burst of one second's
    /// worth; `None`: no limit.
    pub cps: Option<u32>,
    /// Calls in progress (answered, not yet ended by a BYE); `None`: no limit.
    pub channels: Option<u32>,
    /// Other nodes' SIP URIs for this edge: a call beyond capacity (of the
    /// edge, or of every destination) is redirected to one of them with a
    /// 302 instead of refused with 503 (the seeds' "Capacity Failover").
    pub failover: Vec<String>,
    /// The line of a `"cluster"` entry among them, if any: the other live
    /// nodes Redis lists join the URIs, each at the address it offers for
    /// this edge (see [`Edge::own_uris`]), so that no node's config has to
    /// name the others.
    pub failover_cluster: Option<usize>,
    /// What a call beyond capacity gets when it is not redirected
    /// (`capacity_code`, default 503): some carriers want 486 or 480 from
    /// an edge, so that their own routing tries the next carrier.
    /// Retry-After goes with it where RFC 3261 §20.33 allows it.
    pub code: u16,
    /// A call whose BYE never passed this node is forgotten this long
    /// after its answer (default 4 h).
    pub max_call_duration: Duration,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            cps: None,
            channels: None,
            failover: Vec::new(),
            failover_cluster: None,
            code: 503,
            max_call_duration: Duration::from_secs(4 * 3600),
        }
    }
}

/// The built-in registrar's settings (`[edge.registrar]`, with
/// `flags = ["registrations"]`): who may register, how long bindings
/// last, and how the NAT bindings of registered phones are kept open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registrar {
    /// The sources whose REGISTERs are taken (`allow`, networks or
    /// addresses; required: the registrar does not authenticate, the
    /// sources the operator trusts do — others get 403).
    pub allow: Vec<ipnet::IpNet>,
    /// The domains whose addresses of record it keeps (`domains`, host
    /// names or addresses, lower-cased): a REGISTER for another gets 404,
    /// and the pool's requests to another are not looked up (RFC 3261
    /// §10.3 steps 3 and 5). Empty (the default): any domain.
    pub domains: Vec<String>,
    /// Shorter registrations get 423 Interval Too Brief (`min_expires`,
    /// default 60 s, RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Longer ones are shortened to this (`max_expires`, default 3600 s).
    pub max_expires: u32,
    /// A contact asking no expiry gets this (`default_expires`, default
    /// 3600 s, RFC 3261 §10.2.1.1).
    pub default_expires: u32,
    /// Contacts kept per address of record (`max_contacts`, default 10);
    /// a REGISTER that would keep more gets 403.
    pub max_contacts: usize,
    /// Seconds between keepalives to each registered contact
    /// (`keepalive_interval`, default 30; 0 turns them off: the seeds'
    /// "Disable UAC Ping").
    pub keepalive_interval: u32,
    /// What a keepalive is (`keepalive`): an OPTIONS request, which the
    /// phone answers, or a CRLF pair (RFC 5626 §3.5.1), which it does not.
    pub keepalive: Keepalive,
    /// Unanswered OPTIONS keepalives in a row after which a binding is
    /// removed (`keepalive_failures`, default 3).
    pub keepalive_failures: u32,
    /// Line of the `[edge.registrar]` header; 0 when the edge has none.
    pub line: usize,
}

/// What the built-in registrar sends to keep a phone's NAT binding open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    /// An OPTIONS request: its answer proves the phone is there, and a
    /// binding whose phone stops answering is removed.
    Options,
    /// A CRLF pair: four bytes, no answer counted; the binding lasts until
    /// it expires (or its connection closes).
    Crlf,
}

/// The transaction-stateful mode's settings (`[edge.transaction]`): RFC 3261
/// timer bases and when to give up on a destination and try the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// T1, T2 and T4 (default 0.5 s, 4 s, 5 s), and how long a finished
    /// transaction lingers (default 5 s).
    pub timers: crate::transaction::Timers,
    /// Final codes on which the next destination is tried (default 408,
    /// 480, 500, 502, 503, 504). Never 6xx: a global failure ends the
    /// search (RFC 3261 §16.7), and never 1xx or 2xx.
    pub failover_codes: Vec<CodeRange>,
    /// No provisional reply from a destination within this time: give up
    /// on it and try the next (default 2 s).
    pub failover_timeout: Duration,
    /// Timer C (RFC 3261 §16.6 step 11): a ringing INVITE with no final
    /// answer within this time is cancelled and counts as a 408 (default
    /// 180 s).
    pub invite_timeout: Duration,
    /// Transactions kept at once; beyond this a new request is forwarded
    /// statelessly (no failover) rather than refused. Bounds the memory.
    pub max_transactions: usize,
    /// Line of the `[edge.transaction]` header; 0 when the edge has none.
    pub line: usize,
}

impl Default for Transaction {
    fn default() -> Self {
        let code = |c| CodeRange { lo: c, hi: c };
        Transaction {
            timers: crate::transaction::Timers::default(),
            failover_codes: [408, 480, 500, 502, 503, 504].map(code).to_vec(),
            failover_timeout: Duration::from_secs(2),
            invite_timeout: Duration::from_secs(180),
            max_transactions: 100_000,
            line: 0,
        }
    }
}

impl Transaction {
    /// Whether a final response with status `code` moves the request on to
    /// the next destination.
    pub fn fails_over(&self, code: u16) -> bool {
        self.failover_codes.iter().any(|r| r.contains(code))
    }
}

/// An inclusive range of SIP status codes, as written in `alive_codes`:
/// `"2xx"` is 200..=299, `"404"` is 404..=404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRange {
    /// Lowest code in the range.
    pub lo: u16,
    /// Highest code in the range.
    pub hi: u16,
}

impl CodeRange {
    /// Whether `code` is in the range.
    pub fn contains(&self, code: u16) -> bool {
        (self.lo..=self.hi).contains(&code)
    }
}

impl fmt::Display for CodeRange {
    /// Back in the config file's spelling: `2xx` or `404`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else if self.lo.is_multiple_of(100) && self.hi == self.lo + 99 {
            write!(f, "{}xx", self.lo / 100)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// One listen address of an edge (`"udp:127.0.0.1:5060"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The transport to accept on this address.
    pub transport: Transport,
    /// The local socket address to bind.
    pub addr: SocketAddr,
    /// Line of the entry in the file, for bind errors at start.
    pub line: usize,
}

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// SIP over UDP (RFC 3261 §18).
    Udp,
    /// SIP over TCP (RFC 3261 §18).
    Tcp,
    /// SIP over TLS over TCP (RFC 3261 §26.2).
    Tls,
    /// SIP over WebSocket (RFC 7118).
    Ws,
    /// SIP over secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// Every transport, in order.
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// The transport `name` names, in any case (config files, the
    /// `transport` URI parameter, RFC 3261 §19.1.1, and Via's `UDP`).
    pub fn from_name(name: &[u8]) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The lowercase name used in config files and in `;transport=`.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// The port a URI without one implies: 5061 for TLS, else 5060 (RFC
    /// 3261 §19.1.2); 80 and 443 for WebSocket (RFC 7118 §5.1).
    pub fn default_port(&self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
            Transport::Ws => 80,
            Transport::Wss => 443,
        }
    }

    /// Whether it is encrypted (TLS, secure WebSocket).
    pub fn is_secure(&self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an edge inserts itself into the path of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Insertion {
    /// Forward without keeping any state: every routing choice is a pure
    /// function of the message, so any instance can handle any packet.
    Stateless,
    /// Keep short-lived per-transaction state (retransmissions, failover on
    /// error responses, CANCEL handling) for the seconds a transaction lives.
    Transactional,
}

impl Insertion {
    /// The name used in config files (`insertion = "…"`).
    pub fn name(&self) -> &'static str {
        match self {
            Insertion::Stateless => "stateless",
            Insertion::Transactional => "transactional",
        }
    }
}

impl fmt::Display for Insertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A host with an optional port, as written into SIP headers.
///
/// `host` is an IPv4 literal, an IPv6 literal *without* brackets, or a DNS
/// name; [`Display`](fmt::Display) adds the brackets an IPv6 literal needs
/// in a SIP header: `[::1]:5060`, `1.2.3.4`, `example.com:5070`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host, IPv6 literals without brackets.
    pub host: String,
    /// The port; `None` means the transport's default port.
    pub port: Option<u16>,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// One server an edge dispatches to (`[[edge.destination]]`, or one of
/// the servers its DNS name leads to: see `named_by`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URI exactly as written in the file, for logs and the dashboard
    /// (for a server found by DNS, its own: see `named_by`). Its identity
    /// across reloads and DNS refreshes.
    pub uri: String,
    /// Where requests are sent: looked up when the file is loaded and
    /// again when the records' TTL runs out, never per request.
    pub addr: SocketAddr,
    /// Transport to the destination: `;transport=`, else UDP (TLS for `sips:`).
    pub transport: Transport,
    /// Share of new requests, 1..=50; with weighted round-robin it is the
    /// number of consecutive picks before moving to the next destination.
    pub weight: u32,
    /// Preference order: a LOWER number is tried FIRST (like DNS SRV
    /// priority, unlike Kamailio's dispatcher where higher wins). Default 0.
    pub priority: i32,
    /// The zone this destination lives in.
    pub zone: Option<String>,
    /// Node zones allowed to use this destination; empty means all zones.
    pub limit_zones: Vec<String>,
    /// Node zones that use this destination as their tier 2 (backup).
    pub backup_zones: Vec<String>,
    /// New calls per second this server takes from this node; beyond it
    /// the next destination gets the call. `None`: no limit.
    pub cps: Option<u32>,
    /// Calls in progress this server takes from this node. `None`: no limit.
    pub channels: Option<u32>,
    /// How a TLS destination is connected to; `None` on other transports.
    pub tls: Option<super::tls::TlsClient>,
    /// The stream transport (TCP or TLS) a request too large for a UDP
    /// datagram goes over instead (`transports = ["udp", "tcp"]`); `None`:
    /// every request goes over `transport`.
    pub large: Option<Transport>,
    /// For a server a destination's DNS name led to (an SRV target, or
    /// one of several addresses), that destination's URI as written;
    /// `uri` is then the server's own (`sip:TARGET:PORT`). `None` for a
    /// destination given as one server.
    pub named_by: Option<String>,
    /// Its backup rank among the servers of its name (see
    /// [`crate::dispatch::Target::rank`]); 0 otherwise.
    pub rank: u8,
    /// Line of the `[[edge.destination]]` header, for messages about it.
    pub line: usize,
}
