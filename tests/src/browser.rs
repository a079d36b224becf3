//! Headless Chromium (Debian's `chromium`), as the tests run it: flags
//! that keep it from reaching out to the network, a fresh profile per
//! run, and the one-shot modes that load a page, let its scripts run and
//! hand back the DOM or a screenshot.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::netns::require_private_netns;
use crate::process;

/// How long one one-shot run may take.
const LIMIT: Duration = Duration::from_secs(60);

/// `chromium` with the flags every test uses and the profile `profile`:
/// headless, no sandbox (the tests run as root), and nothing that would
/// call Google's hosts (the network is closed; each refused attempt costs
/// time).
pub fn command(profile: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Loads `url`, lets its scripts run for `budget` of virtual time (the
/// clock only moves while nothing is pending, so fetches it starts are
/// waited for), and returns the DOM as it then is.
#[track_caller]
pub fn dom(url: &str, budget: Duration) -> String {
    let out = one_shot(url, budget, &["--dump-dom"]);
    String::from_utf8_lossy(&out).into_owned()
}

/// Like [`dom`], then writes a PNG of a `width`×`height` window to `png`.
#[track_caller]
pub fn screenshot(url: &str, budget: Duration, png: &Path, width: u32, height: u32) {
    let shot = format!("--screenshot={}", png.display());
    let size = format!("--window-size={width},{height}");
    one_shot(url, budget, &[&shot, &size, "--hide-scrollbars"]);
    assert!(
        png.is_file(),
        "chromium wrote no screenshot to {}",
        png.display()
    );
}

#[track_caller]
fn one_shot(url: &str, budget: Duration, mode: &[&str]) -> Vec<u8> {
    require_private_netns();
    let profile = crate::TempDir::new("chromium");
    let mut child = command(profile.path())
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .args(mode)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium (apt-get install chromium): {e}"));
    let mut stdout = process::Lines::collect(child.stdout.take().expect("piped stdout"), None);
    let mut stderr = process::Lines::collect(child.stderr.take().expect("piped stderr"), None);
    let status = process::wait_timeout(&mut child, LIMIT);
    if status.is_none() {
        process::stop(&mut child, libc::SIGKILL, Duration::from_secs(1));
    }
    stdout.finish(Duration::from_secs(2));
    stderr.finish(Duration::from_secs(2));
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium {mode:?} {url} failed ({status:?}):\n{}",
        stderr.text()
    );
    stdout.text().into_bytes()
}
