//! Organisations: each connecting token's `orgs` claim is remembered for its user, so the
//! host can reach an organisation (broadcasts) and ask who in it is online.

use super::{ServiceError, bad};
use crate::context::AppContext;
use crate::protocol::Presence;

/// Most organisations remembered per user.
const MAX_ORGS: usize = 100;
/// Longest organisation id, in bytes.
pub const MAX_ORG_BYTES: usize = 256;
/// Most users of one organisation looked at (for broadcasts and online lists).
pub const MAX_ORG_USERS: i64 = 100_000;
/// Users per presence lookup.
const LOOKUP_CHUNK: usize = 500;

/// An organisation id, checked.
pub fn check_org(org: &str) -> Result<(), ServiceError> {
    if org.is_empty() || org.len() > MAX_ORG_BYTES || org.chars().any(char::is_control) {
        return Err(bad(format!(
            "an org id must be 1 to {MAX_ORG_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// Remembers, in the background, the organisations of the token a user connects with, so
/// the session opens without waiting for it. A token without `orgs` changes nothing (host
/// apps that use no organisations issue tokens without the claim). Invalid ids and any past
/// `MAX_ORGS` are left out rather than refusing the connection. Only a change is written,
/// so reconnects cost one read.
pub fn remember_later(app: &AppContext, user_id: &str, orgs: &[String]) {
    if orgs.is_empty() {
        return;
    }
    let mut orgs: Vec<String> = orgs
        .iter()
        .filter(|o| check_org(o).is_ok())
        .take(MAX_ORGS)
        .cloned()
        .collect();
    orgs.sort_unstable();
    orgs.dedup();
    let (app, user_id) = (app.clone(), user_id.to_string());
    tokio::spawn(async move {
        if app
            .store()
            .orgs_of(&user_id)
            .await
            .is_ok_and(|now| now == orgs)
        {
            return;
        }
        if let Err(e) = app.store().set_orgs(user_id.clone(), orgs).await {
            log::warn!("orgs of {user_id} not recorded: {e}");
        }
    });
}

/// Users known to belong to `org`.
pub async fn members(app: &AppContext, org: &str) -> Result<Vec<String>, ServiceError> {
    check_org(org)?;
    Ok(app.store().org_members(org, MAX_ORG_USERS).await?)
}

/// Of `users`, those online anywhere.
pub async fn online_among(app: &AppContext, users: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in users.chunks(LOOKUP_CHUNK) {
        let online = app.relay().online(chunk).await;
        out.extend(
            chunk
                .iter()
                .zip(online)
                .filter(|(_, on)| *on)
                .map(|(u, _)| u.clone()),
        );
    }
    out
}

/// Presence of the online users of `org`.
pub async fn online(app: &AppContext, org: &str) -> Result<Vec<Presence>, ServiceError> {
    let users = members(app, org).await?;
    Ok(online_among(app, users)
        .await
        .into_iter()
        .map(|user_id| Presence {
            user_id,
            online: true,
            last_seen: None,
        })
        .collect())
}
