//! Test harness: starts the real `switchboard` binary on a random port against a fresh SQLite
//! file or a fresh Postgres database, and drives it with real WebSocket and HTTP clients.

mod client;
mod cluster;
mod http;
mod nginx;
mod proxy;
mod receiver;
mod sse;

pub use client::{Client, Ended};
pub use cluster::Cluster;
pub use http::Http;
pub use nginx::Nginx;
pub use proxy::Proxy;
pub use receiver::{Delivery, Receiver, free_port};
pub use sse::{Block, Sse};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The server API key of servers started with `start_host`.
pub const API_KEY: &str = "host-api-key-for-tests-0123456789";

/// The secret every test server verifies tokens with.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Base URL of the test Postgres (no database name).
pub fn pg_base() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

/// A fresh, empty database URL for one test. Fails (never skips) when Postgres is down.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("test.db").display()),
        Backend::Postgres => {
            let name = format!("sb_test_{}", uuid::Uuid::now_v7().simple());
            let admin = format!("{}/postgres", pg_base());
            let mut c = AsyncPgConnection::establish(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "Postgres is required for the tests and is not reachable at {admin}: {e}"
                    )
                });
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            let mut list = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(DATABASES_FILE))
                .expect("database list");
            std::io::Write::write_all(&mut list, format!("{name}\n").as_bytes()).unwrap();
            format!("{}/{name}", pg_base())
        }
    }
}

/// A running gateway process.
pub struct Server {
    pub addr: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("sb-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

/// Where a `TempDir` lists the Postgres databases made for it, to drop with it.
const DATABASES_FILE: &str = ".pg_databases";

impl Drop for TempDir {
    fn drop(&mut self) {
        // The test's databases go with its directory. FORCE ends the connections of servers
        // still running (a server drops its process before its directory).
        if let Ok(names) = std::fs::read_to_string(self.0.join(DATABASES_FILE)) {
            for name in names.lines().filter(|n| !n.is_empty()) {
                let _ = Command::new("psql")
                    .arg(format!("{}/postgres", pg_base()))
                    .args([
                        "-qc",
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The built binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// A command for the binary with a clean configuration environment, run in `dir` (so no
/// stray .env is read).
pub fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(binary());
    for var in [
        "BIND_ADDR",
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "JWT_PUBLIC_KEY",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "SERVER_API_KEY",
        "ALLOWED_ORIGINS",
        "NODE_ID",
        "METRICS_TOKEN",
        "OUTBOX_FRAMES",
        "MAX_SESSIONS_PER_USER",
        "RATE_PER_S",
        "RATE_BURST",
        "HEARTBEAT_S",
        "MAX_BODY_CHARS",
        "MAX_FRAME_BYTES",
        "TYPING_TIMEOUT_MS",
        "SHUTDOWN_GRACE_S",
        "JWT_LEEWAY_S",
        "WEBHOOK_URL",
        "WEBHOOK_SECRET",
        "WEBHOOK_EVENTS",
        "WEBHOOK_MAX_AGE_S",
        "OUTBOX_BYTES",
        "RELAY_QUEUE",
        "WORKERS",
        "MAX_GROUP_MEMBERS",
        "PRESENCE_SCOPE",
        "DB_TIMEOUT_MS",
        "TRUSTED_PROXIES",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(dir).env(
        "RUST_LOG",
        std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
    );
    cmd
}

impl Server {
    /// A server with the defaults (and the test secret).
    pub async fn start(backend: Backend) -> Server {
        Server::start_with(backend, &[]).await
    }

    /// A server with extra environment.
    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new();
        let database_url = fresh_database(backend, &dir.0).await;
        Server::spawn(dir, &database_url, env).await
    }

    /// A server with the server API on (`SERVER_API_KEY` = [`API_KEY`]) and extra environment.
    pub async fn start_host(backend: Backend, env: &[(&str, &str)]) -> Server {
        let mut all = vec![("SERVER_API_KEY", API_KEY)];
        all.extend_from_slice(env);
        Server::start_with(backend, &all).await
    }

    /// A server on an existing database (several nodes share one).
    pub async fn spawn(dir: TempDir, database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut cmd = command(&dir.0);
        cmd.env("BIND_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", SECRET)
            .env("JWT_LEEWAY_S", "0")
            .env("NODE_ID", "test-node")
            .env("SHUTDOWN_GRACE_S", "5")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            // An empty value removes a variable the harness sets (JWT_SECRET, say).
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.spawn().expect("spawn switchboard");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap();
        let addr = match addr {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        Server {
            addr,
            child,
            log,
            _dir: dir,
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The log once `done` holds for it, or as it stands after 10 s. A line logged right
    /// after an event went out can reach the log after the client saw the event.
    pub async fn log_once(&self, done: impl Fn(&str) -> bool) -> String {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if done(&log) || Instant::now() > give_up {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `KILL`, …) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit (up to `within`); returns its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A token for `user` valid for an hour.
    pub fn token(&self, user: &str) -> String {
        token_with(user, 3600, &[])
    }

    /// A WebSocket client for `user`, past its `hello`.
    pub async fn ws(&self, user: &str) -> Client {
        let mut c = self.ws_raw(&self.token(user)).await.expect("ws connect");
        let hello = c.next().await;
        assert_eq!(hello["type"], "hello", "first frame: {hello}");
        c.hello = hello;
        c
    }

    /// A WebSocket connection with `token`, before reading anything.
    pub async fn ws_raw(
        &self,
        token: &str,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{}/ws?token={token}", self.addr);
        Client::connect(url.into_client_request()?).await
    }

    /// A client of the server API, with `key` as its bearer token.
    pub fn host(&self, key: &str) -> Http {
        Http {
            base: format!("http://{}/api/v1/server", self.addr),
            token: Some(key.to_string()),
            client: reqwest::Client::new(),
        }
    }

    /// A WebSocket client for `user` whose token names `orgs`, past its `hello`.
    pub async fn ws_in(&self, user: &str, orgs: &[&str]) -> Client {
        let token = token_with(user, 3600, &[("orgs", json!(orgs))]);
        let mut c = self.ws_raw(&token).await.expect("ws connect");
        let hello = c.next().await;
        assert_eq!(hello["type"], "hello", "first frame: {hello}");
        c.hello = hello;
        c
    }

    /// An HTTP client acting as `user` with a token naming `orgs`.
    pub fn http_in(&self, user: &str, orgs: &[&str]) -> Http {
        Http {
            base: format!("http://{}/api/v1", self.addr),
            token: Some(token_with(user, 3600, &[("orgs", json!(orgs))])),
            client: reqwest::Client::new(),
        }
    }

    /// An SSE stream for `user`, past its `hello`.
    pub async fn sse(&self, user: &str) -> Sse {
        let mut s = self
            .sse_raw(&format!("/api/v1/events?token={}", self.token(user)))
            .await
            .unwrap_or_else(|(st, b)| panic!("SSE refused: {st} {b}"));
        let (kind, hello) = s.next().await;
        assert_eq!(kind, "hello", "first event: {hello}");
        s.hello = hello;
        s
    }

    /// A request for `path_and_query` as an SSE stream, before reading anything.
    pub async fn sse_raw(&self, path_and_query: &str) -> Result<Sse, (u16, Value)> {
        Sse::open(reqwest::Client::new().get(self.url(path_and_query))).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = reqwest::get(self.url("/metrics")).await.expect("metrics");
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An HTTP client acting as `user`.
    pub fn http(&self, user: &str) -> Http {
        Http {
            base: format!("http://{}/api/v1", self.addr),
            token: Some(self.token(user)),
            client: reqwest::Client::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ({}) ---\n{}", self.addr, self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample in a Prometheus text exposition, e.g.
/// `metric(&text, "switchboard_connections{transport=\"ws\"}")`; 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Signs a token with the test secret; `ttl` may be negative.
pub fn token_with(user: &str, ttl: i64, extra: &[(&str, Value)]) -> String {
    let mut claims = json!({"sub": user, "exp": chrono::Utc::now().timestamp() + ttl});
    for (k, v) in extra {
        claims[*k] = v.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Runs each listed test on both backends: `mod name { fn sqlite(); fn postgres() }`.
#[macro_export]
macro_rules! both {
    ($(async fn $name:ident($b:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($b: $crate::harness::Backend) $body
                #[tokio::test]
                async fn sqlite() { run($crate::harness::Backend::Sqlite).await }
                #[tokio::test]
                async fn postgres() { run($crate::harness::Backend::Postgres).await }
            }
        )*
    };
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Makes sure the npm packages of `dir` (relative to the repository) are installed from its
/// lockfile, installing them when they are not (the npm registry must answer: tests never
/// skip). Returns the directory.
pub fn npm_installed(dir: &str) -> std::path::PathBuf {
    let dir = repo().join(dir);
    // Installed, and from this lockfile (npm writes its copy when it installs).
    let modified = |p: std::path::PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    let locked = modified(dir.join("package-lock.json"));
    if installed.is_none() || locked > installed {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("npm is required for {}: {e}", dir.display()));
        assert!(
            out.status.success(),
            "npm ci in {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}
