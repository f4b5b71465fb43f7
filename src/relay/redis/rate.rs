//! The cluster-wide send rate, checked in batches. A check waits in a queue; one task takes
//! everything queued and asks Redis about all of it in one script call, with up to
//! `ROUNDS_IN_FLIGHT` calls on their way at once, all on one connection: Redis runs one
//! connection's calls in the order they were sent, so checks take tokens in the order they
//! were asked, whichever round carries them. One call per send, each on a pooled
//! connection, capped two nodes at the pool size over the round trip: with the check local
//! instead, the two-node `direct` row went from 12,600 to 27,300 acked sends/s
//! (docs/performance.md, "Session 20").

use std::sync::Weak;

use ::redis::aio::MultiplexedConnection;
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

/// A check's answer on its way: 0 when the user may send, else the milliseconds until they
/// may, or `None` when Redis did not answer within its timeout, queueing included.
pub(super) type RateAnswer = BoxFuture<'static, Option<i64>>;

impl RedisRelay {
    /// Queues `user`'s check now, when there is room (`true`); otherwise it is queued when
    /// the future is first polled. The timeout starts at that first poll, on the runtime
    /// that polls it: a timer made here would belong to the asking session's runtime, which
    /// may stop first.
    pub(super) fn ask_rate(&self, user: &str) -> (RateAnswer, bool) {
        let (reply, answer) = oneshot::channel();
        let check = RateCheck {
            user: user.to_string(),
            reply,
        };
        // Queued at once when there is room, so checks keep their callers' order.
        let waiting = match self.rate_checks.try_send(check) {
            Ok(()) => None,
            Err(TrySendError::Full(check)) => Some((self.rate_checks.clone(), check)),
            Err(TrySendError::Closed(_)) => return (ready(None).boxed(), true),
        };
        let queued = waiting.is_none();
        let asked = async move {
            if let Some((queue, check)) = waiting {
                queue.send(check).await.ok()?;
            }
            answer.await.ok().flatten()
        };
        let answer = async move {
            tokio::time::timeout(REDIS_TIMEOUT, asked)
                .await
                .ok()
                .flatten()
        };
        (answer.boxed(), queued)
    }

    /// A pooled connection for the rate rounds, held until a round on it fails, with the
    /// `RATE` script loaded: a round that found it missing would load it and call again,
    /// and a round sent in between would be judged first.
    async fn rate_connection(&self) -> Option<deadpool_redis::Connection> {
        let mut conn = self.up_conn().await?;
        self.timed(self.scripts.rate.load_async(&mut conn))
            .await
            .ok()?;
        Some(conn)
    }

    /// One round trip for a batch on `conn`: each check's wait, in order; `None` if Redis
    /// failed. The call is sent at the first poll, before anything here waits.
    async fn rate_round(
        &self,
        mut conn: MultiplexedConnection,
        batch: &[RateCheck],
    ) -> Option<Vec<i64>> {
        let mut call = self.scripts.rate.prepare_invoke();
        for check in batch {
            call.key(format!("sb:rate:{}", check.user));
        }
        call.arg(chrono::Utc::now().timestamp_millis())
            .arg(self.rate_interval_ms)
            .arg(self.rate_burst);
        // Not `timed`, which would mark Redis down: held for long, this one connection can
        // be cut alone (an idle timeout, `CLIENT KILL`). The next round takes a fresh one
        // from the pool, whose check says whether Redis itself is down.
        let waits: Vec<i64> =
            match tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async(&mut conn)).await {
                Ok(Ok(waits)) => waits,
                Ok(Err(e)) => {
                    log::debug!("rate check call failed; taking a new connection: {e}");
                    return None;
                }
                Err(_) => {
                    log::debug!("rate check call timed out; taking a new connection");
                    return None;
                }
            };
        (waits.len() == batch.len()).then_some(waits)
    }
}

/// Answers queued checks a batch at a time until the relay is gone, with up to
/// `ROUNDS_IN_FLIGHT` batches on their way at once: one at a time, a batch also waited for
/// the round trip ahead of it. Every round goes out on one connection, held from the pool
/// until a round on it fails, and each round's call is written before the next batch is
/// taken, so Redis judges the checks in queue order. (Taking a new connection pauses the
/// loop, answers included, for at most the pool's wait: only after a failure.)
pub(super) async fn check_rates(relay: Weak<RedisRelay>, mut queue: mpsc::Receiver<RateCheck>) {
    let mut rounds: FuturesUnordered<BoxFuture<'static, bool>> = FuturesUnordered::new();
    let mut batch = Vec::with_capacity(RATE_BATCH);
    let mut held: Option<deadpool_redis::Connection> = None;
    loop {
        tokio::select! {
            // Answers first: a round that came back frees its place before more are taken.
            biased;
            Some(answered) = rounds.next(), if !rounds.is_empty() => {
                if !answered {
                    held = None;
                }
            }
            n = queue.recv_many(&mut batch, RATE_BATCH), if rounds.len() < ROUNDS_IN_FLIGHT => {
                if n == 0 {
                    break;
                }
                let taken = std::mem::replace(&mut batch, Vec::with_capacity(RATE_BATCH));
                let strong = relay.upgrade();
                if held.is_none() {
                    if let Some(r) = &strong {
                        held = r.rate_connection().await;
                    }
                }
                let conn = held.as_ref().map(|c| MultiplexedConnection::clone(c));
                // Polled once now, so its call is on the connection before the next round's;
                // unconstrained, so tokio's cooperative budget cannot make that poll stop
                // short of the send.
                let mut round = tokio::task::unconstrained(answer(strong, conn, taken)).boxed();
                match (&mut round).now_or_never() {
                    None => rounds.push(round),
                    Some(false) => held = None,
                    Some(true) => {}
                }
            }
        }
    }
    while rounds.next().await.is_some() {}
}

/// Asks Redis about one batch on `conn` and answers each of its checks (`None` for each
/// when Redis did not answer, or there was no relay or connection); whether Redis answered.
async fn answer(
    relay: Option<std::sync::Arc<RedisRelay>>,
    conn: Option<MultiplexedConnection>,
    batch: Vec<RateCheck>,
) -> bool {
    let waits = match (relay, conn) {
        (Some(r), Some(conn)) => r.rate_round(conn, &batch).await,
        _ => None,
    };
    let answered = waits.is_some();
    for (i, check) in batch.into_iter().enumerate() {
        let _ = check.reply.send(waits.as_ref().map(|w| w[i]));
    }
    answered
}
