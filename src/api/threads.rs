//! REST routes for threads, members and messages. Each calls the same service function as the
//! matching WebSocket frame.

use actix_web::{HttpResponse, web};

use super::no_content;
use crate::auth::AuthUser;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::metrics;
use crate::protocol::ErrorCode;
use crate::protocol::rest::{
    AddMembers, CreateThread, EditBody, ReadBody, SendBody, TypingBody, UpdateThread,
};
use crate::protocol::{HistoryQuery, MessageReply, SendRequest, ThreadsQuery};
use crate::service::{Caller, messages, receipts, threads as svc, typing as typing_svc};

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /threads`
#[utoipa::path(
    get,
    path = "/api/v1/threads",
    tag = "threads",
    params(crate::protocol::ThreadsQuery),
    responses((status = 200, body = crate::protocol::ThreadPage), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn list_threads(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    q: web::Query<ThreadsQuery>,
) -> Result<HttpResponse> {
    let page = svc::list(&app, &Caller::rest(&user.sub), q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /threads`: 201 with a new thread, 200 with the existing direct thread.
#[utoipa::path(
    post,
    path = "/api/v1/threads",
    tag = "threads",
    request_body = crate::protocol::rest::CreateThread,
    responses((status = 201, body = crate::protocol::Thread, description = "created"), (status = 200, body = crate::protocol::Thread, description = "the existing direct thread"), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn create_thread(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    body: web::Json<CreateThread>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let (thread, created) =
        svc::create(&app, &Caller::rest(&user.sub), &b.kind, b.title, b.members).await?;
    Ok(if created {
        HttpResponse::Created().json(thread)
    } else {
        HttpResponse::Ok().json(thread)
    })
}

/// `GET /threads/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/threads/{id}",
    tag = "threads",
    params(("id" = String, Path, description = "thread id")),
    responses((status = 200, body = crate::protocol::Thread), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn get_thread(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let t = svc::get(&app, &Caller::rest(&user.sub), &id).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// `PATCH /threads/{id}`
#[utoipa::path(
    patch,
    path = "/api/v1/threads/{id}",
    tag = "threads",
    params(("id" = String, Path, description = "thread id")),
    request_body = crate::protocol::rest::UpdateThread,
    responses((status = 413, body = crate::protocol::rest::ErrorBody), (status = 200, body = crate::protocol::Thread), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn update_thread(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<UpdateThread>,
) -> Result<HttpResponse> {
    let title = body.into_inner().title.ok_or_else(|| {
        ApiError::new(ErrorCode::BadRequest, "title is required (null clears it)")
    })?;
    let t = svc::set_title(&app, &Caller::rest(&user.sub), &id, title).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// `POST /threads/{id}/members`
#[utoipa::path(
    post,
    path = "/api/v1/threads/{id}/members",
    tag = "threads",
    params(("id" = String, Path, description = "thread id")),
    request_body = crate::protocol::rest::AddMembers,
    responses((status = 200, body = crate::protocol::Thread), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn add_members(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<AddMembers>,
) -> Result<HttpResponse> {
    let t = svc::add_members(
        &app,
        &Caller::rest(&user.sub),
        &id,
        body.into_inner().user_ids,
    )
    .await?;
    Ok(HttpResponse::Ok().json(t))
}

/// `DELETE /threads/{id}/members/{user_id}`
#[utoipa::path(
    delete,
    path = "/api/v1/threads/{id}/members/{user_id}",
    tag = "threads",
    params(("id" = String, Path, description = "thread id"), ("user_id" = String, Path, description = "the member")),
    responses((status = 204, description = "removed"), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn remove_member(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, member) = path.into_inner();
    svc::remove_member(&app, &Caller::rest(&user.sub), &id, &member).await?;
    Ok(no_content())
}

/// `GET /threads/{id}/messages`
#[utoipa::path(
    get,
    path = "/api/v1/threads/{id}/messages",
    tag = "messages",
    params(("id" = String, Path, description = "thread id"), crate::protocol::HistoryQuery),
    responses((status = 200, body = crate::protocol::HistoryPage), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn history(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    let page = messages::history(&app, &Caller::rest(&user.sub), &id, q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /threads/{id}/messages`
#[utoipa::path(
    post,
    path = "/api/v1/threads/{id}/messages",
    tag = "messages",
    params(("id" = String, Path, description = "thread id")),
    request_body = crate::protocol::rest::SendBody,
    responses((status = 200, body = crate::protocol::MessageReply), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn send_message(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<SendBody>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let req = SendRequest {
        thread_id: Some(id.into_inner()),
        to: None,
        body: b.body,
        kind: b.kind,
        client_id: b.client_id,
        reply_to: b.reply_to,
        metadata: b.metadata,
    };
    let arrived = std::time::Instant::now();
    let message = messages::send(&app, &Caller::rest(&user.sub), req).await?;
    metrics::send_acked(arrived.elapsed());
    Ok(HttpResponse::Ok().json(MessageReply { message }))
}

/// `PATCH /messages/{id}`
#[utoipa::path(
    patch,
    path = "/api/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "message id")),
    request_body = crate::protocol::rest::EditBody,
    responses((status = 413, body = crate::protocol::rest::ErrorBody), (status = 200, body = crate::protocol::MessageReply), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn edit_message(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<EditBody>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let message = messages::edit(&app, &Caller::rest(&user.sub), &id, b.body, b.metadata).await?;
    Ok(HttpResponse::Ok().json(MessageReply { message }))
}

/// `DELETE /messages/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = crate::protocol::MessageReply), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn delete_message(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let message = messages::delete(&app, &Caller::rest(&user.sub), &id).await?;
    Ok(HttpResponse::Ok().json(MessageReply { message }))
}

/// `POST /threads/{id}/read`
#[utoipa::path(
    post,
    path = "/api/v1/threads/{id}/read",
    tag = "messages",
    params(("id" = String, Path, description = "thread id")),
    request_body = crate::protocol::rest::ReadBody,
    responses((status = 413, body = crate::protocol::rest::ErrorBody), (status = 204, description = "read up to seq"), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn mark_read(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<ReadBody>,
) -> Result<HttpResponse> {
    receipts::mark(
        &app,
        &Caller::rest(&user.sub),
        receipts::Which::Read,
        &id,
        body.seq,
    )
    .await?;
    Ok(no_content())
}

/// `POST /threads/{id}/typing`
#[utoipa::path(
    post,
    path = "/api/v1/threads/{id}/typing",
    tag = "messages",
    params(("id" = String, Path, description = "thread id")),
    request_body = crate::protocol::rest::TypingBody,
    responses((status = 413, body = crate::protocol::rest::ErrorBody), (status = 204, description = "typing state set"), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody), (status = 429, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn typing(
    app: web::Data<AppContext>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<TypingBody>,
) -> Result<HttpResponse> {
    typing_svc::set(&app, &Caller::rest(&user.sub), &id, body.is_typing).await?;
    Ok(no_content())
}
