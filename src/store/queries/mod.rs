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

/// What inserting a message did.
#[derive(Debug)]
pub enum Inserted {
    /// A new row with its freshly assigned seq.
    New(super::models::MessageRow),
    /// The same sender already sent this `client_id`: the original row.
    Duplicate(super::models::MessageRow),
    /// The sender is not (or no longer) a member of the thread: nothing stored.
    NotMember,
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

macro_rules! backend {
    ($name:ident, $conn:ty) => {
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

backend!(pg, diesel_async::AsyncPgConnection);
backend!(
    sqlite,
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>
);
