//! The connection to the cluster's Redis: one server through redis-rs's
//! connection manager (which reconnects by itself), or a Redis Cluster
//! through its cluster client (which follows the slots). Every call has a
//! response timeout, so a slow or dead Redis costs the cluster task a
//! bounded wait — never the forwarding path, which does not call it.

use edge::config::Redis;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// How long one answer may take before Redis counts as down.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to one Redis server or to a Redis Cluster: cheap to
/// clone (a handle on one multiplexed connection).
#[derive(Clone)]
pub enum Conn {
    /// One server.
    One(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::One(_) => "Conn::One",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

/// Connects to the configured Redis; over TLS (`rediss://`) its
/// certificate is checked against `ca` (PEM) if given, else the system's
/// roots.
pub async fn connect(cfg: &Redis, ca: Option<&std::path::Path>) -> redis::RedisResult<Conn> {
    let certs = match ca {
        Some(path) => Some(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(path).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cannot read redis_ca",
                    format!("{}: {e}", path.display()),
                ))
            })?),
        }),
        None => None,
    };
    match cfg {
        Redis::Server(url) => {
            let client = match certs {
                Some(c) => redis::Client::build_with_tls(url.as_str(), c)?,
                None => redis::Client::open(url.as_str())?,
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            Ok(Conn::One(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
        Redis::Cluster(seeds) => {
            let mut builder =
                redis::cluster::ClusterClient::builder(seeds.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(1);
            if let Some(c) = certs {
                builder = builder.certs(c);
            }
            let client = builder.build()?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::One(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::One(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The id of the newest entry of `stream` ("0" when it has none): where
/// to follow it from once what it announces has been loaded.
pub async fn newest(conn: &mut Conn, stream: &str) -> Result<String, String> {
    let newest: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(newest
        .first()
        .map_or_else(|| "0".to_owned(), |(id, _)| id.clone()))
}

/// Up to `count` entries of `stream` after `after`: each one's id and its
/// field `field` (entries of one field each, as sipedge writes them).
pub async fn follow(
    conn: &mut Conn,
    stream: &str,
    after: &str,
    count: usize,
    field: &str,
) -> Result<Vec<(String, Option<String>)>, String> {
    let read: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(after)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(read
        .map(|r| r.keys)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|id| {
            let value = id
                .map
                .get(field)
                .and_then(|v| redis::from_redis_value_ref(v).ok());
            (id.id, value)
        })
        .collect())
}
