//! The cluster-wide send rate, checked in batches. A check waits in a queue; one task takes
//! everything queued and asks Redis about all of it in one script call, with up to
//! `ROUNDS_IN_FLIGHT` calls on their way at once. One call per send, each on a pooled
//! connection, capped two nodes at the pool size over the round trip: with the check local
//! instead, the two-node `direct` row went from 12,600 to 27,300 acked sends/s
//! (docs/performance.md, "Session 20").

use std::sync::Weak;

use futures_util::future::{BoxFuture, ready};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::RedisRelay;
use crate::relay::subscriber::REDIS_TIMEOUT;

/// Checks waiting for their round trip; past it a sender waits for room.
pub(super) const RATE_QUEUE: usize = 4096;

/// Checks in one script call, so one call stays short for Redis (it runs scripts one at a
/// time) and its reply small.
const RATE_BATCH: usize = 256;

/// Batches on their way to Redis at once.
const ROUNDS_IN_FLIGHT: usize = 4;

/// One send's check: its user, and where its answer goes (`None`: Redis did not answer).
pub(super) struct RateCheck {
    user: String,
    reply: oneshot::Sender<Option<i64>>,
}

impl RedisRelay {
    /// Queues `user`'s check now; the future gives 0 when they may send, else the
    /// milliseconds until they may, or `None` when Redis did not answer within its
    /// timeout, queueing included (the caller falls back to this node's own limiter). The
    /// timeout starts at the future's first poll, on the runtime that polls it: a timer
    /// made here would belong to the asking session's runtime, which may stop first.
    pub(super) fn ask_rate(&self, user: &str) -> BoxFuture<'static, Option<i64>> {
        let (reply, answer) = oneshot::channel();
        let check = RateCheck {
            user: user.to_string(),
            reply,
        };
        // Queued at once when there is room, so checks keep their callers' order.
        let waiting = match self.rate_checks.try_send(check) {
            Ok(()) => None,
            Err(TrySendError::Full(check)) => Some((self.rate_checks.clone(), check)),
            Err(TrySendError::Closed(_)) => return ready(None).boxed(),
        };
        let asked = async move {
            if let Some((queue, check)) = waiting {
                queue.send(check).await.ok()?;
            }
            answer.await.ok().flatten()
        };
        async move {
            tokio::time::timeout(REDIS_TIMEOUT, asked)
                .await
                .ok()
                .flatten()
        }
        .boxed()
    }

    /// One round trip for a batch: each check's wait, in order; `None` if Redis failed.
    async fn rate_round(&self, batch: &[RateCheck]) -> Option<Vec<i64>> {
        let mut conn = self.up_conn().await?;
        let mut call = self.scripts.rate.prepare_invoke();
        for check in batch {
            call.key(format!("sb:rate:{}", check.user));
        }
        call.arg(chrono::Utc::now().timestamp_millis())
            .arg(self.rate_interval_ms)
            .arg(self.rate_burst);
        let waits: Vec<i64> = self.timed(call.invoke_async(&mut conn)).await.ok()?;
        (waits.len() == batch.len()).then_some(waits)
    }
}

/// Answers queued checks a batch at a time until the relay is gone, with up to
/// `ROUNDS_IN_FLIGHT` batches on their way at once: one at a time, a batch also waited for
/// the round trip ahead of it.
pub(super) async fn check_rates(relay: Weak<RedisRelay>, mut queue: mpsc::Receiver<RateCheck>) {
    let mut rounds = FuturesUnordered::new();
    let mut batch = Vec::with_capacity(RATE_BATCH);
    loop {
        tokio::select! {
            n = queue.recv_many(&mut batch, RATE_BATCH), if rounds.len() < ROUNDS_IN_FLIGHT => {
                if n == 0 {
                    break;
                }
                let taken = std::mem::replace(&mut batch, Vec::with_capacity(RATE_BATCH));
                rounds.push(answer(relay.clone(), taken));
            }
            Some(()) = rounds.next(), if !rounds.is_empty() => {}
        }
    }
    while rounds.next().await.is_some() {}
}

/// Asks Redis about one batch and answers each of its checks.
async fn answer(relay: Weak<RedisRelay>, batch: Vec<RateCheck>) {
    let waits = match relay.upgrade() {
        Some(r) => r.rate_round(&batch).await,
        None => None,
    };
    for (i, check) in batch.into_iter().enumerate() {
        let _ = check.reply.send(waits.as_ref().map(|w| w[i]));
    }
}
