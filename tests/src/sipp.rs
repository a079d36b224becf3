//! SIPp as the servers of the pool ([`SippUas`]) and as callers
//! ([`SippUac`]).
//!
//! Each SIPp runs in the foreground as our child (not `-bg`, so we hold its
//! pid), with every port it opens given explicitly (SIP `-p`, control
//! `-cp`, media `-mp`), so parallel tests never collide. What a peer did
//! is read afterwards from files SIPp writes in a scratch directory:
//!
//! - `messages.log` (`-trace_msg`): every message sent and received,
//!   flushed after each one; parsed by [`crate::trace`].
//! - `stats.csv` (`-trace_stat`): the statistics; its last line, written at
//!   exit, has the cumulative successful and failed call counts.
//! - `errors.log` (`-trace_err`): unexpected messages, for failure reports.
//! - `screen.log` (`-trace_screen`): the final screens, idem.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;
use crate::ports::{free_port, free_port_block};
use crate::process::{self, read_lossy, tail};
use crate::tempdir::TempDir;
use crate::trace::{parse_message_log, Direction, TracedMessage};

/// SIPp's own global timeout for a caller run (`-timeout … -timeout_error`):
/// a run that has not finished by then stops by itself and fails.
pub const SIPP_GLOBAL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a caller waits for any expected message before it gives up on
/// the call (`-recv_timeout`), so a lost message fails one call quickly
/// instead of holding the run until the global timeout.
pub const SIPP_RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server may take to bind its SIP port.
const BIND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server may take to finish its calls after a soft exit.
const SOFT_EXIT_GRACE: Duration = Duration::from_secs(5);

/// The path of a scenario: a bare name (`"uac.xml"`) is taken from
/// `tests/scenarios/`, anything with a `/` is used as is.
pub fn scenario_path(name: &str) -> PathBuf {
    let path = if name.contains('/') {
        PathBuf::from(name)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name)
    };
    assert!(path.is_file(), "no SIPp scenario at {}", path.display());
    path
}

fn sipp_binary() -> PathBuf {
    let bin = std::env::var_os("SIPP_BIN").map_or_else(|| PathBuf::from("sipp"), PathBuf::from);
    let found = if bin.components().count() > 1 {
        bin.is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(&bin).is_file()))
    };
    assert!(
        found,
        "SIPp not found ({}): install it (`apt-get install sip-tester`; scripts/test does) \
         or set SIPP_BIN",
        bin.display()
    );
    bin
}

/// Files and ports of one SIPp run.
struct Run {
    dir: TempDir,
    scenario: PathBuf,
}

impl Run {
    fn new(label: &str, scenario: &str) -> Run {
        require_private_netns();
        Run {
            dir: TempDir::new(label),
            scenario: scenario_path(scenario),
        }
    }

    fn messages(&self) -> PathBuf {
        self.dir.join("messages.log")
    }

    fn stats(&self) -> PathBuf {
        self.dir.join("stats.csv")
    }

    /// `sipp -sf SCENARIO [target] -i 127.0.0.1 -p PORT …` with all traces
    /// on; stdout and stderr go to files (SIPp repaints its screen to stdout
    /// every second; a pipe nobody reads would stall it).
    fn command(&self, target: Option<&str>, port: u16) -> Command {
        let mut cmd = crate::hosts::command(sipp_binary());
        cmd.arg("-sf").arg(&self.scenario);
        if let Some(target) = target {
            cmd.arg(target);
        }
        let control_port = free_port();
        let media_port = free_port_block(4);
        cmd.args(["-i", &crate::hosts::local_ip().to_string()])
            .args(["-p", &port.to_string()])
            .args(["-cp", &control_port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .arg("-nostdin")
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(self.messages())
            .arg("-trace_stat")
            .arg("-stf")
            .arg(self.stats())
            .arg("-trace_err")
            .arg("-error_file")
            .arg(self.dir.join("errors.log"))
            .arg("-trace_screen")
            .arg("-screen_file")
            .arg(self.dir.join("screen.log"))
            .stdin(Stdio::null())
            .stdout(self.output_file("stdout.txt"))
            .stderr(self.output_file("stderr.txt"));
        cmd
    }

    fn output_file(&self, name: &str) -> Stdio {
        let path = self.dir.join(name);
        std::fs::File::create(&path)
            .map(Stdio::from)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
    }

    fn spawn(&self, mut cmd: Command) -> Child {
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start SIPp ({:?}): {e}", cmd.get_program()))
    }

    /// What the run left behind, read after SIPp exited. The result keeps
    /// the directory, so a test that fails on it leaves the files.
    fn outcome(self, exit_code: Option<i32>) -> Outcome {
        let stats = read_lossy(&self.stats());
        let counts = final_counts(&stats);
        Outcome {
            messages: parse_message_log(&std::fs::read(self.messages()).unwrap_or_default()),
            successful: counts.map_or(0, |c| c.0),
            failed: counts.map_or(0, |c| c.1),
            stats_found: counts.is_some(),
            exit_code,
            stdout: read_lossy(&self.dir.join("stdout.txt")),
            stderr: read_lossy(&self.dir.join("stderr.txt")),
            errors: read_lossy(&self.dir.join("errors.log")),
            screen: read_lossy(&self.dir.join("screen.log")),
            dir: self.dir,
        }
    }
}

/// Cumulative successful and failed calls from the last line of a SIPp
/// statistics file (`;`-separated, columns named in the first line).
fn final_counts(csv: &str) -> Option<(u64, u64)> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let column = |name: &str| -> Option<u64> {
        let i = header.iter().position(|h| *h == name)?;
        last.get(i)?.trim().parse().ok()
    };
    Some((column("SuccessfulCall(C)")?, column("FailedCall(C)")?))
}

struct Outcome {
    messages: Vec<TracedMessage>,
    successful: u64,
    failed: u64,
    stats_found: bool,
    exit_code: Option<i32>,
    stdout: String,
    stderr: String,
    errors: String,
    screen: String,
    dir: TempDir,
}

impl Outcome {
    fn summary(&self, what: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{what}: exit code {:?}, {} successful, {} failed{}, {} messages traced (files in {})",
            self.exit_code,
            self.successful,
            self.failed,
            if self.stats_found {
                ""
            } else {
                " (no statistics written)"
            },
            self.messages.len(),
            self.dir.path().display()
        );
        if !self.stderr.trim().is_empty() {
            let _ = writeln!(s, "--- SIPp stderr (tail) ---\n{}", tail(&self.stderr, 20));
        }
        if !self.errors.trim().is_empty() {
            let _ = writeln!(
                s,
                "--- SIPp errors.log (tail) ---\n{}",
                tail(&self.errors, 40)
            );
        }
        if !self.screen.trim().is_empty() {
            // The first screen is the scenario screen: message counts per step.
            let first: Vec<&str> = self.screen.lines().take(40).collect();
            let _ = writeln!(s, "--- SIPp final screen ---\n{}", first.join("\n"));
        }
        s
    }
}

/// Requests received, with their retransmissions folded (same method,
/// Call-ID and CSeq).
fn distinct_requests<'a>(
    messages: &'a [TracedMessage],
    method: &str,
) -> impl Iterator<Item = &'a TracedMessage> + 'a {
    let method = method.to_string();
    let mut seen = BTreeSet::new();
    messages
        .iter()
        .filter(move |m| m.direction == Direction::Received && m.method() == Some(method.as_str()))
        .filter(move |m| {
            let key = (
                m.call_id().unwrap_or("").to_string(),
                m.header("CSeq").unwrap_or("").to_string(),
            );
            seen.insert(key)
        })
}

/// A SIPp server (a member of the pool behind sipedge), listening on
/// 127.0.0.1:`port` until [`SippUas::stop`].
pub struct SippUas {
    child: Option<Child>,
    port: u16,
    run: Option<Run>,
    /// A scenario written for this server alone ([`SippUas::rejecting`]).
    _scenario: Option<TempDir>,
}

impl SippUas {
    /// Starts `sipp -sf SCENARIO -i 127.0.0.1 -p PORT EXTRA_ARGS…` and
    /// returns once SIPp has bound its SIP port (checked in
    /// `/proc/net/udp`, socket owned by this child).
    ///
    /// Panics, with SIPp's output, if it exits or does not bind within
    /// 10 s. `scenario` is a name from `tests/scenarios/` or a path.
    pub fn start(scenario: &str, port: u16, extra_args: &[&str]) -> SippUas {
        // `-t t1` / `-t tn`: a TCP server, ready once it listens.
        let tcp = extra_args
            .windows(2)
            .any(|w| w[0] == "-t" && w[1].starts_with('t'));
        let bound = if tcp {
            process::tcp_port_bound_by
        } else {
            process::udp_port_bound_by
        };
        let run = Run::new(&format!("uas-{port}"), scenario);
        let mut cmd = run.command(None, port);
        cmd.args(extra_args);
        let mut child = run.spawn(cmd);
        let deadline = Instant::now() + BIND_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let out = run.outcome(process::exit_code(status));
                panic!(
                    "SIPp server on port {port} exited before listening\n{}\n--- stdout (tail) ---\n{}",
                    out.summary("uas"),
                    tail(&out.stdout, 30)
                );
            }
            if bound(child.id(), port) {
                break;
            }
            if Instant::now() >= deadline {
                process::stop(&mut child, libc::SIGKILL, Duration::from_secs(1));
                let out = run.outcome(None);
                panic!(
                    "SIPp server did not bind UDP 127.0.0.1:{port} within {BIND_TIMEOUT:?}\n{}",
                    out.summary("uas")
                );
            }
            std::thread::sleep(process::POLL);
        }
        SippUas {
            child: Some(child),
            port,
            run: Some(run),
            _scenario: None,
        }
    }

    /// A server that refuses every INVITE with `code reason` (and answers
    /// probes): `uas-reject.xml` with its `[code]` and `[reason]` filled
    /// in, since SIPp checks status codes when it loads a scenario.
    pub fn rejecting(code: u16, reason: &str) -> SippUas {
        let template =
            std::fs::read_to_string(scenario_path("uas-reject.xml")).expect("read uas-reject.xml");
        let dir = TempDir::new(&format!("uas-reject-{code}"));
        let path = dir.join("uas-reject.xml");
        std::fs::write(
            &path,
            template
                .replace("[code]", &code.to_string())
                .replace("[reason]", reason),
        )
        .expect("write scenario");
        let mut uas = SippUas::start(
            path.to_str().expect("UTF-8 temp path"),
            crate::free_port(),
            &[],
        );
        uas._scenario = Some(dir);
        uas
    }

    /// The SIP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SIP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((crate::LOCALHOST, self.port))
    }

    /// `sip:127.0.0.1:PORT`, as a sipedge destination names this server.
    pub fn uri(&self) -> String {
        format!("sip:127.0.0.1:{}", self.port)
    }

    /// The messages traced so far (SIPp flushes its trace after each
    /// message, so this is current while it runs).
    pub fn messages_so_far(&self) -> Vec<TracedMessage> {
        let run = self.run.as_ref().expect("server still running");
        parse_message_log(&std::fs::read(run.messages()).unwrap_or_default())
    }

    /// Waits at most `limit` until this server has received a request with
    /// `method` (e.g. a health probe's OPTIONS). Polls the trace file.
    pub fn wait_for_request(&self, method: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let got = self
                .messages_so_far()
                .iter()
                .any(|m| m.direction == Direction::Received && m.method() == Some(method));
            if got {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many distinct `method` requests the server has received so far
    /// (retransmissions folded), read from its trace while it runs.
    pub fn count_so_far(&self, method: &str) -> usize {
        distinct_requests(&self.messages_so_far(), method).count()
    }

    /// Waits at most `limit` until the server has received at least `n`
    /// distinct `method` requests; returns whether it did.
    pub fn wait_for_count(&self, method: &str, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.count_so_far(method) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server at once (SIGKILL), as a crashed or unplugged
    /// server: no answer to anything from now on, not even to calls in
    /// progress. Returns what it had received (its trace is complete; it
    /// wrote no final statistics, so judge by messages).
    pub fn kill(mut self) -> UasResult {
        let mut child = self.child.take().expect("server still running");
        let status = process::stop(&mut child, libc::SIGKILL, Duration::from_secs(2));
        let run = self.run.take().expect("server still running");
        let out = run.outcome(status.and_then(process::exit_code));
        UasResult { out }
    }

    /// Stops the server and returns what it received and how its calls
    /// went.
    ///
    /// SIGUSR1 asks SIPp for a soft exit (finish the calls in progress,
    /// accept no new ones); after 5 s SIGTERM, then SIGKILL. The message
    /// trace is complete either way, since SIPp flushes it per message.
    pub fn stop(mut self) -> UasResult {
        let mut child = self.child.take().expect("server still running");
        let status = process::stop(&mut child, libc::SIGUSR1, SOFT_EXIT_GRACE);
        let run = self.run.take().expect("server still running");
        let out = run.outcome(status.and_then(process::exit_code));
        UasResult { out }
    }
}

impl Drop for SippUas {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop(&mut child, libc::SIGKILL, Duration::from_secs(1));
        }
    }
}

/// What a [`SippUas`] received, and its own verdict on its calls.
///
/// Tests should judge by the messages: SIPp counts each answered OPTIONS
/// probe as a successful call, and a call it was stopped in the middle of
/// as neither.
pub struct UasResult {
    out: Outcome,
}

impl UasResult {
    /// Every message the server sent or received, in order.
    pub fn messages(&self) -> &[TracedMessage] {
        &self.out.messages
    }

    /// Every message the server received, in order, retransmissions
    /// included.
    pub fn received(&self) -> impl Iterator<Item = &TracedMessage> {
        self.out
            .messages
            .iter()
            .filter(|m| m.direction == Direction::Received)
    }

    /// The received requests with `method`, retransmissions folded.
    pub fn requests(&self, method: &str) -> Vec<&TracedMessage> {
        distinct_requests(&self.out.messages, method).collect()
    }

    /// How many distinct `method` requests arrived (retransmissions
    /// folded): the number of INVITEs is the number of calls this server
    /// was given.
    pub fn count(&self, method: &str) -> usize {
        distinct_requests(&self.out.messages, method).count()
    }

    /// The Call-IDs of the received `method` requests.
    pub fn call_ids(&self, method: &str) -> BTreeSet<String> {
        distinct_requests(&self.out.messages, method)
            .filter_map(|m| m.call_id().map(str::to_string))
            .collect()
    }

    /// Calls SIPp counted as successful (answered probes included).
    pub fn successful(&self) -> u64 {
        self.out.successful
    }

    /// Calls SIPp counted as failed (a stray request, such as a CANCEL for
    /// an INVITE that went elsewhere, is one).
    pub fn failed(&self) -> u64 {
        self.out.failed
    }

    /// SIPp's exit code (`0`: no failed call, `1`: some failed).
    pub fn exit_code(&self) -> Option<i32> {
        self.out.exit_code
    }

    /// A report for assertion messages: counts, stderr, errors, screen.
    pub fn summary(&self) -> String {
        self.out.summary("SIPp server")
    }
}

/// A SIPp caller run: places calls and exits by itself.
pub struct SippUac;

impl SippUac {
    /// Runs `sipp -sf SCENARIO TARGET -m CALLS -r RATE EXTRA_ARGS…` to the
    /// end and returns the outcome.
    ///
    /// `target` is `host:port` (the sipedge listener, or a server directly).
    /// The run is bounded by SIPp's own global timeout
    /// ([`SIPP_GLOBAL_TIMEOUT`], which fails the run) and each call by
    /// [`SIPP_RECV_TIMEOUT`]; `extra_args` come last and can override
    /// them (e.g. `["-recv_timeout", "2s"]`), or add `-d MS` (call length),
    /// `-inf FILE` (injection), `-t t1` (TCP).
    pub fn run(
        scenario: &str,
        target: &str,
        calls: u32,
        rate: u32,
        extra_args: &[&str],
    ) -> UacResult {
        assert!(calls > 0 && rate > 0, "a caller run needs calls and a rate");
        let run = Run::new("uac", scenario);
        let port = free_port();
        let mut cmd = run.command(Some(target), port);
        cmd.args(["-m", &calls.to_string()])
            .args(["-r", &rate.to_string()])
            .args(["-timeout", &format!("{}s", SIPP_GLOBAL_TIMEOUT.as_secs())])
            .arg("-timeout_error")
            .args([
                "-recv_timeout",
                &format!("{}ms", SIPP_RECV_TIMEOUT.as_millis()),
            ])
            .args(extra_args);
        let mut child = run.spawn(cmd);
        // SIPp stops itself at its global timeout; this outer bound only
        // guards against a hung SIPp.
        let limit = SIPP_GLOBAL_TIMEOUT + Duration::from_secs(30);
        let status = match process::wait_timeout(&mut child, limit) {
            Some(status) => Some(status),
            None => process::stop(&mut child, libc::SIGUSR1, Duration::from_secs(5)),
        };
        UacResult {
            calls,
            out: run.outcome(status.and_then(process::exit_code)),
        }
    }
}

/// The outcome of a [`SippUac`] run.
pub struct UacResult {
    calls: u32,
    out: Outcome,
}

impl UacResult {
    /// Calls that went through the whole scenario.
    pub fn successful(&self) -> u64 {
        self.out.successful
    }

    /// Calls that failed (timeout, unexpected message, …).
    pub fn failed(&self) -> u64 {
        self.out.failed
    }

    /// SIPp's exit code: 0 all calls successful, 1 some failed, 255 fatal
    /// error or global timeout, 99 no call processed.
    pub fn exit_code(&self) -> Option<i32> {
        self.out.exit_code
    }

    /// Whether SIPp wrote its final statistics (it does on any orderly
    /// exit, including the global timeout).
    pub fn stats_found(&self) -> bool {
        self.out.stats_found
    }

    /// Every message the caller sent or received, in order.
    pub fn messages(&self) -> &[TracedMessage] {
        &self.out.messages
    }

    /// The responses the caller received with status `code`.
    pub fn responses(&self, code: u16) -> Vec<&TracedMessage> {
        self.out
            .messages
            .iter()
            .filter(|m| m.direction == Direction::Received && m.status() == Some(code))
            .collect()
    }

    /// SIPp's stdout (its screens).
    pub fn stdout(&self) -> &str {
        &self.out.stdout
    }

    /// SIPp's stderr (fatal errors).
    pub fn stderr(&self) -> &str {
        &self.out.stderr
    }

    /// SIPp's error trace (unexpected messages and the like).
    pub fn errors(&self) -> &str {
        &self.out.errors
    }

    /// A report for assertion messages: counts, stderr, errors, screen.
    pub fn summary(&self) -> String {
        self.out
            .summary(&format!("SIPp caller ({} calls)", self.calls))
    }

    /// Panics with [`UacResult::summary`] unless every call of the run
    /// succeeded and SIPp exited 0.
    #[track_caller]
    pub fn assert_all_successful(&self) {
        let ok = self.out.exit_code == Some(0)
            && self.out.successful == u64::from(self.calls)
            && self.out.failed == 0;
        assert!(
            ok,
            "expected all {} calls to succeed\n{}",
            self.calls,
            self.summary()
        );
    }
}

/// Checks that each call's requests all reached one server, and that this
/// server got every method in `methods`.
///
/// A call is a Call-ID carrying one of `methods` on any server; each must
/// appear on exactly one server, with all of `methods` there (e.g.
/// `["INVITE", "ACK", "BYE"]` for `uac.xml` against `uas.xml`, or
/// `["INVITE", "CANCEL", "ACK"]` for `uac-cancel.xml` against
/// `uas-ring.xml`). Other methods (health probes) are ignored. Returns the
/// number of calls checked, or a description of the first few violations.
pub fn calls_on_one_server(servers: &[&UasResult], methods: &[&str]) -> Result<usize, String> {
    // Call-ID → server index → methods seen there.
    let mut calls: BTreeMap<String, BTreeMap<usize, BTreeSet<&str>>> = BTreeMap::new();
    for (i, server) in servers.iter().enumerate() {
        for &method in methods {
            for id in server.call_ids(method) {
                calls
                    .entry(id)
                    .or_default()
                    .entry(i)
                    .or_default()
                    .insert(method);
            }
        }
    }
    let mut problems = Vec::new();
    for (id, by_server) in &calls {
        if by_server.len() > 1 {
            let spread: Vec<String> = by_server
                .iter()
                .map(|(i, m)| format!("server {i} got {m:?}"))
                .collect();
            problems.push(format!("call {id} split: {}", spread.join(", ")));
        } else if let Some((i, seen)) = by_server.iter().next() {
            let missing: Vec<&&str> = methods.iter().filter(|m| !seen.contains(**m)).collect();
            if !missing.is_empty() {
                problems.push(format!("call {id} on server {i} lacks {missing:?}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(calls.len())
    } else {
        let n = problems.len();
        problems.truncate(10);
        Err(format!(
            "{n} of {} calls not on one server:\n{}",
            calls.len(),
            problems.join("\n")
        ))
    }
}

/// A SIPp injection file (`-inf`), e.g. usernames for `uac-auth.xml`.
pub struct InjectionFile {
    path: PathBuf,
    _dir: TempDir,
}

impl InjectionFile {
    /// Rows used in order, one per call, wrapping around; each row is the
    /// `;`-separated fields `[field0]`, `[field1]`, ….
    pub fn sequential(rows: &[&str]) -> InjectionFile {
        assert!(!rows.is_empty(), "an injection file needs rows");
        let dir = TempDir::new("inf");
        let path = dir.join("data.csv");
        let mut text = String::from("SEQUENTIAL\n");
        for row in rows {
            text.push_str(row);
            text.push_str(";\n");
        }
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        InjectionFile { path, _dir: dir }
    }

    /// The file, as SIPp's `-inf` argument wants it.
    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_final_counts_from_the_last_line() {
        let csv = "StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n\
                   t0;0;0;0;0;\n\
                   t1;3;197;1;3;\n";
        assert_eq!(final_counts(csv), Some((197, 3)));
        assert_eq!(final_counts("StartTime;\n"), None);
        assert_eq!(final_counts(""), None);
    }
}
