//! More hosts than loopback, for tests of what crosses a network (a NAT,
//! an anycast route): each [`Host`] is a network namespace of its own,
//! made by the test (`unshare -n`, anchored by a sleeping process that
//! the host kills on drop), joined to others by veth pairs ([`link`]).
//! Every namespace is private to the test: the only way out of one is a
//! veth to another, and none leads off the machine.
//!
//! Peers run inside a host through [`within`]: sipedge and SIPp started
//! in its closure run in the host's namespace (`nsenter -n`), and SIPp
//! binds the host's address instead of 127.0.0.1.

use std::cell::Cell;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;
use crate::process;

/// One namespace: a host of the test's network.
pub struct Host {
    name: String,
    anchor: Child,
}

/// Time for a new namespace to exist.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

impl Host {
    /// A new host with only its loopback, up.
    pub fn new(name: &str) -> Host {
        require_private_netns();
        // Bounded: a test that leaks its hosts has them gone in ten
        // minutes anyway.
        let anchor = Command::new("unshare")
            .args(["--net", "--", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start unshare (util-linux): {e}"));
        let host = Host {
            name: name.to_string(),
            anchor,
        };
        let ours = std::fs::read_link("/proc/self/ns/net").ok();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let pid = host.pid();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if comm.trim() == "sleep" && ns.is_some() && ns != ours {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "host {name}: no namespace of its own"
            );
            std::thread::sleep(process::POLL);
        }
        host.run(&["ip", "link", "set", "lo", "up"]);
        host
    }

    /// The process that holds the namespace.
    pub fn pid(&self) -> u32 {
        self.anchor.id()
    }

    /// Runs `args` in this host; panics with its output unless it
    /// succeeds.
    pub fn run(&self, args: &[&str]) {
        run(Some(self), args);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
    }
}

fn run(host: Option<&Host>, args: &[&str]) {
    let mut cmd = match host {
        Some(h) => {
            let mut c = Command::new("nsenter");
            c.args(["-t", &h.pid().to_string(), "-n", "--"]);
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{}",
        host.map_or("(test)", |h| &h.name),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair between `a` and `b` (`None`: the test's own namespace),
/// up, with the addresses (`10.0.0.1/24`) given. Returns the interface
/// names on each side.
pub fn link(a: Option<&Host>, a_cidr: &str, b: Option<&Host>, b_cidr: &str) -> (String, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let id = std::process::id() % 10_000;
    let (a_if, b_if) = (format!("va{id}x{n}"), format!("vb{id}x{n}"));
    let b_pid = b.map_or(std::process::id(), Host::pid).to_string();
    run(
        a,
        &[
            "ip", "link", "add", &a_if, "type", "veth", "peer", "name", &b_if, "netns", &b_pid,
        ],
    );
    for (h, iface, cidr) in [(a, &a_if, a_cidr), (b, &b_if, b_cidr)] {
        run(h, &["ip", "addr", "add", cidr, "dev", iface]);
        run(h, &["ip", "link", "set", iface, "up"]);
    }
    (a_if, b_if)
}

/// Runs `args` in the test's own namespace (a route to a host's network).
pub fn run_here(args: &[&str]) {
    run(None, args);
}

thread_local! {
    static INSIDE: Cell<Option<(u32, Ipv4Addr)>> = const { Cell::new(None) };
}

/// Runs `f` with the peers it starts (sipedge, SIPp) inside `host`, SIPp bound to
/// `addr` (one of the host's addresses) instead of 127.0.0.1.
pub fn within<T>(host: &Host, addr: Ipv4Addr, f: impl FnOnce() -> T) -> T {
    let before = INSIDE.with(|c| c.replace(Some((host.pid(), addr))));
    let out = f();
    INSIDE.with(|c| c.set(before));
    out
}

/// Runs `f` with the peers it starts bound to `addr`, one of the test's
/// own namespace's addresses (not a host's), instead of 127.0.0.1.
pub fn here_at<T>(addr: Ipv4Addr, f: impl FnOnce() -> T) -> T {
    let before = INSIDE.with(|c| c.replace(Some((std::process::id(), addr))));
    let out = f();
    INSIDE.with(|c| c.set(before));
    out
}

/// What `args` print in `host`; panics unless they succeed.
pub fn output(host: &Host, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &host.pid().to_string(), "-n", "--"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        host.name,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command for `program`, inside the host of [`within`] if any.
pub(crate) fn command(program: impl AsRef<OsStr>) -> Command {
    match INSIDE.with(Cell::get) {
        Some((pid, _)) => {
            let mut c = Command::new("nsenter");
            c.args(["-t", &pid.to_string(), "-n", "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The address peers bind: the [`within`] host's, or 127.0.0.1.
pub(crate) fn local_ip() -> Ipv4Addr {
    INSIDE.with(Cell::get).map_or(crate::LOCALHOST, |(_, a)| a)
}

/// A phone's network behind a NAT, for the real-NAT tests: the phone at
/// 10.10.0.2, a router between 10.10.0.1 and 10.20.0.1 that masquerades
/// (nftables, random ports) what leaves toward 10.20.0.0/24, where
/// `edge` (an address in it) is the test's own namespace. The phone's
/// default route is the router; nothing routes back to 10.10.0.0/24.
pub fn phone_behind_nat(edge: &str) -> (Host, Host) {
    let phone = Host::new("phone");
    let router = Host::new("router");
    link(Some(&phone), "10.10.0.2/24", Some(&router), "10.10.0.1/24");
    let (outside, _) = link(Some(&router), "10.20.0.1/24", None, &format!("{edge}/24"));
    phone.run(&["ip", "route", "add", "default", "via", "10.10.0.1"]);
    router.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    router.run(&["nft", "add", "table", "ip", "nat"]);
    let chain = "{ type nat hook postrouting priority 100 ; }";
    let mut add_chain = vec!["nft", "add", "chain", "ip", "nat", "post"];
    add_chain.extend(chain.split(' '));
    router.run(&add_chain);
    router.run(&[
        "nft",
        "add",
        "rule",
        "ip",
        "nat",
        "post",
        "oifname",
        &outside,
        "masquerade",
        "random",
    ]);
    (phone, router)
}
