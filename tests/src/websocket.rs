//! SIP over WebSocket clients: `tests/ws/sip_ws_client.py` on Debian's
//! python3-websockets (a plain exchange without a browser), and headless
//! Chromium running JsSIP (`tests/browser/`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::json::{parse, Json};
use crate::netns::require_private_netns;
use crate::process::{self, Lines};

/// How long one client run may take.
const LIMIT: Duration = Duration::from_secs(30);

/// What one run of the Python client reported, one event per line.
#[derive(Debug)]
pub struct Events {
    /// The events, in order.
    pub events: Vec<Json>,
    /// The client's exit code.
    pub status: Option<i32>,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Events {
    /// The first event that has `key`, and its value there.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.events.iter().find_map(|e| e.get(key))
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&Json> {
        self.events.iter().filter_map(|e| e.get(key)).collect()
    }
}

/// Runs the Python client against `url` (`ws://…` or `wss://…`) in
/// `mode` (see the script) and returns what it reported.
pub fn python_client(url: &str, mode: &str) -> Events {
    require_private_netns();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ws/sip_ws_client.py");
    // Debian's interpreter, which has Debian's python3-websockets.
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(url)
        .arg(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start /usr/bin/python3: {e}"));
    let mut stdout = Lines::collect(child.stdout.take().expect("piped stdout"), None);
    let mut stderr = Lines::collect(child.stderr.take().expect("piped stderr"), None);
    let status = match process::wait_timeout(&mut child, LIMIT) {
        Some(s) => process::exit_code(s),
        None => {
            process::stop(&mut child, libc::SIGKILL, Duration::from_secs(1));
            None
        }
    };
    stdout.finish(Duration::from_secs(2));
    stderr.finish(Duration::from_secs(2));
    let events = stdout
        .text()
        .lines()
        .filter_map(|l| parse(l).ok())
        .collect();
    Events {
        events,
        status,
        stderr: stderr.text(),
    }
}

/// What the browser page reported, in order.
#[derive(Debug)]
pub struct PageReport {
    /// Each state the page reported.
    pub states: Vec<String>,
    /// What Chromium printed (the page's console, with JsSIP's debug log).
    pub console: String,
}

/// Opens `tests/browser/PAGE?QUERY&report=…` in headless Chromium and
/// collects what the page reports until one state starts with `ok` or
/// `failed`, or `limit` passes; then closes the browser.
pub fn browser(page: &str, query: &str, limit: Duration) -> PageReport {
    use std::io::{BufRead, BufReader, Write};
    require_private_netns();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        dir.join("jssip.bundle.js").is_file(),
        "tests/browser/jssip.bundle.js is missing: run tests/browser/setup (scripts/test does)"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the report listener");
    let report = format!(
        "http://{}/state",
        listener.local_addr().expect("its address")
    );
    let url = format!("file://{}/{page}?{query}&report={report}", dir.display());
    let profile = crate::TempDir::new("chromium");
    let mut child = crate::browser::command(profile.path())
        .args([
            // The edge's certificate is the test's own.
            "--ignore-certificate-errors",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium (apt-get install chromium): {e}"));
    let mut console = Lines::collect(child.stderr.take().expect("piped stderr"), None);
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let deadline = std::time::Instant::now() + limit;
    let mut states = Vec::new();
    while std::time::Instant::now() < deadline {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        let _ = BufReader::new(&conn).read_line(&mut line);
        let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        // GET /state?WHAT HTTP/1.1
        let what = line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.split_once('?'))
            .map(|(_, q)| percent_decode(q))
            .unwrap_or_default();
        let done = what.starts_with("ok") || what.starts_with("failed");
        states.push(what);
        if done {
            break;
        }
    }
    process::stop(&mut child, libc::SIGTERM, Duration::from_secs(3));
    console.finish(Duration::from_secs(2));
    PageReport {
        states,
        console: console.text(),
    }
}

/// `%XX` escapes decoded (what `encodeURIComponent` wrote).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
