//! An SSE client for tests: reads `event:`/`data:` blocks and comment lines from a real HTTP
//! response over a real socket, keeping events it was not waiting for.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;

use super::WAIT;

/// One block of the stream.
#[derive(Debug, Clone)]
pub enum Block {
    /// `event: <kind>` with its JSON `data`.
    Event(String, Value),
    /// A comment line (`: …`), the heartbeat.
    Comment,
}

/// An open `GET /api/v1/events` stream.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
    pending: VecDeque<(String, Value)>,
    /// Comments read so far.
    pub comments: usize,
    /// The `hello` event's data.
    pub hello: Value,
    ended: bool,
}

impl Sse {
    /// Opens a stream; on refusal returns the status and the JSON error body.
    pub async fn open(req: reqwest::RequestBuilder) -> Result<Sse, (u16, Value)> {
        let resp = req.send().await.expect("sse request");
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            return Err((status, serde_json::from_str(&body).unwrap_or(Value::Null)));
        }
        Ok(Sse {
            resp,
            buf: String::new(),
            pending: VecDeque::new(),
            comments: 0,
            hello: Value::Null,
            ended: false,
        })
    }

    /// A response header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.resp
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The next block, or `None` when the stream ended or nothing came within `wait`
    /// (`ended` tells which).
    pub async fn block(&mut self, wait: Duration) -> Option<Block> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                return Some(parse_block(&raw));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    /// Whether the server ended the stream.
    pub fn ended(&self) -> bool {
        self.ended && self.buf.is_empty()
    }

    /// The next event (stashed ones first), skipping comments.
    pub async fn next(&mut self) -> (String, Value) {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        loop {
            match self.block(WAIT).await {
                Some(Block::Event(k, v)) => return (k, v),
                Some(Block::Comment) => self.comments += 1,
                None => panic!("no SSE event within {WAIT:?} (ended: {})", self.ended),
            }
        }
    }

    /// The data of the next event of `kind`, keeping others for later.
    pub async fn event(&mut self, kind: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|(k, _)| k == kind) {
            return self.pending.remove(i).unwrap().1;
        }
        loop {
            match self.block(WAIT).await {
                Some(Block::Event(k, v)) if k == kind => return v,
                Some(Block::Event(k, v)) => self.pending.push_back((k, v)),
                Some(Block::Comment) => self.comments += 1,
                None => panic!(
                    "no SSE {kind} within {WAIT:?} (ended: {}); stashed: {:?}",
                    self.ended, self.pending
                ),
            }
        }
    }

    /// Reads until the stream ends; the code of its last `close` event (`None` if there was
    /// none). Panics if it is still open after `within`.
    pub async fn closed(&mut self, within: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + within;
        let mut code = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.block(left).await {
                Some(Block::Event(k, v)) if k == "close" => code = v["code"].as_u64(),
                Some(_) => continue,
                None if self.ended() => return code,
                None => panic!("SSE stream still open after {within:?}"),
            }
        }
    }
}

fn parse_block(raw: &str) -> Block {
    let mut kind = None;
    let mut data = String::new();
    for line in raw.lines() {
        if let Some(k) = line.strip_prefix("event: ") {
            kind = Some(k.to_string());
        } else if let Some(d) = line.strip_prefix("data: ") {
            data.push_str(d);
        }
    }
    match kind {
        None => Block::Comment,
        Some(k) => Block::Event(
            k,
            serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("SSE data not JSON ({e}): {data}")),
        ),
    }
}
