//! Sessions as a client makes them: a token minted with the gateway's secret, a WebSocket
//! opened from one of several loopback source addresses (one address runs out of ephemeral
//! ports near 28,000 connections), and the few REST calls the scenarios need to set up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{WebSocketStream, client_async};

/// One WebSocket session.
pub type Ws = WebSocketStream<TcpStream>;
pub type Tx = SplitSink<Ws, Message>;

/// What every session needs: where the nodes are, and how to sign tokens.
#[derive(Clone)]
pub struct Target {
    /// Base URLs of the nodes, `http://127.0.0.1:8080`; sessions are spread over them.
    pub nodes: Vec<String>,
    /// The gateway's `JWT_SECRET`.
    pub secret: String,
    /// How many loopback source addresses to spread connections over (127.0.0.1 ..).
    pub sources: u8,
    /// The last byte of the first of them (`--source-base`, 1 unless given): two load
    /// generators running at once take disjoint ranges, so they share no ephemeral ports.
    pub source_base: u8,
}

impl Target {
    /// A one-hour HS256 token for `user`.
    pub fn token(&self, user: &str) -> String {
        let claims = json!({"sub": user, "exp": chrono::Utc::now().timestamp() + 3600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .expect("HS256 signing cannot fail")
    }

    /// Node `i` (modulo the number of nodes).
    pub fn node(&self, i: usize) -> &str {
        &self.nodes[i % self.nodes.len()]
    }

    /// Opens session number `i` for `user` on node `i % nodes`, past its `hello`.
    pub async fn open(&self, i: usize, user: &str) -> Result<Ws, String> {
        let base = self.node(i);
        let addr: SocketAddr = base
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| format!("{base}: {e}"))?;
        let offset = (i % usize::from(self.sources.max(1))) as u8;
        let source = Ipv4Addr::new(127, 0, 0, self.source_base + offset);
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(source), 0))
            .map_err(|e| format!("bind {source}: {e}"))?;
        let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let url = format!("ws://{addr}/ws?token={}", self.token(user));
        let req = url.into_client_request().map_err(|e| e.to_string())?;
        let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), client_async(req, stream))
            .await
            .map_err(|_| "handshake timed out".to_string())?
            .map_err(|e| format!("handshake: {e}"))?;
        let hello = next_json(&mut ws, Duration::from_secs(10)).await?;
        if hello["type"] != "hello" {
            return Err(format!("first frame is not hello: {hello}"));
        }
        Ok(ws)
    }

    /// `POST /api/v1/threads` as `user`: a group with `members`; returns its id.
    pub async fn group(&self, http: &reqwest::Client, user: &str, members: &[String]) -> String {
        let others: Vec<&String> = members.iter().filter(|m| *m != user).collect();
        let body = json!({"kind":"group","title":"load","members":others});
        self.create_thread(http, user, body).await
    }

    /// `POST /api/v1/threads` as `user`: the direct thread with `other`; returns its id.
    pub async fn direct(&self, http: &reqwest::Client, user: &str, other: &str) -> String {
        let body = json!({"kind":"direct","members":[other]});
        self.create_thread(http, user, body).await
    }

    async fn create_thread(&self, http: &reqwest::Client, user: &str, body: Value) -> String {
        let r = http
            .post(format!("{}/api/v1/threads", self.node(0)))
            .bearer_auth(self.token(user))
            .json(&body)
            .send()
            .await
            .expect("POST /threads");
        let status = r.status();
        let body: Value = r.json().await.expect("thread JSON");
        assert!(status.is_success(), "POST /threads: {status} {body}");
        body["id"].as_str().expect("thread id").to_string()
    }
}

/// The next text frame as JSON, skipping pings, within `wait`.
pub async fn next_json(ws: &mut Ws, wait: Duration) -> Result<Value, String> {
    loop {
        let m = tokio::time::timeout(wait, ws.next())
            .await
            .map_err(|_| "no frame in time".to_string())?
            .ok_or("closed")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).map_err(|e| e.to_string());
        }
    }
}

/// Sends a JSON frame.
pub async fn send(tx: &mut Tx, frame: &Value) -> Result<(), String> {
    tx.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| e.to_string())
}
