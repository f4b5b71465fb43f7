//! One load session: it reads everything its socket receives (acks, messages, errors) and,
//! when it has a plan, sends messages into its thread, at most `window` unacknowledged at a
//! time, either as fast as acks allow (closed loop) or on the ticks it is given (open loop).
//! A send carries its send time in its body, so any receiver can time it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Ws, send};
use crate::stats::{Counts, Latencies};

/// A `mixed` sender starts typing at most this often, as a person does.
const TYPING_EVERY: Duration = Duration::from_secs(1);

/// What a sending session sends.
pub struct Plan {
    pub thread_id: String,
    /// Sends in flight at most.
    pub window: usize,
    /// Open loop: one send per tick. Closed loop when `None`.
    pub ticks: Option<mpsc::Receiver<()>>,
    /// Also send typing and read receipts around each message (the `mixed` scenario).
    pub chatter: bool,
}

/// Shared by every session of a run.
pub struct Run {
    /// Time zero: bodies carry microseconds since this.
    pub epoch: Instant,
    pub counts: Counts,
    pub ack_latency: Latencies,
    pub delivery_latency: Latencies,
    /// Flips to true when senders must stop.
    pub stop: watch::Receiver<bool>,
}

/// What one session saw: its acked sends and its received messages, as (thread, seq), with
/// each receipt's latency in microseconds.
#[derive(Default)]
pub struct Seen {
    pub acked: Vec<(String, i64)>,
    pub received: Vec<(String, i64, u64)>,
}

/// Runs one session until the run stops and its last acks are in (at most 10 s more), then
/// reads on for `linger` so late deliveries are counted.
pub async fn drive(ws: Ws, plan: Option<Plan>, run: Arc<Run>, linger: Duration) -> Seen {
    let (mut tx, mut rx) = ws.split();
    let window = Arc::new(Semaphore::new(plan.as_ref().map_or(0, |p| p.window)));
    let in_flight: Arc<std::sync::Mutex<VecDeque<Instant>>> = Arc::default();
    let sender = plan.map(|mut p| {
        let (run, window, in_flight) = (run.clone(), window.clone(), in_flight.clone());
        tokio::spawn(async move {
            let mut stop = run.stop.clone();
            let mut n: u64 = 0;
            let mut typed_at: Option<Instant> = None;
            loop {
                if *stop.borrow() {
                    break;
                }
                if let Some(ticks) = p.ticks.as_mut() {
                    tokio::select! {
                        t = ticks.recv() => if t.is_none() { break },
                        _ = stop.changed() => break,
                    }
                }
                let permit = tokio::select! {
                    p = window.clone().acquire_owned() => p,
                    _ = stop.changed() => break,
                };
                let Ok(permit) = permit else { break };
                permit.forget();
                n += 1;
                let stamp = run.epoch.elapsed().as_micros() as u64;
                let frame = json!({"type":"send","ref":n.to_string(),"thread_id":p.thread_id,"body":stamp.to_string()});
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(Instant::now());
                if send(&mut tx, &frame).await.is_err() {
                    run.counts.error("closed");
                    break;
                }
                Counts::add(&run.counts.sent, 1);
                if p.chatter {
                    let tid = &p.thread_id;
                    // A read receipt per message, and a typing start and stop before it at a
                    // person's pace, at most once a second (the gateway limits starts to 5 a
                    // second per user): a chat's usual mix.
                    let mut extra = Vec::with_capacity(3);
                    if typed_at.is_none_or(|at: Instant| at.elapsed() >= TYPING_EVERY) {
                        typed_at = Some(Instant::now());
                        extra.push(json!({"type":"typing","thread_id":tid,"is_typing":true}));
                        extra.push(json!({"type":"typing","thread_id":tid,"is_typing":false}));
                    }
                    extra.push(json!({"type":"read","thread_id":tid,"seq":n}));
                    for f in &extra {
                        if send(&mut tx, f).await.is_err() {
                            break;
                        }
                    }
                }
            }
            tx
        })
    });
    let mut seen = Seen::default();
    let mut stop = run.stop.clone();
    let mut stopped_at: Option<Instant> = None;
    loop {
        let waiting = in_flight.lock().unwrap_or_else(|e| e.into_inner()).len();
        if let Some(at) = stopped_at {
            let acks_in = waiting == 0 || at.elapsed() > Duration::from_secs(10);
            if acks_in && at.elapsed() >= linger {
                break;
            }
        }
        let frame = tokio::select! {
            f = rx.next() => f,
            _ = stop.changed(), if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if stopped_at.is_some() => continue,
        };
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                if stopped_at.is_none() {
                    run.counts.error("closed");
                }
                break;
            }
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            run.counts.error("unreadable");
            continue;
        };
        match v["type"].as_str() {
            Some("ack") if v["message"].is_object() => {
                let sent = in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                if let Some(sent) = sent {
                    run.ack_latency.add(sent);
                }
                window.add_permits(1);
                Counts::add(&run.counts.acked, 1);
                let m = &v["message"];
                if let (Some(t), Some(s)) = (m["thread_id"].as_str(), m["seq"].as_i64()) {
                    seen.acked.push((t.to_string(), s));
                }
            }
            Some("error") => {
                run.counts.error(v["code"].as_str().unwrap_or("?"));
                if v["ref"].is_string() {
                    in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front();
                    window.add_permits(1);
                }
            }
            Some("message") => {
                let m = &v["message"];
                let now = run.epoch.elapsed().as_micros() as u64;
                let sent: u64 = m["body"]
                    .as_str()
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(now);
                let us = now.saturating_sub(sent);
                run.delivery_latency.add_us(us);
                Counts::add(&run.counts.delivered, 1);
                if let (Some(t), Some(s)) = (m["thread_id"].as_str(), m["seq"].as_i64()) {
                    seen.received.push((t.to_string(), s, us));
                }
            }
            _ => {}
        }
    }
    if let Some(s) = sender {
        s.abort();
    }
    seen
}
