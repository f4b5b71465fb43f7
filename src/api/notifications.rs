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
pub async fn list(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    q: web::Query<NotificationsQuery>,
) -> Result<HttpResponse> {
    let page = svc::list(&app, &Caller::rest(&user.sub), q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /notifications/unread-count`
pub async fn unread_count(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    let count = svc::unread_count(&app, &Caller::rest(&user.sub)).await?;
    Ok(HttpResponse::Ok().json(UnreadCount { count }))
}

/// `POST /notifications/{id}/read`
pub async fn read(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    svc::read(&app, &Caller::rest(&user.sub), &id).await?;
    Ok(no_content())
}

/// `POST /notifications/read-all`
pub async fn read_all(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    svc::read_all(&app, &Caller::rest(&user.sub)).await?;
    Ok(no_content())
}

/// `DELETE /notifications/{id}`
pub async fn dismiss(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    svc::dismiss(&app, &Caller::rest(&user.sub), &id).await?;
    Ok(no_content())
}

/// `DELETE /notifications`
pub async fn dismiss_all(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    svc::dismiss_all(&app, &Caller::rest(&user.sub)).await?;
    Ok(no_content())
}

/// `GET /notification-preferences`
pub async fn preferences(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse> {
    let p = svc::preferences(&app, &Caller::rest(&user.sub)).await?;
    Ok(HttpResponse::Ok().json(p))
}

/// `PUT /notification-preferences`
pub async fn set_preferences(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    body: web::Json<Preferences>,
) -> Result<HttpResponse> {
    let p = svc::set_preferences(&app, &Caller::rest(&user.sub), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(p))
}

/// `GET /orgs/{org}/online`: only for members of the organisation (by their token's `orgs`).
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
