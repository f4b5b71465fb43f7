//! Threads and their members: create (direct threads converge on one per pair), list, read,
//! retitle, add and remove members, and the `thread` events that tell members about it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{
    Caller, ServiceError, bad, check_user_id, fits, member_of, page_limit, rate, send, webhooks,
};
use crate::context::AppContext;
use crate::envelope::{Audience, Envelope, Lane, PER_USER_SLOT};
use crate::protocol::{ServerFrame, Thread, ThreadEvent, ThreadPage, ThreadsQuery, Ts};
use crate::store::models::{ThreadRow, naive};
use crate::store::{Refused, ThreadView};

/// Default thread page.
const THREADS_DEFAULT: i64 = 50;
/// Largest thread page.
const THREADS_MAX: i64 = 200;
/// Longest title, in chars.
pub const MAX_TITLE_CHARS: usize = 200;

/// The key that makes a pair's direct thread unique: the two ids, sorted, as a JSON array
/// (unambiguous whatever characters the ids hold).
pub(super) fn direct_key(a: &str, b: &str) -> String {
    let mut pair = [a, b];
    pair.sort_unstable();
    serde_json::to_string(&pair).unwrap_or_default()
}

pub(super) fn new_thread(kind: &str, title: Option<String>, creator: &str) -> ThreadRow {
    let now = naive(Ts::now());
    ThreadRow {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.into(),
        title,
        external_ref: None,
        direct_key: None,
        last_seq: 0,
        created_by: Some(creator.into()),
        created_at: now,
        updated_at: now,
    }
}

/// The direct thread between the caller and `other`, created (with a `thread` event) if it
/// does not exist. Racing callers get the same thread.
pub async fn direct_with(
    app: &AppContext,
    caller: &Caller,
    other: &str,
) -> Result<ThreadRow, ServiceError> {
    check_user_id(other)?;
    if other == caller.user_id {
        return Err(bad("a direct thread needs another user"));
    }
    let key = direct_key(&caller.user_id, other);
    if let Some(t) = app.store().find_direct(&key).await? {
        return Ok(t);
    }
    let mut row = new_thread("direct", None, &caller.user_id);
    row.direct_key = Some(key);
    let (thread, created) = app
        .store()
        .create_thread(
            row,
            vec![caller.user_id.clone(), other.to_string()],
            webhooks::wants(app, "thread.created"),
        )
        .await?;
    if created {
        log::info!("direct thread {} created by {}", thread.id, caller.user_id);
        announce(app, &thread.id, ThreadEvent::Created, &[]).await;
    }
    Ok(thread)
}

/// The id of the direct thread between the caller and `other`, as [`direct_with`], from
/// memory when this node has seen the pair before (a pair's direct thread never changes).
pub async fn direct_id(
    app: &AppContext,
    caller: &Caller,
    other: &str,
) -> Result<String, ServiceError> {
    let key = direct_key(&caller.user_id, other);
    if let Some(id) = app.directs().get(&key) {
        return Ok(id);
    }
    // Boxed: the first send to a partner only, and inline it would enlarge every send.
    let id = Box::pin(direct_with(app, caller, other)).await?.id;
    app.directs().put(key, id.clone());
    Ok(id)
}

/// `POST /threads`: a direct thread (the existing one if any) or a new group.
pub async fn create(
    app: &AppContext,
    caller: &Caller,
    kind: &str,
    title: Option<String>,
    members: Vec<String>,
) -> Result<(Thread, bool), ServiceError> {
    for m in &members {
        check_user_id(m)?;
    }
    rate(app, &caller.user_id).await?;
    let others: Vec<String> = dedup(members.into_iter().filter(|m| *m != caller.user_id));
    let (thread, created, known) = match kind {
        "direct" => {
            if title.is_some() {
                return Err(bad("direct threads have no title"));
            }
            let [other] = others.as_slice() else {
                return Err(bad("a direct thread has exactly one other member"));
            };
            let key = direct_key(&caller.user_id, other);
            let existed = app.store().find_direct(&key).await?.is_some();
            let pair = vec![caller.user_id.clone(), other.clone()];
            (direct_with(app, caller, other).await?, !existed, pair)
        }
        "group" => {
            check_title(title.as_deref())?;
            let max = app.config().max_group_members;
            if others.len() + 1 > max {
                return Err(ServiceError::TooLarge(format!(
                    "a group has at most {max} members"
                )));
            }
            let mut all = vec![caller.user_id.clone()];
            all.extend(others);
            let (t, _) = app
                .store()
                .create_thread(
                    new_thread("group", title, &caller.user_id),
                    all.clone(),
                    webhooks::wants(app, "thread.created"),
                )
                .await?;
            log::info!("group thread {} created by {}", t.id, caller.user_id);
            announce(app, &t.id, ThreadEvent::Created, &[]).await;
            (t, true, all)
        }
        _ => return Err(bad("kind must be \"direct\" or \"group\"")),
    };
    let reply = committed_view(app, thread, &caller.user_id, known).await;
    Ok((reply, created))
}

/// The reply to a write that has committed: the thread as the store now shows it to `user`.
/// If reading it back fails, the write still stands and the caller is not told it failed (a
/// retried create would make a second thread): the reply is the committed row, with its
/// members read alone (or, if that fails too, the members the write knows of, `known`), no
/// last message and unread 0, and the failure is logged.
pub(super) async fn committed_view(
    app: &AppContext,
    row: ThreadRow,
    user: &str,
    known: Vec<String>,
) -> Thread {
    match app.store().thread_views(user, vec![row.clone()]).await {
        Ok(mut views) if !views.is_empty() => Thread::from(views.remove(0)),
        outcome => {
            let why = outcome
                .err()
                .map_or("no row".to_string(), |e| e.to_string());
            log::warn!(
                "thread {}: committed, but reading it back failed: {why}",
                row.id
            );
            // The members alone are a simpler read, and may still answer.
            let members = app.store().member_ids(&row.id).await.unwrap_or(known);
            Thread::from(ThreadView {
                thread: row,
                members,
                last_message: None,
                unread: 0,
            })
        }
    }
}

/// The thread's row read again after a write that returned none (its `updated_at` moved);
/// the row from before the write if that read fails, which is logged.
pub(super) async fn reread(app: &AppContext, before: ThreadRow) -> ThreadRow {
    match app.store().thread(&before.id).await {
        Ok(Some(row)) => row,
        Ok(None) => before,
        Err(e) => {
            log::warn!(
                "thread {}: committed, but reading it back failed: {e}",
                before.id
            );
            before
        }
    }
}

pub(super) fn check_title(title: Option<&str>) -> Result<(), ServiceError> {
    if title.is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS) {
        return Err(ServiceError::TooLarge(format!(
            "title is longer than {MAX_TITLE_CHARS} chars"
        )));
    }
    Ok(())
}

pub(super) fn dedup(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|i| seen.insert(i.clone())).collect()
}

pub(super) async fn view(
    app: &AppContext,
    row: ThreadRow,
    user: &str,
) -> Result<Thread, ServiceError> {
    let mut views = app.store().thread_views(user, vec![row]).await?;
    views
        .pop()
        .map(Thread::from)
        .ok_or_else(|| ServiceError::NotFound("no such thread".into()))
}

/// One thread as the caller sees it.
pub async fn get(
    app: &AppContext,
    caller: &Caller,
    thread_id: &str,
) -> Result<Thread, ServiceError> {
    let (t, _) = member_of(app, thread_id, &caller.user_id).await?;
    view(app, t, &caller.user_id).await
}

fn cursor(t: &Thread) -> String {
    format!("{}:{}", t.updated_at.0.timestamp_micros(), t.id)
}

fn parse_cursor(c: &str) -> Result<(chrono::NaiveDateTime, String), ServiceError> {
    let (micros, id) = c.split_once(':').ok_or_else(|| bad("malformed cursor"))?;
    let micros: i64 = micros.parse().map_err(|_| bad("malformed cursor"))?;
    let at =
        DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| bad("malformed cursor"))?;
    Ok((at.naive_utc(), id.to_string()))
}

/// A page of the caller's threads, most recent activity first, and the cursor of the next.
pub async fn list(
    app: &AppContext,
    caller: &Caller,
    q: ThreadsQuery,
) -> Result<ThreadPage, ServiceError> {
    let limit = page_limit(q.limit, THREADS_DEFAULT, THREADS_MAX)?;
    let before = q.before.as_deref().map(parse_cursor).transpose()?;
    let views = app
        .store()
        .thread_page(&caller.user_id, before, limit + 1)
        .await?;
    let mut threads: Vec<Thread> = views.into_iter().map(Thread::from).collect();
    let mut more = threads.len() as i64 > limit;
    threads.truncate(usize::try_from(limit).unwrap_or(0));
    let n = fits(app, threads.iter());
    if n < threads.len() {
        more = true;
        threads.truncate(n);
    }
    let next = if more {
        threads.last().map(cursor)
    } else {
        None
    };
    Ok(ThreadPage { threads, next })
}

/// Changes a thread's title.
pub async fn set_title(
    app: &AppContext,
    caller: &Caller,
    thread_id: &str,
    title: Option<String>,
) -> Result<Thread, ServiceError> {
    let (t, _) = member_of(app, thread_id, &caller.user_id).await?;
    if t.kind == "direct" {
        return Err(bad("direct threads have no title"));
    }
    check_title(title.as_deref())?;
    rate(app, &caller.user_id).await?;
    let row = app
        .store()
        .set_title(t.id.clone(), title, naive(Ts::now()))
        .await?;
    announce(app, &t.id, ThreadEvent::Updated, &[]).await;
    let known = vec![caller.user_id.clone()];
    Ok(committed_view(app, row, &caller.user_id, known).await)
}

/// Adds members to a group (any member may); returns the thread.
pub async fn add_members(
    app: &AppContext,
    caller: &Caller,
    thread_id: &str,
    user_ids: Vec<String>,
) -> Result<Thread, ServiceError> {
    let (t, _) = member_of(app, thread_id, &caller.user_id).await?;
    rate(app, &caller.user_id).await?;
    let mut known = add_to(app, &t, user_ids, Some(&caller.user_id)).await?;
    known.insert(0, caller.user_id.clone());
    let row = reread(app, t).await;
    Ok(committed_view(app, row, &caller.user_id, known).await)
}

/// Adds members to the group `t` on behalf of `by` (a user, who must still be a member
/// when it commits; `None`: the host), and tells them; returns the ids it was asked to add,
/// each once.
pub(super) async fn add_to(
    app: &AppContext,
    t: &ThreadRow,
    user_ids: Vec<String>,
    by: Option<&str>,
) -> Result<Vec<String>, ServiceError> {
    if t.kind != "group" {
        return Err(bad("members can only be added to group threads"));
    }
    if user_ids.is_empty() {
        return Err(bad("user_ids is empty"));
    }
    for u in &user_ids {
        check_user_id(u)?;
    }
    // Checked inside the insert's transaction, under the thread's lock.
    let max = app.config().max_group_members;
    let named = dedup(user_ids.into_iter());
    let store = app.store().clone();
    let (id, ids, hook, by_user) = (
        t.id.clone(),
        named.clone(),
        webhooks::wants(app, "thread.member_added"),
        by.map(str::to_string),
    );
    let write = async move {
        store
            .add_members(id, ids, naive(Ts::now()), max, hook, by_user)
            .await
    };
    let added = super::members::write(app, &t.id, write, |r: &Result<Vec<String>, Refused>| {
        r.as_ref().is_ok_and(|a| !a.is_empty())
    })
    .await?
    .map_err(|r| refused(r, max))?;
    if !added.is_empty() {
        let by = by.unwrap_or(super::host::HOST);
        log::info!("{by} added {} member(s) to {}", added.len(), t.id);
        announce(app, &t.id, ThreadEvent::MemberAdded, &[]).await;
    }
    Ok(named)
}

/// Removes a member from a group, or the caller leaves. Anyone may leave; removing someone
/// else takes the thread's creator.
pub async fn remove_member(
    app: &AppContext,
    caller: &Caller,
    thread_id: &str,
    user_id: &str,
) -> Result<(), ServiceError> {
    let (t, _) = member_of(app, thread_id, &caller.user_id).await?;
    if user_id != caller.user_id && t.created_by.as_deref() != Some(caller.user_id.as_str()) {
        return Err(ServiceError::Forbidden(
            "only the thread's creator may remove others".into(),
        ));
    }
    rate(app, &caller.user_id).await?;
    remove_from(app, &t, user_id, Some(&caller.user_id)).await
}

/// Why a member change was refused, as the caller's error.
fn refused(r: Refused, max: usize) -> ServiceError {
    match r {
        Refused::Full => ServiceError::TooLarge(format!("a group has at most {max} members")),
        Refused::NotMember => ServiceError::Forbidden("not a member of this thread".into()),
    }
}

/// Removes `user_id` from the group `t` on behalf of `by` (a user, who must still be a
/// member when it commits; `None`: the host), and tells the members, then them.
pub(super) async fn remove_from(
    app: &AppContext,
    t: &ThreadRow,
    user_id: &str,
    by: Option<&str>,
) -> Result<(), ServiceError> {
    if t.kind != "group" {
        return Err(bad("members can only be removed from group threads"));
    }
    let store = app.store().clone();
    let (id, user, hook, by_user) = (
        t.id.clone(),
        user_id.to_string(),
        webhooks::wants(app, "thread.member_removed"),
        by.map(str::to_string),
    );
    let write = async move {
        store
            .remove_member(id, user, naive(Ts::now()), hook, by_user)
            .await
    };
    let removed = super::members::write(app, &t.id, write, |r: &Result<bool, Refused>| {
        matches!(r, Ok(true))
    })
    .await?
    .map_err(|r| refused(r, app.config().max_group_members))?;
    if !removed {
        return Err(ServiceError::NotFound("not a member of this thread".into()));
    }
    let by = by.unwrap_or(super::host::HOST);
    log::info!("{by} removed {user_id} from {}", t.id);
    // The removed user is told last, after the members who stay.
    announce(
        app,
        &t.id,
        ThreadEvent::MemberRemoved,
        &[user_id.to_string()],
    )
    .await;
    super::presence::narrow(app, user_id, &t.id).await;
    Ok(())
}

/// Publishes a `thread` event to every member (each with their own unread count), then to
/// `also` (users who are no longer members). The change has committed: a failure here is
/// logged, never the caller's. If the full event cannot be read (the last message or the
/// unread counts), the event still goes out from the thread's row and members alone, with no
/// last message and unread 0 (members correct both with `threads`).
pub async fn announce(app: &AppContext, thread_id: &str, event: ThreadEvent, also: &[String]) {
    let Err(e) = try_announce(app, thread_id, event, also, true).await else {
        return;
    };
    log::warn!(
        "thread {thread_id}: {event:?} committed; reading it for the event failed ({e}), sent without the last message and unread counts"
    );
    if let Err(e) = try_announce(app, thread_id, event, also, false).await {
        log::warn!("thread {thread_id}: {event:?} committed but not announced: {e}");
    }
}

/// Reads the thread and publishes its event; `full` adds the last message and each member's
/// unread count, the reads left out when they have failed once.
async fn try_announce(
    app: &AppContext,
    thread_id: &str,
    event: ThreadEvent,
    also: &[String],
    full: bool,
) -> Result<(), ServiceError> {
    let Some(row) = app.store().thread(thread_id).await? else {
        return Ok(());
    };
    let (thread, unread): (Thread, HashMap<String, i64>) = if full {
        let unread = app.store().unread_by_member(thread_id).await?;
        (view(app, row, "").await?, unread.into_iter().collect())
    } else {
        let members = app.store().member_ids(thread_id).await?;
        let bare = ThreadView {
            thread: row,
            members,
            last_message: None,
            unread: 0,
        };
        (Thread::from(bare), HashMap::new())
    };
    // One frame for everyone, serialised once, with a slot each recipient's unread count
    // fills at delivery: the cost stays linear in the members however large the group.
    let thread = Thread {
        unread: Some(PER_USER_SLOT),
        ..thread
    };
    publish_thread(app, event, thread, unread, also).await;
    Ok(())
}

/// Sends `thread` as a `thread` event to its members, each with their count from `unread`
/// (0 when absent), then to `also`.
async fn publish_thread(
    app: &AppContext,
    event: ThreadEvent,
    thread: Thread,
    unread: HashMap<String, i64>,
    also: &[String],
) {
    let members = thread.members.clone();
    let frame = ServerFrame::Thread { event, thread };
    let node = &app.config().node_id;
    let to_members = Audience::users(members);
    send(
        app,
        Envelope::per_user(node, to_members, Lane::Durable, &frame, unread),
    )
    .await;
    if !also.is_empty() {
        // Told last, after the members who stay; no longer members, nothing is unread.
        let to_others = Audience::users(also.to_vec());
        let env = Envelope::per_user(node, to_others, Lane::Durable, &frame, HashMap::new());
        send(app, env).await;
    }
}
