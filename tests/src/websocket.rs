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
