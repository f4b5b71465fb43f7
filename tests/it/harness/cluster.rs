//! Several gateway processes on one Postgres database and a private Redis.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Backend, Server, TempDir, fresh_database};

/// A private `redis-server` on a random port, for tests that stop, pause or restart it.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers. The port is free when picked
    /// but may be taken before Redis binds it: then another one is tried.
    pub async fn start() -> RedisServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut r = RedisServer { port, child: None };
            if r.try_start().await {
                return r;
            }
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str]) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The process id of the Redis answering on this port, if one does.
    fn server_pid(&self) -> Option<u32> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", "server"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    }

    /// How many connections (nodes) subscribe to `channel`.
    pub fn subscribers(&self, channel: &str) -> i64 {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "PUBSUB", "NUMSUB", channel])
            .output()
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("PUBSUB NUMSUB {channel}: {text}"))
    }

    /// Starts it again on the same port (empty: it keeps nothing on disk).
    pub async fn restart(&mut self) {
        // The port was ours a moment ago; another process taking it meanwhile is rare
        // enough to retry rather than to move (the nodes know this port).
        for _ in 0..20 {
            if self.try_start().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    /// Spawns redis-server on `self.port`; false if it exited (the port was taken).
    async fn try_start(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server is required for the cluster tests (apt-get install redis-server)",
            );
        for _ in 0..100 {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            // The answer must come from our child: another test's Redis may have taken the
            // port between picking it and binding it.
            if self.server_pid() == Some(child.id()) {
                self.child = Some(child);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Makes it answer no client for `d` (CLIENT PAUSE).
    pub fn pause(&self, d: Duration) {
        let ms = d.as_millis().to_string();
        assert!(
            self.cli(&["CLIENT", "PAUSE", &ms, "ALL"]),
            "CLIENT PAUSE failed"
        );
    }

    /// Kills it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Several gateway nodes sharing one Postgres database and one Redis.
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub redis: RedisServer,
    pub database_url: String,
    /// Holds the database: it is dropped with this, after the nodes.
    _dir: TempDir,
}

impl Cluster {
    /// `n` nodes, named node0.., each with `env` on top of the cluster settings.
    pub async fn start(n: usize, env: &[(&str, &str)]) -> Cluster {
        let redis = RedisServer::start().await;
        let dir = TempDir::new();
        let database_url = fresh_database(Backend::Postgres, &dir.0).await;
        let mut c = Cluster {
            nodes: Vec::new(),
            redis,
            database_url,
            _dir: dir,
        };
        for i in 0..n {
            c.add_node(&format!("node{i}"), env).await;
        }
        c
    }

    /// Starts one more node.
    pub async fn add_node(&mut self, name: &str, env: &[(&str, &str)]) {
        let url = self.redis.url();
        // The cluster tests watch presence across nodes without building shared threads
        // first; the presence scope itself is tested on one node (presence.rs).
        let mut all: Vec<(&str, &str)> = vec![
            ("REDIS_URL", url.as_str()),
            ("NODE_ID", name),
            ("PRESENCE_SCOPE", "all"),
        ];
        all.extend_from_slice(env);
        let node = Server::spawn(TempDir::new(), &self.database_url, &all).await;
        self.nodes.push(node);
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    /// Waits until every node's `/readyz` answers 200 (after a Redis restart), failing the
    /// test after `within`.
    pub async fn all_ready(&self, within: std::time::Duration) {
        let http = reqwest::Client::new();
        let since = std::time::Instant::now();
        for (n, node) in self.nodes.iter().enumerate() {
            while http
                .get(node.url("/readyz"))
                .send()
                .await
                .map_or(true, |r| r.status() != 200)
            {
                assert!(since.elapsed() < within, "node{n} did not become ready");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
