//! Sending, editing, deleting and reading messages.

use std::future::IntoFuture;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Caller, ServiceError, bad, fits, member_of, page_limit, rate, tell_members};
use crate::commit::{Limited, Reply};
use crate::context::AppContext;
use crate::protocol::{HistoryPage, HistoryQuery, Message, SendRequest, ServerFrame, Ts};
use crate::relay::{Asked, Verdict};
use crate::store::models::{MessageRow, NewMessage, naive};
use crate::store::{Inserted, Pending, Store, StoreError};

/// Default history page.
const HISTORY_DEFAULT: i64 = 50;
/// Largest history page.
pub const HISTORY_MAX: i64 = 200;
/// Longest `client_id`, in chars.
pub const MAX_CLIENT_ID_CHARS: usize = 128;

/// A message body (sent, edited, or posted by the host), checked: at most `MAX_BODY_CHARS`,
/// and no NUL, which Postgres cannot store (refused on SQLite too, so both backends agree).
pub(super) fn check_body(app: &AppContext, body: &str) -> Result<(), ServiceError> {
    let max = app.config().max_body_chars;
    if body.chars().count() > max {
        return Err(ServiceError::TooLarge(format!(
            "body is longer than {max} chars"
        )));
    }
    if body.contains('\0') {
        return Err(bad("body must not contain NUL characters"));
    }
    Ok(())
}

/// A `client_id`, checked.
pub(super) fn check_client_id(cid: &str) -> Result<(), ServiceError> {
    if cid.is_empty() || cid.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(bad(format!(
            "client_id must be 1 to {MAX_CLIENT_ID_CHARS} chars"
        )));
    }
    Ok(())
}

/// Sends a message as a user: into `thread_id`, or into the direct thread with `to` (created
/// on first use). Committed before it returns; a repeated `client_id` returns the original
/// and stores and broadcasts nothing.
pub async fn send(
    app: &AppContext,
    caller: &Caller,
    req: SendRequest,
) -> Result<Message, ServiceError> {
    queue(app, caller, req).await?.await
}

/// Checks a user's send and queues it for the next commit; the returned future resolves
/// once it has committed. Sends queued one after another by one caller get seqs in that
/// order, so a session can have several in flight.
pub async fn queue(
    app: &AppContext,
    caller: &Caller,
    req: SendRequest,
) -> Result<Committing, ServiceError> {
    let kind = req.kind.clone().unwrap_or_else(|| "text".into());
    if kind != "text" {
        return Err(bad("clients may only send kind \"text\""));
    }
    check_body(app, &req.body)?;
    if let Some(cid) = &req.client_id {
        check_client_id(cid)?;
    }
    if req.thread_id.is_some() == req.to.is_some() {
        return Err(bad("give exactly one of thread_id or to"));
    }
    let metadata = req
        .metadata
        .map(|m| super::check_json_size("metadata", serde_json::Value::Object(m)))
        .transpose()?;
    // Asked now, answered later: with Redis the check is a round trip, and a send into a
    // known thread lets it run while the message waits for its batch (`commit.rs`). A send
    // that would first create a thread or look up `reply_to` waits for it here, and so does
    // one whose check could not be queued yet (`Verdict::Backlogged`).
    let (pending, now) = match app.relay().take_send(&caller.user_id) {
        Verdict::Now(now) => (None, now),
        Verdict::Later(asked) if req.thread_id.is_some() && req.reply_to.is_none() => {
            (Some(asked), Ok(()))
        }
        Verdict::Later(asked) | Verdict::Backlogged(asked) => (None, asked.await),
    };
    if let Err(wait) = now {
        // Boxed, here and below, where a step is rare or slow: inline, its future would make
        // every send's future larger, and a send's future is copied on every send
        // (`ws::dispatch`'s size test).
        return Box::pin(refused(app, caller, req.client_id.as_deref(), wait)).await;
    }
    let thread_id = match (req.thread_id, &req.to) {
        (Some(t), _) => t,
        (None, Some(to)) => super::threads::direct_id(app, caller, to).await?,
        (None, None) => return Err(bad("give exactly one of thread_id or to")),
    };
    let row = NewMessage {
        thread_id,
        sender_id: caller.user_id.clone(),
        kind,
        body: req.body,
        metadata,
        reply_to: req.reply_to,
        client_id: req.client_id,
    };
    commit(app, row.into(), caller.session_id.clone(), true, pending).await
}

/// A send its rate refused: `rate_limited`, unless it resends a stored message, which is
/// answered, never refused: retrying after a lost ack must work whatever the rate. (The
/// commit finds other resends itself.)
async fn refused(
    app: &AppContext,
    caller: &Caller,
    client_id: Option<&str>,
    wait: std::time::Duration,
) -> Result<Committing, ServiceError> {
    if let Some(cid) = client_id {
        if let Some(original) = app
            .store()
            .message_by_client_id(&caller.user_id, cid)
            .await?
        {
            return Ok(Committing::Done(Box::new(original.into())));
        }
    }
    Err(super::limited(wait))
}

/// A message on its way to the database.
pub enum Committing {
    /// Queued for a batch, at `queued`.
    Queued {
        rx: oneshot::Receiver<Reply>,
        store: Store,
        queued: Instant,
    },
    /// Answered without a write (the original of a resend).
    Done(Box<Message>),
}

impl IntoFuture for Committing {
    type Output = Result<Message, ServiceError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        async move {
            let answer = match self {
                Committing::Done(m) => return Ok(*m),
                // Bounded here, not only by the writer: a SQLite transaction runs on the
                // writer's own thread to its end, and a stalled flush there must not hang
                // the sender past its wait (or the drain's deadline).
                Committing::Queued { rx, store, queued } => {
                    match store.until(store.wait_until(queued), rx).await {
                        Some(Ok(Ok(answer))) => answer?,
                        // Refused by a rate check that came back after it was queued.
                        Some(Ok(Err(Limited { wait, resend }))) => {
                            if let Some((user, cid)) = &resend {
                                if let Some(original) =
                                    store.message_by_client_id(user, cid).await?
                                {
                                    return Ok(original.into());
                                }
                            }
                            return Err(super::limited(wait));
                        }
                        Some(Err(_)) => {
                            return Err(ServiceError::Unavailable(
                                "the message writer stopped".into(),
                            ));
                        }
                        None => return Err(store.no_answer().into()),
                    }
                }
            };
            match answer {
                Inserted::New(stored, _) => Ok(stored.into()),
                Inserted::Duplicate(original) => Ok(original.into()),
                Inserted::NotMember => Err(ServiceError::Forbidden(
                    "not a member of this thread".into(),
                )),
                Inserted::NoThread => Err(ServiceError::NotFound("no such thread".into())),
                Inserted::Failed {
                    reason,
                    unavailable: true,
                } => Err(ServiceError::Unavailable(format!("not stored: {reason}"))),
                Inserted::Failed { reason, .. } => {
                    Err(StoreError::Task(format!("not stored: {reason}")).into())
                }
            }
        }
        .boxed()
    }
}

/// Stores a message (checking `reply_to`) and publishes it to the thread's members. Shared
/// by user sends and the server API's system messages.
///
/// `member_only` (user sends): the sender must still be a member when the message commits.
pub async fn store_and_publish(
    app: &AppContext,
    row: MessageRow,
    except_session: Option<String>,
    member_only: bool,
) -> Result<Message, ServiceError> {
    commit(app, row, except_session, member_only, None)
        .await?
        .await
}

/// Checks `reply_to`, gathers what a `message.created` webhook needs, and queues the row.
///
/// `verdict`: the sender's rate check, if it has not come back yet (the writer waits for it).
async fn commit(
    app: &AppContext,
    row: MessageRow,
    except_session: Option<String>,
    member_only: bool,
    verdict: Option<Asked>,
) -> Result<Committing, ServiceError> {
    // Postgres stores no NUL in text; one in a batch would fail every message beside it.
    for (field, v) in [
        ("body", Some(&row.body)),
        ("client_id", row.client_id.as_ref()),
        ("thread_id", Some(&row.thread_id)),
        ("reply_to", row.reply_to.as_ref()),
    ] {
        if v.is_some_and(|v| v.contains('\0')) {
            return Err(bad(format!("{field} must not contain NUL characters")));
        }
    }
    if let Some(r) = &row.reply_to {
        Box::pin(check_reply_to(app, &row, r, member_only)).await?;
    }
    let hook = if super::webhooks::wants(app, "message.created") {
        Some(Box::pin(online_members(app, &row.thread_id)).await?)
    } else {
        None
    };
    let item = Pending {
        row,
        hook,
        member_only,
    };
    let queued = Instant::now();
    Ok(Committing::Queued {
        rx: app
            .committer()
            .submit(item, except_session, verdict)
            .await?,
        store: app.store().clone(),
        queued,
    })
}

/// Checks that `reply_to` is a message of the same thread. Who may send there is answered
/// first, so a non-member learns nothing about message ids (and gets the codes a send
/// without `reply_to` would get).
async fn check_reply_to(
    app: &AppContext,
    row: &MessageRow,
    reply_to: &str,
    member_only: bool,
) -> Result<(), ServiceError> {
    if member_only {
        member_of(app, &row.thread_id, &row.sender_id).await?;
    }
    match app.store().message(reply_to).await? {
        Some(m) if m.thread_id == row.thread_id => Ok(()),
        _ => Err(bad("reply_to must be a message in the same thread")),
    }
}

/// For `message.created`: the thread's members online just before the commit (the rest are
/// its `offline_user_ids`, the members to push to).
async fn online_members(app: &AppContext, thread_id: &str) -> Result<Vec<String>, ServiceError> {
    let members = super::members::of(app, thread_id).await?;
    let online = app.relay().online(&members).await;
    Ok(members
        .iter()
        .cloned()
        .zip(online)
        .filter(|(_, on)| *on)
        .map(|(m, _)| m)
        .collect())
}

async fn own_message(
    app: &AppContext,
    caller: &Caller,
    message_id: &str,
) -> Result<MessageRow, ServiceError> {
    let not_found = || ServiceError::NotFound("no such message".into());
    let row = app
        .store()
        .message(message_id)
        .await?
        .ok_or_else(not_found)?;
    // A non-member learns nothing about the message, not even that it exists.
    member_of(app, &row.thread_id, &caller.user_id)
        .await
        .map_err(|_| not_found())?;
    if row.sender_id != caller.user_id {
        return Err(ServiceError::Forbidden(
            "only the sender may change a message".into(),
        ));
    }
    // A payment or dispute the host posted in a user's name stays as the host wrote it.
    if row.kind != "text" {
        return Err(ServiceError::Forbidden(
            "only text messages can be changed by users".into(),
        ));
    }
    if row.deleted {
        return Err(ServiceError::Conflict("the message is deleted".into()));
    }
    Ok(row)
}

/// Edits the caller's own message and tells every member.
pub async fn edit(
    app: &AppContext,
    caller: &Caller,
    message_id: &str,
    body: String,
    metadata: Option<Option<serde_json::Map<String, serde_json::Value>>>,
) -> Result<Message, ServiceError> {
    check_body(app, &body)?;
    let row = own_message(app, caller, message_id).await?;
    rate(app, &caller.user_id).await?;
    let metadata = metadata
        .map(|m| {
            m.map(|o| super::check_json_size("metadata", serde_json::Value::Object(o)))
                .transpose()
        })
        .transpose()?;
    let updated = app
        .store()
        .edit_message(row.id, body, metadata, naive(Ts::now()))
        .await?
        .ok_or_else(|| ServiceError::Conflict("the message is deleted".into()))?;
    let message: Message = updated.into();
    let frame = ServerFrame::MessageUpdated {
        message: message.clone(),
    };
    // Every session of every member, the author's included.
    tell_members(app, &message.thread_id, None, &frame).await;
    Ok(message)
}

/// Deletes the caller's own message (it keeps its id and seq) and tells every member.
pub async fn delete(
    app: &AppContext,
    caller: &Caller,
    message_id: &str,
) -> Result<Message, ServiceError> {
    let row = own_message(app, caller, message_id).await?;
    rate(app, &caller.user_id).await?;
    let deleted = app
        .store()
        .delete_message(row.id, naive(Ts::now()))
        .await?
        .ok_or_else(|| ServiceError::Conflict("the message is deleted".into()))?;
    let message: Message = deleted.into();
    let frame = ServerFrame::MessageDeleted {
        message: message.clone(),
    };
    // Every session of every member, the author's included.
    tell_members(app, &message.thread_id, None, &frame).await;
    Ok(message)
}

/// A page of a thread's history, ascending, and whether more lies beyond it.
pub async fn history(
    app: &AppContext,
    caller: &Caller,
    thread_id: &str,
    q: HistoryQuery,
) -> Result<HistoryPage, ServiceError> {
    let limit = page_limit(q.limit, HISTORY_DEFAULT, HISTORY_MAX)?;
    if q.before_seq.is_some() && q.after_seq.is_some() {
        return Err(bad("give at most one of before_seq and after_seq"));
    }
    member_of(app, thread_id, &caller.user_id).await?;
    let page = app
        .store()
        .history(thread_id, q.before_seq, q.after_seq, limit)
        .await?;
    let mut messages: Vec<Message> = page.rows.into_iter().map(Into::into).collect();
    let mut has_more = page.has_more;
    // Paging forward keeps the oldest; the newest page and paging back keep the newest, so
    // the next page's cursor (the first or last seq) continues where this one stopped.
    let n = if q.after_seq.is_some() {
        fits(app, messages.iter())
    } else {
        fits(app, messages.iter().rev())
    };
    if n < messages.len() {
        has_more = true;
        if q.after_seq.is_some() {
            messages.truncate(n);
        } else {
            messages.drain(..messages.len() - n);
        }
    }
    Ok(HistoryPage { messages, has_more })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::DatabaseUrl;

    /// A sender whose batch never answers (on SQLite's writer thread, a flush the disk
    /// stalls) is told `unavailable` once its write wait is over: it never hangs.
    #[tokio::test]
    async fn a_sender_whose_commit_never_answers_is_told_unavailable_in_its_wait() {
        let dir = std::env::temp_dir().join(format!("sb-wait-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let timeout = Duration::from_millis(300);
        let store = Store::connect(&DatabaseUrl::Sqlite(dir.join("db.sqlite")), timeout)
            .await
            .unwrap();
        // The writer holds the job and never answers it.
        let (_stalled, rx) = oneshot::channel();
        let queued = Instant::now();
        let wait = store.write_wait();
        let committing = Committing::Queued { rx, store, queued };
        let answer = tokio::time::timeout(wait + Duration::from_secs(2), committing)
            .await
            .expect("the sender hung past its write wait");
        match answer {
            Err(ServiceError::Store(e)) => assert!(e.is_unavailable(), "{e}"),
            other => panic!("not unavailable: {:?}", other.map(|m| m.id)),
        }
        assert!(queued.elapsed() >= wait);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A message queued before its rate check came back, then refused by it, is answered
    /// `rate_limited` with the check's wait, not `unavailable` or an error of the store.
    #[tokio::test]
    async fn a_send_its_late_rate_check_refuses_is_rate_limited() {
        let dir = std::env::temp_dir().join(format!("sb-late-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(
            &DatabaseUrl::Sqlite(dir.join("db.sqlite")),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        let (tx, rx) = oneshot::channel();
        tx.send(Err(Limited {
            wait: Duration::from_millis(730),
            resend: None,
        }))
        .unwrap();
        let committing = Committing::Queued {
            rx,
            store,
            queued: Instant::now(),
        };
        match committing.await {
            Err(ServiceError::RateLimited { retry_after_ms }) => assert_eq!(retry_after_ms, 730),
            other => panic!("not rate_limited: {:?}", other.map(|m| m.id)),
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
