//! Who is in a thread, for addressing receipts and typing: from this node's cache (`roster`)
//! when it holds them, otherwise read and cached. And where a committed membership change
//! reaches every node's cache. A send does not come here (it reads its members in its own
//! transaction), nor do edits and deletes, whose bodies must never reach a member who has
//! left, however late a forget is.

use crate::context::AppContext;
use crate::metrics;
use crate::roster::Members;
use crate::store::StoreError;

/// The members of `thread_id` if the cache holds them (counted as a hit).
pub fn cached(app: &AppContext, thread_id: &str) -> Option<Members> {
    let m = app.roster().get(thread_id);
    if m.is_some() {
        metrics::members_lookup(true);
    }
    m
}

/// The members of `thread_id`, cached or read (empty for no such thread, and not cached).
pub async fn of(app: &AppContext, thread_id: &str) -> Result<Members, StoreError> {
    if let Some(m) = cached(app, thread_id) {
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

/// A membership change has committed, or may have (a write whose outcome is unknown): this
/// node forgets the thread at once, the others through the relay.
pub async fn changed(app: &AppContext, thread_id: &str) {
    app.roster().forget(thread_id);
    app.relay().members_changed(thread_id).await;
}
