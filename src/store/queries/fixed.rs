//! The hot statements, written as fixed query fragments so that each is prepared once per
//! connection.
//!
//! diesel marks `sql_query`, every `UPDATE`, every upsert and every insert with an optional
//! column as never safe to cache, because in general their text can vary without bound. So
//! each call was parsed and planned again: on Postgres a `Parse` round trip before every
//! execution (a lone message paid three of them). The texts below never vary, so the
//! statement cache may key them by their text; none of them calls `unsafe_to_cache_prepared`.
//! Binds go through `push_bind_param`, which writes `$n` on Postgres and `?` on SQLite.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, BigInt, Bool, HasSqlType, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use crate::store::models::MessageRow;
use crate::store::queries::Receipt;

/// Keyed by their SQL text in the statement cache: no static id, so two texts of one type
/// (a receipt's two columns) can never share an entry.
macro_rules! keyed_by_text {
    ($($ty:ident),*) => {$(
        impl QueryId for $ty<'_> {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }
    )*};
}
keyed_by_text!(
    FindResent,
    LockThreads,
    AdvanceThreads,
    InsertMessages,
    AdvanceThread,
    InsertMessage,
    AdvanceReceipt,
    UpsertUser
);

/// Postgres: the rows stored under the given `(sender_id, client_id)` pairs (the two
/// slices in step), one index probe per pair. `sender_id = ANY(..) AND client_id = ANY(..)`
/// probes every sender with every client id: on a soak's 577k rows, 200 pairs took 207 ms
/// that way, and 2.6 ms this way (docs/performance.md, "Session 10").
pub struct FindResent<'a> {
    pub senders: &'a [&'a str],
    pub client_ids: &'a [&'a str],
}

impl Query for FindResent<'_> {
    type SqlType = (
        Text,
        Text,
        BigInt,
        Text,
        Text,
        Text,
        Nullable<Text>,
        Nullable<Text>,
        Nullable<Text>,
        Timestamp,
        Nullable<Timestamp>,
        Bool,
    );
}

impl QueryFragment<Pg> for FindResent<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT id, thread_id, seq, sender_id, kind, body, metadata, reply_to, client_id, \
             created_at, edited_at, deleted FROM messages \
             WHERE (sender_id, client_id) IN (SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(self.senders)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(self.client_ids)?;
        out.push_sql("::text[]))");
        Ok(())
    }
}

/// Postgres: locks the threads' rows in id order (`SELECT … FOR UPDATE`), so two batches
/// never wait on each other in a cycle.
pub struct LockThreads<'a> {
    pub ids: &'a [&'a str],
}

impl QueryFragment<Pg> for LockThreads<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT id FROM threads WHERE id = ANY(");
        out.push_bind_param::<Array<Text>, _>(self.ids)?;
        out.push_sql(") ORDER BY id FOR UPDATE");
        Ok(())
    }
}

/// Postgres: moves each thread's `last_seq` on by its count and stamps `updated_at`;
/// returns `(id, last_seq)` of those that exist.
pub struct AdvanceThreads<'a> {
    pub ids: &'a [&'a str],
    pub counts: &'a [i64],
    pub at: &'a [NaiveDateTime],
}

impl Query for AdvanceThreads<'_> {
    type SqlType = (Text, BigInt);
}

impl QueryFragment<Pg> for AdvanceThreads<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "UPDATE threads SET last_seq = threads.last_seq + v.n, updated_at = v.at \
             FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(self.ids)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<BigInt>, _>(self.counts)?;
        out.push_sql("::bigint[], ");
        out.push_bind_param::<Array<Timestamp>, _>(self.at)?;
        out.push_sql(
            "::timestamp[]) AS v(id, n, at) WHERE threads.id = v.id \
             RETURNING threads.id, threads.last_seq",
        );
        Ok(())
    }
}

/// Postgres: message rows, one array per column: the same text whatever the batch's size.
pub struct InsertMessages<'a> {
    pub id: Vec<&'a str>,
    pub thread_id: Vec<&'a str>,
    pub seq: Vec<i64>,
    pub sender_id: Vec<&'a str>,
    pub kind: Vec<&'a str>,
    pub body: Vec<&'a str>,
    pub metadata: Vec<Option<&'a str>>,
    pub reply_to: Vec<Option<&'a str>>,
    pub client_id: Vec<Option<&'a str>>,
    pub created_at: Vec<NaiveDateTime>,
    pub edited_at: Vec<Option<NaiveDateTime>>,
    pub deleted: Vec<bool>,
}

impl<'a> InsertMessages<'a> {
    /// The columns of `rows`.
    pub fn of(rows: &'a [MessageRow]) -> Self {
        InsertMessages {
            id: rows.iter().map(|r| r.id.as_str()).collect(),
            thread_id: rows.iter().map(|r| r.thread_id.as_str()).collect(),
            seq: rows.iter().map(|r| r.seq).collect(),
            sender_id: rows.iter().map(|r| r.sender_id.as_str()).collect(),
            kind: rows.iter().map(|r| r.kind.as_str()).collect(),
            body: rows.iter().map(|r| r.body.as_str()).collect(),
            metadata: rows.iter().map(|r| r.metadata.as_deref()).collect(),
            reply_to: rows.iter().map(|r| r.reply_to.as_deref()).collect(),
            client_id: rows.iter().map(|r| r.client_id.as_deref()).collect(),
            created_at: rows.iter().map(|r| r.created_at).collect(),
            edited_at: rows.iter().map(|r| r.edited_at).collect(),
            deleted: rows.iter().map(|r| r.deleted).collect(),
        }
    }
}

impl QueryFragment<Pg> for InsertMessages<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO messages (id, thread_id, seq, sender_id, kind, body, metadata, \
             reply_to, client_id, created_at, edited_at, deleted) SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.thread_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<BigInt>, _>(&self.seq)?;
        out.push_sql("::bigint[], ");
        out.push_bind_param::<Array<Text>, _>(&self.sender_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.kind)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.body)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.metadata)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.reply_to)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.created_at)?;
        out.push_sql("::timestamp[], ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.edited_at)?;
        out.push_sql("::timestamp[], ");
        out.push_bind_param::<Array<Bool>, _>(&self.deleted)?;
        out.push_sql("::boolean[])");
        Ok(())
    }
}

/// SQLite: moves one thread's `last_seq` on by `count`; returns the new `last_seq`.
pub struct AdvanceThread<'a> {
    pub id: &'a str,
    pub count: i64,
    pub at: NaiveDateTime,
}

impl Query for AdvanceThread<'_> {
    type SqlType = BigInt;
}

impl QueryFragment<Sqlite> for AdvanceThread<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE threads SET last_seq = last_seq + ");
        out.push_bind_param::<BigInt, _>(&self.count)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(self.id)?;
        out.push_sql(" RETURNING last_seq");
        Ok(())
    }
}

/// SQLite: one message row.
pub struct InsertMessage<'a> {
    pub row: &'a MessageRow,
}

impl QueryFragment<Sqlite> for InsertMessage<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let r = self.row;
        out.push_sql(
            "INSERT INTO messages (id, thread_id, seq, sender_id, kind, body, metadata, \
             reply_to, client_id, created_at, edited_at, deleted) VALUES (",
        );
        out.push_bind_param::<Text, _>(&r.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.thread_id)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.sender_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.body)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.metadata)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.reply_to)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.client_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&r.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&r.edited_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Bool, _>(&r.deleted)?;
        out.push_sql(")");
        Ok(())
    }
}

/// Moves a member's read (or delivered) seq forward to `seq`, never back and never past the
/// thread's last message, stamping its time; returns the new seq. No row: the receipt did
/// not move, or the user is not a member (only a member has a row to move), so the usual
/// receipt is one statement, with no membership read before it.
pub struct AdvanceReceipt<'a> {
    pub which: Receipt,
    pub thread_id: &'a str,
    pub user_id: &'a str,
    pub seq: i64,
    pub at: NaiveDateTime,
}

impl Query for AdvanceReceipt<'_> {
    type SqlType = BigInt;
}

impl<DB> QueryFragment<DB> for AdvanceReceipt<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (seq, at) = match self.which {
            Receipt::Read => ("read_seq", "read_at"),
            Receipt::Delivered => ("delivered_seq", "delivered_at"),
        };
        // `seq`, clamped to the thread's last (the portable spelling of LEAST).
        let clamped = |out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
            out.push_sql("(SELECT CASE WHEN ");
            out.push_bind_param::<BigInt, _>(&self.seq)?;
            out.push_sql(" < last_seq THEN ");
            out.push_bind_param::<BigInt, _>(&self.seq)?;
            out.push_sql(" ELSE last_seq END FROM threads WHERE id = ");
            out.push_bind_param::<Text, _>(self.thread_id)?;
            out.push_sql(")");
            Ok(())
        };
        out.push_sql(&format!("UPDATE members SET {seq} = "));
        clamped(&mut out)?;
        out.push_sql(&format!(", {at} = "));
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" WHERE thread_id = ");
        out.push_bind_param::<Text, _>(self.thread_id)?;
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<Text, _>(self.user_id)?;
        out.push_sql(&format!(" AND {seq} < "));
        clamped(&mut out)?;
        out.push_sql(&format!(" RETURNING {seq}"));
        Ok(())
    }
}

/// Records a user, keeping the stored name and last-seen time where these are `None`.
pub struct UpsertUser<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
    pub last_seen: Option<NaiveDateTime>,
    pub now: NaiveDateTime,
}

impl<DB> QueryFragment<DB> for UpsertUser<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO users (id, name, last_seen, updated_at) VALUES (");
        out.push_bind_param::<Text, _>(self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.name)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&self.last_seen)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(
            ") ON CONFLICT (id) DO UPDATE SET name = COALESCE(excluded.name, users.name), \
             last_seen = COALESCE(excluded.last_seen, users.last_seen), \
             updated_at = excluded.updated_at",
        );
        Ok(())
    }
}
