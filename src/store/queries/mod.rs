//! Every query, written once and compiled for both backends.
//!
//! diesel's `MultiConnection` does not work with diesel-async, and generic bounds over
//! `AsyncConnection` grow with every query (STACK.md). So each file here is plain diesel code
//! against a connection type named `Conn`, and `backend!` includes it twice: once with
//! `Conn = AsyncPgConnection`, once with `Conn = SyncConnectionWrapper<SqliteConnection>`.
//! The compiler checks every query on both backends, and there is one copy of each to read.

pub mod fixed;

/// A page of rows and whether more lie beyond it.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_more: bool,
}

/// A message waiting for its batch's commit.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The row; its seq is assigned in the commit.
    pub row: super::models::MessageRow,
    /// For a `message.created` webhook: the members online just before.
    pub hook: Option<Vec<String>>,
    /// Refuse the row unless its sender is a member when it commits (user sends).
    pub member_only: bool,
}

/// What inserting a message did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// A new row with its freshly assigned seq, and the thread's members at the commit.
    New(super::models::MessageRow, Vec<String>),
    /// The same sender already sent this `client_id`: the original row.
    Duplicate(super::models::MessageRow),
    /// The sender is not (or no longer) a member of the thread: nothing stored.
    NotMember,
    /// No such thread: nothing stored.
    NoThread,
    /// Not stored: its own transaction failed after others of its batch had committed
    /// (the batch's answer cannot be one error then).
    Failed {
        /// For the log.
        reason: String,
        /// The database was unreachable or timed out (`unavailable`, worth a resend), rather
        /// than refusing the row.
        unavailable: bool,
    },
}

impl Inserted {
    /// `Failed` for a database error, keeping whether the database was unreachable.
    pub fn failed(e: diesel::result::Error) -> Inserted {
        let e = super::StoreError::Query(e);
        Inserted::Failed {
            unavailable: e.is_unavailable(),
            reason: e.to_string(),
        }
    }
}

/// A thread as one user sees it, before conversion to the wire object.
#[derive(Debug)]
pub struct ThreadView {
    pub thread: super::models::ThreadRow,
    pub members: Vec<String>,
    pub last_message: Option<super::models::MessageRow>,
    pub unread: i64,
}

/// Which receipt a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Everything up to the seq is read.
    Read,
    /// Everything up to the seq reached a device.
    Delivered,
}

/// Why a member change was refused inside its transaction (nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The group would pass its member cap.
    Full,
    /// The user making the change is not a member (any more).
    NotMember,
}

/// A user's standing in a thread.
#[derive(Debug)]
pub enum Access {
    /// No such thread.
    NoThread,
    /// The thread exists; the user is not a member.
    NotMember(super::models::ThreadRow),
    /// The user is a member.
    Member(super::models::ThreadRow, super::models::MemberRow),
}

/// What claiming an Idempotency-Key found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: do the work, then record the answer.
    New,
    /// A request with this key is being handled right now.
    InFlight,
    /// The first request's answer; `same_request` when this one has the same method, path
    /// and body.
    Answered {
        status: u16,
        body: String,
        same_request: bool,
    },
}

/// The two steps of a group commit that differ by backend. Postgres gets one statement for
/// many rows (each round trip costs more than the row); diesel-async's SQLite wrapper takes
/// one row per statement, and a statement there is a local call.
mod batch {
    use chrono::NaiveDateTime;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    use super::fixed::{
        AdvanceThread, AdvanceThreads, FindResent, InsertMessage, InsertMessages, LockThreads,
    };
    use crate::store::models::MessageRow;
    use crate::store::schema::messages;

    type Sqlite = crate::store::SqliteConn;

    /// The rows already stored under these `(sender_id, client_id)` pairs: one statement,
    /// one index probe per pair.
    pub async fn resent_pg(
        conn: &mut diesel_async::AsyncPgConnection,
        keys: &[(&str, &str)],
    ) -> QueryResult<Vec<MessageRow>> {
        let senders: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let client_ids: Vec<&str> = keys.iter().map(|k| k.1).collect();
        FindResent {
            senders: &senders,
            client_ids: &client_ids,
        }
        .load(conn)
        .await
    }

    /// As [`resent_pg`]: one statement, a sender's client ids in one `OR` branch each, so
    /// SQLite probes the index once per pair (two `IN` lists would probe every combination).
    pub async fn resent_sqlite(
        conn: &mut Sqlite,
        keys: &[(&str, &str)],
    ) -> QueryResult<Vec<MessageRow>> {
        let mut by_sender: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for &(sender, cid) in keys {
            by_sender.entry(sender).or_default().push(cid);
        }
        let mut query = messages::table
            .select(MessageRow::as_select())
            .into_boxed::<diesel::sqlite::Sqlite>();
        for (sender, cids) in by_sender {
            query = query.or_filter(
                messages::sender_id
                    .eq(sender)
                    .and(messages::client_id.eq_any(cids)),
            );
        }
        query.load(conn).await
    }

    /// Moves each thread's `last_seq` on by its count and stamps `updated_at`, locking the
    /// rows in id order; returns the new `last_seq` of those that exist.
    pub async fn advance_pg(
        conn: &mut diesel_async::AsyncPgConnection,
        threads: &[(&str, i64, NaiveDateTime)],
    ) -> QueryResult<Vec<(String, i64)>> {
        let ids: Vec<&str> = threads.iter().map(|t| t.0).collect();
        let counts: Vec<i64> = threads.iter().map(|t| t.1).collect();
        let at: Vec<NaiveDateTime> = threads.iter().map(|t| t.2).collect();
        // Locked in one order by every writer, so two batches never wait on each other in a
        // cycle; the UPDATE then finds them already held. One row needs no order: its UPDATE
        // takes the lock, a round trip less for a lone message.
        if ids.len() > 1 {
            LockThreads { ids: &ids }.execute(conn).await?;
        }
        AdvanceThreads {
            ids: &ids,
            counts: &counts,
            at: &at,
        }
        .load(conn)
        .await
    }

    /// As [`advance_pg`], a thread at a time (SQLite has one writer: nothing to order).
    pub async fn advance_sqlite(
        conn: &mut Sqlite,
        list: &[(&str, i64, NaiveDateTime)],
    ) -> QueryResult<Vec<(String, i64)>> {
        let mut out = Vec::with_capacity(list.len());
        for &(id, count, at) in list {
            let last: Option<i64> = AdvanceThread { id, count, at }
                .get_result(conn)
                .await
                .optional()?;
            if let Some(last) = last {
                out.push((id.to_string(), last));
            }
        }
        Ok(out)
    }

    /// Stores message rows with one `INSERT` of arrays: the same statement whatever the
    /// batch's size, so it is parsed and planned once per connection.
    pub async fn insert_pg(
        conn: &mut diesel_async::AsyncPgConnection,
        rows: &[MessageRow],
    ) -> QueryResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        InsertMessages::of(rows).execute(conn).await.map(|_| ())
    }

    /// Stores message rows, one per `INSERT`.
    pub async fn insert_sqlite(conn: &mut Sqlite, rows: &[MessageRow]) -> QueryResult<()> {
        for row in rows {
            InsertMessage { row }.execute(conn).await?;
        }
        Ok(())
    }
}

macro_rules! backend {
    ($name:ident, $conn:ty, $resent:path, $advance:path, $insert_rows:path) => {
        /// Queries compiled for one backend.
        pub mod $name {
            /// This backend's connection.
            pub type Conn = $conn;
            /// Threads and members.
            pub mod threads {
                use super::Conn;
                include!("threads.rs");
            }
            /// Messages: insert with seq, edit, delete, history.
            pub mod messages {
                use super::Conn;
                use $advance as advance_threads;
                use $insert_rows as insert_rows;
                use $resent as resent;
                include!("messages.rs");
            }
            /// Read and delivered receipts, unread counts.
            pub mod receipts {
                use super::Conn;
                include!("receipts.rs");
            }
            /// Known users and their last-seen time.
            pub mod users {
                use super::Conn;
                include!("users.rs");
            }
            /// Notifications, preferences and templates.
            pub mod notifications {
                use super::Conn;
                include!("notifications.rs");
            }
            /// The organisations users belong to.
            pub mod orgs {
                use super::Conn;
                include!("orgs.rs");
            }
            /// The webhook outbox.
            pub mod webhooks {
                use super::Conn;
                include!("webhooks.rs");
            }
            /// Answers kept for Idempotency-Key.
            pub mod idempotency {
                use super::Conn;
                include!("idempotency.rs");
            }
        }
    };
}

backend!(
    pg,
    diesel_async::AsyncPgConnection,
    crate::store::queries::batch::resent_pg,
    crate::store::queries::batch::advance_pg,
    crate::store::queries::batch::insert_pg
);
backend!(
    sqlite,
    crate::store::SqliteConn,
    crate::store::queries::batch::resent_sqlite,
    crate::store::queries::batch::advance_sqlite,
    crate::store::queries::batch::insert_sqlite
);
