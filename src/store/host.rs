//! The store's methods for the host backend's side: notifications, templates,
//! organisations, `Idempotency-Key` answers and the webhook outbox. The same seam as
//! `mod.rs`, split by concern.

use chrono::NaiveDateTime;

use super::models::{NotificationRow, OutboxRow, PrefsRow, TemplateRow};
use super::{Claim, Store, StoreError};

impl Store {
    // ---- notifications ------------------------------------------------------------------

    /// Stores notifications, one per recipient, in one transaction.
    pub async fn insert_notifications(
        &self,
        rows: Vec<NotificationRow>,
        online: Option<Vec<bool>>,
    ) -> Result<(), StoreError> {
        write!(self, clone(rows, online), |c, q| q::notifications::insert(
            c, rows, online
        ))
    }

    // ---- webhooks -----------------------------------------------------------------------

    /// Leases due webhook deliveries to `token` until `until`.
    pub async fn lease_webhooks(
        &self,
        token: String,
        now: NaiveDateTime,
        until: NaiveDateTime,
        expired_before: NaiveDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        write!(self, |c, q| q::webhooks::lease(
            c,
            &token,
            now,
            until,
            expired_before,
            limit
        ))
    }

    /// A delivery under lease `token` went through.
    pub async fn webhook_delivered(&self, id: String, token: String) -> Result<(), StoreError> {
        write!(self, |c, q| q::webhooks::delivered(c, &id, &token))
    }

    /// A delivery under lease `token` failed: try again at `next_at`.
    pub async fn webhook_retry_at(
        &self,
        id: String,
        token: String,
        next_at: NaiveDateTime,
    ) -> Result<(), StoreError> {
        write!(self, |c, q| q::webhooks::retry_at(c, &id, &token, next_at))
    }

    /// Deletes webhook deliveries created before `before`; returns how many.
    pub async fn expire_webhooks(&self, before: NaiveDateTime) -> Result<usize, StoreError> {
        write!(self, |c, q| q::webhooks::expire(c, before))
    }

    /// A page of the user's notifications, newest first, older than `before`.
    pub async fn notifications(
        &self,
        user_id: &str,
        before: Option<String>,
        unread_only: bool,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        read!(self, |c, q| q::notifications::list(
            c,
            user_id,
            before,
            unread_only,
            limit
        ))
    }

    /// How many of the user's notifications are unread.
    pub async fn notifications_unread(&self, user_id: &str) -> Result<i64, StoreError> {
        read!(self, |c, q| q::notifications::unread_count(c, user_id))
    }

    /// Marks one read: `None` when it is not the user's; else whether it was unread.
    pub async fn read_notification(
        &self,
        user_id: String,
        id: String,
        now: NaiveDateTime,
    ) -> Result<Option<bool>, StoreError> {
        write!(self, |c, q| q::notifications::mark_read(
            c, &user_id, &id, now
        ))
    }

    /// Marks all the user's notifications read; returns how many changed.
    pub async fn read_all_notifications(
        &self,
        user_id: String,
        now: NaiveDateTime,
    ) -> Result<usize, StoreError> {
        write!(self, |c, q| q::notifications::read_all(c, &user_id, now))
    }

    /// Dismisses one of the user's notifications; returns whether it was theirs.
    pub async fn dismiss_notification(
        &self,
        user_id: String,
        id: String,
    ) -> Result<bool, StoreError> {
        write!(self, |c, q| q::notifications::dismiss(c, &user_id, &id))
    }

    /// Dismisses all the user's notifications; returns how many.
    pub async fn dismiss_all_notifications(&self, user_id: String) -> Result<usize, StoreError> {
        write!(self, |c, q| q::notifications::dismiss_all(c, &user_id))
    }

    /// The preferences of those users that have set any.
    pub async fn prefs(&self, user_ids: &[String]) -> Result<Vec<PrefsRow>, StoreError> {
        read!(self, |c, q| q::notifications::prefs(c, user_ids))
    }

    /// Sets a user's preferences.
    pub async fn put_prefs(&self, row: PrefsRow) -> Result<(), StoreError> {
        write!(self, clone(row), |c, q| q::notifications::put_prefs(c, row))
    }

    /// Creates or replaces a template.
    pub async fn put_template(&self, row: TemplateRow) -> Result<(), StoreError> {
        write!(self, clone(row), |c, q| q::notifications::put_template(
            c, row
        ))
    }

    /// One template by key.
    pub async fn template(&self, key: &str) -> Result<Option<TemplateRow>, StoreError> {
        read!(self, |c, q| q::notifications::template(c, key))
    }

    /// Every template.
    pub async fn templates(&self) -> Result<Vec<TemplateRow>, StoreError> {
        read!(self, |c, q| q::notifications::templates(c))
    }

    /// Deletes a template; returns whether it existed.
    pub async fn delete_template(&self, key: String) -> Result<bool, StoreError> {
        write!(self, |c, q| q::notifications::delete_template(c, &key))
    }

    // ---- organisations ------------------------------------------------------------------

    /// Replaces the organisations a user belongs to.
    pub async fn set_orgs(&self, user_id: String, orgs: Vec<String>) -> Result<(), StoreError> {
        write!(self, clone(orgs), |c, q| q::orgs::set(c, &user_id, orgs))
    }

    /// The organisations a user is known to belong to, sorted.
    pub async fn orgs_of(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        read!(self, |c, q| q::orgs::of_user(c, user_id))
    }

    /// Users known to belong to `org`, at most `limit`.
    pub async fn org_members(&self, org: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        read!(self, |c, q| q::orgs::members(c, org, limit))
    }

    // ---- idempotency --------------------------------------------------------------------

    /// Claims an Idempotency-Key for a request (see [`Claim`]).
    pub async fn claim_key(
        &self,
        key: String,
        fingerprint: String,
        now: NaiveDateTime,
        expired_before: NaiveDateTime,
        stale_before: NaiveDateTime,
    ) -> Result<Claim, StoreError> {
        write!(self, |c, q| q::idempotency::claim(
            c,
            &key,
            &fingerprint,
            now,
            expired_before,
            stale_before
        ))
    }

    /// Records the answer to a claimed key.
    pub async fn answer_key(
        &self,
        key: String,
        status: u16,
        body: String,
    ) -> Result<(), StoreError> {
        write!(self, clone(body), |c, q| q::idempotency::answer(
            c, &key, status, body
        ))
    }

    /// Gives up a claimed key.
    pub async fn release_key(&self, key: String) -> Result<(), StoreError> {
        write!(self, |c, q| q::idempotency::release(c, &key))
    }

    /// Deletes claims older than `before`.
    pub async fn sweep_keys(&self, before: NaiveDateTime) -> Result<usize, StoreError> {
        write!(self, |c, q| q::idempotency::sweep(c, before))
    }
}
