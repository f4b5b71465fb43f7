//! A WebSocket client for tests: typed waits for replies and events, keeping the frames it
//! was not waiting for.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;

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

    /// The next frame, or how the connection ended (panics if nothing comes within `wait`).
    pub async fn read_frame(&mut self, wait: Duration) -> Result<Value, Ended> {
        if let Some(v) = self.pending.pop_front() {
            return Ok(v);
        }
        self.read(wait)
            .await
            .unwrap_or_else(|| panic!("no frame within {wait:?}"))
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
                // A closed socket would pass any "nothing came" check: it is a failure here.
                Some(Err(e)) => panic!("connection ended while checking for no {kind}: {e:?}"),
                None => return,
            }
        }
    }

    /// Counts frames of `kind`, stashed ones included, until none has come for `quiet`.
    pub async fn count_events(&mut self, kind: &str, quiet: Duration) -> usize {
        let before = self.pending.len();
        self.pending.retain(|v| v["type"] != kind);
        let mut n = before - self.pending.len();
        loop {
            match self.read(quiet).await {
                Some(Ok(v)) if v["type"] == kind => n += 1,
                Some(Ok(v)) => self.pending.push_back(v),
                Some(Err(e)) => panic!("connection ended while counting {kind}: {e:?}"),
                None => return n,
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

    /// Starts a close handshake with `code`; `closed` then reads the server's answer.
    pub async fn send_close(&mut self, code: u16) {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = CloseFrame {
            code: code.into(),
            reason: "bye".into(),
        };
        self.ws
            .send(WsMessage::Close(Some(frame)))
            .await
            .expect("ws send");
    }

    /// Sends one text message in fragments: a text frame, then continuation frames.
    pub async fn send_fragments(&mut self, parts: &[&str]) {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        for (i, part) in parts.iter().enumerate() {
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            let last = i + 1 == parts.len();
            let frame = Frame::message(part.as_bytes().to_vec(), OpCode::Data(opcode), last);
            // A peer that stops reading mid-message may refuse the rest: that is its answer.
            if self.ws.send(WsMessage::Frame(frame)).await.is_err() {
                return;
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
