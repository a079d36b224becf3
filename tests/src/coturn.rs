//! coturn (Debian `coturn`) as the test's STUN server: STUN only (no
//! TURN, no TLS, no CLI, no config file), on one address the test gives,
//! inside the test's private namespace. Killed when dropped.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;
use crate::process::{self, Lines};
use crate::tempdir::TempDir;

/// How long coturn may take to answer its first Binding request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The transaction id of the readiness probe.
const PROBE_ID: [u8; 12] = *b"sipedge-test";

/// A running coturn.
pub struct Coturn {
    child: Child,
    stdout: Lines,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Coturn {
    /// Serves STUN on `addr` (UDP); returns once it answers a Binding
    /// request there.
    pub fn start(addr: SocketAddr) -> Coturn {
        require_private_netns();
        let dir = TempDir::new("coturn");
        let mut child = Command::new("turnserver")
            .args([
                "-n",
                "--stun-only",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-tcp",
                "--simple-log",
                "--log-file=stdout",
                &format!("--listening-ip={}", addr.ip()),
                &format!("--listening-port={}", addr.port()),
                &format!("--pidfile={}", dir.join("turnserver.pid").display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start turnserver (apt-get install coturn): {e}"));
        let stdout = Lines::collect(child.stdout.take().expect("piped stdout"), None);
        let c = Coturn {
            child,
            stdout,
            addr,
            _dir: dir,
        };
        c.wait_ready();
        c
    }

    /// Where it serves STUN.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything coturn logged so far.
    pub fn log(&self) -> String {
        self.stdout.text()
    }

    /// Sends a Binding request (RFC 5389 §6, hand-made here so that the
    /// probe does not share code with sipedge's) until the answer to it
    /// comes back.
    fn wait_ready(&self) {
        let sock = UdpSocket::bind((self.addr.ip(), 0)).expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut request = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&PROBE_ID);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            let _ = sock.send_to(&request, self.addr);
            if matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[..2] == [1, 1] && buf[8..20] == PROBE_ID)
            {
                return;
            }
        }
        panic!(
            "coturn did not answer on {} within {READY_TIMEOUT:?}\n{}",
            self.addr,
            self.log()
        );
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        process::stop(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}
