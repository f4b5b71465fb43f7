//! Test harness: starts the real `switchboard` binary on a random port against a fresh SQLite
//! file or a fresh Postgres database, and drives it with real WebSocket and HTTP clients.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The secret every test server verifies tokens with.
pub const SECRET: &str = "test-secret";
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

impl Drop for TempDir {
    fn drop(&mut self) {
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
            cmd.env(k, v);
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

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client that keeps frames it was not waiting for.
pub struct Client {
    ws: Ws,
    pending: VecDeque<Value>,
    next_ref: u64,
    pub hello: Value,
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code.
    Code(u16),
    /// The connection dropped without a close frame.
    Dropped,
}

impl Client {
    /// Connects with a prepared request (headers, URL).
    pub async fn connect(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Client {
            ws,
            pending: VecDeque::new(),
            next_ref: 0,
            hello: Value::Null,
        })
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(WsMessage::text(frame.to_string()))
            .await
            .expect("ws send");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(WsMessage::text(text)).await.expect("ws send");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws
            .send(WsMessage::binary(data))
            .await
            .expect("ws send");
    }

    async fn read(&mut self, wait: Duration) -> Option<Result<Value, Ended>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Control frames (pings) do not restart the wait.
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            return Some(match msg {
                Some(Ok(WsMessage::Text(t))) => Ok(serde_json::from_str(&t).expect("server JSON")),
                Some(Ok(WsMessage::Close(Some(f)))) => Err(Ended::Code(u16::from(f.code))),
                Some(Ok(WsMessage::Close(None))) => Err(Ended::Code(1005)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Err(Ended::Dropped),
            });
        }
    }

    /// The next frame (stashed ones first).
    pub async fn next(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        match self.read(WAIT).await {
            Some(Ok(v)) => v,
            Some(Err(e)) => panic!("connection ended while waiting for a frame: {e:?}"),
            None => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next frame of `kind`, keeping others for later.
    pub async fn event(&mut self, kind: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|v| v["type"] == kind) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            match self.read(WAIT).await {
                Some(Ok(v)) if v["type"] == kind => return v,
                Some(Ok(v)) => self.pending.push_back(v),
                Some(Err(e)) => panic!("connection ended while waiting for {kind}: {e:?}"),
                None => panic!("no {kind} within {WAIT:?}; stashed: {:?}", self.pending),
            }
        }
    }

    /// The next `presence` event about `user`, keeping presence of others for later.
    pub async fn presence_of(&mut self, user: &str) -> Value {
        let is_it = |v: &Value| v["type"] == "presence" && v["user_id"] == user;
        if let Some(i) = self.pending.iter().position(is_it) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            match self.read(WAIT).await {
                Some(Ok(v)) if is_it(&v) => return v,
                Some(Ok(v)) => self.pending.push_back(v),
                Some(Err(e)) => panic!("connection ended while waiting for presence: {e:?}"),
                None => panic!(
                    "no presence of {user} within {WAIT:?}; stashed: {:?}",
                    self.pending
                ),
            }
        }
    }

    /// Asserts that no frame of `kind` arrives within `wait` (others are kept).
    pub async fn no_event(&mut self, kind: &str, wait: Duration) {
        assert!(
            !self.pending.iter().any(|v| v["type"] == kind),
            "unexpected {kind}: {:?}",
            self.pending
        );
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.read(left).await {
                Some(Ok(v)) if v["type"] == kind => panic!("unexpected {kind}: {v}"),
                Some(Ok(v)) => self.pending.push_back(v),
                Some(Err(_)) | None => return,
            }
        }
    }

    /// Sends `frame` with a fresh `ref` and returns the reply carrying that ref.
    pub async fn call(&mut self, mut frame: Value) -> Value {
        self.next_ref += 1;
        let r = format!("r{}", self.next_ref);
        frame["ref"] = json!(r);
        self.send(frame).await;
        self.reply_to(&r).await
    }

    /// Waits for the reply with `ref`, keeping other frames.
    pub async fn reply_to(&mut self, r: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|v| v["ref"] == r) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            match self.read(WAIT).await {
                Some(Ok(v)) if v["ref"] == r => return v,
                Some(Ok(v)) => self.pending.push_back(v),
                Some(Err(e)) => panic!("connection ended while waiting for reply {r}: {e:?}"),
                None => panic!("no reply to {r} within {WAIT:?}"),
            }
        }
    }

    /// Sends a frame and asserts an `ack`; returns it.
    pub async fn ok(&mut self, frame: Value) -> Value {
        let reply = self.call(frame.clone()).await;
        assert_eq!(reply["type"], "ack", "{frame} → {reply}");
        reply
    }

    /// Sends a frame and asserts an `error` with `code`.
    pub async fn err(&mut self, frame: Value, code: &str) -> Value {
        let reply = self.call(frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame} → {reply}");
        assert_eq!(reply["code"], code, "{frame} → {reply}");
        reply
    }

    /// Sends a message into a thread and returns the stored message.
    pub async fn say(&mut self, thread_id: &str, body: &str) -> Value {
        self.ok(json!({"type":"send","thread_id":thread_id,"body":body}))
            .await["message"]
            .clone()
    }

    /// Reads until the connection ends (discarding frames); how it ended.
    pub async fn closed(&mut self, within: Duration) -> Ended {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return e,
                None => panic!("connection still open after {within:?}"),
            }
        }
    }

    /// Closes the connection from the client side.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Let the server see the close before the test goes on.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// An HTTP client for the REST API.
pub struct Http {
    pub base: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Http {
    async fn go(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.go(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.go(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.go(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.go(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a group with the acting user and `members`; returns its id.
    pub async fn group(&self, title: &str, members: &[&str]) -> String {
        let (s, t) = self
            .post(
                "/threads",
                json!({"kind":"group","title":title,"members":members}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        t["id"].as_str().unwrap().to_string()
    }

    /// The direct thread with `other`; returns its id.
    pub async fn direct(&self, other: &str) -> String {
        let (s, t) = self
            .post("/threads", json!({"kind":"direct","members":[other]}))
            .await;
        assert!(s == 201 || s == 200, "{t}");
        t["id"].as_str().unwrap().to_string()
    }
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

/// A private `redis-server` on a random port, for tests that stop, pause or restart it.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers.
    pub async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = RedisServer { port, child: None };
        r.restart().await;
        r
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

    /// Starts it again on the same port (empty: it keeps nothing on disk).
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server is required for the cluster tests (apt-get install redis-server)",
            );
        self.child = Some(child);
        for _ in 0..100 {
            if self.cli(&["PING"]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
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
        };
        for i in 0..n {
            c.add_node(&format!("node{i}"), env).await;
        }
        c
    }

    /// Starts one more node.
    pub async fn add_node(&mut self, name: &str, env: &[(&str, &str)]) {
        let url = self.redis.url();
        let mut all: Vec<(&str, &str)> = vec![("REDIS_URL", url.as_str()), ("NODE_ID", name)];
        all.extend_from_slice(env);
        let node = Server::spawn(TempDir::new(), &self.database_url, &all).await;
        self.nodes.push(node);
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }
}
