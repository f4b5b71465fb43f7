//! Who is in a thread, for addressing receipts and typing: from this node's cache (`roster`)
//! when it holds them, otherwise read and cached. And where a committed membership change
//! reaches every node's cache. A send does not come here (it reads its members in its own
//! transaction), nor do edits and deletes, whose bodies must never reach a member who has
//! left, however late a forget is.

use crate::context::AppContext;
use crate::metrics;
use crate::roster::Members;
use crate::store::StoreError;

/// The members of `thread_id` if the cache holds them (not counted: a check, not a lookup
/// for addressing).
pub fn cached(app: &AppContext, thread_id: &str) -> Option<Members> {
    app.roster().get(thread_id)
}

/// The members of `thread_id`, cached or read (empty for no such thread, and not cached).
pub async fn of(app: &AppContext, thread_id: &str) -> Result<Members, StoreError> {
    if let Some(m) = cached(app, thread_id) {
        metrics::members_lookup(true);
        return Ok(m);
    }
    metrics::members_lookup(false);
    let ticket = app.roster().ticket(thread_id);
    let members: Members = app.store().member_ids(thread_id).await?.into();
    if !members.is_empty() {
        app.roster().put(ticket, thread_id, members.clone());
    }
    Ok(members)
}

/// Runs a membership write to its end even if its caller goes away (a request dropped with
/// its connection: the store's task commits regardless), and then, when `changed_if` says
/// the result changed the membership or the write failed (it may have committed anyway),
/// forgets the thread on every node before the caller hears back.
pub async fn write<T, W>(
    app: &AppContext,
    thread_id: &str,
    write: W,
    changed_if: fn(&T) -> bool,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    W: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let (app, thread_id) = (app.clone(), thread_id.to_string());
    let task = tokio::spawn(async move {
        let r = write.await;
        if r.as_ref().map_or(true, changed_if) {
            changed(&app, &thread_id).await;
        }
        r
    });
    task.await
        .map_err(|e| StoreError::Task(format!("membership write: {e}")))?
}

/// A membership change has committed, or may have: this node forgets the thread at once, the
/// others through the relay.
async fn changed(app: &AppContext, thread_id: &str) {
    app.roster().forget(thread_id);
    app.relay().members_changed(thread_id).await;
}
