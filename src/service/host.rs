//! What the host backend does to threads and messages through the server API: create a
//! thread (idempotent on `external_ref`), look one up, change its members, and post messages
//! of any kind (payments, disputes, job updates) with or without a sender.

use super::messages::{self, check_body, check_client_id};
use super::threads::{
    add_to, announce, check_title, committed_view, dedup, direct_key, new_thread, remove_from,
    reread, view,
};
use super::{ServiceError, bad, check_json_size, check_user_id};
use crate::context::AppContext;
use crate::protocol::rest::{HostMessage, HostThread};
use crate::protocol::{Message, Thread, ThreadEvent};
use crate::store::models::{NewMessage, ThreadRow};

/// Who acts, in logs.
pub(super) const HOST: &str = "the server API";
/// The sender of a message the host posts without one.
pub const SYSTEM_SENDER: &str = "system";
/// Longest `external_ref`, in chars.
pub const MAX_REF_CHARS: usize = 256;

/// A thread as the host sees it: as a member would, without anyone's unread count.
async fn host_view(app: &AppContext, row: ThreadRow) -> Result<Thread, ServiceError> {
    let mut t = view(app, row, "").await?;
    t.unread = None;
    Ok(t)
}

/// [`committed_view`] for the host: a write that committed is never reported as failed.
async fn host_committed(app: &AppContext, row: ThreadRow, known: Vec<String>) -> Thread {
    let mut t = committed_view(app, row, "", known).await;
    t.unread = None;
    t
}

async fn thread(app: &AppContext, id: &str) -> Result<ThreadRow, ServiceError> {
    app.store()
        .thread(id)
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such thread".into()))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v
}

/// The existing thread for a repeated `external_ref`: the same thread if it has the same
/// members, `conflict` if not.
async fn same_thread(
    app: &AppContext,
    existing: ThreadRow,
    members: &[String],
) -> Result<Thread, ServiceError> {
    let have = app.store().member_ids(&existing.id).await?;
    if sorted(have) != sorted(members.to_vec()) {
        return Err(ServiceError::Conflict(format!(
            "external_ref {:?} belongs to a thread with other members",
            existing.external_ref.as_deref().unwrap_or_default()
        )));
    }
    host_view(app, existing).await
}

/// Creates a thread for `members`; with an `external_ref` already used, returns that thread
/// (same members) or `conflict` (other members). `true` when it was created now.
pub async fn create_thread(
    app: &AppContext,
    req: HostThread,
) -> Result<(Thread, bool), ServiceError> {
    for m in &req.members {
        check_user_id(m)?;
    }
    let members = dedup(req.members.into_iter());
    if members.is_empty() {
        return Err(bad("members is empty"));
    }
    if let Some(r) = &req.external_ref {
        if r.is_empty() || r.chars().count() > MAX_REF_CHARS {
            return Err(bad(format!(
                "external_ref must be 1 to {MAX_REF_CHARS} chars"
            )));
        }
        if let Some(existing) = app.store().thread_by_ref(r).await? {
            return Ok((same_thread(app, existing, &members).await?, false));
        }
    }
    let kind = req.kind.as_deref().unwrap_or("group");
    let mut row = match kind {
        "group" => {
            check_title(req.title.as_deref())?;
            let max = app.config().max_group_members;
            if members.len() > max {
                return Err(ServiceError::TooLarge(format!(
                    "a group has at most {max} members"
                )));
            }
            new_thread("group", req.title, HOST)
        }
        "direct" => {
            if req.title.is_some() {
                return Err(bad("direct threads have no title"));
            }
            // A pair has one direct thread, which may exist already: it cannot take a ref.
            if req.external_ref.is_some() {
                return Err(bad("direct threads take no external_ref; use a group"));
            }
            let [a, b] = members.as_slice() else {
                return Err(bad("a direct thread has exactly two members"));
            };
            let mut row = new_thread("direct", None, HOST);
            row.direct_key = Some(direct_key(a, b));
            row
        }
        _ => return Err(bad("kind must be \"direct\" or \"group\"")),
    };
    // The host created it, not one of the members: no member may remove the others.
    row.created_by = None;
    row.external_ref = req.external_ref;
    let hook = super::webhooks::wants(app, "thread.created");
    let (t, created) = app
        .store()
        .create_thread(row, members.clone(), hook)
        .await?;
    if !created {
        // A racing request with the same ref, or the pair's existing direct thread.
        return Ok((same_thread(app, t, &members).await?, false));
    }
    log::info!("{} thread {} created by {HOST}", t.kind, t.id);
    announce(app, &t.id, ThreadEvent::Created, &[]).await;
    Ok((host_committed(app, t, members).await, true))
}

/// One thread by id.
pub async fn get(app: &AppContext, id: &str) -> Result<Thread, ServiceError> {
    let t = thread(app, id).await?;
    host_view(app, t).await
}

/// One thread by its `external_ref`.
pub async fn get_by_ref(app: &AppContext, external_ref: &str) -> Result<Thread, ServiceError> {
    let t = app
        .store()
        .thread_by_ref(external_ref)
        .await?
        .ok_or_else(|| ServiceError::NotFound("no thread with that external_ref".into()))?;
    host_view(app, t).await
}

/// Adds members to a group.
pub async fn add_members(
    app: &AppContext,
    id: &str,
    user_ids: Vec<String>,
) -> Result<Thread, ServiceError> {
    let t = thread(app, id).await?;
    let known = add_to(app, &t, user_ids, None).await?;
    let row = reread(app, t).await;
    Ok(host_committed(app, row, known).await)
}

/// Removes a member from a group.
pub async fn remove_member(app: &AppContext, id: &str, user_id: &str) -> Result<(), ServiceError> {
    let t = thread(app, id).await?;
    remove_from(app, &t, user_id, None).await
}

/// Longest message `kind` from the host, in bytes.
pub const MAX_KIND_BYTES: usize = 64;

/// A `kind` from the host: 1 to 64 of `a-z`, `0-9`, `_`, `.`, `-`.
fn check_kind(kind: &str) -> Result<(), ServiceError> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND_BYTES
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(bad("kind must be 1 to 64 of a-z, 0-9, '_', '.', '-'"));
    }
    Ok(())
}

/// Posts a message of any kind into a thread, as `sender_id` or as `system`, and broadcasts
/// it like any other. A repeated `client_id` (same sender) returns the original.
///
/// `idempotency_key`, when the request carried one and no `client_id`, stands in for the
/// `client_id`: a retry of a post that committed but whose answer was lost finds the message
/// instead of posting it again.
pub async fn post_message(
    app: &AppContext,
    thread_id: &str,
    mut req: HostMessage,
    idempotency_key: Option<&str>,
) -> Result<Message, ServiceError> {
    if req.client_id.is_none() {
        req.client_id = idempotency_key.map(|k| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, k.as_bytes());
            let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            format!("idem:{hex}")
        });
    }
    let kind = req.kind.unwrap_or_else(|| "system".into());
    check_kind(&kind)?;
    check_body(app, &req.body)?;
    let sender = req.sender_id.unwrap_or_else(|| SYSTEM_SENDER.into());
    check_user_id(&sender)?;
    if let Some(cid) = &req.client_id {
        check_client_id(cid)?;
        if let Some(original) = app.store().message_by_client_id(&sender, cid).await? {
            // The key is the sender's across threads: the same one for another thread is a
            // mistake, not a retry.
            if original.thread_id != thread_id {
                return Err(ServiceError::Conflict(
                    "client_id was already used by this sender in another thread".into(),
                ));
            }
            return Ok(original.into());
        }
    }
    let metadata = req
        .metadata
        .map(|m| check_json_size("metadata", serde_json::Value::Object(m)))
        .transpose()?;
    let t = thread(app, thread_id).await?;
    let row = NewMessage {
        thread_id: t.id,
        sender_id: sender,
        kind,
        body: req.body,
        metadata,
        reply_to: req.reply_to,
        client_id: req.client_id,
    };
    messages::store_and_publish(app, row.into(), None, false).await
}
