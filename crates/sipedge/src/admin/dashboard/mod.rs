//! The live dashboard at `/` of the admin server: per edge, CPS and CPS
//! breaches over the last 15 minutes (updated every second), calls in
//! progress, the destinations with their state, latency and calls; the
//! bans; the node's health and cluster state.
//!
//! The page, its script and its style are embedded in the binary (no
//! CDN, nothing fetched from elsewhere: the graphs are drawn on a canvas
//! by hand) and read the JSON API like any other client, polling it once
//! a second; `/api/series` serves the graphs' history.

pub mod series;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use series::History;
use std::sync::Arc;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

/// Whether `path` is one of the page's own files (which hold no data).
pub fn is_page(path: &str) -> bool {
    matches!(path, "/" | "/dashboard.js" | "/dashboard.css")
}

/// The dashboard's routes.
pub fn router(history: Arc<History>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file(PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard.js",
            get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/series", get(series))
        .with_state(history)
}

fn file(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `?since=UNIX_SECOND`.
#[derive(serde::Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

/// `GET /api/series?since=T`: each edge's seconds after `T` (the last 15
/// minutes without it), `[second, new calls, CPS breaches, channel
/// breaches, calls in progress]`.
async fn series(State(history): State<Arc<History>>, Query(q): Query<Since>) -> Response {
    Json(history.since(q.since)).into_response()
}
