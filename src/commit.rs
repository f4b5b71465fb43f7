//! Group commit: the node's one way to store messages. Sends from every session queue here,
//! and each shard stores what has queued since its last commit in one transaction, answers
//! each sender as soon as that commits, then publishes the `message` events in seq order.
//!
//! A transaction per message spends most of its time on round trips and the commit's
//! flush; a batch pays for both once (docs/performance.md, "Group commit"). Threads are
//! spread over shards by id, so a thread's messages always take the same shard: per-thread
//! order needs no lock, and the shards' batches never touch the same thread row.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::envelope::{Audience, Envelope, Lane};
use crate::metrics;
use crate::protocol::ServerFrame;
use crate::relay::Relay;
use crate::store::{Inserted, Pending, Store, StoreError};

/// Most messages in one transaction.
const MAX_BATCH: usize = 512;
/// Messages waiting for a shard; a sender waits for room past this.
const QUEUE: usize = 4096;
/// Committed batches waiting for their events to be published.
const PUBLISH_QUEUE: usize = 64;

/// What a sender gets back: the store's answer for its message.
pub type Answer = Result<Inserted, StoreError>;

/// One message on its way to a batch.
struct Job {
    item: Pending,
    /// Left out of the `message` event (the sending session).
    except_session: Option<String>,
    done: oneshot::Sender<Answer>,
}

/// The handle senders queue messages through. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    shards: Arc<Vec<mpsc::Sender<Job>>>,
}

impl Committer {
    /// Starts `shards` writers on the runtime, each publishing through `relay` as `node_id`.
    pub fn start(store: Store, relay: Arc<dyn Relay>, node_id: String, shards: usize) -> Self {
        let senders = (0..shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let (ptx, prx) = mpsc::channel(PUBLISH_QUEUE);
                tokio::spawn(write(store.clone(), node_id.clone(), rx, ptx));
                tokio::spawn(publish(relay.clone(), prx));
                tx
            })
            .collect();
        Committer {
            shards: Arc::new(senders),
        }
    }

    /// Queues a message for the next batch of its thread's shard; the receiver resolves
    /// once it has committed (or was refused). Queues of one shard are stored in the order
    /// they were queued, so one caller's messages to a thread get seqs in that order.
    pub async fn submit(
        &self,
        item: Pending,
        except_session: Option<String>,
    ) -> Result<oneshot::Receiver<Answer>, StoreError> {
        let (done, rx) = oneshot::channel();
        let shard = &self.shards[shard_of(&item.row.thread_id, self.shards.len())];
        shard
            .send(Job {
                item,
                except_session,
                done,
            })
            .await
            .map_err(|_| StoreError::Unavailable("the message writer stopped".into()))?;
        Ok(rx)
    }
}

/// A thread's shard: FNV-1a of its id, stable across nodes and restarts.
fn shard_of(thread_id: &str, shards: usize) -> usize {
    let h = thread_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    usize::try_from(h % shards as u64).unwrap_or(0)
}

/// A shard's writer: takes everything queued (up to `MAX_BATCH`), stores it in one
/// transaction, answers each sender, and hands the events to the shard's publisher.
async fn write(
    store: Store,
    node_id: String,
    mut rx: mpsc::Receiver<Job>,
    events: mpsc::Sender<Vec<Envelope>>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch: Vec<Job> = std::mem::take(&mut jobs);
        metrics::commit_batch();
        let answers = store_batch(&store, &batch).await;
        let mut out = Vec::with_capacity(batch.len());
        for (job, answer) in batch.into_iter().zip(answers) {
            if let Ok(Inserted::New(row, members)) = &answer {
                metrics::message_stored();
                let frame = ServerFrame::Message {
                    message: row.clone().into(),
                };
                let audience = Audience::users_except(members.clone(), job.except_session);
                out.push(Envelope::frame(&node_id, audience, Lane::Durable, &frame));
            }
            // The sender hears first: the message is stored, so it is acknowledged.
            let _ = job.done.send(answer);
        }
        if !out.is_empty() && events.send(out).await.is_err() {
            log::warn!("message writer: publisher gone; events not sent");
        }
    }
}

/// Stores a batch; when the whole batch fails, tries its messages one by one so that one
/// bad message (say, a `reply_to` that vanished) fails alone.
async fn store_batch(store: &Store, batch: &[Job]) -> Vec<Answer> {
    let items: Vec<Pending> = batch.iter().map(|j| j.item.clone()).collect();
    match store.insert_messages(items).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(e) if batch.len() == 1 || matches!(e, StoreError::Unavailable(_)) => {
            let text = e.to_string();
            std::iter::once(Err(e))
                .chain((1..batch.len()).map(|_| Err(StoreError::Unavailable(text.clone()))))
                .collect()
        }
        Err(e) => {
            log::info!(
                "a batch of {} failed ({e}); storing one by one",
                batch.len()
            );
            let mut answers = Vec::with_capacity(batch.len());
            for job in batch {
                answers.push(
                    store
                        .insert_messages(vec![job.item.clone()])
                        .await
                        .and_then(|mut a| {
                            a.pop()
                                .ok_or_else(|| StoreError::Task("no answer for a message".into()))
                        }),
                );
            }
            answers
        }
    }
}

/// A shard's publisher: hands each batch's events to the relay in order, so a thread's
/// `message` events leave the node in seq order while the next batch commits.
async fn publish(relay: Arc<dyn Relay>, mut rx: mpsc::Receiver<Vec<Envelope>>) {
    while let Some(envelopes) = rx.recv().await {
        if let Err(e) = relay.publish_all(envelopes).await {
            log::warn!("relay {}: publish failed: {e}", relay.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    #[test]
    fn a_thread_always_takes_the_same_shard() {
        let a = shard_of("0193-thread-a", 4);
        assert!(a < 4);
        assert_eq!(a, shard_of("0193-thread-a", 4));
        assert_eq!(shard_of("anything", 1), 0);
    }
}
