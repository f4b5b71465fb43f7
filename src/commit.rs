//! Group commit: the node's one way to store messages. Sends from every session queue here,
//! and each shard stores what has queued since its last commit in one transaction, then
//! publishes the `message` events in seq order and answers each sender.
//!
//! A transaction per message spends most of its time on round trips and the commit's
//! flush; a batch pays for both once (docs/performance.md, "Group commit"). Threads are
//! spread over shards by id, so a thread's messages always take the same shard: per-thread
//! order needs no lock, and the shards' batches never touch the same thread row.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Either, Ready, ready};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::envelope::{Audience, Envelope, Lane};
use crate::metrics;
use crate::protocol::ServerFrame;
use crate::relay::{Asked, Relay};
use crate::store::{Inserted, Pending, Store, StoreError};

/// Most messages in one transaction.
const MAX_BATCH: usize = 256;
/// Most bytes of message text (body, metadata, ids) in one transaction, past the first
/// message. Each Postgres connection keeps a bind buffer as large as the largest statement
/// it has sent: without this, 256 messages of 48 KiB would leave 12 MiB on each of them.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Messages waiting for a shard; a sender waits for room past this (at most
/// `DB_TIMEOUT_MS`, then `unavailable`).
const QUEUE: usize = 4096;
/// Committed batches waiting for their events to be published: the writer commits the
/// next while the last is published, and no further ahead.
const PUBLISH_QUEUE: usize = 2;

/// The store's answer for a message.
pub type Answer = Result<Inserted, StoreError>;

/// What a sender gets back: the store's answer, or its rate check's refusal.
pub type Reply = Result<Answer, Limited>;

/// A message its sender's rate check refused once it was queued: nothing was stored.
#[derive(Debug)]
pub struct Limited {
    /// How long until the sender may send again.
    pub wait: Duration,
    /// The sender and the message's `client_id`, if it had one: a resend of a stored
    /// message is answered with the original, whatever the rate.
    pub resend: Option<(String, String)>,
}

/// One message on its way to a batch.
struct Job {
    item: Pending,
    /// Left out of the `message` event (the sending session).
    except_session: Option<String>,
    /// The sender's rate check: the message joins a transaction only once it has passed.
    check: Check,
    done: oneshot::Sender<Reply>,
    queued: Instant,
}

/// Where a job's rate check stands.
enum Check {
    /// It let the message through (or there was none to wait for).
    Passed,
    /// Still on its way (with Redis, a round trip asked when the message was queued).
    Waiting(Asked),
    /// It refused the message, with the sender's wait.
    Refused(Duration),
}

impl Job {
    /// Polls the job's rate check if it is still on its way; whether it has an answer.
    fn poll_check(&mut self, cx: &mut Context<'_>) -> bool {
        if let Check::Waiting(asked) = &mut self.check {
            match asked.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => self.check = Check::Passed,
                Poll::Ready(Err(wait)) => self.check = Check::Refused(wait),
                Poll::Pending => return false,
            }
        }
        true
    }
}

/// A committed batch: its events, then its answers, in batch order.
struct Committed {
    envelopes: Vec<Envelope>,
    answers: Vec<(oneshot::Sender<Reply>, Answer)>,
}

/// The handle senders queue messages through. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    shards: Arc<Vec<mpsc::Sender<Job>>>,
    timeout: Duration,
}

impl Committer {
    /// Starts `shards` writers, each publishing through `relay` as `node_id`: the publishers
    /// on the caller's runtime, the writers where the store says writes cost least
    /// (`Store::spawn_writer`).
    pub fn start(
        store: Store,
        relay: Arc<dyn Relay>,
        node_id: String,
        shards: usize,
    ) -> std::io::Result<Self> {
        let timeout = store.timeout();
        let senders = (0..shards.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let (ptx, prx) = mpsc::channel(PUBLISH_QUEUE);
                let mut state = (store.clone(), node_id.clone(), rx, ptx);
                let writer = async move {
                    restarting("message writer", &mut state, |(store, node_id, rx, ptx)| {
                        write(store, node_id, rx, ptx).boxed()
                    })
                    .await;
                };
                store.spawn_writer(&format!("writer-{i}"), writer)?;
                let mut outlet = (relay.clone(), prx);
                tokio::spawn(async move {
                    restarting("event publisher", &mut outlet, |(relay, prx)| {
                        publish(relay, prx).boxed()
                    })
                    .await;
                });
                Ok(tx)
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Committer {
            shards: Arc::new(senders),
            timeout,
        })
    }

    /// Queues a message for the next batch of its thread's shard; the receiver resolves
    /// once it has committed and its event is handed on (or it was refused). Messages of
    /// one shard are stored in the order they were queued (when this is called, if there is
    /// room), so one caller's messages to a thread get seqs in that order.
    ///
    /// Not an `async fn`: there is room at once almost always, and a send's future (which
    /// holds this one, and is copied on every send: `ws::dispatch`'s size test) then holds
    /// only the answer, not the job and a timer. A waiting sender is not overtaken: the
    /// queue's permits go to waiters first.
    ///
    /// `verdict`: the sender's rate check, still on its way. The message is queued now, in
    /// its place, and stored only if the check lets it through; the check's round trip
    /// overlaps the wait for the batch ahead instead of adding to it.
    pub fn submit(
        &self,
        item: Pending,
        except_session: Option<String>,
        verdict: Option<Asked>,
    ) -> Either<Ready<Submitted>, BoxFuture<'static, Submitted>> {
        let (done, rx) = oneshot::channel();
        let shard = &self.shards[shard_of(&item.row.thread_id, self.shards.len())];
        let job = Job {
            item,
            except_session,
            check: verdict.map_or(Check::Passed, Check::Waiting),
            done,
            queued: Instant::now(),
        };
        let backed_up = || StoreError::Unavailable("the message writer is backed up".into());
        match shard.try_send(job) {
            Ok(()) => Either::Left(ready(Ok(rx))),
            Err(mpsc::error::TrySendError::Full(job)) => {
                let (shard, timeout) = (shard.clone(), self.timeout);
                Either::Right(
                    async move {
                        shard
                            .send_timeout(job, timeout)
                            .await
                            .map_err(|_| backed_up())?;
                        Ok(rx)
                    }
                    .boxed(),
                )
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Either::Left(ready(Err(backed_up()))),
        }
    }
}

/// What [`Committer::submit`] resolves to: the receiver of the store's answer, or why the
/// message was not queued.
pub type Submitted = Result<oneshot::Receiver<Reply>, StoreError>;

/// A thread's shard: stable across nodes and restarts.
fn shard_of(thread_id: &str, shards: usize) -> usize {
    crate::stripes::slot(thread_id, shards)
}

/// A shard's writer: takes everything queued (up to `MAX_BATCH`), stores what its rate
/// checks let through in one transaction, and hands the events and answers to the shard's
/// publisher.
async fn write(
    store: &Store,
    node_id: &str,
    rx: &mut mpsc::Receiver<Job>,
    publisher: &mpsc::Sender<Committed>,
) {
    // Jobs carried over from the last round (their checks were still out, or the byte
    // budget was spent): they lead the next one.
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        if jobs.is_empty() {
            if rx.recv_many(&mut jobs, MAX_BATCH).await == 0 {
                break;
            }
        } else {
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let (batch, carried) =
            poll_fn(|cx| Poll::Ready(admit(std::mem::take(&mut jobs), cx))).await;
        jobs = carried;
        if batch.is_empty() {
            // Every job waits for its rate check: wake for the first to come back, or for a
            // new message, which may be for a thread nobody waits on.
            if !jobs.is_empty() {
                tokio::select! {
                    () = any_check_back(&mut jobs) => {}
                    Some(job) = rx.recv(), if jobs.len() < MAX_BATCH => jobs.push(job),
                }
            }
            continue;
        }
        // Waited past DB_TIMEOUT_MS (the database is slow or down, or Redis was slow to
        // answer the rate check): answered, not stored, so no caller is told `unavailable`
        // about a message that later commits.
        let (batch, expired): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|j| j.queued.elapsed() < store.timeout());
        for job in expired {
            let _ = job.done.send(Ok(Err(StoreError::Unavailable(
                "queued past DB_TIMEOUT_MS".into(),
            ))));
        }
        let Some(oldest) = batch.iter().map(|j| j.queued).min() else {
            continue;
        };
        metrics::commit_batch();
        // Nothing of the batch commits past its oldest sender's write wait, queue included.
        // Each sender also bounds its own wait (`service::messages::Committing`), on either
        // backend: on SQLite's writer thread a statement runs inline and cannot be cut
        // short, and an answer goes out only after the batch's events are published.
        let deadline = store.wait_until(oldest);
        let mut senders = Vec::with_capacity(batch.len());
        let mut items = Vec::with_capacity(batch.len());
        let mut except = Vec::with_capacity(batch.len());
        for job in batch {
            senders.push(job.done);
            items.push(job.item);
            except.push(job.except_session);
        }
        let mut late = Vec::new();
        let answers = store_batch(store, items.into(), &except, deadline, &mut late).await;
        let mut done = Committed {
            envelopes: Vec::new(),
            answers: Vec::with_capacity(senders.len()),
        };
        for ((tx, answer), except) in senders.into_iter().zip(answers).zip(except) {
            match &answer {
                Ok(a) => {
                    if let Some(env) = event(node_id, a, except) {
                        metrics::message_stored();
                        done.envelopes.push(env);
                    }
                    done.answers.push((tx, answer));
                }
                // A failure has no event to wait for: answered now, not after a late batch.
                Err(_) => {
                    let _ = tx.send(Ok(answer));
                }
            }
        }
        if let Err(mpsc::error::SendError(lost)) = publisher.send(done).await {
            log::warn!("message writer: publisher gone; events not sent");
            for (tx, answer) in lost.answers {
                let _ = tx.send(Ok(answer));
            }
        }
        // Parts of this batch that committed after their senders were told `unavailable`
        // (they ran after the parts above, so their seqs are higher): published before the
        // writer takes its next batch, so a thread's events still leave in seq order.
        for task in late {
            forward_late(task, store, node_id, publisher).await;
        }
    }
}

/// Splits `jobs` into what may commit now and what waits, polling each rate check still
/// out: a job waits while its check is out, and so does every later job of its thread, so a
/// thread's messages keep their queue order. A job its check refused is answered with its
/// wait and dropped. Nothing else waits for a slow check: a shard's other threads, and
/// messages with no check out (the server API's, a send that had to wait for its check
/// before it was queued), commit meanwhile. What may commit is cut at the byte budget, and
/// what it leaves over leads the carried jobs, ahead of the held ones: a thread's passed jobs
/// all came before its held ones.
fn admit(jobs: Vec<Job>, cx: &mut Context<'_>) -> (Vec<Job>, Vec<Job>) {
    let mut now = Vec::with_capacity(jobs.len());
    let mut held: Vec<Job> = Vec::new();
    for mut job in jobs {
        let back = job.poll_check(cx);
        if let Check::Refused(wait) = job.check {
            let row = job.item.row;
            let resend = row.client_id.map(|cid| (row.sender_id, cid));
            let _ = job.done.send(Err(Limited { wait, resend }));
            continue;
        }
        let thread = &job.item.row.thread_id;
        if back && !held.iter().any(|h| &h.item.row.thread_id == thread) {
            now.push(job);
        } else {
            held.push(job);
        }
    }
    let mut carried = now.split_off(within_budget(&now));
    carried.append(&mut held);
    (now, carried)
}

/// Resolves once any of `jobs`' rate checks has come back. Each is bounded by the Redis
/// timeout, counted from its first poll (then this node's own limiter decides), so this
/// never waits longer.
async fn any_check_back(jobs: &mut [Job]) {
    poll_fn(|cx| {
        // Every check still out is polled, so each one's answer wakes this. (A held job
        // whose check has passed waits for an earlier job of its thread: not a wake-up.)
        let back = jobs
            .iter_mut()
            .filter(|j| matches!(j.check, Check::Waiting(_)))
            .fold(false, |any, j| j.poll_check(cx) | any);
        if back { Poll::Ready(()) } else { Poll::Pending }
    })
    .await
}

/// Runs `run` until it returns, again each time it panics. A panic is a bug (the panic
/// hook has logged it), but without this it would stop a shard's writer or publisher for
/// good: every later send to its threads would fail, or be acknowledged with no event. The
/// batch in hand when it panicked is answered `unavailable` (its answers were dropped); it
/// may have committed, and then its events are lost (members see the `seq` gap, a resend
/// with the same `client_id` returns the stored message), as are a running late batch's.
/// Each run takes at least one batch before it can panic, so this never spins.
async fn restarting<S>(
    what: &str,
    state: &mut S,
    mut run: impl FnMut(&mut S) -> BoxFuture<'_, ()>,
) {
    while std::panic::AssertUnwindSafe(run(&mut *state))
        .catch_unwind()
        .await
        .is_err()
    {
        log::error!("{what} panicked; restarting it");
    }
}

/// How many of `jobs`, from the front, fit in `MAX_BATCH_BYTES`: at least one, so a
/// message larger than the budget still goes, alone.
fn within_budget(jobs: &[Job]) -> usize {
    let mut bytes = 0;
    jobs.iter()
        .position(|j| {
            bytes += text_bytes(&j.item);
            bytes > MAX_BATCH_BYTES
        })
        .map_or(jobs.len(), |over| over.max(1))
}

/// The bytes a message's text takes in a statement's binds.
fn text_bytes(item: &Pending) -> usize {
    let r = &item.row;
    r.id.len()
        + r.thread_id.len()
        + r.sender_id.len()
        + r.kind.len()
        + r.body.len()
        + r.metadata.as_deref().map_or(0, str::len)
        + r.reply_to.as_deref().map_or(0, str::len)
        + r.client_id.as_deref().map_or(0, str::len)
}

/// A batch whose senders were told `unavailable` while it was still running. On SQLite's
/// writer thread a batch can be late only while it waits for the writer gate or a
/// connection, before any statement: its deadline check then stops it, and it never
/// commits. Once its statements run, they run inline, and the wait ends with them.
struct Late {
    task: JoinHandle<Result<Vec<Inserted>, StoreError>>,
    except: Vec<Option<String>>,
}

/// Publishes a late batch's events once it commits. Waits at most `DB_TIMEOUT_MS` more (a
/// statement is cut there, but a transaction of several can run longer); past that the
/// events go out when it ends, possibly after a later batch's, and the log says so.
async fn forward_late(
    mut late: Late,
    store: &Store,
    node_id: &str,
    publisher: &mpsc::Sender<Committed>,
) {
    let committed = |answers: Vec<Inserted>, except: Vec<Option<String>>, node_id: &str| {
        log::warn!("a batch committed after its senders were told unavailable; publishing it");
        Committed {
            envelopes: answers
                .iter()
                .zip(except)
                .filter_map(|(a, x)| event(node_id, a, x))
                .inspect(|_| metrics::message_stored())
                .collect(),
            answers: Vec::new(),
        }
    };
    match tokio::time::timeout(store.timeout(), &mut late.task).await {
        Ok(Ok(Ok(answers))) => {
            let _ = publisher
                .send(committed(answers, late.except, node_id))
                .await;
        }
        Ok(_) => {}
        Err(_) => {
            log::warn!(
                "a batch still running past DB_TIMEOUT_MS: its events may leave out of order"
            );
            let publisher = publisher.clone();
            let node_id = node_id.to_string();
            tokio::spawn(async move {
                if let Ok(Ok(answers)) = late.task.await {
                    let _ = publisher
                        .send(committed(answers, late.except, &node_id))
                        .await;
                }
            });
        }
    }
}

/// Stores a batch. When the whole batch fails for something in a row (not the database
/// being down, which fails everything alike), its halves are tried apart, so one bad
/// message fails alone in a handful of transactions.
///
/// Past `deadline` the senders are told `unavailable` (the outcome is unknown: a resend with
/// the same `client_id` settles it); the still-running transaction goes to `late`, to be
/// published if it commits, so members are not left without its events. On SQLite's writer
/// thread, once the transaction's statements run they run inline, so this wait ends only
/// with them and the answer is the truth; a sender that stopped waiting first was told
/// `unavailable` by its own bound.
fn store_batch<'a>(
    store: &'a Store,
    items: Arc<[Pending]>,
    except: &'a [Option<String>],
    deadline: Instant,
    late: &'a mut Vec<Late>,
) -> BoxFuture<'a, Vec<Answer>> {
    async move {
        let n = items.len();
        let started = Instant::now();
        // Sooner if the node has begun to shut down since.
        let deadline = deadline.min(store.wait_until(started));
        // Past the deadline (a failed batch's halves): not started at all, so nobody is told
        // `unavailable` about a message that then commits.
        if started >= deadline {
            return (0..n).map(|_| Err(store.no_answer())).collect();
        }
        let mut task = store.insert_messages(items.clone(), Store::commit_by(deadline));
        let waited = store.until(deadline, &mut task).await;
        metrics::db_query(started.elapsed());
        let result = match waited {
            Some(joined) => joined
                .map_err(|e| StoreError::Task(e.to_string()))
                .and_then(|r| r),
            None => {
                late.push(Late {
                    task,
                    except: except.to_vec(),
                });
                Err(store.no_answer())
            }
        };
        match result {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            Err(e) if n > 1 && !e.is_unavailable() && !matches!(e, StoreError::Task(_)) => {
                log::info!("a batch of {n} failed ({e}); trying its halves apart");
                let half = n / 2;
                let (left, right) = items.split_at(half);
                let mut answers =
                    store_batch(store, left.into(), &except[..half], deadline, late).await;
                answers.extend(
                    store_batch(store, right.into(), &except[half..], deadline, late).await,
                );
                answers
            }
            Err(e) => {
                // Everyone gets the same error; the first carries the original.
                let text = e.to_string();
                let same = |_| {
                    if e.is_unavailable() {
                        StoreError::Unavailable(text.clone())
                    } else {
                        StoreError::Task(text.clone())
                    }
                };
                let rest: Vec<Answer> = (1..n).map(|i| Err(same(i))).collect();
                std::iter::once(Err(e)).chain(rest).collect()
            }
        }
    }
    .boxed()
}

/// The `message` event for a newly stored message, for its members less `except_session`.
fn event(node_id: &str, answer: &Inserted, except_session: Option<String>) -> Option<Envelope> {
    let Inserted::New(row, members) = answer else {
        return None;
    };
    let frame = ServerFrame::Message {
        message: row.clone().into(),
    };
    let audience = Audience::users_except(members.clone(), except_session);
    Some(Envelope::frame(node_id, audience, Lane::Durable, &frame))
}

/// A shard's publisher: hands each batch's events to the relay in order, then answers its
/// senders, so a thread's `message` events leave the node in seq order, and anything a
/// sender does after its ack (an edit, a member removed) comes after its message.
async fn publish(relay: &Arc<dyn Relay>, rx: &mut mpsc::Receiver<Committed>) {
    while let Some(batch) = rx.recv().await {
        if !batch.envelopes.is_empty() {
            if let Err(e) = relay.publish_all(batch.envelopes).await {
                log::warn!("relay {}: publish failed: {e}", relay.name());
            }
        }
        for (tx, answer) in batch.answers {
            let _ = tx.send(Ok(answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use std::time::Duration;

    use futures_util::FutureExt;
    use futures_util::future::ready;
    use tokio::sync::oneshot;

    use std::task::{Context, Waker};

    use super::{
        Check, Job, MAX_BATCH_BYTES, admit, any_check_back, restarting, shard_of, within_budget,
    };
    use crate::relay::Asked;
    use crate::store::Pending;
    use crate::store::models::MessageRow;

    fn job(body_bytes: usize) -> Job {
        let row = MessageRow {
            id: String::new(),
            thread_id: String::new(),
            seq: 0,
            sender_id: String::new(),
            kind: String::new(),
            body: "x".repeat(body_bytes),
            metadata: None,
            reply_to: None,
            client_id: None,
            created_at: chrono::Utc::now().naive_utc(),
            edited_at: None,
            deleted: false,
        };
        Job {
            item: Pending {
                row,
                hook: None,
                member_only: false,
            },
            except_session: None,
            check: Check::Passed,
            done: tokio::sync::oneshot::channel().0,
            queued: Instant::now(),
        }
    }

    #[test]
    fn a_batch_stops_at_the_byte_budget() {
        let big = MAX_BATCH_BYTES / 4;
        // Four fit exactly; the fifth waits for the next batch.
        let jobs: Vec<Job> = (0..6).map(|_| job(big)).collect();
        assert_eq!(within_budget(&jobs), 4);
        // Small messages: the whole queue goes.
        let jobs: Vec<Job> = (0..256).map(|_| job(100)).collect();
        assert_eq!(within_budget(&jobs), 256);
        // One message past the budget still goes, alone.
        let jobs: Vec<Job> = (0..3).map(|_| job(MAX_BATCH_BYTES + 1)).collect();
        assert_eq!(within_budget(&jobs), 1);
        assert_eq!(within_budget(&[]), 0);
    }

    fn noop() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// What may commit now: jobs whose checks passed, on threads where no earlier job
    /// waits for its check. A refused job is answered with its wait; a job whose check is
    /// out waits, and so do later jobs of its thread, in order; other threads do not.
    #[tokio::test]
    async fn a_check_still_out_holds_back_only_its_own_thread() {
        let (tell, told) = oneshot::channel::<()>();
        let out: Asked = told.map(|_| Ok(())).boxed();
        let checks: [(&str, Check); 5] = [
            ("x", Check::Waiting(out)),
            ("y", Check::Passed),
            ("x", Check::Passed),
            (
                "y",
                Check::Waiting(ready(Err(Duration::from_millis(40))).boxed()),
            ),
            ("z", Check::Waiting(ready(Ok(())).boxed())),
        ];
        let mut answers = Vec::new();
        let jobs: Vec<Job> = checks
            .into_iter()
            .enumerate()
            .map(|(i, (thread, check))| {
                let (done, rx) = oneshot::channel();
                answers.push(rx);
                let mut job = Job {
                    check,
                    done,
                    ..job(i + 1)
                };
                job.item.row.thread_id = thread.into();
                job.item.row.sender_id = "alice".into();
                job.item.row.client_id = Some(format!("c{i}"));
                job
            })
            .collect();
        let bodies = |jobs: &[Job]| {
            jobs.iter()
                .map(|j| j.item.row.body.len())
                .collect::<Vec<_>>()
        };
        let (now, mut held) = admit(jobs, &mut noop());
        assert_eq!(bodies(&now), [2, 5]);
        assert_eq!(
            bodies(&held),
            [1, 3],
            "x's later job waits behind its first"
        );
        let refused = answers.remove(3).await.unwrap().unwrap_err();
        assert_eq!(refused.wait, Duration::from_millis(40));
        // What a resend of a stored message is looked up by.
        assert_eq!(refused.resend, Some(("alice".into(), "c3".into())));
        for rx in &mut answers {
            assert!(rx.try_recv().is_err(), "a kept job was answered");
        }

        // Nothing is back yet; once x's check is, both of x's jobs go, in order.
        let waiting = tokio::time::timeout(Duration::from_millis(20), any_check_back(&mut held));
        assert!(waiting.await.is_err(), "woke with no check back");
        tell.send(()).unwrap();
        any_check_back(&mut held).await;
        let (now, held) = admit(held, &mut noop());
        assert_eq!(bodies(&now), [1, 3]);
        assert!(held.is_empty());
    }

    /// The byte budget's leftovers are carried ahead of held jobs: a thread's message that
    /// passed but did not fit keeps its place before that thread's later, held message.
    #[test]
    fn what_the_budget_leaves_over_stays_ahead_of_held_jobs() {
        let big = MAX_BATCH_BYTES / 2 + 1;
        let (_tell, told) = oneshot::channel::<()>();
        let out: Asked = told.map(|_| Ok(())).boxed();
        let mut jobs = vec![job(big), job(big + 1), job(3)];
        for (j, thread) in jobs.iter_mut().zip(["w", "x", "x"]) {
            j.item.row.thread_id = thread.into();
        }
        jobs[2].check = Check::Waiting(out);
        let (now, carried) = admit(jobs, &mut noop());
        let bodies = |jobs: &[Job]| {
            jobs.iter()
                .map(|j| j.item.row.body.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(&now), [big]);
        assert_eq!(
            bodies(&carried),
            [big + 1, 3],
            "x's first message leads its second"
        );
    }

    #[test]
    fn a_thread_always_takes_the_same_shard() {
        let a = shard_of("0193-thread-a", 4);
        assert!(a < 4);
        assert_eq!(a, shard_of("0193-thread-a", 4));
        assert_eq!(shard_of("anything", 1), 0);
    }

    /// A writer that panics is run again, with its queue, and serves what comes next.
    #[tokio::test]
    async fn a_panicking_writer_is_restarted_on_its_queue() {
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
        for n in [1, 2, 3] {
            tx.send(n).await.unwrap();
        }
        drop(tx);
        let mut state = (rx, Vec::new());
        restarting("test writer", &mut state, |(rx, served)| {
            async move {
                while let Some(n) = rx.recv().await {
                    assert_ne!(n, 2, "a bug on one job");
                    served.push(n);
                }
            }
            .boxed()
        })
        .await;
        let served = state.1;
        assert_eq!(served, [1, 3]);
    }
}
