//! REST routes for threads, members and messages. Each calls the same service function as the
//! matching WebSocket frame.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Deserializer, Serialize};

use super::no_content;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::service::{Caller, messages, receipts, threads as svc, typing as typing_svc};
use crate::store::Receipt;
use crate::ws::frames::{HistoryQuery, Message, SendRequest, Thread, ThreadsQuery};

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Serialize)]
struct ThreadPage {
    threads: Vec<Thread>,
    next: Option<String>,
}

#[derive(Serialize)]
struct MessageBody {
    message: Message,
}

#[derive(Serialize)]
struct HistoryPage {
    messages: Vec<Message>,
    has_more: bool,
}

/// `GET /threads`
pub async fn list_threads(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    q: web::Query<ThreadsQuery>,
) -> Result<HttpResponse> {
    let (threads, next) = svc::list(&state, &Caller::rest(&user.sub), q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ThreadPage { threads, next }))
}

/// Body of `POST /threads`.
#[derive(Deserialize)]
pub struct CreateThread {
    kind: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    members: Vec<String>,
}

/// `POST /threads`: 201 with a new thread, 200 with the existing direct thread.
pub async fn create_thread(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: web::Json<CreateThread>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let (thread, created) = svc::create(
        &state,
        &Caller::rest(&user.sub),
        &b.kind,
        b.title,
        b.members,
    )
    .await?;
    Ok(if created {
        HttpResponse::Created().json(thread)
    } else {
        HttpResponse::Ok().json(thread)
    })
}

/// `GET /threads/{id}`
pub async fn get_thread(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let t = svc::get(&state, &Caller::rest(&user.sub), &id).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// Body of `PATCH /threads/{id}`: `title` is required; `null` clears it.
#[derive(Deserialize)]
pub struct UpdateThread {
    #[serde(default, deserialize_with = "present")]
    title: Option<Option<String>>,
}

/// `PATCH /threads/{id}`
pub async fn update_thread(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<UpdateThread>,
) -> Result<HttpResponse> {
    let title = body.into_inner().title.ok_or_else(|| {
        ApiError::new(ErrorCode::BadRequest, "title is required (null clears it)")
    })?;
    let t = svc::set_title(&state, &Caller::rest(&user.sub), &id, title).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// Body of `POST /threads/{id}/members`.
#[derive(Deserialize)]
pub struct AddMembers {
    user_ids: Vec<String>,
}

/// `POST /threads/{id}/members`
pub async fn add_members(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<AddMembers>,
) -> Result<HttpResponse> {
    let t = svc::add_members(
        &state,
        &Caller::rest(&user.sub),
        &id,
        body.into_inner().user_ids,
    )
    .await?;
    Ok(HttpResponse::Ok().json(t))
}

/// `DELETE /threads/{id}/members/{user_id}`
pub async fn remove_member(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, member) = path.into_inner();
    svc::remove_member(&state, &Caller::rest(&user.sub), &id, &member).await?;
    Ok(no_content())
}

/// `GET /threads/{id}/messages`
pub async fn history(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    let (messages, has_more) =
        messages::history(&state, &Caller::rest(&user.sub), &id, q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(HistoryPage { messages, has_more }))
}

/// Body of `POST /threads/{id}/messages`: a send without `thread_id`/`to`.
#[derive(Deserialize)]
pub struct SendBody {
    body: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /threads/{id}/messages`
pub async fn send_message(
    state: web::Data<AppState>,
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
    let message = messages::send(&state, &Caller::rest(&user.sub), req).await?;
    Ok(HttpResponse::Ok().json(MessageBody { message }))
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PATCH /messages/{id}`.
#[derive(Deserialize)]
pub struct EditBody {
    body: String,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Option<serde_json::Map<String, serde_json::Value>>>,
}

/// `PATCH /messages/{id}`
pub async fn edit_message(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<EditBody>,
) -> Result<HttpResponse> {
    let b = body.into_inner();
    let message = messages::edit(&state, &Caller::rest(&user.sub), &id, b.body, b.metadata).await?;
    Ok(HttpResponse::Ok().json(MessageBody { message }))
}

/// `DELETE /messages/{id}`
pub async fn delete_message(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let message = messages::delete(&state, &Caller::rest(&user.sub), &id).await?;
    Ok(HttpResponse::Ok().json(MessageBody { message }))
}

/// Body of `POST /threads/{id}/read`.
#[derive(Deserialize)]
pub struct ReadBody {
    seq: i64,
}

/// `POST /threads/{id}/read`
pub async fn mark_read(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<ReadBody>,
) -> Result<HttpResponse> {
    receipts::mark(
        &state,
        &Caller::rest(&user.sub),
        Receipt::Read,
        &id,
        body.seq,
    )
    .await?;
    Ok(no_content())
}

/// Body of `POST /threads/{id}/typing`.
#[derive(Deserialize)]
pub struct TypingBody {
    is_typing: bool,
}

/// `POST /threads/{id}/typing`
pub async fn typing(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    body: web::Json<TypingBody>,
) -> Result<HttpResponse> {
    typing_svc::set(&state, &Caller::rest(&user.sub), &id, body.is_typing).await?;
    Ok(no_content())
}
