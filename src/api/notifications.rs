//! REST routes for the user's own notifications and preferences, and who is online in the
//! user's organisations.

use actix_web::{HttpResponse, web};

use super::no_content;
use crate::auth::AuthUser;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::protocol::ErrorCode;
use crate::protocol::rest::{NotificationsQuery, Preferences, UnreadCount};
use crate::service::{Caller, notifications as svc, orgs};

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /notifications?unread=true&limit=&before=`
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(crate::protocol::rest::NotificationsQuery),
    responses((status = 200, body = crate::protocol::rest::NotificationPage), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn list(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    q: web::Query<NotificationsQuery>,
) -> Result<HttpResponse> {
    let page = svc::list(&app, &Caller::rest(&user.sub), q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /notifications/unread-count`
#[utoipa::path(
    get,
    path = "/api/v1/notifications/unread-count",
    tag = "notifications",
    responses((status = 200, body = crate::protocol::rest::UnreadCount), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn unread_count(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    let count = svc::unread_count(&app, &Caller::rest(&user.sub)).await?;
    Ok(HttpResponse::Ok().json(UnreadCount { count }))
}

/// `POST /notifications/{id}/read`
#[utoipa::path(
    post,
    path = "/api/v1/notifications/{id}/read",
    tag = "notifications",
    params(("id" = String, Path, description = "notification id")),
    responses((status = 204, description = "read"), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn read(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    svc::read(&app, &Caller::rest(&user.sub), &id).await?;
    Ok(no_content())
}

/// `POST /notifications/read-all`
#[utoipa::path(
    post,
    path = "/api/v1/notifications/read-all",
    tag = "notifications",
    responses((status = 204, description = "all read"), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn read_all(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    svc::read_all(&app, &Caller::rest(&user.sub)).await?;
    Ok(no_content())
}

/// `DELETE /notifications/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/notifications/{id}",
    tag = "notifications",
    params(("id" = String, Path, description = "notification id")),
    responses((status = 204, description = "dismissed"), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn dismiss(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    svc::dismiss(&app, &Caller::rest(&user.sub), &id).await?;
    Ok(no_content())
}

/// `DELETE /notifications`
#[utoipa::path(
    delete,
    path = "/api/v1/notifications",
    tag = "notifications",
    responses((status = 204, description = "all dismissed"), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn dismiss_all(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    svc::dismiss_all(&app, &Caller::rest(&user.sub)).await?;
    Ok(no_content())
}

/// `GET /notification-preferences`
#[utoipa::path(
    get,
    path = "/api/v1/notification-preferences",
    tag = "notifications",
    responses((status = 200, body = crate::protocol::rest::Preferences), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn preferences(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    let p = svc::preferences(&app, &Caller::rest(&user.sub)).await?;
    Ok(HttpResponse::Ok().json(p))
}

/// `PUT /notification-preferences`
#[utoipa::path(
    put,
    path = "/api/v1/notification-preferences",
    tag = "notifications",
    request_body = crate::protocol::rest::Preferences,
    responses((status = 413, body = crate::protocol::rest::ErrorBody), (status = 200, body = crate::protocol::rest::Preferences), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn set_preferences(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    body: web::Json<Preferences>,
) -> Result<HttpResponse> {
    let p = svc::set_preferences(&app, &Caller::rest(&user.sub), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(p))
}

/// `GET /orgs/{org}/online`: only for members of the organisation (by their token's `orgs`).
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/online",
    tag = "inbox",
    params(("org" = String, Path, description = "an organisation named in the caller's token")),
    responses((status = 200, body = Vec<crate::protocol::Presence>), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn org_online(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    org: web::Path<String>,
) -> Result<HttpResponse> {
    if !user.orgs.contains(&org) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "not a member of that organisation",
        ));
    }
    Ok(HttpResponse::Ok().json(orgs::online(&app, &org).await?))
}
