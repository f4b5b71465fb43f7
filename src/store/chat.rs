//! The store's methods for chat: threads and members, messages, receipts and users. The
//! same seam as `mod.rs`, split by concern (`host.rs` holds the host backend's side).

use std::sync::Arc;

use chrono::NaiveDateTime;

use super::models::{MessageRow, ThreadRow};
use super::{
    Access, Inserted, Page, Pending, Receipt, Refused, Store, StoreError, ThreadView, metrics,
};

impl Store {
    // ---- threads ------------------------------------------------------------------------

    /// A thread and the user's membership in it.
    pub async fn access(&self, thread_id: &str, user_id: &str) -> Result<Access, StoreError> {
        read!(self, |c, q| q::threads::access(c, thread_id, user_id))
    }

    /// One thread by id.
    pub async fn thread(&self, thread_id: &str) -> Result<Option<ThreadRow>, StoreError> {
        read!(self, |c, q| q::threads::get(c, thread_id))
    }

    /// The direct thread with this key, if it exists.
    pub async fn find_direct(&self, direct_key: &str) -> Result<Option<ThreadRow>, StoreError> {
        read!(self, |c, q| q::threads::find_direct(c, direct_key))
    }

    /// A thread's member ids.
    pub async fn member_ids(&self, thread_id: &str) -> Result<Vec<String>, StoreError> {
        read!(self, |c, q| q::threads::member_ids(c, thread_id))
    }

    /// Creates a thread with members, or returns the one holding its unique key.
    pub async fn create_thread(
        &self,
        thread: ThreadRow,
        members: Vec<String>,
        hook: bool,
    ) -> Result<(ThreadRow, bool), StoreError> {
        write!(self, clone(thread, members), |c, q| q::threads::create(
            c, thread, members, hook
        ))
    }

    /// Sets a thread's title.
    pub async fn set_title(
        &self,
        thread_id: String,
        title: Option<String>,
        now: NaiveDateTime,
    ) -> Result<ThreadRow, StoreError> {
        write!(self, clone(title), |c, q| q::threads::set_title(
            c, &thread_id, title, now
        ))
    }

    /// Adds members; returns those who were not members yet. `by`: the user adding, who
    /// must be a member at the commit (`None` for the host).
    pub async fn add_members(
        &self,
        thread_id: String,
        user_ids: Vec<String>,
        now: NaiveDateTime,
        max: usize,
        hook: bool,
        by: Option<String>,
    ) -> Result<Result<Vec<String>, Refused>, StoreError> {
        write!(self, clone(user_ids, by), |c, q| q::threads::add_members(
            c, &thread_id, user_ids, now, max, hook, by
        ))
    }

    /// Removes a member; returns whether they were one. `by`: the user removing, who must
    /// be a member at the commit (`None` for the host).
    pub async fn remove_member(
        &self,
        thread_id: String,
        user_id: String,
        now: NaiveDateTime,
        hook: bool,
        by: Option<String>,
    ) -> Result<Result<bool, Refused>, StoreError> {
        write!(self, clone(by), |c, q| q::threads::remove_member(
            c, &thread_id, &user_id, now, hook, by
        ))
    }

    /// A page of the user's threads with members, last message and unread count.
    pub async fn thread_page(
        &self,
        user_id: &str,
        before: Option<(NaiveDateTime, String)>,
        limit: i64,
    ) -> Result<Vec<ThreadView>, StoreError> {
        let started = std::time::Instant::now();
        let r: Result<_, StoreError> = self
            .bounded(async {
                with_conn!(&self.backend, |c, q| {
                    let rows = q::threads::list_for_user(c, user_id, before, limit).await?;
                    Ok(q::threads::views(c, user_id, rows).await?)
                })
            })
            .await;
        metrics::db_query(started.elapsed());
        r
    }

    /// Views of the given threads for one user.
    pub async fn thread_views(
        &self,
        user_id: &str,
        rows: Vec<ThreadRow>,
    ) -> Result<Vec<ThreadView>, StoreError> {
        read!(self, |c, q| q::threads::views(c, user_id, rows))
    }

    // ---- messages -----------------------------------------------------------------------

    /// Starts storing a batch of messages in one transaction, each with its thread's next
    /// seq in batch order; the task answers each (new, the original of a repeated
    /// client_id, or refused) in the batch's order.
    ///
    /// The caller holds the task: past `DB_TIMEOUT_MS` it stops waiting, but the task still
    /// finishes (each statement is bounded by the database's own timeout), and what it
    /// committed can still be published. An error means nothing of the batch was stored,
    /// or, for a lost connection, that the commit's outcome is unknown.
    pub fn insert_messages(
        &self,
        batch: Arc<[Pending]>,
        commit_by: tokio::time::Instant,
    ) -> tokio::task::JoinHandle<Result<Vec<Inserted>, StoreError>> {
        write_task!(self, commit_by, clone(batch), |c, q| {
            q::messages::insert_batch(c, &batch)
        })
    }

    /// The message `sender_id` stored under `client_id`, if any.
    pub async fn message_by_client_id(
        &self,
        sender_id: &str,
        client_id: &str,
    ) -> Result<Option<MessageRow>, StoreError> {
        read!(self, |c, q| q::messages::by_client_id(
            c, sender_id, client_id
        ))
    }

    /// One message by id.
    pub async fn message(&self, id: &str) -> Result<Option<MessageRow>, StoreError> {
        read!(self, |c, q| q::messages::get(c, id))
    }

    /// Edits a message's body (and metadata when given).
    pub async fn edit_message(
        &self,
        id: String,
        body: String,
        metadata: Option<Option<String>>,
        now: NaiveDateTime,
    ) -> Result<Option<MessageRow>, StoreError> {
        write!(self, clone(body, metadata), |c, q| q::messages::edit(
            c, &id, body, metadata, now
        ))
    }

    /// Marks a message deleted.
    pub async fn delete_message(
        &self,
        id: String,
        now: NaiveDateTime,
    ) -> Result<Option<MessageRow>, StoreError> {
        write!(self, |c, q| q::messages::delete(c, &id, now))
    }

    /// A page of history in ascending seq.
    pub async fn history(
        &self,
        thread_id: &str,
        before_seq: Option<i64>,
        after_seq: Option<i64>,
        limit: i64,
    ) -> Result<Page<MessageRow>, StoreError> {
        read!(self, |c, q| q::messages::history(
            c, thread_id, before_seq, after_seq, limit
        ))
    }

    // ---- receipts -----------------------------------------------------------------------

    /// Moves a member's read or delivered seq forward, at most to the thread's last; returns
    /// the new seq, or `None` when it did not move or the user is not a member.
    pub async fn advance_receipt(
        &self,
        which: Receipt,
        thread_id: String,
        user_id: String,
        seq: i64,
        now: NaiveDateTime,
    ) -> Result<Option<i64>, StoreError> {
        write!(self, |c, q| q::receipts::advance(
            c, which, &thread_id, &user_id, seq, now
        ))
    }

    /// Unread counts per thread for the user (threads with none left out).
    pub async fn unread(&self, user_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        read!(self, |c, q| q::receipts::unread_in(c, user_id, &[]))
    }

    /// Each member's unread count in one thread (members with none left out).
    pub async fn unread_by_member(
        &self,
        thread_id: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        read!(self, |c, q| q::receipts::unread_by_member(c, thread_id))
    }

    // ---- users --------------------------------------------------------------------------

    /// Records a user's name and, when given, last-seen time.
    pub async fn upsert_user(
        &self,
        user_id: String,
        name: Option<String>,
        last_seen: Option<NaiveDateTime>,
        now: NaiveDateTime,
        hook: Option<crate::protocol::Presence>,
    ) -> Result<(), StoreError> {
        write!(self, clone(name, hook), |c, q| q::users::upsert(
            c, &user_id, name, last_seen, now, hook
        ))
    }

    /// Last-seen times of the given users.
    pub async fn last_seen(
        &self,
        user_ids: &[String],
    ) -> Result<Vec<(String, Option<NaiveDateTime>)>, StoreError> {
        read!(self, |c, q| q::users::last_seen(c, user_ids))
    }

    /// Of `candidates`, those who share a thread or an organisation with `viewer`.
    pub async fn in_scope(
        &self,
        viewer: &str,
        candidates: &[String],
    ) -> Result<Vec<String>, StoreError> {
        read!(self, |c, q| q::users::in_scope(c, viewer, candidates))
    }

    /// The other members of the user's direct threads.
    pub async fn direct_partners(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        read!(self, |c, q| q::users::direct_partners(c, user_id))
    }

    /// The thread with this `external_ref`, if any.
    pub async fn thread_by_ref(&self, external_ref: &str) -> Result<Option<ThreadRow>, StoreError> {
        read!(self, |c, q| q::threads::by_ref(c, external_ref))
    }
}
