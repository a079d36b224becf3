//! `scripts/demo` (issue 18 §6): a new user's first run. It starts the
//! example edge, two servers and a caller; within seconds the admin API
//! shows calls on both servers, and Ctrl-C (SIGINT) stops everything,
//! leaving the ports free.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{require_private_netns, AdminApi};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_demo_routes_calls_and_stops_on_ctrl_c() {
    require_private_netns();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let sipload = target.join("debug/sipload");
    assert!(
        sipload.is_file(),
        "{} is not built (scripts/test builds it)",
        sipload.display()
    );
    let out = e2e::TempDir::new("demo");
    let log = out.path().join("demo.out");
    let mut demo = Command::new(repo().join("scripts/demo"))
        .env("SIPEDGE_BIN", e2e::sipedge::binary())
        .env("SIPLOAD_BIN", &sipload)
        .env("DEMO_RATE", "10")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("the demo's output file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start scripts/demo");
    let api = AdminApi::local(8080);
    let start = Instant::now();
    let calls = loop {
        let sent: Vec<u64> = api
            .request("GET", "/api/destinations", None)
            .ok()
            .and_then(|r| r.json()["edges"][0]["destinations"].as_array().cloned())
            .map(|ds| ds.iter().filter_map(|d| d["calls_sent"].as_u64()).collect())
            .unwrap_or_default();
        if sent.len() == 2 && sent.iter().all(|&n| n > 0) {
            break sent;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no calls on both servers: {sent:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(api.get("/health").status, 200);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(said.contains("http://127.0.0.1:8080/"), "{said}");
    // Ctrl-C.
    let sent = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = demo.try_wait().expect("wait for the demo") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the demo did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(said.contains("demo: stopped"), "{status:?}\n{said}");
    // Everything it started is gone: its ports are free again.
    for port in [5060, 5070, 5071, 5062] {
        let free = (0..100).any(|_| {
            let ok = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
            if !ok {
                std::thread::sleep(Duration::from_millis(50));
            }
            ok
        });
        assert!(
            free,
            "port {port} still taken after the demo ({calls:?} calls)"
        );
    }
}
