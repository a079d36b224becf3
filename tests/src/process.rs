//! Child-process plumbing shared by the sipedge and SIPp wrappers.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often bounded waits look again at the thing they wait for.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Sends `signal` to `child` unless it has already exited.
pub(crate) fn signal(child: &mut Child, signal: libc::c_int) {
    // Reap first if it exited: then there is nothing to signal, and its pid
    // may already belong to another process.
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    // The child was running (not reaped) just above, and only we can reap
    // it, so the pid still names it (at worst as a zombie, which ignores
    // the signal).
    sysio::calls::kill(child.id(), signal);
}

/// Waits at most `limit` for `child` to exit.
pub(crate) fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => return None,
            Err(e) => panic!("cannot wait for child {}: {e}", child.id()),
        }
    }
}

/// Asks `child` to stop with `first` (a signal it handles cleanly), waits up
/// to `grace`, then insists with SIGTERM and finally SIGKILL.
///
/// Returns the exit status; `None` only if even SIGKILL did not reap it
/// within a second (which would be a kernel problem, not a test result).
pub(crate) fn stop(child: &mut Child, first: libc::c_int, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child, first);
    if let Some(status) = wait_timeout(child, grace) {
        return Some(status);
    }
    if first != libc::SIGTERM {
        signal(child, libc::SIGTERM);
        if let Some(status) = wait_timeout(child, Duration::from_secs(2)) {
            return Some(status);
        }
    }
    let _ = child.kill();
    wait_timeout(child, Duration::from_secs(1))
}

/// Exit code, or `128 + signal` when a signal ended the process, like a
/// shell reports it.
pub(crate) fn exit_code(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s))
}

/// Lines of a child's output stream, collected by a thread as they come, so
/// a test can wait for one of them and print them all when it fails.
pub(crate) struct Lines {
    shared: Arc<(Mutex<LinesState>, Condvar)>,
    reader: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Starts a thread that reads `stream` to its end.
    pub(crate) fn collect(
        stream: impl Read + Send + 'static,
        echo_prefix: Option<String>,
    ) -> Lines {
        let shared = Arc::new((Mutex::new(LinesState::default()), Condvar::new()));
        let writer = Arc::clone(&shared);
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\r', '\n'])
                            .to_string();
                        if let Some(prefix) = &echo_prefix {
                            eprintln!("{prefix}{line}");
                        }
                        let (lock, cvar) = &*writer;
                        lock.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .lines
                            .push(line);
                        cvar.notify_all();
                    }
                }
            }
            let (lock, cvar) = &*writer;
            lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            cvar.notify_all();
        });
        Lines {
            shared,
            reader: Some(reader),
        }
    }

    /// Waits at most `limit` for a line containing `needle`.
    ///
    /// Returns `Some(true)` when found, `Some(false)` when the stream ended
    /// without it (the process exited), `None` on timeout.
    pub(crate) fn wait_for(&self, needle: &str, limit: Duration) -> Option<bool> {
        let deadline = Instant::now() + limit;
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = 0;
        loop {
            if state.lines[seen..].iter().any(|l| l.contains(needle)) {
                return Some(true);
            }
            seen = state.lines.len();
            if state.closed {
                return Some(false);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = cvar
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits at most `limit` until `n` lines start with `prefix`; false
    /// when the stream ended or the time ran out first.
    pub(crate) fn wait_count(&self, prefix: &str, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.lines.iter().filter(|l| l.starts_with(prefix)).count() >= n {
                return true;
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return false;
            }
            state = cvar
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Everything collected so far, one line per line.
    pub(crate) fn text(&self) -> String {
        let (lock, _) = &*self.shared;
        let state = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = state.lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Waits (bounded) for the reader thread to reach the end of the
    /// stream, so that `text` is complete once the process has exited.
    pub(crate) fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !state.closed {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            state = cvar
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(state);
        if let Some(handle) = self.reader.take() {
            let _ = handle.join();
        }
    }
}

/// Whether process `pid` has a UDP socket bound to local `port`.
///
/// Finds the socket inodes bound to the port in `/proc/PID/net/udp` and
/// `/proc/PID/net/udp6` (the tables of the process's network namespace,
/// which may be a test host's), then looks for one of them
/// among the process's open files. This tells "the server is listening"
/// from "someone else holds the port".
pub(crate) fn udp_port_bound_by(pid: u32, port: u16) -> bool {
    port_bound_by(pid, port, ["net/udp", "net/udp6"])
}

/// True when process `pid` has a TCP socket bound to `port` (a listener,
/// once it listens).
pub(crate) fn tcp_port_bound_by(pid: u32, port: u16) -> bool {
    port_bound_by(pid, port, ["net/tcp", "net/tcp6"])
}

fn port_bound_by(pid: u32, port: u16, tables: [&str; 2]) -> bool {
    let mut inodes = Vec::new();
    for table in tables {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/{table}")) {
            inodes.extend(inodes_on_port(&text, port));
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .any(|inode| inodes.contains(&inode))
}

/// Socket inodes whose local address has port `port`, from the text of
/// `/proc/net/udp` or `/proc/net/udp6`.
pub(crate) fn inodes_on_port(table: &str, port: u16) -> Vec<u64> {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let (_, local_port) = local.rsplit_once(':')?;
            if local_port.eq_ignore_ascii_case(&want) {
                fields.get(9)?.parse().ok()
            } else {
                None
            }
        })
        .collect()
}

/// Reads a file written by a child, lossily, or an empty string.
pub(crate) fn read_lossy(path: &std::path::Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`, for failure messages that stay readable.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inodes_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             \x20 12: 0100007F:61FE 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 424242 2 0000000000000000 0\n\
             \x20 13: 0100007F:61FF 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 434343 2 0000000000000000 0\n";
        assert_eq!(inodes_on_port(table, 0x61FE), vec![424242]);
        assert_eq!(inodes_on_port(table, 0x61FF), vec![434343]);
        assert!(inodes_on_port(table, 5060).is_empty());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
