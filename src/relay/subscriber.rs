//! The Redis subscriber actor: one per node, on its own RESP3 pub/sub connection (never one
//! from the pool). It subscribes to the channels of the users (and watched users) that have
//! sessions here, and hands each envelope that another node published to the local registry.
//!
//! The connection is a `ConnectionManager` with automatic resubscription, so after Redis
//! restarts it reconnects and subscribes again by itself (STACK.md). Pushes arrive through a
//! bounded queue: when the node cannot keep up, envelopes are dropped and counted rather than
//! queued without limit; clients see the seq gap and fill it with `history`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::RelayError;
use crate::envelope::Envelope;
use crate::metrics::{self, DropReason};
use crate::registry::{Deliver, SessionRegistry};

/// Pushed envelopes waiting for the registry.
const SUBSCRIBER_QUEUE: usize = 16_384;
/// Bound on connecting and on each command, so a paused Redis cannot stall the node.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Relays envelopes from Redis pub/sub to the local registry.
pub struct RedisSubscriber {
    node_id: String,
    registry: Addr<SessionRegistry>,
    conn: ConnectionManager,
    dropped: Arc<AtomicU64>,
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
    /// Starts the actor; the connection is made lazily and remade after every failure.
    pub fn start(
        url: &str,
        node_id: String,
        registry: Addr<SessionRegistry>,
    ) -> Result<Addr<RedisSubscriber>, RelayError> {
        let (tx, rx) = mpsc::channel::<PushInfo>(SUBSCRIBER_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |info: PushInfo| {
                if tx.try_send(info).is_err() {
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
        Ok(RedisSubscriber::create(|ctx| {
            ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async {
                rx.recv().await.map(|info| (info, rx))
            }));
            RedisSubscriber {
                node_id,
                registry,
                conn,
                dropped,
            }
        }))
    }
}

impl Actor for RedisSubscriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

fn bulk(v: Option<&Value>) -> Option<&[u8]> {
    match v? {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

impl StreamHandler<PushInfo> for RedisSubscriber {
    fn handle(&mut self, info: PushInfo, ctx: &mut Self::Context) {
        match info.kind {
            PushKind::Message => {
                let Some(payload) = bulk(info.data.get(1)) else {
                    return;
                };
                let envelope: Envelope = match serde_json::from_slice(payload) {
                    Ok(e) => e,
                    Err(e) => {
                        log::warn!("redis: dropping an unreadable envelope: {e}");
                        metrics::event_dropped(DropReason::BadEnvelope, 1);
                        return;
                    }
                };
                // This node delivered its own envelopes locally when it published them.
                if envelope.origin == self.node_id {
                    return;
                }
                metrics::relay_received();
                // Waiting here pushes back on the queue above: one envelope at a time, in
                // the order Redis delivered them.
                self.registry
                    .send(Deliver {
                        envelope: Arc::new(envelope),
                    })
                    .into_actor(self)
                    .map(|_, _, _| ())
                    .wait(ctx);
            }
            PushKind::Disconnection => {
                log::warn!("redis: subscription connection lost; reconnecting");
            }
            _ => {}
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            log::warn!("redis: {dropped} envelope(s) dropped: the node could not keep up");
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {}
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
