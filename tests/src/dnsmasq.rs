//! dnsmasq (Debian `dnsmasq-base`) as the test's own DNS server: it
//! serves the NAPTR, SRV and A records a test gives it on 127.0.0.1,
//! inside the test's private namespace, and nothing else (no upstream,
//! no /etc/hosts). Killed when dropped.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;
use crate::process::{self, Lines};

/// How long dnsmasq may take to answer its first query.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// One record, as dnsmasq's options write it.
pub enum Record<'a> {
    /// `name` has address `ip`.
    A(&'a str, &'a str),
    /// `_service._proto.domain` points at `target:port` with `priority`
    /// and `weight`.
    Srv {
        name: &'a str,
        target: &'a str,
        port: u16,
        priority: u16,
        weight: u16,
    },
    /// `domain`'s NAPTR: `order`, `preference`, `service` (`SIP+D2U`...)
    /// leading to `replacement` (an SRV name), flag "s".
    Naptr {
        name: &'a str,
        order: u16,
        preference: u16,
        service: &'a str,
        replacement: &'a str,
    },
}

impl Record<'_> {
    fn option(&self) -> String {
        match self {
            Record::A(name, ip) => format!("--host-record={name},{ip}"),
            Record::Srv {
                name,
                target,
                port,
                priority,
                weight,
            } => format!("--srv-host={name},{target},{port},{priority},{weight}"),
            Record::Naptr {
                name,
                order,
                preference,
                service,
                replacement,
            } => format!("--naptr-record={name},{order},{preference},s,{service},,{replacement}"),
        }
    }
}

/// A running dnsmasq.
pub struct Dnsmasq {
    child: Child,
    stderr: Lines,
    port: u16,
}

impl Dnsmasq {
    /// Serves `records` on 127.0.0.1:`port` with TTL `ttl` seconds;
    /// returns once it answers a query.
    pub fn start(port: u16, ttl: u32, records: &[Record<'_>]) -> Dnsmasq {
        require_private_netns();
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--log-facility=-",
            "--log-queries",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
            &format!("--port={port}"),
            &format!("--local-ttl={ttl}"),
            "--conf-file=/dev/null",
            // Authoritative for .test: a name or type it has no record
            // of is answered "none", not refused for want of upstreams.
            "--local=/test/",
        ]);
        for r in records {
            cmd.arg(r.option());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dnsmasq (apt-get install dnsmasq-base): {e}"));
        let stderr = Lines::collect(child.stderr.take().expect("piped stderr"), None);
        let d = Dnsmasq {
            child,
            stderr,
            port,
        };
        d.wait_ready();
        d
    }

    /// The address to give sipedge as `[node] dns`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything dnsmasq logged so far (each query with `--log-queries`).
    pub fn log(&self) -> String {
        self.stderr.text()
    }

    /// Sends an A query for `ready.invalid` until any answer comes back.
    fn wait_ready(&self) {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        // Header: id 0x5e5e, recursion desired, one question.
        let mut q = vec![0x5e, 0x5e, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["ready", "invalid"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            let _ = sock.send_to(&q, ("127.0.0.1", self.port));
            if matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[..2] == [0x5e, 0x5e])
            {
                return;
            }
        }
        panic!(
            "dnsmasq did not answer on port {} within {READY_TIMEOUT:?}\n{}",
            self.port,
            self.stderr.text()
        );
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        process::stop(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}
