//! `openssl s_client` (Debian `openssl`) as a TLS client of the edge: a
//! handshake with the versions, suites, groups, SNI and client
//! certificate a test asks for, then SIP over the connection. What the
//! handshake agreed on is read from `-brief`'s report; that the
//! connection works end to end is shown by a SIP answer coming back.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{exit_code, Lines};

/// How long a handshake and one answer may take.
const LIMIT: Duration = Duration::from_secs(5);

/// An open `s_client` session.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
}

impl Session {
    /// Connects to `addr` with `args` (`-servername`, `-tls1_3`,
    /// `-ciphersuites`, `-groups`, `-cert`/`-key`, `-CAfile`, …; without
    /// `-servername` no SNI is sent).
    pub fn open(addr: SocketAddr, args: &[&str]) -> Session {
        let mut cmd = Command::new("openssl");
        cmd.arg("s_client")
            .arg("-connect")
            .arg(addr.to_string())
            .arg("-brief");
        if !args.contains(&"-servername") {
            cmd.arg("-noservername");
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start openssl (apt-get install openssl): {e}"));
        let stdin = child.stdin.take();
        let stdout = Lines::collect(child.stdout.take().expect("piped stdout"), None);
        let stderr = Lines::collect(child.stderr.take().expect("piped stderr"), None);
        Session {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Sends `message` over the connection.
    pub fn send(&mut self, message: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            // A closed pipe means s_client ended: the answers say so.
            let _ = stdin.write_all(message.as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Waits for the `n`th SIP status line (1-based) to arrive; false when
    /// the connection ended or `LIMIT` passed first.
    pub fn wait_answers(&self, n: usize) -> bool {
        self.stdout.wait_count("SIP/2.0 ", n, LIMIT)
    }

    /// Closes the connection (s_client ends at the end of its input) and
    /// returns what the handshake reported.
    pub fn close(mut self) -> Report {
        drop(self.stdin.take());
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let status = self.child.wait().ok().and_then(exit_code);
        self.stdout.finish(LIMIT);
        self.stderr.finish(LIMIT);
        let lines = |l: &Lines| l.text().lines().map(str::to_owned).collect();
        Report {
            stdout: lines(&self.stdout),
            stderr: lines(&self.stderr),
            status,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `s_client` run printed.
#[derive(Debug)]
pub struct Report {
    /// What came over the connection, by line.
    pub stdout: Vec<String>,
    /// `-brief`'s handshake report and any error, by line.
    pub stderr: Vec<String>,
    /// Its exit code.
    pub status: Option<i32>,
}

impl Report {
    /// The value of `-brief`'s `name: value` line (`Protocol version`,
    /// `Ciphersuite`, `Peer certificate`, `Server Temp Key`).
    pub fn field(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.stderr
            .iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// The status lines that came back.
    pub fn answers(&self) -> Vec<&str> {
        self.stdout
            .iter()
            .filter(|l| l.starts_with("SIP/2.0 "))
            .map(String::as_str)
            .collect()
    }

    /// Everything, for a failure message.
    pub fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stderr\n{}\n--- stdout\n{}",
            self.status,
            self.stderr.join("\n"),
            self.stdout.join("\n")
        )
    }
}

/// One handshake with `args` and one OPTIONS over it (Max-Forwards 0,
/// which the edge answers itself), waiting for its answer.
pub fn options(addr: SocketAddr, args: &[&str]) -> Report {
    let mut s = Session::open(addr, args);
    s.send(&options_to(addr, 1));
    s.wait_answers(1);
    s.close()
}

/// An OPTIONS to the edge at `addr` over TLS, with CSeq `n`.
pub fn options_to(addr: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{addr};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-s-client-{n}\r\n\
         Max-Forwards: 0\r\n\
         From: <sip:probe@example.com>;tag=s{n}\r\n\
         To: <sip:{addr}>\r\n\
         Call-ID: s-client-{n}@example.com\r\n\
         CSeq: {n} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}
