//! The guard that keeps test traffic on this machine.
//!
//! SIP messages name addresses, and a proxy sends where they say: a typo in
//! a test, or a bug in sipedge, could send packets to a real host. So the
//! tests only run inside a network namespace whose only interface is
//! loopback (`unshare -n`, as `scripts/test` does); there, any address but
//! 127.0.0.0/8 is unreachable by construction.

use std::net::UdpSocket;
use std::sync::OnceLock;
use std::time::Duration;

/// Panics unless this process runs in a private network namespace whose
/// only interface is an up `lo`.
///
/// Call it first in every test (the spawn functions of this crate call it
/// too). It reads `/proc/self/net/dev`, which lists the interfaces of the
/// caller's network namespace (unlike `/sys/class/net`, which shows the
/// namespace sysfs was mounted in), then checks that loopback carries a
/// datagram, because `unshare -n` leaves `lo` down. The answer is computed
/// once per process.
pub fn require_private_netns() {
    static VERDICT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(why) = VERDICT.get_or_init(check) {
        panic!(
            "refusing to run end-to-end tests: {why}\n\
             These tests must run in a private network namespace with only \
             loopback, so that no test message can leave the machine. Run \
             them with `scripts/test`, or by hand:\n    \
             unshare -n sh -c 'ip link set lo up && exec cargo test -p e2e --offline'\n\
             (as root, or with `unshare -rn` as a user)."
        );
    }
}

fn check() -> Result<(), String> {
    let dev = std::fs::read_to_string("/proc/self/net/dev")
        .map_err(|e| format!("cannot read /proc/self/net/dev: {e}"))?;
    let names = interfaces(&dev);
    let foreign: Vec<&str> = names.iter().copied().filter(|n| *n != "lo").collect();
    if !foreign.is_empty() {
        return Err(format!(
            "this network namespace has interfaces other than lo: {}",
            foreign.join(", ")
        ));
    }
    if !names.contains(&"lo") {
        return Err("this network namespace has no lo interface".into());
    }
    loopback_works()
}

/// Interface names listed in the text of `/proc/<pid>/net/dev`.
///
/// The file has two header lines, then one `name: counters…` line per
/// interface.
pub fn interfaces(net_dev: &str) -> Vec<&str> {
    net_dev
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Sends one datagram to ourselves over 127.0.0.1; fails when `lo` is down.
fn loopback_works() -> Result<(), String> {
    let err = |e: std::io::Error| format!("loopback does not work ({e}); is `lo` up?");
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(err)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(err)?;
    let me = sock.local_addr().map_err(err)?;
    sock.send_to(b"e2e-loopback-check", me).map_err(err)?;
    let mut buf = [0u8; 64];
    let (n, _) = sock.recv_from(&mut buf).map_err(err)?;
    if &buf[..n] == b"e2e-loopback-check" {
        Ok(())
    } else {
        Err("loopback returned a foreign datagram".into())
    }
}

#[cfg(test)]
mod tests {
    use super::interfaces;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    #[test]
    fn lists_interfaces_of_a_private_namespace() {
        let text = format!("{HEADER}    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n");
        assert_eq!(interfaces(&text), vec!["lo"]);
    }

    #[test]
    fn lists_interfaces_of_a_host_namespace() {
        let text = format!("{HEADER}    lo: 1 2 3\n  eth0: 4 5 6\nwlp0s20f3: 7 8 9\n");
        assert_eq!(interfaces(&text), vec!["lo", "eth0", "wlp0s20f3"]);
    }
}
