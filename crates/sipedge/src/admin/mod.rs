//! The admin HTTP interface (`[admin] listen`): `/health` for a BGP speaker
//! or load balancer in front of the node, `/api/destinations` for the
//! operator (read every destination's state, set one by hand),
//! `/api/connections`, `/api/bans` (list, add, lift), `POST
//! /api/reload`, `/metrics` for Prometheus and the live dashboard at `/`;
//! optionally behind a token or a password (`auth`).
//!
//! It runs on the main thread's runtime, next to the prober tasks, so it
//! answers however busy the forwarding threads are.

mod auth;
pub mod dashboard;
mod json;
#[cfg(test)]
mod tests;

pub use auth::{authorization, Auth};

use crate::health::{Health, State};
use crate::reload::Reloader;
use crate::shard::Registry;
use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::{Path, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use json::ErrorBody;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds the admin address, so that a port in use is a start error rather
/// than a silent lack of health checks.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("[admin] listen {addr}: {e}"))
}

/// What the admin API reads and acts on.
#[derive(Clone)]
pub struct Admin {
    /// Destination health and the running edges; a reload replaces it.
    pub health: Arc<ArcSwap<Health>>,
    /// The node's connections.
    pub connections: Arc<Registry>,
    /// Reloads the config file (`POST /api/reload`).
    pub reloader: Arc<Reloader>,
    /// The node's bans (`/api/bans`).
    pub bans: crate::bans::Banning,
    /// The cluster store's state, with `[cluster] redis`.
    pub cluster: Option<Arc<crate::cluster::Status>>,
    /// The dashboard's graphs: each edge's last 15 minutes.
    pub history: Arc<dashboard::series::History>,
    /// The credentials the API asks for (`[admin] token_file`, `user`).
    pub auth: Option<Arc<Auth>>,
    /// What became of the SIP traces, with `[hep]`.
    pub hep: Option<Arc<crate::hep::Counts>>,
    /// What became of the call records, with `[records]`.
    pub records: Option<Arc<crate::records::Counts>>,
}

/// Serves the admin API on `listener` from a task of the current runtime.
pub fn spawn(listener: TcpListener, admin: Admin) {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(admin)).await {
            tracing::error!("admin HTTP server stopped: {e}");
        }
    });
}

/// The routes. Any other path is 404 and another method 405, as axum
/// answers them.
pub fn router(admin: Admin) -> Router {
    let routes = Router::new()
        .route("/health", get(node_health))
        .route("/api/destinations", get(destinations))
        .route(
            "/api/destinations/{edge}/{dest}",
            axum::routing::post(set_destination),
        )
        .route("/api/connections", get(connection_counts))
        .route("/api/reload", axum::routing::post(reload))
        .route("/api/explain", axum::routing::post(explain))
        .route("/api/cluster", get(cluster))
        .route("/metrics", get(crate::metrics::handler))
        .with_state(admin.clone())
        .merge(
            Router::new()
                .route("/api/bans", get(crate::bans::list).post(crate::bans::add))
                .route(
                    "/api/bans/{address}",
                    axum::routing::delete(crate::bans::remove),
                )
                .with_state(admin.bans.clone()),
        )
        .merge(dashboard::router(Arc::clone(&admin.history)));
    match admin.auth {
        Some(auth) => routes.layer(axum::middleware::from_fn_with_state(auth, auth::guard)),
        None => routes,
    }
}

/// `POST /api/reload`: reads the config file again and applies it (see
/// [`crate::reload`]). 200 with what changed and what needs a restart; 400
/// with the file's errors (`file:line: key: problem`) when it does not
/// check, the running config staying as it was.
async fn reload(Shared(admin): Shared<Admin>) -> Response {
    match admin.reloader.reload_and_log().await {
        Ok(report) => Json(json::ReloadBody::of(&report)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// Where `POST /api/explain` runs its message: `edge` (default the first)
/// and `from` (`ADDR:PORT`; default as `sipedge explain`).
#[derive(serde::Deserialize)]
struct ExplainAt {
    edge: Option<String>,
    from: Option<String>,
}

/// `POST /api/explain?edge=NAME&from=ADDR:PORT` with a SIP message as the
/// body: what the running edge would do with it, stage by stage, under
/// its live health and limits, without sending anything.
async fn explain(
    Shared(admin): Shared<Admin>,
    axum::extract::Query(at): axum::extract::Query<ExplainAt>,
    body: Bytes,
) -> Response {
    let from = match at.from.as_deref().map(str::parse::<SocketAddr>) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "from: give an address and port, as 192.0.2.1:5060 or [2001:db8::1]:5060"
                    .to_owned(),
            )
        }
    };
    match admin
        .reloader
        .explain(at.edge.as_deref(), from, &body)
        .await
    {
        Ok(x) => Json(x).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

/// `GET /api/connections`: connections open now, accepted and opened so
/// far, and how many ended or were refused for each reason (the caps, the
/// timeouts, oversized or unframed messages, failed connects).
async fn connection_counts(Shared(admin): Shared<Admin>) -> Response {
    let body: serde_json::Map<String, serde_json::Value> = admin
        .connections
        .counts()
        .into_iter()
        .map(|(name, n)| (name.to_owned(), n.into()))
        .collect();
    Json(body).into_response()
}

/// `GET /api/cluster`: the cluster store (Redis up or down, how limits
/// are counted, the live nodes); 404 without `[cluster] redis`.
async fn cluster(Shared(admin): Shared<Admin>) -> Response {
    match &admin.cluster {
        Some(c) => Json(c.body()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no [cluster] redis: this node counts alone".into(),
        ),
    }
}

/// `GET /health`: 200 when at least one edge can route, else 503 (Redis
/// down is not an outage: it shows in `cluster`, the status stays).
async fn node_health(Shared(admin): Shared<Admin>) -> Response {
    let health = admin.health.load_full();
    let edges: Vec<_> = health.edges.iter().map(json::EdgeSummary::of).collect();
    let ok = edges.iter().any(|e| e.routable);
    let body = json::HealthBody {
        status: if ok { "ok" } else { "unavailable" },
        edges,
        cluster: admin.cluster.as_ref().map(|c| c.body()),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /api/destinations`: every destination of every edge.
async fn destinations(Shared(admin): Shared<Admin>) -> Response {
    let health = admin.health.load_full();
    match json::destinations(&health).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /api/destinations/{edge}/{dest}` with `{"state": "..."}`: sets the
/// state by hand and answers with the destination after the change.
async fn set_destination(
    Shared(admin): Shared<Admin>,
    Path((edge_name, dest)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let health = admin.health.load_full();
    let Some(edge) = health.edge(&edge_name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no edge named {edge_name:?}"),
        );
    };
    let Some(index) = edge.find(&dest) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "edge {edge_name:?} has no destination {dest:?} (give its index, 0 to {}, or its URI as configured)",
                edge.destinations.len().saturating_sub(1)
            ),
        );
    };
    let state = match parse_set_body(&body) {
        Ok(s) => s,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let status = match edge.set_state(index, state).await {
        Ok(Some(s)) => s,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no destination {index}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let totals = edge.view.totals().get(index).copied().unwrap_or_default();
    match json::DestinationBody::of(edge, index, status, totals) {
        Some(body) => Json(body).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no destination {index}")),
    }
}

/// The state a `POST` body asks for, or why the body is refused.
fn parse_set_body(body: &[u8]) -> Result<State, String> {
    let body: json::SetBody = serde_json::from_slice(body)
        .map_err(|e| format!("the body must be JSON like {{\"state\": \"inactive\"}}: {e}"))?;
    body.state.parse::<State>().map_err(|_| {
        format!(
            "unknown state {:?}: expected \"active\", \"inactive\" or \"probing\"",
            body.state
        )
    })
}

fn error(code: StatusCode, error: String) -> Response {
    (code, Json(ErrorBody { error })).into_response()
}
