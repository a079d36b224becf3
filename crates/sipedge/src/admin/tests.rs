//! The admin API against a real [`Health`] (real prober tasks on probe
//! sockets bound to loopback), driven request by request without a
//! listener.

use super::*;
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;
use tower::ServiceExt;

/// Two destinations on ports nothing answers on: they stay active for the
/// first probe timeout (2 s by default), longer than any test here takes.
const CONFIG: &str = r#"
[node]
id = "node-1"
zone = "A"

[[edge]]
name = "edge-1"
listen = ["udp:127.0.0.1:5060"]
algorithm = "weighted-round-robin"

[[edge.destination]]
uri = "sip:127.0.0.1:9"
zone = "A"

[[edge.destination]]
uri = "sip:127.0.0.1:7;transport=udp"
zone = "B"
weight = 3
"#;

async fn health() -> Arc<Health> {
    let cfg = match edge::config::parse(CONFIG, "test.toml") {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    };
    let edges: Arc<Vec<edge::proxy::Edge>> = Arc::new(
        cfg.edges
            .iter()
            .map(|e| {
                edge::proxy::Edge::new(
                    e,
                    &cfg.node,
                    &edge::keyring::KeyRing::single(b"a-test-secret-of-some-length"),
                )
            })
            .collect(),
    );
    match crate::health::start(&cfg, &edges).await {
        Ok(h) => Arc::new(h),
        Err(e) => panic!("health::start: {e}"),
    }
}

/// Sends one request; returns the status and the body as JSON (`Null` when
/// it is not JSON).
async fn call(h: &Arc<Health>, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_owned()))
        .expect("request");
    let connections = Arc::new(crate::shard::Registry::new(Default::default()));
    let response = router(Arc::clone(h), connections)
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn health_is_ok_while_a_destination_is_usable() {
    let h = health().await;
    let (code, body) = call(&h, Method::GET, "/health", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["edges"][0]["name"], "edge-1");
    assert_eq!(body["edges"][0]["routable"], true);
    assert_eq!(body["edges"][0]["usable"], 2);
    assert_eq!(body["edges"][0]["destinations"], 2);
}

#[tokio::test]
async fn destinations_lists_config_and_state() {
    let h = health().await;
    let (code, body) = call(&h, Method::GET, "/api/destinations", "").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["node"], "node-1");
    assert_eq!(body["zone"], "A");
    let edge = &body["edges"][0];
    assert_eq!(edge["name"], "edge-1");
    assert_eq!(edge["algorithm"], "weighted-round-robin");
    assert_eq!(edge["routable"], true);
    let d = &edge["destinations"][1];
    assert_eq!(d["index"], 1);
    assert_eq!(d["uri"], "sip:127.0.0.1:7;transport=udp");
    assert_eq!(d["address"], "127.0.0.1:7");
    assert_eq!(d["zone"], "B");
    assert_eq!(d["tier"], 3);
    assert_eq!(d["weight"], 3);
    assert_eq!(d["priority"], 0);
    assert_eq!(d["state"], "active");
    assert_eq!(d["manual"], false);
    assert!(d["reason"].is_string());
    assert_eq!(d["latency_ms"], Value::Null);
    assert_eq!(d["calls_sent"], 0);
    assert_eq!(d["channels_in_use"], 0);
    assert_eq!(edge["destinations"][0]["tier"], 1);
    assert_eq!(edge["insertion"], "stateless");
    assert_eq!(edge["transactions"], Value::Null);
    assert_eq!(edge["channels_in_use"], 0);
    assert_eq!(edge["validation_failures"], serde_json::json!({}));
}

#[tokio::test]
async fn set_by_index_and_by_uri_until_health_fails() {
    let h = health().await;
    let (code, d) = call(
        &h,
        Method::POST,
        "/api/destinations/edge-1/0",
        r#"{"state":"inactive"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{d}");
    assert_eq!(d["index"], 0);
    assert_eq!(d["state"], "inactive");
    assert_eq!(d["manual"], true);
    let (_, body) = call(&h, Method::GET, "/health", "").await;
    assert_eq!(body["edges"][0]["usable"], 1);

    // The URI as configured, URL-encoded (`:` and `;` and `=`).
    let (code, d) = call(
        &h,
        Method::POST,
        "/api/destinations/edge-1/sip%3A127.0.0.1%3A7%3Btransport%3Dudp",
        r#"{"state":"inactive"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{d}");
    assert_eq!(d["index"], 1);
    assert_eq!(d["state"], "inactive");
    let (code, body) = call(&h, Method::GET, "/health", "").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["edges"][0]["routable"], false);

    let (code, d) = call(
        &h,
        Method::POST,
        "/api/destinations/edge-1/0",
        r#"{"state":"active"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{d}");
    assert_eq!(d["state"], "active");
    assert_eq!(d["manual"], false);
    let (code, _) = call(&h, Method::GET, "/health", "").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason() {
    let h = health().await;
    let cases = [
        (
            "/api/destinations/nope/0",
            r#"{"state":"active"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/destinations/edge-1/2",
            r#"{"state":"active"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/destinations/edge-1/sip%3Ax",
            r#"{"state":"active"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/destinations/edge-1/0",
            r#"{"state":"gone"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/destinations/edge-1/0",
            r#"{"state":1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/destinations/edge-1/0",
            r#"{"state":"active","x":1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/destinations/edge-1/0",
            "state=active",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/destinations/edge-1/0", "", StatusCode::BAD_REQUEST),
    ];
    for (path, body, want) in cases {
        let (code, answer) = call(&h, Method::POST, path, body).await;
        assert_eq!(code, want, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{path} {body}: {answer}");
    }
    // Nothing changed.
    let (_, body) = call(&h, Method::GET, "/api/destinations", "").await;
    assert_eq!(body["edges"][0]["destinations"][0]["state"], "active");
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let h = health().await;
    let (code, _) = call(&h, Method::GET, "/nope", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = call(&h, Method::POST, "/health", "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, _) = call(&h, Method::GET, "/api/destinations/edge-1/0", "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
}
