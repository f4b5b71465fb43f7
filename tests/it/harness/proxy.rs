//! A TCP proxy the test controls: it forwards to a target until paused, then holds every
//! byte (both ways, new connections too) until resumed, like a database that stops answering;
//! or, cut, it closes every connection and closes new ones at once until mended, like a
//! network partition (what was sent and not yet forwarded is lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy on a loopback port.
pub struct Proxy {
    pub port: u16,
    paused: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a random loopback port to `target` (host:port).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new(AtomicBool::new(false));
        let (cut, is_cut) = tokio::sync::watch::channel(false);
        let (p, target) = (paused.clone(), target.to_string());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *is_cut.borrow() {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, p.clone(), is_cut.clone()));
                tokio::spawn(pipe(sr, cw, p.clone(), is_cut.clone()));
            }
        });
        Proxy {
            port,
            paused,
            cut,
            task,
        }
    }

    /// Closes every connection, and each new one at once, from now on.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Accepts connections again after `cut`.
    pub fn mend(&self) {
        self.cut.send_replace(false);
    }

    /// Holds all traffic from now on.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Lets traffic flow again (what was held goes first).
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    paused: Arc<AtomicBool>,
    mut cut: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // Both halves are dropped: the connection closes.
            _ = cut.wait_for(|c| *c) => return,
        };
        if *cut.borrow() {
            return;
        }
        while paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
