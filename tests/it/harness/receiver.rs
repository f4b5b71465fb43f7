//! A real HTTP receiver for webhooks: a small HTTP/1.1 server on a loopback port that records
//! every request and answers 500 to the first `fail_first` of them, then 200.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_id: String,
    pub signature: String,
    pub body: String,
    pub json: Value,
    /// Whether it was answered 2xx.
    pub accepted: bool,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    got: Vec<Delivery>,
    fail_first: usize,
    /// How long each answer takes.
    delay: Duration,
}

/// A running receiver.
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

/// A free loopback port (for a receiver started later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Receiver {
    /// A receiver on a random port.
    pub async fn start(fail_first: usize) -> Receiver {
        Receiver::on_port(free_port(), fail_first).await
    }

    /// A receiver on `port`.
    pub async fn on_port(port: u16, fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let state = Arc::new(Mutex::new(State {
            got: Vec::new(),
            fail_first,
            delay: Duration::ZERO,
        }));
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, s.clone()));
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            state,
            task,
        }
    }

    /// Makes every answer take `d` (a slow receiver).
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().got.clone()
    }

    /// The accepted deliveries of type `kind`.
    pub fn accepted(&self, kind: &str) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| d.accepted && d.json["type"] == kind)
            .collect()
    }

    /// Waits until `n` deliveries of `kind` were accepted; returns them.
    pub async fn wait_for(&self, kind: &str, n: usize, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.accepted(kind);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} {kind} within {within:?}: {:?}",
                got.len(),
                self.all()
                    .iter()
                    .map(|d| &d.json["type"])
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut sock: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Headers.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
        buf.drain(..head_end + len);
        let delay = state.lock().unwrap().delay;
        tokio::time::sleep(delay).await;
        let accepted = {
            let mut s = state.lock().unwrap();
            let accepted = s.fail_first == 0;
            s.fail_first = s.fail_first.saturating_sub(1);
            s.got.push(Delivery {
                delivery_id: header("switchboard-delivery"),
                signature: header("switchboard-signature"),
                json: serde_json::from_str(&body).unwrap_or(Value::Null),
                body,
                accepted,
                at: Instant::now(),
            });
            accepted
        };
        let status = if accepted {
            "200 OK"
        } else {
            "500 Internal Server Error"
        };
        let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        if sock.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}
