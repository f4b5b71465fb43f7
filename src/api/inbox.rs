//! REST routes about the user's own inbox: unread counts and presence lookups.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::presence;
use crate::service::{Caller, receipts};

#[derive(Serialize)]
struct Unread {
    total: i64,
    threads: BTreeMap<String, i64>,
}

/// `GET /unread`
pub async fn unread(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (total, threads) = receipts::unread(&state, &Caller::rest(&user.sub)).await?;
    Ok(HttpResponse::Ok().json(Unread { total, threads }))
}

/// Query of `GET /presence`.
#[derive(Deserialize)]
pub struct PresenceQuery {
    user_ids: String,
}

/// `GET /presence?user_ids=a,b`
pub async fn presence(
    state: web::Data<AppState>,
    _user: AuthUser,
    q: web::Query<PresenceQuery>,
) -> Result<HttpResponse, ApiError> {
    let ids: Vec<String> = q
        .user_ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(ApiError::new(ErrorCode::BadRequest, "user_ids is empty"));
    }
    Ok(HttpResponse::Ok().json(presence::lookup(&state, &ids).await?))
}
