//! `GET /metrics` of the admin server: the node's counters for
//! Prometheus, in the OpenMetrics text format when the scraper asks for it
//! (`Accept: application/openmetrics-text`, as Prometheus does) and in the
//! classic text format (0.0.4) otherwise, for curl and older tools.
//!
//! Names follow Prometheus conventions (`sipedge_…_total` counters,
//! `_seconds` units); labels come from bounded sets only: edge and
//! destination names from the config, methods, classes and reasons from
//! fixed lists. README.md lists every family.

mod scrape;
mod text;

use crate::admin::Admin;
use axum::extract::State as Shared;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;
pub use scrape::Scrape;

/// The content type of each format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn handler(Shared(admin): Shared<Admin>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let scrape = match Scrape::gather(&admin).await {
        Ok(s) => s,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    match render(scrape, openmetrics) {
        Ok((body, kind)) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// The scrape as text in the format asked for, with its content type.
pub fn render(scrape: Scrape, openmetrics: bool) -> Result<(String, &'static str), String> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::with_capacity(64 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .map_err(|e| format!("encoding the metrics failed: {e}"))?;
    Ok(if openmetrics {
        (out, OPENMETRICS)
    } else {
        (text::classic(&out), CLASSIC)
    })
}
