//! End to end: the real `sipload` binary, UAC and UAS in one process, the
//! UAC calling one of its own UAS endpoints directly (no proxy), over real
//! UDP sockets on loopback.
//!
//! Runs only inside a private network namespace whose only interface is
//! `lo`, like the workspace's other end-to-end tests:
//!
//! ```sh
//! unshare -n sh -c 'ip link set lo up && cargo test -p sipload --offline'
//! ```
//!
//! (`unshare -rn` as a user; `scripts/test` does this for the whole suite.)

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

/// Panics unless this process is in a network namespace with only `lo`.
fn require_private_netns() {
    let dev = std::fs::read_to_string("/proc/self/net/dev").expect("read /proc/self/net/dev");
    let names: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n.trim())
        .collect();
    let foreign: Vec<&str> = names.iter().copied().filter(|n| *n != "lo").collect();
    assert!(
        foreign.is_empty() && names.contains(&"lo"),
        "refusing to run: this network namespace has interfaces other than lo ({}). \
         Run inside a private one:\n    \
         unshare -n sh -c 'ip link set lo up && cargo test -p sipload --offline'",
        foreign.join(", ")
    );
}

/// A UDP port free right now on 127.0.0.1.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of `key` in the `RESULT key=value ...` line.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{out}"));
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn two_thousand_direct_calls_all_succeed() {
    direct_calls("udp");
}

/// The same over TCP: the UAC's connection to its own endpoint.
#[test]
fn two_thousand_direct_calls_over_tcp_all_succeed() {
    direct_calls("tcp");
}

fn direct_calls(transport: &str) {
    require_private_netns();
    let (a, b) = (free_port(), free_port());
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sipload"))
        .args(["--role", "both", "--rate", "2000", "--calls", "2000"])
        .args(["--transport", transport])
        .args(["--proxy", &format!("127.0.0.1:{a}")])
        .args(["--uas", &format!("127.0.0.1:{a}")])
        .args(["--uas", &format!("127.0.0.1:{b}")])
        .args(["--uac", "127.0.0.1:0", "--duration-limit", "30"])
        .output()
        .expect("run sipload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sipload failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(field(&stdout, "started"), "2000", "{stdout}");
    assert_eq!(field(&stdout, "ok"), "2000", "{stdout}");
    assert_eq!(field(&stdout, "failed"), "0", "{stdout}");
    assert_eq!(field(&stdout, "uas_completed"), "2000", "{stdout}");
    assert_eq!(field(&stdout, "uas_failed"), "0", "{stdout}");
    assert_eq!(field(&stdout, "pass"), "1");
    // The schedule was followed: 2,000 calls at 2,000/s take at least about
    // a second (the lower bound on the rate is loose: a debug build on a
    // busy machine may fall behind, which is not what this test is about).
    let achieved: f64 = field(&stdout, "achieved_cps").parse().unwrap();
    assert!((1000.0..=2100.0).contains(&achieved), "{stdout}");
    assert!(started.elapsed() >= Duration::from_millis(900), "{stdout}");
}

#[test]
fn failures_give_exit_status_1_and_usage_errors_2() {
    require_private_netns();
    // Nobody listens at the proxy address: every call times out (after
    // a short --timeout).
    let dead = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_sipload"))
        .args(["--role", "uac", "--rate", "100", "--calls", "3"])
        .args(["--proxy", &format!("127.0.0.1:{dead}"), "--timeout", "1"])
        .output()
        .expect("run sipload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(field(&stdout, "failed_timeout"), "3", "{stdout}");
    assert_eq!(field(&stdout, "retrans_invite"), "3", "{stdout}"); // at 0.5 s each

    let out = Command::new(env!("CARGO_BIN_EXE_sipload"))
        .args(["--rate", "-1", "--proxy", "127.0.0.1:5060"])
        .output()
        .expect("run sipload");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_sipload"))
        .arg("--no-such-flag")
        .output()
        .expect("run sipload");
    assert_eq!(out.status.code(), Some(2));
}
