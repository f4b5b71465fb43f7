//! Every query, written once and compiled for both backends.
//!
//! diesel's `MultiConnection` does not work with diesel-async, and generic bounds over
//! `AsyncConnection` grow with every query (STACK.md). So each file here is plain diesel code
//! against a connection type named `Conn`, and `backend!` includes it twice: once with
//! `Conn = AsyncPgConnection`, once with `Conn = SyncConnectionWrapper<SqliteConnection>`.
//! The compiler checks every query on both backends, and there is one copy of each to read.

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
    use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamp};
    use diesel_async::RunQueryDsl;

    use crate::store::models::MessageRow;
    use crate::store::schema::{messages, threads};

    type Sqlite =
        diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

    /// A thread's new `last_seq`.
    #[derive(QueryableByName)]
    struct Advanced {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = BigInt)]
        last_seq: i64,
    }

    /// Moves each thread's `last_seq` on by its count and stamps `updated_at`, locking the
    /// rows in id order; returns the new `last_seq` of those that exist.
    pub async fn advance_pg(
        conn: &mut diesel_async::AsyncPgConnection,
        threads: &[(&str, i64, NaiveDateTime)],
    ) -> QueryResult<Vec<(String, i64)>> {
        let ids: Vec<&str> = threads.iter().map(|t| t.0).collect();
        let ns: Vec<i64> = threads.iter().map(|t| t.1).collect();
        let ats: Vec<NaiveDateTime> = threads.iter().map(|t| t.2).collect();
        // Locked in one order by every writer, so two batches never wait on each other in a
        // cycle; the UPDATE then finds them already held.
        diesel::sql_query("SELECT id FROM threads WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind::<Array<Text>, _>(&ids)
            .execute(conn)
            .await?;
        let rows: Vec<Advanced> = diesel::sql_query(
            "UPDATE threads SET last_seq = threads.last_seq + v.n, updated_at = v.at \
             FROM unnest($1::text[], $2::bigint[], $3::timestamp[]) AS v(id, n, at) \
             WHERE threads.id = v.id RETURNING threads.id, threads.last_seq",
        )
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<BigInt>, _>(&ns)
        .bind::<Array<Timestamp>, _>(&ats)
        .load(conn)
        .await?;
        Ok(rows.into_iter().map(|r| (r.id, r.last_seq)).collect())
    }

    /// As [`advance_pg`], a thread at a time (SQLite has one writer: nothing to order).
    pub async fn advance_sqlite(
        conn: &mut Sqlite,
        list: &[(&str, i64, NaiveDateTime)],
    ) -> QueryResult<Vec<(String, i64)>> {
        let mut out = Vec::with_capacity(list.len());
        for &(id, n, at) in list {
            let last: Option<i64> = diesel::update(threads::table.find(id))
                .set((
                    threads::last_seq.eq(threads::last_seq + n),
                    threads::updated_at.eq(at),
                ))
                .returning(threads::last_seq)
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
        let col = |f: fn(&MessageRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let opt = |f: fn(&MessageRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
        diesel::sql_query(
            "INSERT INTO messages (id, thread_id, seq, sender_id, kind, body, metadata, \
             reply_to, client_id, created_at, edited_at, deleted) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamp[], \
             $11::timestamp[], $12::boolean[])",
        )
        .bind::<Array<Text>, _>(col(|r| &r.id))
        .bind::<Array<Text>, _>(col(|r| &r.thread_id))
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(col(|r| &r.sender_id))
        .bind::<Array<Text>, _>(col(|r| &r.kind))
        .bind::<Array<Text>, _>(col(|r| &r.body))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.metadata.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.reply_to.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.client_id.as_deref()))
        .bind::<Array<Timestamp>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamp>>, _>(rows.iter().map(|r| r.edited_at).collect::<Vec<_>>())
        .bind::<Array<Bool>, _>(rows.iter().map(|r| r.deleted).collect::<Vec<_>>())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Stores message rows, one per `INSERT`.
    pub async fn insert_sqlite(conn: &mut Sqlite, rows: &[MessageRow]) -> QueryResult<()> {
        for row in rows {
            diesel::insert_into(messages::table)
                .values(row)
                .execute(conn)
                .await?;
        }
        Ok(())
    }
}

macro_rules! backend {
    ($name:ident, $conn:ty, $advance:path, $insert_rows:path) => {
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
    crate::store::queries::batch::advance_pg,
    crate::store::queries::batch::insert_pg
);
backend!(
    sqlite,
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>,
    crate::store::queries::batch::advance_sqlite,
    crate::store::queries::batch::insert_sqlite
);
