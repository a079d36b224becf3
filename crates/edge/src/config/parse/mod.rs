//! TOML text → [`Config`], with every error pinned to file, line and key.
//!
//! The file is read into toml's spanned document tree ([`DeTable`]) and
//! walked by hand rather than through serde derives: every key and value
//! keeps its byte span, so each error — unknown key, wrong type, value out of
//! range, missing key — names the exact line and key without having to be
//! reverse-engineered from a serde message.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

mod capacity;
mod codes;
mod coding;
mod peer;
mod probe;
mod registrar;
mod tls;
mod transaction;

use capacity::{capacity, limit};
use coding::{coding, compact_keep, validation};
use peer::peers;
use probe::probe;
use registrar::registrar;
use transaction::transaction;

use super::addr;
use super::error::ConfigError;
use super::model::{
    Admin, Cluster, Config, Connections, Destination, Edge, ForeignNextHop, Insertion, Listen,
    Node, Probe, Transaction, Transport,
};
use super::unsupported::{not_supported_yet, Contract, NOT_SUPPORTED};
use crate::dispatch::Algorithm;

type Value<'i> = Spanned<DeValue<'i>>;
type Result<T> = std::result::Result<T, ConfigError>;

/// Keys of the top-level table that this version implements.
const TOP_KEYS: &[&str] = &[
    "node",
    "admin",
    "connections",
    "edge",
    "cluster",
    "apiban",
    "hep",
    "records",
];
/// Keys of `[records]`.
const RECORDS_KEYS: &[&str] = &["file", "rotate_size", "rotate_interval", "queue"];
/// Keys of `[hep]`.
const HEP_KEYS: &[&str] = &["server", "capture_id", "password", "queue"];
/// Keys of `[apiban]`.
const APIBAN_KEYS: &[&str] = &["key_file", "url", "interval", "ban_time"];
/// Keys of `[node]`.
const NODE_KEYS: &[&str] = &[
    "id",
    "zone",
    "secret",
    "previous_secrets",
    "public_address",
    "workers",
    "dns",
];
/// Keys of `[admin]`.
const ADMIN_KEYS: &[&str] = &["listen", "token_file", "user", "password_file"];
/// Keys of `[cluster]` that this version implements.
const CLUSTER_KEYS: &[&str] = &["listen", "peers", "redis", "redis_cluster", "redis_ca"];
/// Keys of `[connections]`.
const CONNECTION_KEYS: &[&str] = &[
    "max",
    "max_per_source",
    "max_message",
    "header_timeout",
    "idle_timeout",
    "connect_timeout",
    "keepalive",
];
/// Keys of `[[edge]]` that this version implements.
const EDGE_KEYS: &[&str] = &[
    "name",
    "listen",
    "advertise",
    "stun",
    "stun_interval",
    "algorithm",
    "insertion",
    "flags",
    "primary_attempts",
    "secondary_attempts",
    "destination",
    "probe",
    "transaction",
    "cps",
    "channels",
    "capacity_failover",
    "capacity_code",
    "max_call_duration",
    "compress_in",
    "compress_out",
    "compact_keep",
    "validate",
    "on_invalid",
    "foreign_next_hop",
    "domain",
    "tls_ca",
    "client_cert_header",
    "outbound_from",
    "nat_test",
    "nat_sdp",
    "topology_hiding",
    "registrar",
    "allow",
    "deny",
    "restrict",
    "user_agent_deny",
    "flood_threshold",
    "flood_window",
    "ban_time",
    "hep",
    "hep_sample",
    "records",
    "peer",
];
/// Keys of `[[edge.destination]]`.
const DESTINATION_KEYS: &[&str] = &[
    "uri",
    "weight",
    "priority",
    "zone",
    "limit_zones",
    "backup_zones",
    "cps",
    "channels",
    "transports",
    "ca",
    "server_name",
    "client_cert",
    "client_key",
];
/// Every flag the contract defines, supported or not.
const FLAGS: &[&str] = &["ping-replies", "registrations"];
/// The shortest cluster secret accepted, in bytes.
const MIN_SECRET_LEN: usize = 16;

/// Parses and validates a configuration file's text. `file` is only used in
/// error messages. Destinations must be IP literals: a host name needs a
/// resolver ([`parse_with`]).
pub fn parse(text: &str, file: &str) -> Result<Config> {
    parse_with(text, file, &LiteralsOnly)
}

/// [`parse`], with destination host names resolved by `dns`, once, so a
/// name that does not resolve is a config error at its line, at start or
/// reload, rather than a failure per request.
pub fn parse_with(text: &str, file: &str, dns: &dyn Resolve) -> Result<Config> {
    with_top(text, file, dns, |cx, top| {
        top.check_keys(TOP_KEYS, |_| None)?;
        let node = match top.get("node") {
            Some(v) => node(&cx.table(v, "node", "[node]")?)?,
            None => return Err(cx.err(0, "node", "missing required table [node]")),
        };
        let admin = admin_table(cx, top)?;
        let connections = top
            .get("connections")
            .map(|v| connections(&cx.table(v, "connections", "[connections]")?))
            .transpose()?
            .unwrap_or_default();
        let cluster = top
            .get("cluster")
            .map(|v| cluster(&cx.table(v, "cluster", "[cluster]")?))
            .transpose()?;
        let apiban = top
            .get("apiban")
            .map(|v| apiban(&cx.table(v, "apiban", "[apiban]")?))
            .transpose()?;
        let hep = top
            .get("hep")
            .map(|v| hep(&cx.table(v, "hep", "[hep]")?))
            .transpose()?;
        let records = top
            .get("records")
            .map(|v| records(&cx.table(v, "records", "[records]")?))
            .transpose()?;
        let edges = match top.get("edge") {
            Some(v) => edges(cx, v)?,
            None => return Err(cx.err(0, "edge", "at least one [[edge]] is required")),
        };
        let cfg = Config {
            node,
            admin,
            edges,
            connections,
            cluster,
            apiban,
            hep,
            records,
        };
        match cfg.unfit_failover() {
            Some((line, problem)) => Err(cx.err_line(line, "capacity_failover", problem)),
            None => Ok(cfg),
        }
    })
}

/// Only the `[admin]` table of a configuration file's text: where
/// `sipedge ctl` finds the admin API, even in a file with errors
/// elsewhere (the very file a `ctl reload` is to report on). The TOML
/// itself must parse.
pub fn admin_of(text: &str, file: &str) -> Result<Option<Admin>> {
    with_top(text, file, &LiteralsOnly, admin_table)
}

/// Only `[node] dns` of a configuration file's text: the name servers
/// the rest of the file's host names are to be looked up with, read
/// before them. Errors as [`parse`] gives them for `[node]`.
pub fn dns_of(text: &str, file: &str) -> Result<Vec<SocketAddr>> {
    with_top(text, file, &LiteralsOnly, |cx, top| match top.get("node") {
        Some(v) => node(&cx.table(v, "node", "[node]")?).map(|n| n.dns),
        None => Ok(Vec::new()),
    })
}

/// Parses `text` as TOML and hands its top-level table to `read`.
fn with_top<T>(
    text: &str,
    file: &str,
    dns: &dyn Resolve,
    read: impl FnOnce(&Cx<'_>, &Table<'_, '_>) -> Result<T>,
) -> Result<T> {
    let cx = Cx {
        text,
        file,
        newlines: memchr::memchr_iter(b'\n', text.as_bytes()).collect(),
        dns,
    };
    let doc = DeTable::parse(text).map_err(|e| cx.syntax_error(&e))?;
    let top = Table {
        cx: &cx,
        table: doc.get_ref(),
        at: 0,
        prefix: "",
    };
    read(&cx, &top)
}

/// `[admin]`, if the file has one.
fn admin_table(cx: &Cx<'_>, top: &Table<'_, '_>) -> Result<Option<Admin>> {
    top.get("admin")
        .map(|v| admin(&cx.table(v, "admin", "[admin]")?))
        .transpose()
}

/// Turns a destination's host name into servers. Looking a name up is
/// I/O, which this crate does not do: the daemon passes its resolver.
pub trait Resolve {
    /// The address of `host`, or why there is none (a config error at the
    /// destination's line).
    fn resolve(&self, host: &str) -> std::result::Result<std::net::IpAddr, String>;

    /// The servers RFC 3263 finds for a destination URI whose host is a
    /// name: `key` is the URI's query
    /// ([`crate::outbound::Query::write_key`]); `port` and `transport`
    /// are what a server found by its address alone takes. The default
    /// knows addresses only: the one [`Resolve::resolve`] gives.
    fn locate(
        &self,
        key: &str,
        host: &str,
        port: u16,
        transport: Transport,
    ) -> std::result::Result<Vec<crate::outbound::Target>, String> {
        let _ = key;
        let ip = self.resolve(host)?;
        Ok(vec![crate::outbound::Target {
            priority: 0,
            weight: 1,
            id: 0,
            host: host.into(),
            transport,
            addr: SocketAddr::new(ip, port),
        }])
    }
}

/// A resolver that knows no names: IP literals only.
pub struct LiteralsOnly;

impl Resolve for LiteralsOnly {
    fn resolve(&self, host: &str) -> std::result::Result<std::net::IpAddr, String> {
        Err(format!(
            "host name {host:?} needs a resolver (give an IP address)"
        ))
    }
}

/// Reads `[node]`.
fn node(t: &Table<'_, '_>) -> Result<Node> {
    t.check_keys(NODE_KEYS, |_| None)?;
    let id = t.required_str("id", "a non-empty name for this node")?;
    let zone = t.opt_name("zone")?;
    let secret = match t.get("secret") {
        Some(v) => Some(long_secret(
            t,
            t.cx.string(v, "secret")?,
            v.span().start,
            "secret",
        )?),
        None => None,
    };
    let previous_secrets = match t.get("previous_secrets") {
        Some(v) => {
            if secret.is_none() {
                return Err(t.cx.err(
                    v.span().start,
                    "previous_secrets",
                    "needs `secret`: the secret new messages are signed with",
                ));
            }
            t.cx.string_array(v, "previous_secrets")?
                .into_iter()
                .map(|(s, at)| long_secret(t, s, at, "previous_secrets"))
                .collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    let public_address = match t.get("public_address") {
        Some(v) => {
            let s = t.cx.string(v, "public_address")?;
            addr::host_port(s).map_err(|m| t.cx.err(v.span().start, "public_address", m))?;
            Some(s.to_owned())
        }
        None => None,
    };
    let workers = t
        .get("workers")
        .map(|v| t.cx.int(v, "workers", 1, 256))
        .transpose()?
        .map(|n| n as usize);
    let dns = match t.get("dns") {
        Some(v) => t
            .cx
            .string_array(v, "dns")?
            .into_iter()
            .map(|(s, at)| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        t.cx.err(
                            at,
                            "dns",
                            format!("{s:?} is not a name server address (\"IP\" or \"IP:PORT\")"),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    Ok(Node {
        id: id.to_owned(),
        zone,
        secret,
        previous_secrets,
        public_address,
        workers,
        dns,
    })
}

/// One cluster secret, long enough (never echoed into an error: it would
/// end up in logs).
fn long_secret(t: &Table<'_, '_>, s: &str, at: usize, key: &str) -> Result<String> {
    if s.len() < MIN_SECRET_LEN {
        return Err(t.cx.err(
            at,
            key,
            format!(
                "must be at least {MIN_SECRET_LEN} bytes long (got {}); \
                 every node of the cluster must use the same secret",
                s.len()
            ),
        ));
    }
    Ok(s.to_owned())
}

/// Reads `[cluster]`: this node's link address, and the other nodes'.
fn cluster(t: &Table<'_, '_>) -> Result<Cluster> {
    t.check_keys(CLUSTER_KEYS, |_| None)?;
    let address = |s: &str, at: usize, key: &str| {
        s.parse::<SocketAddr>()
            .ok()
            .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
            .ok_or_else(|| {
                t.cx.err(
                    at,
                    key,
                    format!(
                        "{s:?} is not this node's own IP address with port, e.g. \"10.0.0.1:5070\""
                    ),
                )
            })
    };
    let redis = redis(t)?;
    let listen = match (t.get("listen"), &redis, t.get("peers")) {
        (None, Some(_), None) => None,
        (None, None, _) | (None, _, Some(_)) => {
            let what = "this node's own address on the node-to-node link, e.g. \"10.0.0.1:5070\"";
            t.required("listen", what)?;
            None
        }
        (Some(v), _, _) => Some(address(
            t.cx.string(v, "listen")?,
            v.span().start,
            "listen",
        )?),
    };
    let mut peers: Vec<SocketAddr> = Vec::new();
    if let Some(v) = t.get("peers") {
        for (s, at) in t.cx.string_array(v, "peers")? {
            let a = address(s, at, "peers")?;
            if Some(a) == listen || peers.contains(&a) {
                return Err(t.cx.err(
                    at,
                    "peers",
                    format!("{s:?} is listed twice (or is `listen`)"),
                ));
            }
            peers.push(a);
        }
    }
    let redis_ca = match t.get("redis_ca") {
        None => None,
        Some(v) => {
            let tls = match &redis {
                Some(crate::config::model::Redis::Server(u)) => u.starts_with("rediss://"),
                Some(crate::config::model::Redis::Cluster(us)) => {
                    us.iter().all(|u| u.starts_with("rediss://"))
                }
                None => false,
            };
            if !tls {
                return Err(t.cx.err(
                    v.span().start,
                    "redis_ca",
                    "only used with a rediss:// Redis: use rediss:// or remove it",
                ));
            }
            Some(std::path::PathBuf::from(t.cx.string(v, "redis_ca")?))
        }
    };
    Ok(Cluster {
        listen,
        peers,
        redis,
        redis_ca,
    })
}

/// Reads `redis` (one server) or `redis_cluster` (seed nodes of a Redis
/// Cluster): `redis://` or `rediss://` URLs.
fn redis(t: &Table<'_, '_>) -> Result<Option<crate::config::model::Redis>> {
    use crate::config::model::Redis;
    let url = |s: &str, at: usize, key: &str| {
        let ok = ["redis://", "rediss://"]
            .iter()
            .any(|p| s.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
        if ok {
            Ok(s.to_owned())
        } else {
            Err(t.cx.err(
                at,
                key,
                format!("{s:?} is not a redis:// or rediss:// URL, e.g. \"redis://10.0.0.5:6379\""),
            ))
        }
    };
    match (t.get("redis"), t.get("redis_cluster")) {
        (Some(_), Some(v)) => Err(t.cx.err(
            v.span().start,
            "redis_cluster",
            "give either redis (one server) or redis_cluster (a Redis Cluster's nodes), not both",
        )),
        (Some(v), None) => {
            let s = t.cx.string(v, "redis")?;
            Ok(Some(Redis::Server(url(s, v.span().start, "redis")?)))
        }
        (None, Some(v)) => {
            let seeds =
                t.cx.string_array(v, "redis_cluster")?
                    .into_iter()
                    .map(|(s, at)| url(s, at, "redis_cluster"))
                    .collect::<Result<Vec<_>>>()?;
            if seeds.is_empty() {
                return Err(t.cx.err(
                    v.span().start,
                    "redis_cluster",
                    "list at least one node of the Redis Cluster",
                ));
            }
            Ok(Some(Redis::Cluster(seeds)))
        }
        (None, None) => Ok(None),
    }
}

/// Reads `[hep]`: the server is required, the rest has defaults.
fn hep(t: &Table<'_, '_>) -> Result<crate::config::model::Hep> {
    t.check_keys(HEP_KEYS, |_| None)?;
    let v = t.required("server", "the capture server, e.g. \"udp:10.0.0.9:9060\"")?;
    let s = t.cx.string(v, "server")?;
    let parsed = match s.split_once(':') {
        Some(("udp", rest)) => rest.parse().ok().map(|a| (Transport::Udp, a)),
        Some(("tcp", rest)) => rest.parse().ok().map(|a| (Transport::Tcp, a)),
        _ => None,
    };
    let Some((transport, server)) = parsed else {
        return Err(t.cx.err(
            v.span().start,
            "server",
            format!(
                "{s:?} is not udp: or tcp: with an IP address and port, e.g. \"udp:10.0.0.9:9060\""
            ),
        ));
    };
    Ok(crate::config::model::Hep {
        transport,
        server,
        capture_id: match t.get("capture_id") {
            Some(v) => t.cx.int(v, "capture_id", 0, i64::from(u32::MAX))? as u32,
            None => 1,
        },
        password: t
            .get("password")
            .map(|v| t.cx.string(v, "password").map(str::to_owned))
            .transpose()?,
        queue: match t.get("queue") {
            Some(v) => t.cx.int(v, "queue", 1, 1_000_000)? as usize,
            None => 10_000,
        },
    })
}

/// Reads `[records]`: the file is required (`"-"`: stdout), the rest has
/// defaults (no rotation).
fn records(t: &Table<'_, '_>) -> Result<crate::config::model::Records> {
    t.check_keys(RECORDS_KEYS, |_| None)?;
    let v = t.required(
        "file",
        "where call records go, e.g. \"/var/log/sipedge/calls.jsonl\" (\"-\": stdout)",
    )?;
    let file = t.cx.string(v, "file")?;
    if file.is_empty() {
        return Err(t
            .cx
            .err(v.span().start, "file", "give a path, or \"-\" for stdout"));
    }
    let rotate_size = match t.get("rotate_size") {
        Some(v) => Some(t.cx.int(v, "rotate_size", 4096, i64::MAX)? as u64),
        None => None,
    };
    let rotate_interval = match t.get("rotate_interval") {
        Some(v) => {
            Some(std::time::Duration::from_secs(
                t.cx.int(v, "rotate_interval", 60, 366 * 86_400)? as u64,
            ))
        }
        None => None,
    };
    Ok(crate::config::model::Records {
        file: (file != "-").then(|| std::path::PathBuf::from(file)),
        rotate_size,
        rotate_interval,
        queue: match t.get("queue") {
            Some(v) => t.cx.int(v, "queue", 1, 1_000_000)? as usize,
            None => 10_000,
        },
    })
}

/// Reads `[apiban]`: the key's file is required, the rest has defaults.
fn apiban(t: &Table<'_, '_>) -> Result<crate::config::model::Apiban> {
    t.check_keys(APIBAN_KEYS, |_| None)?;
    let key_file = t.required(
        "key_file",
        "the file holding the APIBAN key, e.g. \"/etc/sipedge/apiban.key\"",
    )?;
    let key_file = std::path::PathBuf::from(t.cx.string(key_file, "key_file")?);
    let url = match t.get("url") {
        Some(v) => {
            let s = t.cx.string(v, "url")?.trim_end_matches('/');
            if !(s.starts_with("https://") || s.starts_with("http://")) {
                return Err(t.cx.err(
                    v.span().start,
                    "url",
                    format!("{s:?} is not an http(s) URL, e.g. \"https://apiban.org/api\""),
                ));
            }
            s.to_owned()
        }
        None => "https://apiban.org/api".to_owned(),
    };
    let secs = |key: &str, lo: f64, hi: f64, default: u64| {
        t.get(key).map_or(Ok(Duration::from_secs(default)), |v| {
            t.cx.seconds(v, key, lo, hi)
        })
    };
    Ok(crate::config::model::Apiban {
        key_file,
        url,
        interval: secs("interval", 1.0, 86_400.0, 300)?,
        ban_time: secs("ban_time", 60.0, 30.0 * 86_400.0, 7 * 86_400)?,
    })
}

/// Reads `[admin]`.
fn admin(t: &Table<'_, '_>) -> Result<Admin> {
    t.check_keys(ADMIN_KEYS, |_| None)?;
    let listen = t.required("listen", "the admin HTTP address, e.g. \"127.0.0.1:8080\"")?;
    let s = t.cx.string(listen, "listen")?;
    let addr = s.parse::<SocketAddr>().map_err(|_| {
        t.cx.err(
            listen.span().start,
            "listen",
            format!("{s:?} is not an IP address with port, e.g. \"127.0.0.1:8080\""),
        )
    })?;
    let token_file = match t.get("token_file") {
        Some(_) => Some(tls::path(
            t,
            "token_file",
            "a file holding the API's bearer token",
        )?),
        None => None,
    };
    let basic = match (t.get("user"), t.get("password_file")) {
        (None, None) => None,
        (Some(u), Some(_)) => {
            let user = t.cx.string(u, "user")?;
            if user.is_empty() || user.contains(':') {
                return Err(t.cx.err(
                    u.span().start,
                    "user",
                    "must be a name without ':' (HTTP basic authentication)",
                ));
            }
            let file = tls::path(t, "password_file", "a file holding the user's password")?;
            Some((user.to_owned(), file))
        }
        (Some(v), None) | (None, Some(v)) => {
            let key = if t.get("user").is_some() {
                "user"
            } else {
                "password_file"
            };
            return Err(t.cx.err(
                v.span().start,
                key,
                "user and password_file go together (HTTP basic authentication)",
            ));
        }
    };
    Ok(Admin {
        listen: addr,
        token_file,
        basic,
    })
}

/// Reads `[connections]`: every key optional, each with its default.
fn connections(t: &Table<'_, '_>) -> Result<Connections> {
    t.check_keys(CONNECTION_KEYS, |_| None)?;
    let d = Connections::default();
    let count = |key: &str, lo: i64, hi: i64, default: usize| {
        t.get(key).map_or(Ok(default), |v| {
            t.cx.int(v, key, lo, hi).map(|n| n as usize)
        })
    };
    let secs = |key: &str, lo: f64, hi: f64, default: Duration| {
        t.get(key)
            .map_or(Ok(default), |v| t.cx.seconds(v, key, lo, hi))
    };
    Ok(Connections {
        max: count("max", 1, 1_000_000, d.max)?,
        max_per_source: count("max_per_source", 1, 1_000_000, d.max_per_source)?,
        // What the pipeline forwards is bounded by the largest datagram.
        max_message: count("max_message", 1024, 65_507, d.max_message)?,
        header_timeout: secs("header_timeout", 0.1, 300.0, d.header_timeout)?,
        idle_timeout: secs("idle_timeout", 1.0, 86_400.0, d.idle_timeout)?,
        connect_timeout: secs("connect_timeout", 0.1, 60.0, d.connect_timeout)?,
        keepalive: secs("keepalive", 1.0, 7_200.0, d.keepalive)?,
    })
}

/// A listen address already taken, for the overlap check across edges.
struct Taken<'a> {
    listen: Listen,
    edge: &'a str,
}

/// Reads every `[[edge]]` and checks what must hold across edges.
fn edges(cx: &Cx<'_>, v: &Value<'_>) -> Result<Vec<Edge>> {
    let items = match v.get_ref() {
        DeValue::Array(items) if !items.is_empty() => items,
        DeValue::Array(_) => {
            return Err(cx.err(v.span().start, "edge", "at least one [[edge]] is required"))
        }
        other => {
            return Err(cx.err(
                v.span().start,
                "edge",
                format!(
                    "expected [[edge]] tables (double brackets), found {}",
                    describe(other)
                ),
            ))
        }
    };
    let mut edges: Vec<Edge> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let t = cx.table(item, "edge", "[[edge]]")?;
        let e = edge(&t, i + 1)?;
        // Names label logs and metrics: two edges must not share one.
        if let Some(other) = edges.iter().find(|o| o.name == e.name) {
            return Err(cx.err_line(
                e.line,
                "name",
                format!(
                    "edge name {:?} is already used by the edge at line {}",
                    e.name, other.line
                ),
            ));
        }
        edges.push(e);
    }

    // The listen address is what picks the edge a packet belongs to, so no
    // two entries may bind the same socket.
    let mut taken: Vec<Taken<'_>> = Vec::new();
    for e in &edges {
        for l in &e.listen {
            if let Some(other) = taken.iter().find(|o| conflicts(&o.listen, l)) {
                let (this, that) = (
                    format!("{}:{}", l.transport, l.addr),
                    format!("{}:{}", other.listen.transport, other.listen.addr),
                );
                let what = if this == that {
                    "is already used by".to_owned()
                } else {
                    format!("overlaps with {that} of")
                };
                return Err(cx.err_line(
                    l.line,
                    "listen",
                    format!(
                        "{this} {what} edge {:?} (line {})",
                        other.edge, other.listen.line
                    ),
                ));
            }
            taken.push(Taken {
                listen: l.clone(),
                edge: &e.name,
            });
        }
    }
    Ok(edges)
}

/// Whether two listen entries would fight over one socket: same kind of
/// socket (UDP, or TCP for both tcp and tls), same port, and the same address
/// or a wildcard of the same family. Port 0 (any free port) never conflicts.
fn conflicts(a: &Listen, b: &Listen) -> bool {
    let stream = |t: Transport| t != Transport::Udp;
    stream(a.transport) == stream(b.transport)
        && a.addr.port() == b.addr.port()
        && a.addr.port() != 0
        && a.addr.is_ipv4() == b.addr.is_ipv4()
        && (a.addr.ip() == b.addr.ip()
            || a.addr.ip().is_unspecified()
            || b.addr.ip().is_unspecified())
}

/// Reads one `[[edge]]`; `index` is its 1-based position, for the default name.
fn edge(t: &Table<'_, '_>, index: usize) -> Result<Edge> {
    let cx = t.cx;
    t.check_keys(EDGE_KEYS, |_| None)?;
    let name = match t.get("name") {
        Some(v) => {
            let s = cx.string(v, "name")?;
            if s.is_empty() {
                return Err(cx.err(v.span().start, "name", "must not be empty"));
            }
            s.to_owned()
        }
        None => format!("edge-{index}"),
    };

    let listen_value = t.required(
        "listen",
        "a list of listen addresses, e.g. listen = [\"udp:127.0.0.1:5060\"]",
    )?;
    let entries = cx.string_array(listen_value, "listen")?;
    if entries.is_empty() {
        return Err(cx.err(
            listen_value.span().start,
            "listen",
            "at least one listen address is required, e.g. [\"udp:127.0.0.1:5060\"]",
        ));
    }
    let mut listen = Vec::with_capacity(entries.len());
    for (entry, at) in entries {
        let (transport, addr) = addr::listen(entry).map_err(|m| cx.err(at, "listen", m))?;
        listen.push(Listen {
            transport,
            addr,
            line: cx.line(at),
        });
    }

    let advertise = match t.get("advertise") {
        Some(v) => {
            let s = cx.string(v, "advertise")?;
            Some(addr::host_port(s).map_err(|m| cx.err(v.span().start, "advertise", m))?)
        }
        None => None,
    };
    let stun = stun(cx, t)?;
    if advertise.is_none() && stun.is_none() {
        if let Some(w) = listen.iter().find(|l| l.addr.ip().is_unspecified()) {
            return Err(cx.err_line(
                w.line,
                "advertise",
                format!(
                    "required because listen address {}:{} is a wildcard: set advertise = \
                     \"host[:port]\" to the address peers should send to (written into Via \
                     and Record-Route), or stun = [\"server\"] to ask it",
                    w.transport, w.addr
                ),
            ));
        }
    }

    let algorithm = match t.get("algorithm") {
        Some(v) => {
            let s = cx.string(v, "algorithm")?;
            s.parse::<Algorithm>().map_err(|_| {
                let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                cx.err(
                    v.span().start,
                    "algorithm",
                    format!(
                        "unknown algorithm {s:?} (expected one of: {})",
                        names.join(", ")
                    ),
                )
            })?
        }
        None => Algorithm::WeightedRoundRobin,
    };

    let insertion = match t.get("insertion") {
        Some(v) => {
            let s = cx.string(v, "insertion")?;
            let insertion = [Insertion::Stateless, Insertion::Transactional]
                .into_iter()
                .find(|i| i.name() == s)
                .ok_or_else(|| {
                    cx.err(
                        v.span().start,
                        "insertion",
                        format!("unknown insertion {s:?} (expected stateless or transactional)"),
                    )
                })?;
            insertion
        }
        None => Insertion::Stateless,
    };

    let mut ping_replies = false;
    let mut registrations = None;
    if let Some(v) = t.get("flags") {
        for (flag, at) in cx.string_array(v, "flags")? {
            match flag {
                "ping-replies" => ping_replies = true,
                "registrations" => registrations = Some(at),
                _ => {
                    return Err(cx.err(
                        at,
                        "flags",
                        format!("unknown flag {flag:?} (known flags: {})", known_flags()),
                    ))
                }
            }
        }
    }

    let attempts = |key: &str| -> Result<u32> {
        t.get(key)
            .map_or(Ok(1), |v| cx.int(v, key, 1, 16).map(|n| n as u32))
    };
    let primary_attempts = attempts("primary_attempts")?;
    let secondary_attempts = attempts("secondary_attempts")?;

    let destinations = match t.get("destination") {
        Some(v) => match v.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .map(|item| destination(&cx.table(item, "destination", "[[edge.destination]]")?))
                .collect::<Result<Vec<Vec<_>>>>()?
                .into_iter()
                .flatten()
                .collect(),
            other => {
                return Err(cx.err(
                    v.span().start,
                    "destination",
                    format!(
                        "expected [[edge.destination]] tables (double brackets), found {}",
                        describe(other)
                    ),
                ))
            }
        },
        None => Vec::new(),
    };
    if destinations.is_empty() {
        return Err(cx.err(
            t.at,
            "destination",
            "at least one [[edge.destination]] is required",
        ));
    }

    let probe = match t.get("probe") {
        Some(v) => probe(&Table {
            prefix: "probe.",
            ..cx.table(v, "probe", "[edge.probe]")?
        })?,
        None => Probe::default(),
    };

    let domains = tls::domains(t)?;
    let tls_ca = tls::edge_ca(t)?;
    let client_cert_header = tls::client_cert_header(t, &domains)?;
    let capacity = capacity(t)?;
    let (validate, on_invalid) = validation(t)?;

    let transaction = match t.get("transaction") {
        Some(v) => {
            let tx = transaction(&Table {
                prefix: "transaction.",
                ..cx.table(v, "transaction", "[edge.transaction]")?
            })?;
            if insertion != Insertion::Transactional {
                return Err(cx.err_line(
                    tx.line,
                    "transaction",
                    "[edge.transaction] is only used with insertion = \"transactional\" \
                     (this edge is stateless): set insertion or remove the table",
                ));
            }
            tx
        }
        None => Transaction::default(),
    };

    let registrar_table = match t.get("registrar") {
        Some(v) => Some(Table {
            prefix: "registrar.",
            ..cx.table(v, "registrar", "[edge.registrar]")?
        }),
        None => None,
    };
    let registrar = match (registrations, &registrar_table) {
        (Some(at), table) => Some(registrar(cx, table.as_ref(), at)?),
        (None, Some(table)) => {
            return Err(cx.err(
                table.at,
                "registrar",
                "[edge.registrar] is only used with flags = [\"registrations\"]: \
                 add the flag or remove the table",
            ))
        }
        (None, None) => None,
    };

    let edge = Edge {
        name,
        listen,
        advertise,
        stun,
        algorithm,
        insertion,
        ping_replies,
        primary_attempts,
        secondary_attempts,
        destinations,
        probe,
        transaction,
        capacity,
        compress_in: coding(t, "compress_in")?,
        compress_out: coding(t, "compress_out")?,
        compact_keep: compact_keep(t)?,
        validate,
        on_invalid,
        foreign_next_hop: foreign_next_hop(t)?,
        domains,
        tls_ca,
        client_cert_header,
        outbound_from: outbound_from(t)?,
        nat_test: nat_test(t)?,
        nat_sdp: t
            .get("nat_sdp")
            .map(|v| t.cx.boolean(v, "nat_sdp"))
            .transpose()?
            .unwrap_or(false),
        topology_hiding: t
            .get("topology_hiding")
            .map(|v| t.cx.boolean(v, "topology_hiding"))
            .transpose()?
            .unwrap_or(false),
        registrar,
        hygiene: hygiene(t)?,
        hep: t
            .get("hep")
            .map(|v| t.cx.boolean(v, "hep"))
            .transpose()?
            .unwrap_or(true),
        hep_sample: match t.get("hep_sample") {
            Some(v) => (t.cx.fraction(v, "hep_sample")? * 10_000.0).round() as u16,
            None => 10_000,
        },
        records: t
            .get("records")
            .map(|v| t.cx.boolean(v, "records"))
            .transpose()?
            .unwrap_or(true),
        peers: peers(t)?,
        line: cx.line(t.at),
    };
    let mut edge = edge;
    if let Some((line, message)) = reachable_servers(&mut edge) {
        return Err(cx.err_line(line, "uri", message));
    }
    if let Some((line, key, message)) = edge.unfit_listener() {
        return Err(cx.err_line(line, key, message));
    }
    Ok(edge)
}

/// Leaves out the servers DNS found for a destination's name that the
/// edge cannot send to: no listen address of their transport and address
/// family (TLS without a `tls:` listener, IPv6 on an IPv4 edge). A name
/// left with none is an error at its line.
fn reachable_servers(edge: &mut Edge) -> Option<(usize, String)> {
    let listen = &edge.listen;
    let fits = |d: &Destination| {
        d.named_by.is_none()
            || listen
                .iter()
                .any(|l| l.transport == d.transport && l.addr.is_ipv4() == d.addr.is_ipv4())
    };
    let lost: Vec<(usize, String)> = edge
        .destinations
        .iter()
        .filter(|d| !fits(d))
        .filter_map(|d| d.named_by.clone().map(|n| (d.line, n)))
        .collect();
    edge.destinations.retain(|d| fits(d));
    lost.into_iter()
        .find(|(_, name)| {
            !edge
                .destinations
                .iter()
                .any(|d| d.named_by.as_ref() == Some(name))
        })
        .map(|(line, name)| {
            (
                line,
                format!(
                    "{name}: DNS names only servers this edge cannot send to (their transport \
                     or address family has no listen address here)"
                ),
            )
        })
}

/// Reads `nat_test`: test names (`["private-contact", "received"]`), or
/// the OpenSIPS `nat_uac_test` bitmask users already have (`19`).
fn nat_test(t: &Table<'_, '_>) -> Result<crate::nat::NatTests> {
    use crate::nat::{NatTest, NatTests};
    let cx = t.cx;
    let Some(v) = t.get("nat_test") else {
        return Ok(NatTests::default());
    };
    let names = || {
        NatTest::ALL
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let DeValue::Integer(_) = v.get_ref() {
        let n = cx.int(v, "nat_test", 0, 127)?;
        return u32::try_from(n)
            .ok()
            .and_then(NatTests::from_flags)
            .ok_or_else(|| cx.err(v.span().start, "nat_test", "a bitmask of 1..127"));
    }
    let mut tests = Vec::new();
    for (name, at) in cx.string_array(v, "nat_test")? {
        match NatTest::from_name(name) {
            Some(test) => tests.push(test),
            None => {
                return Err(cx.err(
                    at,
                    "nat_test",
                    format!("unknown test {name:?} (known: {})", names()),
                ))
            }
        }
    }
    Ok(NatTests::of(&tests))
}

/// Reads `allow`, `deny`, `restrict` and `user_agent_deny`.
fn hygiene(t: &Table<'_, '_>) -> Result<crate::config::model::Hygiene> {
    let cx = t.cx;
    let nets = |key: &str| match t.get(key) {
        Some(v) => networks(cx, v, key),
        None => Ok(Vec::new()),
    };
    let mut h = crate::config::model::Hygiene {
        allow: nets("allow")?,
        deny: nets("deny")?,
        restrict: t
            .get("restrict")
            .map(|v| cx.boolean(v, "restrict"))
            .transpose()?
            .unwrap_or(false),
        ..Default::default()
    };
    if let Some(v) = t.get("user_agent_deny") {
        h.user_agent_deny = cx
            .string_array(v, "user_agent_deny")?
            .into_iter()
            .map(|(s, at)| {
                if s.trim().is_empty() {
                    return Err(cx.err(
                        at,
                        "user_agent_deny",
                        "an empty pattern would match every User-Agent",
                    ));
                }
                Ok(s.to_owned())
            })
            .collect::<Result<_>>()?;
    }
    h.flood = flood(t)?;
    if h.restrict && h.allow.is_empty() {
        if let Some(v) = t.get("restrict") {
            return Err(cx.err(
                v.span().start,
                "restrict",
                "restrict = true serves only the networks in allow (and the destinations): \
                 list them in allow = [\"203.0.113.0/24\"]",
            ));
        }
    }
    Ok(h)
}

/// Reads `flood_threshold`, `flood_window` and `ban_time`: the last two
/// only with the first.
fn flood(t: &Table<'_, '_>) -> Result<Option<crate::config::model::Flood>> {
    let cx = t.cx;
    let Some(v) = t.get("flood_threshold") else {
        for key in ["flood_window", "ban_time"] {
            if let Some(v) = t.get(key) {
                return Err(cx.err(
                    v.span().start,
                    key,
                    "only used with flood_threshold: add it or remove this",
                ));
            }
        }
        return Ok(None);
    };
    let threshold = cx.int(v, "flood_threshold", 1, 10_000_000)? as u32;
    let secs = |key: &str, lo: f64, hi: f64, default: u64| {
        t.get(key).map_or(Ok(Duration::from_secs(default)), |v| {
            cx.seconds(v, key, lo, hi)
        })
    };
    Ok(Some(crate::config::model::Flood {
        threshold,
        window: secs("flood_window", 0.1, 3600.0, 2)?,
        ban_time: secs("ban_time", 1.0, 30.0 * 86_400.0, 300)?,
    }))
}

/// Reads `stun` (servers as `host[:port]`) and `stun_interval` (seconds,
/// 60 by default); `None` without `stun`.
fn stun(cx: &Cx<'_>, t: &Table<'_, '_>) -> Result<Option<crate::config::model::Stun>> {
    let interval = t.get("stun_interval");
    let Some(v) = t.get("stun") else {
        return match interval {
            Some(i) => Err(cx.err(
                i.span().start,
                "stun_interval",
                "only used with stun = [\"server\"]: add the servers or remove it",
            )),
            None => Ok(None),
        };
    };
    let servers = cx
        .string_array(v, "stun")?
        .into_iter()
        .map(|(s, at)| addr::host_port(s).map_err(|m| cx.err(at, "stun", m)))
        .collect::<Result<Vec<_>>>()?;
    if servers.is_empty() {
        return Err(cx.err(
            v.span().start,
            "stun",
            "empty: name at least one STUN server (\"stun.example.net\", port 3478 by default), \
             or remove the key",
        ));
    }
    let secs = match interval {
        Some(i) => cx.int(i, "stun_interval", 1, 86_400)?,
        None => 60,
    };
    Ok(Some(crate::config::model::Stun {
        servers,
        interval: std::time::Duration::from_secs(secs as u64),
        line: cx.line(v.span().start),
    }))
}

/// Reads `outbound_from`: the networks, besides the destinations, whose
/// requests may leave through the edge's outbound proxy.
fn outbound_from(t: &Table<'_, '_>) -> Result<Vec<ipnet::IpNet>> {
    match t.get("outbound_from") {
        Some(v) => networks(t.cx, v, "outbound_from"),
        None => Ok(Vec::new()),
    }
}

/// A list of networks (`"10.0.0.0/8"`) or addresses (a /32 or /128).
fn networks(cx: &Cx<'_>, v: &Value<'_>, key: &str) -> Result<Vec<ipnet::IpNet>> {
    cx.string_array(v, key)?
        .into_iter()
        .map(|(s, at)| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    cx.err(
                        at,
                        key,
                        format!("{s:?} is not a network (\"10.0.0.0/8\") or an IP address"),
                    )
                })
        })
        .collect()
}

/// Reads `foreign_next_hop` (`dispatch` or `refuse`).
fn foreign_next_hop(t: &Table<'_, '_>) -> Result<ForeignNextHop> {
    let cx = t.cx;
    match t.get("foreign_next_hop") {
        Some(v) => match cx.string(v, "foreign_next_hop")? {
            "dispatch" => Ok(ForeignNextHop::Dispatch),
            "refuse" => Ok(ForeignNextHop::Refuse),
            other => Err(cx.err(
                v.span().start,
                "foreign_next_hop",
                format!("unknown {other:?} (expected dispatch or refuse)"),
            )),
        },
        None => Ok(ForeignNextHop::Dispatch),
    }
}

/// The flags the contract defines.
fn known_flags() -> String {
    FLAGS.join(", ")
}

/// Reads one `[[edge.destination]]`, resolving its host.
fn destination(t: &Table<'_, '_>) -> Result<Vec<Destination>> {
    let cx = t.cx;
    t.check_keys(DESTINATION_KEYS, |_| None)?;
    let uri_value = t.required(
        "uri",
        "the server's SIP URI, e.g. uri = \"sip:10.0.0.1:5060\"",
    )?;
    let uri = cx.string(uri_value, "uri")?;
    let at = uri_value.span().start;
    let parsed = addr::sip_uri(uri).map_err(|m| cx.err(at, "uri", m))?;
    if not_supported_yet(Contract::Destination(parsed.transport)) {
        // Refused, never quietly sent over UDP instead.
        return Err(cx.err(
            at,
            "uri",
            format!(
                "{}: {NOT_SUPPORTED}: sipedge takes WebSocket connections but never \
                 opens one (use udp, tcp or tls)",
                parsed.transport
            ),
        ));
    }
    let port = parsed
        .port
        .unwrap_or(if parsed.transport == Transport::Tls {
            Transport::Tls.default_port()
        } else {
            Transport::Udp.default_port()
        });
    let servers = servers(t, uri, &parsed, port)?;
    let tls = tls::tls_client(t, parsed.transport == Transport::Tls, parsed.host)?;
    let large = large_transport(t, uri, parsed.transport)?;

    let weight = t
        .get("weight")
        .map_or(Ok(1), |v| cx.int(v, "weight", 1, 50).map(|n| n as u32))?;
    let priority = t.get("priority").map_or(Ok(0), |v| {
        cx.int(v, "priority", i32::MIN.into(), i32::MAX.into())
            .map(|n| n as i32)
    })?;
    let zone = t.opt_name("zone")?;
    let zones = |key: &str| -> Result<Vec<String>> {
        let Some(v) = t.get(key) else {
            return Ok(Vec::new());
        };
        cx.string_array(v, key)?
            .into_iter()
            .map(|(z, at)| {
                if z.is_empty() {
                    Err(cx.err(at, key, "a zone name must not be empty"))
                } else {
                    Ok(z.to_owned())
                }
            })
            .collect()
    };
    let limit_zones = zones("limit_zones")?;
    let backup_zones = zones("backup_zones")?;

    let one = Destination {
        uri: uri.to_owned(),
        addr: servers[0].addr,
        transport: parsed.transport,
        weight,
        priority,
        zone,
        limit_zones,
        backup_zones,
        cps: limit(t, "cps")?,
        channels: limit(t, "channels")?,
        tls,
        large,
        named_by: None,
        rank: 0,
        line: cx.line(t.at),
    };
    // The name's own address (no SRV record): the destination as written.
    let own = |s: &crate::outbound::Target| {
        s.host
            .eq_ignore_ascii_case(parsed.host.trim_end_matches('.'))
            && s.transport == parsed.transport
    };
    if servers.len() == 1 && own(&servers[0]) {
        return Ok(vec![one]);
    }
    members(t, one, parsed.host, &servers)
}

/// The servers a destination URI names: its address, or what DNS finds
/// for its host name (RFC 3263; never empty).
fn servers(
    t: &Table<'_, '_>,
    uri: &str,
    parsed: &addr::SipUri<'_>,
    port: u16,
) -> Result<Vec<crate::outbound::Target>> {
    let cx = t.cx;
    let at = t.get("uri").map_or(t.at, |v| v.span().start);
    if let Ok(ip) = parsed.host.parse::<IpAddr>() {
        return Ok(vec![crate::outbound::Target {
            priority: 0,
            weight: 1,
            id: 0,
            host: parsed.host.into(),
            transport: parsed.transport,
            addr: SocketAddr::new(ip, port),
        }]);
    }
    let mut key = String::new();
    if let Some(q) = sip::Uri::parse(uri.as_bytes())
        .ok()
        .as_ref()
        .and_then(crate::outbound::Query::of)
    {
        q.write_key(&mut key);
    }
    let found = cx
        .dns
        .locate(&key, parsed.host, port, parsed.transport)
        .map_err(|m| cx.err(at, "uri", m))?;
    let mut usable: Vec<_> = found
        .into_iter()
        .filter(|s| !matches!(s.transport, Transport::Ws | Transport::Wss))
        .collect();
    // DNS answers come in any order; the destinations keep one (their
    // index is how the admin API and a refresh that changed nothing see
    // them).
    usable.sort_by(|a, b| {
        (a.priority, &a.host, a.addr.port(), a.addr.ip()).cmp(&(
            b.priority,
            &b.host,
            b.addr.port(),
            b.addr.ip(),
        ))
    });
    if usable.is_empty() {
        return Err(cx.err(
            at,
            "uri",
            format!(
                "{:?}: DNS names no SIP server for it (no NAPTR, SRV or address records)",
                parsed.host
            ),
        ));
    }
    Ok(usable)
}

/// The destinations a DNS name stands for: one per server, each like
/// `d` (its limits, zones and priority) but with its own URI, address and
/// transport, its SRV priority's backup rank and its SRV weight (scaled
/// to 1..=50 within its priority; `d`'s weight when they are all equal).
fn members(
    t: &Table<'_, '_>,
    d: Destination,
    host: &str,
    servers: &[crate::outbound::Target],
) -> Result<Vec<Destination>> {
    let mut priorities: Vec<u16> = servers.iter().map(|s| s.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    let equal_weights = servers.windows(2).all(|w| w[0].weight == w[1].weight);
    let mut out = Vec::with_capacity(servers.len());
    for s in servers {
        let rank = priorities
            .iter()
            .position(|&p| p == s.priority)
            .unwrap_or(0)
            .min(usize::from(crate::dispatch::MAX_RANK)) as u8;
        let weight = if equal_weights {
            d.weight
        } else {
            let top = servers
                .iter()
                .filter(|o| o.priority == s.priority)
                .map(|o| u32::from(o.weight))
                .max()
                .unwrap_or(0);
            match top {
                0 => 1,
                top => (u32::from(s.weight) * 50).div_ceil(top).clamp(1, 50),
            }
        };
        // Several addresses of one name and port: each named by its address.
        let shared = servers
            .iter()
            .filter(|o| o.host == s.host && o.addr.port() == s.addr.port())
            .count()
            > 1;
        let tls = match (s.transport, &d.tls) {
            (Transport::Tls, Some(c)) => Some(c.clone()),
            (Transport::Tls, None) => tls::tls_client(t, true, host)?,
            _ => None,
        };
        out.push(Destination {
            uri: member_uri(s, shared),
            addr: s.addr,
            transport: s.transport,
            weight,
            tls,
            large: d.large.filter(|_| s.transport == Transport::Udp),
            named_by: Some(d.uri.clone()),
            rank,
            ..d.clone()
        });
    }
    Ok(out)
}

/// A server's own SIP URI: `sip:TARGET:PORT` (or its address), with the
/// transport it is reached by.
fn member_uri(s: &crate::outbound::Target, by_address: bool) -> String {
    let scheme = if s.transport == Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    let host = if by_address {
        match s.addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    } else {
        s.host.to_string()
    };
    let transport = match s.transport {
        Transport::Tcp => ";transport=tcp",
        _ => "",
    };
    format!("{scheme}:{host}:{}{transport}", s.addr.port())
}

/// A destination's `transports`: the first is the URI's (UDP unless it
/// says otherwise), and a stream transport after it is what a request
/// too large for a datagram goes over (RFC 3261 §18.1.1).
fn large_transport(t: &Table<'_, '_>, uri: &str, primary: Transport) -> Result<Option<Transport>> {
    let cx = t.cx;
    let Some(v) = t.get("transports") else {
        return Ok(None);
    };
    let names = cx.string_array(v, "transports")?;
    let at = v.span().start;
    let mut list = Vec::new();
    for (name, at) in names {
        let tr = Transport::from_name(name.as_bytes())
            .filter(|t| matches!(t, Transport::Udp | Transport::Tcp))
            .ok_or_else(|| cx.err(at, "transports", format!("{name:?}: expected udp or tcp")))?;
        if !list.contains(&tr) {
            list.push(tr);
        }
    }
    let usage = "e.g. transports = [\"udp\", \"tcp\"]: requests go over the first, one too large \
                 for a datagram over the second";
    match list.as_slice() {
        [first] if *first == primary => Ok(None),
        [Transport::Udp, second] if primary == Transport::Udp => {
            if uri.to_ascii_lowercase().contains(";transport=") {
                return Err(cx.err(
                    at,
                    "transports",
                    "the uri names its transport: drop ;transport= from it or this key",
                ));
            }
            Ok(Some(*second))
        }
        _ => Err(cx.err(
            at,
            "transports",
            format!("must start with the uri's transport ({primary}); {usage}"),
        )),
    }
}

/// The text being parsed and its name: turns byte offsets into errors.
struct Cx<'a> {
    text: &'a str,
    file: &'a str,
    /// Byte offsets of every '\n', so a line number is a binary search
    /// (a pool of thousands of destinations records one line each).
    newlines: Vec<usize>,
    /// Resolves destination host names.
    dns: &'a dyn Resolve,
}

impl Cx<'_> {
    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&n| n < offset) + 1
    }

    /// An error about `key` at byte `offset`.
    fn err(&self, offset: usize, key: &str, message: impl Into<String>) -> ConfigError {
        self.err_line(self.line(offset), key, message)
    }

    /// An error about `key` at 1-based `line`.
    fn err_line(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, line, key, message)
    }

    /// Maps a TOML syntax error, naming the key of the offending line where
    /// one can be found.
    fn syntax_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let start = span.start.min(self.text.len());
        let key = self
            .text
            .get(span.clone())
            .filter(|s| is_bare_key(s))
            .map(str::to_owned)
            .or_else(|| line_key(self.text, start))
            .unwrap_or_else(|| "syntax".to_owned());
        self.err(start, &key, format!("invalid TOML: {}", e.message()))
    }

    /// `v` as a table; `what` is how the file should spell it.
    fn table<'t, 'i>(&'t self, v: &'t Value<'i>, key: &str, what: &str) -> Result<Table<'t, 'i>> {
        match v.get_ref() {
            DeValue::Table(table) => Ok(Table {
                cx: self,
                table,
                at: v.span().start,
                prefix: "",
            }),
            other => Err(self.err(
                v.span().start,
                key,
                format!("expected a table {what}, found {}", describe(other)),
            )),
        }
    }

    /// `v` as a string.
    fn string<'v>(&self, v: &'v Value<'_>, key: &str) -> Result<&'v str> {
        v.get_ref().as_str().ok_or_else(|| {
            self.err(
                v.span().start,
                key,
                format!("expected a string, found {}", describe(v.get_ref())),
            )
        })
    }

    /// `v` as an array of strings, each with its byte offset.
    fn string_array<'v>(&self, v: &'v Value<'_>, key: &str) -> Result<Vec<(&'v str, usize)>> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.err(
                v.span().start,
                key,
                format!(
                    "expected an array of strings, found {}",
                    describe(v.get_ref())
                ),
            ));
        };
        items
            .iter()
            .map(|item| Ok((self.string(item, key)?, item.span().start)))
            .collect()
    }

    /// `v` as a boolean.
    fn boolean(&self, v: &Value<'_>, key: &str) -> Result<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.err(
                v.span().start,
                key,
                format!("expected true or false, found {}", describe(other)),
            )),
        }
    }

    /// `v` as a number of seconds in `lo..=hi`, whole (`2`) or not (`0.5`),
    /// kept to the nanosecond.
    fn seconds(&self, v: &Value<'_>, key: &str, lo: f64, hi: f64) -> Result<Duration> {
        match number(v) {
            // The range check also refuses NaN and the infinities, so the
            // conversion below cannot overflow.
            Some(n) if (lo..=hi).contains(&n) => Ok(Duration::from_nanos((n * 1e9).round() as u64)),
            _ => Err(self.err(
                v.span().start,
                key,
                format!(
                    "must be a number of seconds from {lo} to {hi}, found {}",
                    describe(v.get_ref())
                ),
            )),
        }
    }

    /// `v` as a number from 0 to 1 (a share).
    fn fraction(&self, v: &Value<'_>, key: &str) -> Result<f64> {
        match number(v) {
            Some(n) if (0.0..=1.0).contains(&n) => Ok(n),
            _ => Err(self.err(
                v.span().start,
                key,
                format!(
                    "must be a share from 0 to 1 (0.1: one call in ten), found {}",
                    describe(v.get_ref())
                ),
            )),
        }
    }

    /// `v` as a whole number in `lo..=hi`; anything else (a float, a string,
    /// a number out of range) is one and the same error.
    fn int(&self, v: &Value<'_>, key: &str, lo: i64, hi: i64) -> Result<i64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match n {
            Some(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(self.err(
                v.span().start,
                key,
                format!(
                    "must be a whole number from {lo} to {hi}, found {}",
                    describe(v.get_ref())
                ),
            )),
        }
    }
}

/// One TOML table being read, with where it starts (its header).
struct Table<'t, 'i> {
    cx: &'t Cx<'t>,
    table: &'t DeTable<'i>,
    /// Byte offset of the table's header, for "missing key" errors.
    at: usize,
    /// What [`check_keys`](Table::check_keys) puts before a key it names
    /// (`probe.` for `[edge.probe]`), so a bare key is not mistaken for one
    /// of the edge itself.
    prefix: &'static str,
}

impl<'t, 'i> Table<'t, 'i> {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)
    }

    /// The value of `key`, or an error at the table's header explaining `what`.
    fn required(&self, key: &str, what: &str) -> Result<&'t Value<'i>> {
        self.get(key).ok_or_else(|| {
            self.cx
                .err(self.at, key, format!("missing; expected {what}"))
        })
    }

    /// The non-empty string `key`, which must be present.
    fn required_str(&self, key: &str, what: &str) -> Result<&'t str> {
        let v = self.required(key, what)?;
        let s = self.cx.string(v, key)?;
        if s.is_empty() {
            return Err(self.cx.err(v.span().start, key, format!("must be {what}")));
        }
        Ok(s)
    }

    /// The optional string `key`, which must not be empty when present.
    fn opt_name(&self, key: &str) -> Result<Option<String>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let s = self.cx.string(v, key)?;
        if s.is_empty() {
            return Err(self.cx.err(v.span().start, key, "must not be empty"));
        }
        Ok(Some(s.to_owned()))
    }

    /// Refuses, in file order, keys of the contract this version does not
    /// implement (`contract` says which contract item a key is, if any) and keys
    /// nobody knows.
    fn check_keys(
        &self,
        known: &[&str],
        contract: impl Fn(&str) -> Option<Contract>,
    ) -> Result<()> {
        let mut keys: Vec<_> = self.table.iter().map(|(k, _)| k).collect();
        keys.sort_by_key(|k| k.span().start);
        for k in keys {
            let key: &str = k.get_ref();
            let at = k.span().start;
            let named = format!("{}{key}", self.prefix);
            if contract(key).is_some_and(not_supported_yet) {
                return Err(self.cx.err(at, &named, NOT_SUPPORTED));
            }
            if known.contains(&key) {
                continue;
            }
            let mut message = format!("unknown key (expected one of: {})", known.join(", "));
            let normalised = key.to_ascii_lowercase().replace('-', "_");
            if let Some(k) = known.iter().find(|k| **k == normalised) {
                message.push_str(&format!("; did you mean {k}?"));
            }
            return Err(self.cx.err(at, &named, message));
        }
        Ok(())
    }
}

/// A value's type and, for scalars, the value, for "found …" in messages.
fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("string {s:?}"),
        DeValue::Integer(i) if i.radix() == 10 => format!("integer {}", i.as_str()),
        DeValue::Float(f) => format!("float {}", f.as_str()),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Table(_) => "a table".to_owned(),
        DeValue::Array(_) => "an array".to_owned(),
        other => other.type_str().to_owned(),
    }
}

/// Whether `s` is a TOML bare key (letters, digits, `-`, `_`).
fn is_bare_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The key a line of TOML is about: `key` of `key = …`, or the table name of
/// a `[table]` / `[[table]]` header.
fn line_key(text: &str, offset: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| offset + i);
    let line = text.get(start..end)?.trim();
    let key = if line.starts_with('[') {
        line.trim_matches(|c| c == '[' || c == ']').trim()
    } else {
        line.split_once('=')?.0.trim()
    };
    (!key.is_empty()).then(|| key.to_owned())
}

/// `v` as a number, whole (`2`) or not (`0.5`); `None` for anything else.
fn number(v: &Value<'_>) -> Option<f64> {
    match v.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
        _ => None,
    }
}
