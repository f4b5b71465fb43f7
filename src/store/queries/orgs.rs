// The organisations users belong to, from their tokens' `orgs` claim. Included by
// queries/mod.rs once per backend: no inner attributes here.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::store::schema::user_orgs;

/// Replaces the user's organisations with `orgs` (the claim of the token they connected
/// with), unless they are already exactly these.
pub async fn set(conn: &mut Conn, user_id: &str, orgs: Vec<String>) -> QueryResult<()> {
    let user_id = user_id.to_string();
    conn.transaction(async move |conn| {
        let mut now: Vec<String> = user_orgs::table
            .filter(user_orgs::user_id.eq(&user_id))
            .select(user_orgs::org)
            .load(conn)
            .await?;
        let mut want = orgs.clone();
        now.sort_unstable();
        want.sort_unstable();
        want.dedup();
        if now == want {
            return Ok(());
        }
        diesel::delete(user_orgs::table.filter(user_orgs::user_id.eq(&user_id)))
            .execute(conn)
            .await?;
        for org in want {
            // A racing connect of the same user may have inserted it meanwhile.
            diesel::insert_into(user_orgs::table)
                .values((user_orgs::user_id.eq(&user_id), user_orgs::org.eq(org)))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        crate::store::before_commit()?;
        Ok(())
    })
    .await
}

/// The organisations a user is known to belong to.
pub async fn of_user(conn: &mut Conn, user_id: &str) -> QueryResult<Vec<String>> {
    user_orgs::table
        .filter(user_orgs::user_id.eq(user_id))
        .order(user_orgs::org.asc())
        .select(user_orgs::org)
        .load(conn)
        .await
}

/// The users known to belong to `org`, at most `limit`.
pub async fn members(conn: &mut Conn, org: &str, limit: i64) -> QueryResult<Vec<String>> {
    user_orgs::table
        .filter(user_orgs::org.eq(org))
        .order(user_orgs::user_id.asc())
        .select(user_orgs::user_id)
        .limit(limit)
        .load(conn)
        .await
}
