//! Redis (Debian `redis-server`) as the cluster's store: one server, or a
//! three-master Redis Cluster built with `redis-cli --cluster create`, on
//! loopback inside the test's private namespace, without persistence.
//! Killed when dropped.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;
use crate::ports::free_port;
use crate::process;
use crate::tempdir::TempDir;

/// How long a server (or the cluster) may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// One redis-server process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    cluster: bool,
    /// Over TLS only: its certificate and key, and the CA's certificate.
    tls: Option<(crate::certs::Leaf, std::path::PathBuf)>,
    dir: TempDir,
}

impl RedisServer {
    /// A server on a free loopback port; returns once it answers PING.
    pub fn start() -> RedisServer {
        RedisServer::on(free_port(), false, None)
    }

    /// A server that speaks TLS only, with a certificate for 127.0.0.1
    /// that `ca` issued; clients need not present one.
    pub fn start_tls(ca: &crate::certs::Ca) -> RedisServer {
        let port = free_port();
        let leaf = ca.leaf(&format!("redis-{port}"), &["127.0.0.1"]);
        RedisServer::on(port, false, Some((leaf, ca.cert().to_path_buf())))
    }

    fn on(
        port: u16,
        cluster: bool,
        tls: Option<(crate::certs::Leaf, std::path::PathBuf)>,
    ) -> RedisServer {
        require_private_netns();
        let mut s = RedisServer {
            child: None,
            port,
            cluster,
            tls,
            dir: TempDir::new(&format!("redis-{port}")),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        match &self.tls {
            None => cmd.args(["--bind", "127.0.0.1", "--port", &port]),
            Some((leaf, ca)) => cmd
                .args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(&leaf.cert)
                .arg("--tls-key-file")
                .arg(&leaf.key)
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .args(["--tls-auth-clients", "no"]),
        };
        cmd.args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path());
        if self.cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (apt-get install redis-server): {e}")
            });
        self.child = Some(child);
        self.wait_for(|out| out.trim() == "PONG", &["PING"]);
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` over TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.run_cli(args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run_cli(&self, args: &[&str]) -> Output {
        match &self.tls {
            None => cli(self.port, args),
            Some((_, ca)) => {
                let ca = ca.display().to_string();
                let mut all = vec!["--tls", "--cacert", ca.as_str()];
                all.extend_from_slice(args);
                cli(self.port, &all)
            }
        }
    }

    /// Kills the server at once (SIGKILL, as a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            process::stop(&mut c, libc::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Polls `redis-cli ARGS` until `ready` holds for its output.
    fn wait_for(&self, ready: impl Fn(&str) -> bool, args: &[&str]) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = self.run_cli(args);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if ready(&text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis on port {} not ready within {READY_TIMEOUT:?}: {args:?} said {text:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn cli(port: u16, args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli (apt-get install redis-server): {e}"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters (no replicas).
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three cluster-enabled servers joined with `redis-cli --cluster
    /// create`; returns once every node reports `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::on(free_port(), true, None))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = cli(nodes[0].port, &create);
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &nodes {
            n.wait_for(|t| t.contains("cluster_state:ok"), &["CLUSTER", "INFO"]);
        }
        RedisCluster { nodes }
    }

    /// The seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Keys on every node matching `pattern` (each node holds its slots).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                n.cli(&["--scan", "--pattern", pattern])
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
