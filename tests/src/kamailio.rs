//! Kamailio, the dispatcher operators run today, as a peer for comparisons
//! (`bench/corpus`): started on one of the benchmark's configs, killed
//! when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;
use crate::process::{self, Lines};
use crate::tempdir::TempDir;
use crate::{sip, Udp};

/// How long Kamailio may take to fork its workers and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `kamailio -DD -E -f CFG`, its dispatcher set 1 from a list
/// written here.
pub struct Kamailio {
    child: Child,
    stderr: Lines,
    _dir: TempDir,
}

impl Kamailio {
    /// Starts Kamailio on `cfg` (one of `bench/kamailio/*.cfg`, which take
    /// `DS_LIST` and `LISTEN` as defines) listening on 127.0.0.1:`port`,
    /// with dispatcher set 1 = `destinations` (ports on 127.0.0.1).
    /// Returns once it answers: an OPTIONS with Max-Forwards 0 gets its
    /// 483.
    pub fn start(cfg: &Path, port: u16, destinations: &[u16]) -> Kamailio {
        let dir = TempDir::new("kamailio");
        let list: String = destinations
            .iter()
            .map(|p| format!("1 sip:127.0.0.1:{p} 0 0 weight=1\n"))
            .collect();
        let ds_list = dir.join("dispatcher.list");
        std::fs::write(&ds_list, list).expect("write dispatcher.list");
        let defines = [
            format!("DS_LIST=\"{}\"", ds_list.display()),
            format!("LISTEN=udp:127.0.0.1:{port}"),
        ];
        Kamailio::start_with(cfg, port, &defines, dir)
    }

    /// Starts Kamailio on `cfg` with `defines` (`-A NAME=VALUE` each),
    /// working in `dir`; returns once it answers on UDP 127.0.0.1:`port`.
    pub fn start_with(cfg: &Path, port: u16, defines: &[String], dir: TempDir) -> Kamailio {
        require_private_netns();
        let mut cmd = Command::new("kamailio");
        cmd.arg("-DD")
            .arg("-E")
            .arg("-f")
            .arg(cfg)
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path());
        for d in defines {
            cmd.arg("-A").arg(d);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kamailio (apt-get install kamailio): {e}"));
        let stderr = Lines::collect(child.stderr.take().expect("piped stderr"), None);
        let kamailio = Kamailio {
            child,
            stderr,
            _dir: dir,
        };
        kamailio.wait_ready(port);
        kamailio
    }

    /// Everything Kamailio printed so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Polls with an OPTIONS that must be answered 483 (Max-Forwards 0)
    /// until the SIP worker answers.
    fn wait_ready(&self, port: u16) {
        let probe = Udp::bind();
        let ping = sip::Request::new(
            "OPTIONS",
            &format!("sip:127.0.0.1:{port}"),
            probe.local_addr(),
        )
        .set("Max-Forwards", "0")
        .build();
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            probe.send_to(&ping, ("127.0.0.1", port));
            if let Some((text, _)) = probe.recv_text_timeout(Duration::from_millis(100)) {
                if sip::status_code(&text) == Some(483) {
                    return;
                }
            }
        }
        panic!(
            "kamailio did not answer on port {port} within {READY_TIMEOUT:?}\n{}",
            self.stderr.text()
        );
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM: the main process stops its forked workers too.
        process::stop(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}

/// Where `tests/kamailio/relay.cfg` sends what arrives at its front
/// (from SIPp callers), by Request-URI user.
pub struct Front {
    /// For user `to-udp`.
    pub to_udp: String,
    /// For user `to-tcp`.
    pub to_tcp: String,
    /// For user `to-tls`.
    pub to_tls: String,
    /// For any other user.
    pub default: String,
}

/// Where `tests/kamailio/relay.cfg` takes what the edge sends it, and
/// where it relays that.
pub struct Back<'a> {
    /// Its address for the edge.
    pub ip: &'a str,
    /// Its UDP and TCP port there.
    pub port: u16,
    /// Its TLS port there.
    pub tls_port: u16,
    /// The server (SIPp, UDP on 127.0.0.1) it relays to.
    pub to: u16,
}

impl Kamailio {
    /// Kamailio on `tests/kamailio/relay.cfg`: UDP callers at
    /// 127.0.0.1:`front` relayed to the edge as `to` says; what the edge
    /// sends to `back` (UDP, TCP or TLS) relayed over UDP to its server. (On a connection the
    /// edge knows a server by its address alone, whatever the port: a
    /// Kamailio in the pool and one in front of the edge need two.) Its TLS certificate is `leaf`
    /// (from `ca`), and it verifies the edge's against `ca` both ways.
    pub fn relay(
        front: u16,
        back: &Back<'_>,
        to: &Front,
        ca: &crate::certs::Ca,
        leaf: &crate::certs::Leaf,
    ) -> Kamailio {
        let dir = TempDir::new("kamailio-relay");
        let tls = format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n\
             private_key = {key}\ncertificate = {cert}\nca_list = {ca}\n\n\
             [client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n\
             ca_list = {ca}\nprivate_key = {key}\ncertificate = {cert}\n",
            key = leaf.key.display(),
            cert = leaf.cert.display(),
            ca = ca.cert().display()
        );
        let tls_cfg = dir.join("tls.cfg");
        std::fs::write(&tls_cfg, tls).expect("write tls.cfg");
        let quoted = |name: &str, v: &str| format!("{name}=\"{v}\"");
        let defines = [
            format!("LISTEN_FRONT=udp:127.0.0.1:{front}"),
            format!("FRONT_PORT={front}"),
            format!("LISTEN_BACK_UDP=udp:{}:{}", back.ip, back.port),
            format!("LISTEN_BACK_TCP=tcp:{}:{}", back.ip, back.port),
            format!("LISTEN_BACK_TLS=tls:{}:{}", back.ip, back.tls_port),
            quoted("TLS_CFG", &tls_cfg.display().to_string()),
            quoted("TO_BACK", &format!("sip:127.0.0.1:{}", back.to)),
            quoted("FRONT_TO_UDP", &to.to_udp),
            quoted("FRONT_TO_TCP", &to.to_tcp),
            quoted("FRONT_TO_TLS", &to.to_tls),
            quoted("FRONT_DEFAULT", &to.default),
        ];
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("kamailio/relay.cfg");
        Kamailio::start_with(&cfg, front, &defines, dir)
    }
}
