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

/// The admin API of a node started from `text`, written to a file of its
/// own so that it can be reloaded: real prober tasks, snapshot slots no
/// shard reads.
async fn admin_of(text: &str) -> (Admin, std::path::PathBuf) {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("sipedge-admin-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write the config");
    let cfg = match edge::config::parse(text, "test.toml") {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    };
    let keys = edge::keyring::KeyRing::single(b"a-test-secret-of-some-length");
    let slots: Vec<_> = cfg
        .edges
        .iter()
        .map(|e| {
            Arc::new(ArcSwap::from_pointee(edge::proxy::Edge::new(
                e, &cfg.node, &keys,
            )))
        })
        .collect();
    let snapshots: Vec<_> = slots.iter().map(|s| s.load_full()).collect();
    let tls = match crate::tls::load(&cfg, "test.toml", std::time::SystemTime::now()) {
        Ok(l) => Arc::new(ArcSwap::from_pointee(l.tls)),
        Err(e) => panic!("tls::load: {e}"),
    };
    let health = match crate::health::start(&cfg, &snapshots, &tls).await {
        Ok(h) => Arc::new(ArcSwap::from_pointee(h)),
        Err(e) => panic!("health::start: {e}"),
    };
    let parsed = crate::config_file::Parsed {
        cfg,
        text: text.to_owned(),
        dns_until: None,
    };
    let reloader = Arc::new(Reloader::new(
        path.clone(),
        &parsed,
        keys,
        slots,
        Arc::clone(&health),
        tls,
    ));
    let admin = Admin {
        health,
        connections: Arc::new(crate::shard::Registry::new(Default::default())),
        reloader,
        bans: crate::bans::Banning {
            bans: Arc::new(edge::bans::Bans::new(std::time::Instant::now(), 0)),
            cluster: None,
        },
        cluster: None,
        history: Default::default(),
        auth: None,
        hep: None,
        records: None,
    };
    (admin, path)
}

async fn health() -> Admin {
    admin_of(CONFIG).await.0
}

/// Sends one request; returns the status and the body as JSON (`Null` when
/// it is not JSON).
async fn call(h: &Admin, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_owned()))
        .expect("request");
    let response = router(h.clone())
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
    assert_eq!(edge["addresses"], serde_json::json!(["127.0.0.1:5060"]));
    assert_eq!(
        edge["blocked"],
        serde_json::json!({"deny": 0, "restrict": 0, "user_agent": 0, "flood": 0, "apiban": 0, "ban": 0})
    );
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

#[tokio::test]
async fn reload_applies_destinations_and_keeps_what_is_known_of_the_others() {
    let (h, path) = admin_of(CONFIG).await;
    // The operator holds the second destination inactive.
    let (code, _) = call(
        &h,
        Method::POST,
        "/api/destinations/edge-1/1",
        r#"{"state":"inactive"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    // Reweighted, one removed, one added; the node's id and the listen
    // address changed too, which waits for a restart.
    let text = CONFIG
        .replace(
            "uri = \"sip:127.0.0.1:9\"\nzone = \"A\"\n",
            "uri = \"sip:127.0.0.1:11\"\n",
        )
        .replace("weight = 3", "weight = 5")
        .replace("id = \"node-1\"", "id = \"node-2\"")
        .replace("udp:127.0.0.1:5060", "udp:127.0.0.1:5062");
    assert_ne!(text, CONFIG);
    std::fs::write(&path, &text).expect("rewrite");
    let (code, r) = call(&h, Method::POST, "/api/reload", "").await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "reloaded");
    let changes: Vec<&str> = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        changes.contains(&"edge edge-1: destination sip:127.0.0.1:11 added"),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"edge edge-1: destination sip:127.0.0.1:7;transport=udp changed"),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("edge edge-1: destination sip:127.0.0.1:9 removed")),
        "{changes:?}"
    );
    let restart = r["needs_restart"].to_string();
    assert!(
        restart.contains("[node] id") && restart.contains("listen"),
        "{restart}"
    );
    let (_, body) = call(&h, Method::GET, "/api/destinations", "").await;
    assert_eq!(body["node"], "node-1", "the id waits for a restart");
    let dests = body["edges"][0]["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 2);
    assert_eq!(dests[0]["uri"], "sip:127.0.0.1:11");
    assert_eq!(dests[0]["state"], "active");
    assert_eq!(dests[1]["uri"], "sip:127.0.0.1:7;transport=udp");
    assert_eq!(dests[1]["weight"], 5);
    assert_eq!(
        (dests[1]["state"].as_str(), dests[1]["manual"].as_bool()),
        (Some("inactive"), Some(true))
    );
    assert_eq!(
        body["edges"][0]["retired"],
        serde_json::json!(["sip:127.0.0.1:9"]),
        "the removed destination keeps its dialogs"
    );
    let snapshot = h.health.load_full();
    let e = snapshot.edges[0].proxy().expect("edge");
    assert!(
        e.health().usable(0) && !e.health().usable(1),
        "the view the shards read"
    );
    assert_eq!(
        e.locals()[0].addr.port(),
        5060,
        "still the running listen address"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_invalid_file_is_refused_with_its_line_and_the_running_config_stays() {
    let (h, path) = admin_of(CONFIG).await;
    let text = CONFIG.replace("weight = 3", "weight = \"heavy\"");
    std::fs::write(&path, &text).expect("rewrite");
    let (code, r) = call(&h, Method::POST, "/api/reload", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    let error = r["error"].as_str().unwrap_or_default();
    let line = text.lines().position(|l| l.contains("heavy")).unwrap() + 1;
    assert!(
        error.starts_with(&format!("{}:{line}: ", path.display())) && error.contains("weight"),
        "{error}"
    );
    let (_, body) = call(&h, Method::GET, "/api/destinations", "").await;
    assert_eq!(body["edges"][0]["destinations"][1]["weight"], 3);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn bans_are_added_listed_and_lifted() {
    let h = health().await;
    let (code, body) = call(&h, Method::GET, "/api/bans", "").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["bans"], serde_json::json!([]));
    assert_eq!(body["counts"]["admin"], 0);

    let add = r#"{"address": "::ffff:203.0.113.7", "seconds": 600}"#;
    let (code, body) = call(&h, Method::POST, "/api/bans", add).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["address"], "203.0.113.7", "as an IPv4 address");
    assert_eq!(body["reason"], "admin");
    assert_eq!(body["expires_in"], 600);
    let now = std::time::Instant::now();
    assert_eq!(
        h.bans.bans.find("203.0.113.7".parse().expect("ip"), now),
        Some(edge::bans::Reason::Admin),
        "in force as soon as the answer comes"
    );
    let (_, body) = call(&h, Method::GET, "/api/bans", "").await;
    assert_eq!(body["counts"]["admin"], 1);
    assert_eq!(body["bans"][0]["address"], "203.0.113.7");
    let (_, body) = call(&h, Method::GET, "/api/bans?reason=flood", "").await;
    assert_eq!(body["bans"], serde_json::json!([]));

    for bad in [
        r#"{"address": "example.com", "seconds": 60}"#,
        r#"{"address": "203.0.113.8", "seconds": 0}"#,
        r#"{"address": "203.0.113.8"}"#,
    ] {
        let (code, body) = call(&h, Method::POST, "/api/bans", bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }

    let (code, _) = call(&h, Method::DELETE, "/api/bans/203.0.113.7", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        h.bans.bans.find("203.0.113.7".parse().expect("ip"), now),
        None
    );
    let (code, body) = call(&h, Method::DELETE, "/api/bans/203.0.113.7", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
}

/// `GET /metrics` with `accept`: content type and body.
async fn metrics(h: &Admin, accept: &str) -> (String, String) {
    let request = Request::builder()
        .uri("/metrics")
        .header("accept", accept)
        .body(Body::empty())
        .expect("request");
    let response = router(h.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    (kind, String::from_utf8(bytes.to_vec()).expect("utf-8"))
}

#[tokio::test]
async fn metrics_come_in_the_format_the_scraper_asks_for() {
    let h = health().await;
    let (kind, om) = metrics(
        &h,
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )
    .await;
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE sipedge_calls counter\n"), "{om}");
    assert!(
        om.contains("sipedge_calls_total{edge=\"edge-1\"} 0\n"),
        "{om}"
    );
    assert!(om.contains("sipedge_build_info{version="), "{om}");
    let (kind, classic) = metrics(&h, "*/*").await;
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    assert!(
        !classic.contains("# EOF") && !classic.contains("# UNIT"),
        "{classic}"
    );
    assert!(
        classic.contains("# TYPE sipedge_calls_total counter\n"),
        "{classic}"
    );
    assert!(
        classic.contains("# TYPE sipedge_build_info gauge\n"),
        "{classic}"
    );
    // Every destination, in each state, with the edge's name.
    for d in ["sip:127.0.0.1:9", "sip:127.0.0.1:7;transport=udp"] {
        let active = format!(
            "sipedge_destination_state{{edge=\"edge-1\",destination=\"{d}\",state=\"active\"}} 1\n"
        );
        assert!(classic.contains(&active), "{active} in\n{classic}");
    }
    // No sample line names a family the classic format does not declare.
    let declared: std::collections::HashSet<&str> = classic
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for line in classic.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(f)))
            .unwrap_or(name);
        assert!(declared.contains(family), "{line}");
    }
}

/// Every metric the example Grafana dashboard queries is one sipedge
/// writes. Some only exist where what they count does: the cluster ones
/// with `[cluster] redis`, calls in progress with a `channels` limit,
/// validation failures with `validate` checks; this fixture has none, and
/// the e2e tests read those.
#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    const CONDITIONAL: [&str; 4] = [
        "sipedge_redis_up",
        "sipedge_cluster_nodes",
        "sipedge_calls_in_progress",
        "sipedge_validation_failures_total",
    ];
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../../examples/grafana/sipedge.json"))
            .expect("the dashboard is JSON");
    let h = health().await;
    let (_, classic) = metrics(&h, "text/plain").await;
    let written: std::collections::HashSet<&str> = classic
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = 0;
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("sipedge_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    written.contains(name.as_str()) || CONDITIONAL.contains(&name.as_str()),
                    "panel {:?} queries {name}, which sipedge does not write",
                    p["title"]
                );
                queried += 1;
                rest = &rest[at + name.len()..];
            }
        }
    }
    assert!(queried >= 15, "only {queried} queries");
}
