// Read and delivered receipts and unread counts. Included by queries/mod.rs once per
// backend: no inner attributes here.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::store::queries::Receipt;
use crate::store::schema::{members, messages};

/// Moves the member's read (or delivered) seq forward to `seq`, at most the thread's last;
/// never back. Returns the new seq, or `None` when it did not move or the user is not a
/// member.
pub async fn advance(
    conn: &mut Conn,
    which: Receipt,
    thread_id: &str,
    user_id: &str,
    seq: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    crate::store::queries::fixed::AdvanceReceipt {
        which,
        thread_id,
        user_id,
        seq,
        at: now,
    }
    .get_result(conn)
    .await
    .optional()
}

/// Unread counts of the user's threads (all of them when `thread_ids` is empty): messages
/// after their read seq, not their own, not deleted. Threads with none are left out.
pub async fn unread_in(
    conn: &mut Conn,
    user_id: &str,
    thread_ids: &[&str],
) -> QueryResult<Vec<(String, i64)>> {
    let mut q = members::table
        .inner_join(
            messages::table.on(messages::thread_id
                .eq(members::thread_id)
                .and(messages::seq.gt(members::read_seq))),
        )
        .filter(members::user_id.eq(user_id))
        .filter(messages::sender_id.ne(user_id))
        .filter(messages::deleted.eq(false))
        .group_by(members::thread_id)
        .select((members::thread_id, count_star()))
        .into_boxed();
    if !thread_ids.is_empty() {
        q = q.filter(members::thread_id.eq_any(thread_ids.to_vec()));
    }
    q.load(conn).await
}

/// Each member's unread count in one thread (members with none left out).
pub async fn unread_by_member(conn: &mut Conn, thread_id: &str) -> QueryResult<Vec<(String, i64)>> {
    members::table
        .inner_join(
            messages::table.on(messages::thread_id
                .eq(members::thread_id)
                .and(messages::seq.gt(members::read_seq))),
        )
        .filter(members::thread_id.eq(thread_id))
        .filter(messages::sender_id.ne(members::user_id))
        .filter(messages::deleted.eq(false))
        .group_by(members::user_id)
        .select((members::user_id, count_star()))
        .load(conn)
        .await
}
