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
#[derive(Debug)]
pub enum Inserted {
    /// A new row with its freshly assigned seq, and the thread's members at the commit.
    New(super::models::MessageRow, Vec<String>),
    /// The same sender already sent this `client_id`: the original row.
    Duplicate(super::models::MessageRow),
    /// The sender is not (or no longer) a member of the thread: nothing stored.
    NotMember,
    /// No such thread: nothing stored.
    NoThread,
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

/// Stores message rows. The one query that differs by backend: Postgres takes many rows per
/// `INSERT`, and diesel-async's SQLite wrapper takes one (a local call, no round trip).
mod insert_rows {
    use diesel::QueryResult;
    use diesel_async::RunQueryDsl;

    use crate::store::models::MessageRow;
    use crate::store::schema::messages;

    /// Rows per `INSERT`: well below Postgres's limit on bound parameters.
    const CHUNK: usize = 256;

    pub async fn pg(
        conn: &mut diesel_async::AsyncPgConnection,
        rows: &[MessageRow],
    ) -> QueryResult<()> {
        for chunk in rows.chunks(CHUNK) {
            diesel::insert_into(messages::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    pub async fn sqlite(
        conn: &mut diesel_async::sync_connection_wrapper::SyncConnectionWrapper<
            diesel::SqliteConnection,
        >,
        rows: &[MessageRow],
    ) -> QueryResult<()> {
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
    ($name:ident, $conn:ty, $insert_rows:path) => {
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
    crate::store::queries::insert_rows::pg
);
backend!(
    sqlite,
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>,
    crate::store::queries::insert_rows::sqlite
);
