//! The Redis subscriber actor: one per node, on its own RESP3 pub/sub connection (never one
//! from the pool). It subscribes to the channels of the users (and watched users) that have
//! sessions here; a task beside it hands each envelope that another node published to the
//! local registry, in order, so a busy registry never stalls the subscribe calls.
//!
//! The connection is a `ConnectionManager` with automatic resubscription, so after Redis
//! restarts it reconnects and subscribes again by itself (STACK.md). Envelopes arrive through
//! a bounded queue: when the node cannot keep up, they are dropped and counted rather than
//! queued without limit; clients see the seq gap and fill it with `history`. Membership
//! changes (`sb:members`) skip the queue: the push callback applies them to the `roster` at
//! once, and a lost connection distrusts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::RelayError;
use super::redis::routing::OwnParts;
use crate::envelope::Envelope;
use crate::metrics::{self, DropReason};
use crate::registry::{DeliverAll, SessionRegistry};
use crate::roster::Roster;

/// At most this many envelopes go to the registry in one message.
const HAND_ON_BATCH: usize = 256;
/// How often dropped pushes are reported in the log.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(1);
/// Close and unwatch envelopes waiting past a full `RELAY_QUEUE`: few, and never dropped for
/// a flood of messages.
const CONTROL_QUEUE: usize = 1024;
/// Bound on connecting and on each command, so a paused Redis cannot stall the node.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Owns the pub/sub connection: subscribes and unsubscribes for the relay. What arrives on
/// it is handed to the registry by `hand_on`.
pub struct RedisSubscriber {
    conn: ConnectionManager,
}

/// `url` with RESP3 asked for, which push delivery needs.
pub fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

impl RedisSubscriber {
    /// Starts the actor; the connection is made lazily and remade after every failure. At most
    /// `queue` pushed envelopes wait for the registry.
    pub fn start(
        url: &str,
        node_id: String,
        queue: usize,
        registry: Addr<SessionRegistry>,
        unwatched: mpsc::Sender<String>,
        roster: Arc<Roster>,
    ) -> Result<Addr<RedisSubscriber>, RelayError> {
        let (tx, rx) = mpsc::channel::<PushInfo>(queue.max(1));
        let (control_tx, control_rx) = mpsc::channel::<PushInfo>(CONTROL_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let own = OwnParts::new(&node_id);
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |info: PushInfo| {
                if apply_to_roster(&roster, &info) {
                    return Ok::<(), ()>(());
                }
                // Delivered here when it was published; dropped before it takes a queue slot.
                if bulk(info.data.get(1)).is_some_and(|part| own.is_own(part)) {
                    return Ok::<(), ()>(());
                }
                // A close (a revocation, a replaced session) or an unwatch (the presence
                // scope) must not be lost to a flood of messages: past the queue it waits in
                // one of its own.
                let lost = match tx.try_send(info) {
                    Ok(()) => false,
                    Err(mpsc::error::TrySendError::Full(info)) if is_control(&info) => {
                        control_tx.try_send(info).is_err()
                    }
                    Err(_) => true,
                };
                if lost {
                    counter.fetch_add(1, Ordering::Relaxed);
                    metrics::event_dropped(DropReason::RelayQueueFull, 1);
                }
                Ok::<(), ()>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_max_delay(Duration::from_secs(1))
            // Fail fast while Redis is away: the relay's tick keeps trying every second, and
            // no request should wait out a long reconnect schedule.
            .set_number_of_retries(1);
        let client =
            redis::Client::open(resp3(url)).map_err(|e| RelayError::Unavailable(e.to_string()))?;
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RelayError::Unavailable(e.to_string()))?;
        // Pushes are handed on by a task of their own, in Redis's order, so
        // a busy registry slows only them (the queue above absorbs it, then drops and counts)
        // and never the actor, whose subscribe and ping calls would otherwise time out and
        // be taken for a Redis outage.
        tokio::spawn(hand_on(
            rx, control_rx, node_id, registry, dropped, unwatched,
        ));
        Ok(RedisSubscriber { conn }.start())
    }
}

/// Hands each pushed envelope from another node to the registry, in order, waiting for it.
/// What has queued up meanwhile goes in one message (up to `HAND_ON_BATCH`), so a burst costs
/// one mailbox round trip rather than one per envelope.
/// Envelopes the queue had no room for are logged at most once a second, with their count,
/// so a flood makes a line per second, not a line per envelope.
async fn hand_on(
    mut rx: mpsc::Receiver<PushInfo>,
    mut control: mpsc::Receiver<PushInfo>,
    node_id: String,
    registry: Addr<SessionRegistry>,
    dropped: Arc<AtomicU64>,
    unwatched: mpsc::Sender<String>,
) {
    let mut report = tokio::time::interval(DROP_REPORT_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pushes = Vec::with_capacity(HAND_ON_BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut pushes, HAND_ON_BATCH) => n,
            Some(info) = control.recv() => {
                pushes.push(info);
                1
            }
            _ = report.tick() => {
                let n = dropped.swap(0, Ordering::Relaxed);
                if n > 0 {
                    log::warn!("redis: {n} envelope(s) dropped: the node could not keep up");
                }
                continue;
            }
        };
        if n == 0 {
            return; // the connection manager, and with it the sender, is gone
        }
        let mut envelopes = Vec::with_capacity(n);
        for info in pushes.drain(..) {
            match info.kind {
                PushKind::Message => {
                    if let Some(envelope) = envelope_of(&info, &node_id) {
                        metrics::relay_received();
                        envelopes.push(Arc::new(envelope));
                    }
                }
                PushKind::Disconnection => {
                    log::warn!("redis: subscription connection lost; reconnecting");
                }
                _ => {}
            }
        }
        if envelopes.is_empty() {
            continue;
        }
        let Ok(ended) = registry.send(DeliverAll { envelopes }).await else {
            return;
        };
        // Never waits: a slow Redis must not back the pushes up. A channel left subscribed
        // when the queue is full costs only envelopes nobody here watches.
        let left = ended
            .into_iter()
            .filter(|user| unwatched.try_send(user.clone()).is_err())
            .count();
        if left > 0 {
            log::warn!("redis: {left} ended watch(es) left subscribed (the queue is full)");
        }
    }
}

/// The envelope a push carries, unless it is unreadable (counted) or this node's own (it
/// delivered those locally when it published them).
fn envelope_of(info: &PushInfo, node_id: &str) -> Option<Envelope> {
    let payload = bulk(info.data.get(1))?;
    let envelope = match super::redis::routing::decode(payload) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("redis: dropping an unreadable envelope: {e}");
            metrics::event_dropped(DropReason::BadEnvelope, 1);
            return None;
        }
    };
    (envelope.origin != node_id).then_some(envelope)
}

impl Actor for RedisSubscriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// The channel of membership changes: each message is a thread id whose members every node
/// forgets (`roster`), or [`FORGET_ALL`]. Every node subscribes to it from its first tick.
pub const MEMBERS_CHANNEL: &str = "sb:members";

/// A message on [`MEMBERS_CHANNEL`] that forgets every thread (no thread id is empty).
pub const FORGET_ALL: &str = "";

/// Applies a push to the membership cache; whether that was all it carried. A membership
/// change is applied here, in Redis's order and never queued, so no flood can delay or drop
/// it; a lost connection may have lost some, so it distrusts the cache (and still goes on to
/// be logged).
fn apply_to_roster(roster: &Roster, info: &PushInfo) -> bool {
    if info.kind == PushKind::Disconnection {
        roster.distrust();
        return false;
    }
    if info.kind != PushKind::Message || bulk(info.data.first()) != Some(MEMBERS_CHANNEL.as_bytes())
    {
        return false;
    }
    match bulk(info.data.get(1)).map(std::str::from_utf8) {
        Some(Ok(FORGET_ALL)) => roster.forget_all(),
        Some(Ok(thread)) => roster.forget(thread),
        // Not from a node of ours: forgetting everything is the safe answer.
        _ => roster.forget_all(),
    }
    true
}

/// Whether a push carries a close or an unwatch envelope. Only the header is searched (a
/// frame follows its first newline), and in it only the payload's own tag can appear
/// unescaped: any string that quotes one has its quotes escaped.
fn is_control(info: &PushInfo) -> bool {
    let has = |p: &[u8], needle: &[u8]| memchr::memmem::find(p, needle).is_some();
    bulk(info.data.get(1)).is_some_and(|p| {
        let header = super::redis::routing::header_of(p);
        has(header, br#""kind":"close""#) || has(header, br#""kind":"unwatch""#)
    })
}

fn bulk(v: Option<&Value>) -> Option<&[u8]> {
    match v? {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

/// Subscribes to (or, with `on: false`, unsubscribes from) a channel.
#[derive(Message)]
#[rtype(result = "Result<(), RelayError>")]
pub struct Subscription {
    pub channel: String,
    pub on: bool,
}

impl Handler<Subscription> for RedisSubscriber {
    type Result = ResponseFuture<Result<(), RelayError>>;

    fn handle(&mut self, msg: Subscription, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let r = if msg.on {
                conn.subscribe(&msg.channel).await
            } else {
                conn.unsubscribe(&msg.channel).await
            };
            r.map_err(|e| RelayError::Unavailable(e.to_string()))
        })
    }
}

/// Pings over the subscription connection, which also makes it reconnect after a failure.
#[derive(Message)]
#[rtype(result = "Result<(), RelayError>")]
pub struct Ping;

impl Handler<Ping> for RedisSubscriber {
    type Result = ResponseFuture<Result<(), RelayError>>;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<Value>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| RelayError::Unavailable(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Audience, Lane};
    use crate::protocol::ServerFrame;

    fn push(env: &Envelope) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![
                Value::BulkString(b"sb:u:bob".to_vec()),
                Value::BulkString(crate::relay::redis::routing::whole(env).into_bytes()),
            ],
        }
    }

    #[test]
    fn membership_changes_reach_the_roster_and_a_lost_connection_distrusts_it() {
        let roster = Roster::new(1 << 20, true);
        let fill = |thread: &str| {
            let t = roster.ticket(thread);
            roster.put(t, thread, vec!["ann".to_string()].into());
            assert!(roster.get(thread).is_some());
        };
        let on_members = |payload: &[u8]| PushInfo {
            kind: PushKind::Message,
            data: vec![
                Value::BulkString(MEMBERS_CHANNEL.as_bytes().to_vec()),
                Value::BulkString(payload.to_vec()),
            ],
        };
        fill("t1");
        fill("t2");
        assert!(apply_to_roster(&roster, &on_members(b"t1")));
        assert!(roster.get("t1").is_none());
        assert!(roster.get("t2").is_some(), "only the thread named");
        assert!(apply_to_roster(&roster, &on_members(FORGET_ALL.as_bytes())));
        assert!(roster.get("t2").is_none());
        fill("t3");
        let env = Envelope::close("n1", Audience::users(vec!["bob".into()]), 4003, "x");
        assert!(
            !apply_to_roster(&roster, &push(&env)),
            "an envelope goes on"
        );
        assert!(roster.get("t3").is_some());
        let gone = PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        };
        assert!(!apply_to_roster(&roster, &gone), "still logged");
        assert!(!roster.is_trusted());
        assert!(roster.get("t3").is_none());
    }

    #[test]
    fn closes_and_unwatches_are_control_and_a_frame_quoting_one_is_not() {
        let bob = || Audience::users(vec!["bob".into()]);
        assert!(is_control(&push(&Envelope::close(
            "n1",
            bob(),
            4003,
            "revoked"
        ))));
        assert!(is_control(&push(&Envelope::unwatch(
            "n1",
            bob(),
            vec!["ann".into()]
        ))));
        let frame = ServerFrame::Broadcast {
            channel: "c".into(),
            event: serde_json::json!({"kind": "close"}),
        };
        let quoting = Envelope::frame("n1", bob(), Lane::Durable, &frame);
        assert!(!is_control(&push(&quoting)));
    }
}
