//! The daemon's own logs as JSON lines (`--log-format json`, issue 18
//! §4): each line one object a log pipeline can read, with the level, the
//! message and its fields.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::config::single_edge;
use e2e::{free_port, require_private_netns};

#[test]
fn run_with_json_logs_writes_one_object_per_line() {
    require_private_netns();
    let dir = e2e::TempDir::new("json-logs");
    let config = dir.path().join("sipedge.toml");
    std::fs::write(
        &config,
        single_edge(free_port(), "weighted-round-robin", &[(free_port(), 1)]),
    )
    .expect("write the config");
    let mut child = Command::new(e2e::sipedge::binary())
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipedge");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let ready = loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            break None;
        };
        let v = e2e::json::parse(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(line);
        if v["fields"]["message"] == "sipedge ready" {
            break Some(v);
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.unwrap_or_else(|| panic!("no ready line in:\n{}", lines.join("\n")));
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert_eq!(ready["fields"]["node"], "test", "{ready}");
    assert!(
        ready["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{ready}"
    );
}
