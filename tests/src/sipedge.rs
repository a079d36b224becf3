//! The binary under test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::netns::require_private_netns;
use crate::process::{self, Lines};
use crate::tempdir::TempDir;

/// How long sipedge may take to bind its sockets and say so.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The line sipedge prints on stderr once every socket is bound.
pub const READY_LINE: &str = "sipedge ready";

/// A running `sipedge run --config FILE`, killed when dropped.
///
/// Its stderr and stdout are collected line by line; when a test panics
/// while a `Sipedge` is alive, the drop prints both, so the failure report
/// shows what the proxy said.
pub struct Sipedge {
    child: Child,
    stderr: Lines,
    stdout: Lines,
    config: PathBuf,
    // Dropped last: holds the config file.
    _dir: TempDir,
}

impl Sipedge {
    /// Writes `config_toml` to a file, starts sipedge on it and returns
    /// once sipedge printed [`READY_LINE`] on stderr.
    ///
    /// Panics (with everything sipedge printed) if it exits first or is not
    /// ready within [`READY_TIMEOUT`].
    pub fn start(config_toml: &str) -> Sipedge {
        Self::start_with_args(config_toml, &[])
    }

    /// [`Sipedge::start`] with extra command-line arguments after
    /// `run --config FILE`.
    pub fn start_with_args(config_toml: &str, extra_args: &[&str]) -> Sipedge {
        match Self::try_start(config_toml, extra_args) {
            Ok(edge) => edge,
            Err(failure) => panic!(
                "sipedge exited before it was ready (exit code {:?})\n--- config ---\n{config_toml}\n--- stderr ---\n{}",
                failure.exit_code, failure.stderr
            ),
        }
    }

    /// Starts sipedge and waits for [`READY_LINE`]; returns the exit code
    /// and output if it exits first instead (for tests of configs `run`
    /// must refuse).
    ///
    /// Panics if it neither exits nor becomes ready within
    /// [`READY_TIMEOUT`]: that is never a correct outcome.
    pub fn try_start(config_toml: &str, extra_args: &[&str]) -> Result<Sipedge, StartFailure> {
        require_private_netns();
        let dir = TempDir::new("sipedge");
        let config = dir.join("sipedge.toml");
        std::fs::write(&config, config_toml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let bin = binary();
        let mut child = crate::hosts::command(&bin)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args(extra_args)
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let echo = std::env::var_os("E2E_ECHO").is_some();
        let stderr = Lines::collect(
            child.stderr.take().expect("piped stderr"),
            echo.then(|| format!("[sipedge {} stderr] ", child.id())),
        );
        let stdout = Lines::collect(
            child.stdout.take().expect("piped stdout"),
            echo.then(|| format!("[sipedge {} stdout] ", child.id())),
        );
        let mut edge = Sipedge {
            child,
            stderr,
            stdout,
            config,
            _dir: dir,
        };
        match edge.stderr.wait_for(READY_LINE, READY_TIMEOUT) {
            Some(true) => Ok(edge),
            Some(false) => {
                // stderr closed: the process is exiting; reap it.
                let status = process::stop(&mut edge.child, libc::SIGKILL, Duration::from_secs(5));
                edge.stderr.finish(Duration::from_secs(1));
                edge.stdout.finish(Duration::from_secs(1));
                Err(StartFailure {
                    exit_code: status.and_then(process::exit_code),
                    stderr: edge.stderr.text(),
                    stdout: edge.stdout.text(),
                })
            }
            None => {
                process::stop(&mut edge.child, libc::SIGKILL, Duration::from_secs(1));
                edge.stderr.finish(Duration::from_secs(1));
                edge.stdout.finish(Duration::from_secs(1));
                panic!(
                    "sipedge was not ready within {READY_TIMEOUT:?}\n--- config ---\n{config_toml}\n--- stderr ---\n{}--- stdout ---\n{}",
                    edge.stderr.text(),
                    edge.stdout.text()
                );
            }
        }
    }

    /// Runs `sipedge check --config FILE` on `config_toml`.
    ///
    /// Returns whether it exited 0, and its stderr (where errors are
    /// reported as `file:line: key: message`). The config file is named
    /// `sipedge.toml`, so tests can expect that name in the messages.
    pub fn check(config_toml: &str) -> (bool, String) {
        let dir = TempDir::new("sipedge-check");
        let config = dir.join("sipedge.toml");
        std::fs::write(&config, config_toml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        Self::check_file(&config)
    }

    /// Runs `sipedge check --config FILE` on an existing file (an example,
    /// whose relative paths must resolve where it lives).
    pub fn check_file(config: &std::path::Path) -> (bool, String) {
        require_private_netns();
        let bin = binary();
        let mut child = Command::new(&bin)
            .arg("check")
            .arg("--config")
            .arg(config)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut stderr = Lines::collect(child.stderr.take().expect("piped stderr"), None);
        let Some(status) = process::wait_timeout(&mut child, Duration::from_secs(10)) else {
            process::stop(&mut child, libc::SIGKILL, Duration::from_secs(1));
            panic!("`sipedge check` did not finish within 10 s");
        };
        stderr.finish(Duration::from_secs(2));
        (status.success(), stderr.text())
    }

    /// Everything sipedge printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Everything sipedge printed on stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    /// Waits at most `limit` for a stderr line containing `needle`; for
    /// tests that check what sipedge logs (a reload, a rejected packet).
    pub fn wait_for_stderr(&self, needle: &str, limit: Duration) -> bool {
        self.stderr.wait_for(needle, limit) == Some(true)
    }

    /// The config file sipedge runs on; a test may rewrite it and
    /// [`Sipedge::signal`] a reload.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `libc::SIGHUP`) to the running sipedge.
    pub fn signal(&mut self, signal: i32) {
        process::signal(&mut self.child, signal);
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops sipedge with SIGTERM (SIGKILL after `grace`) and returns its
    /// exit code (`128 + signal` when a signal ended it).
    pub fn stop(mut self, grace: Duration) -> Option<i32> {
        let status = process::stop(&mut self.child, libc::SIGTERM, grace);
        status.and_then(process::exit_code)
    }
}

impl Drop for Sipedge {
    fn drop(&mut self) {
        process::stop(&mut self.child, libc::SIGTERM, Duration::from_secs(3));
        self.stderr.finish(Duration::from_secs(1));
        self.stdout.finish(Duration::from_secs(1));
        if std::thread::panicking() {
            eprintln!(
                "--- sipedge (pid {}, config {}) stderr ---\n{}--- sipedge stdout ---\n{}--- end of sipedge output ---",
                self.child.id(),
                self.config.display(),
                self.stderr.text(),
                self.stdout.text()
            );
        }
    }
}

/// How a [`Sipedge::try_start`] ended when sipedge exited before being
/// ready.
#[derive(Debug)]
pub struct StartFailure {
    /// Exit code (`128 + signal` if a signal ended it).
    pub exit_code: Option<i32>,
    /// Everything it printed on stderr.
    pub stderr: String,
    /// Everything it printed on stdout.
    pub stdout: String,
}

/// Where the sipedge binary is: `$SIPEDGE_BIN`, else next to the directory
/// of the test executable (`target/<profile>/deps/<test>` →
/// `target/<profile>/sipedge`), which is where `cargo build` puts it for the
/// same profile, or beside a tool of this crate (`target/<profile>/<bin>`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SIPEDGE_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "SIPEDGE_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let beside = exe.with_file_name("sipedge");
    let path = if beside.is_file() {
        beside
    } else {
        profile_dir.join("sipedge")
    };
    assert!(
        path.is_file(),
        "no sipedge binary at {}: run `cargo build -p sipedge` first (same profile as the tests), \
         or set SIPEDGE_BIN",
        path.display()
    );
    path
}
