//! REST routes about the user's own inbox: unread counts and presence lookups.

use actix_web::{HttpResponse, web};

use crate::auth::AuthUser;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::protocol::ErrorCode;
use crate::protocol::rest::PresenceQuery;
use crate::service::{Caller, presence, receipts};

/// `GET /unread`
#[utoipa::path(
    get,
    path = "/api/v1/unread",
    tag = "inbox",
    responses((status = 200, body = crate::protocol::rest::UnreadCounts), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn unread(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let counts = receipts::unread(&app, &Caller::rest(&user.sub)).await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// `GET /presence?user_ids=a,b`: within the caller's presence scope.
#[utoipa::path(
    get,
    path = "/api/v1/presence",
    tag = "inbox",
    params(crate::protocol::rest::PresenceQuery),
    responses((status = 200, body = Vec<crate::protocol::Presence>), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn presence(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    q: web::Query<PresenceQuery>,
) -> Result<HttpResponse, ApiError> {
    let ids = split_ids(&q.user_ids)?;
    Ok(HttpResponse::Ok().json(presence::lookup_for(&app, &user.sub, ids).await?))
}

/// A comma-separated list of user ids from a query.
pub fn split_ids(raw: &str) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(ApiError::new(ErrorCode::BadRequest, "user_ids is empty"));
    }
    Ok(ids)
}
