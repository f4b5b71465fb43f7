//! `/api/v1/server`: the host backend's API, authenticated by `SERVER_API_KEY` (a user token
//! is refused here, as the key is on user routes). Every write with a JSON body honours
//! `Idempotency-Key`.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::ServerKey;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::protocol::ErrorCode;
use crate::protocol::MessageReply;
use crate::protocol::rest::{
    AddMembers, BroadcastReply, BroadcastRequest, Disconnect, HostMessage, HostThread, NotifyReply,
    NotifyRequest, PresenceQuery, TemplateBody, TemplateList,
};
use crate::service::{
    broadcast, host, idempotency, notifications, orgs, presence, sessions, templates,
};
use crate::store::Claim;

type Result<T> = std::result::Result<T, ApiError>;

/// A write's answer: a status and a JSON body (empty for 204), kept for `Idempotency-Key`.
pub struct Answer {
    status: StatusCode,
    body: String,
}

impl Answer {
    fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
        Answer {
            status,
            body: serde_json::to_string(value).unwrap_or_default(),
        }
    }

    fn empty() -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: String::new(),
        }
    }

    fn from_error(e: &ApiError) -> Answer {
        Answer {
            status: StatusCode::from_u16(e.code.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: e.body_json(),
        }
    }

    fn into_response(self, replayed: bool) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if replayed {
            resp.insert_header(("Idempotent-Replayed", "true"));
        }
        if self.body.is_empty() {
            resp.finish()
        } else {
            resp.content_type("application/json").body(self.body)
        }
    }
}

/// Reads a request body up to `limit` bytes (`MAX_FRAME_BYTES`, as on user routes).
async fn read_body(payload: web::Payload, limit: usize) -> Result<web::Bytes> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("cannot read the body: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("request body larger than {limit} bytes"),
        )),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body: {e}")))
}

fn fingerprint(req: &HttpRequest, body: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{} {} {hex}", req.method(), req.path())
}

/// Runs a write with a JSON body, once per `Idempotency-Key` (passed on to `work`). The work
/// runs in its own task, so a host that gives up waiting does not leave the key claimed with
/// no answer.
async fn write<T, F, Fut>(
    app: &AppContext,
    req: &HttpRequest,
    payload: web::Payload,
    work: F,
) -> Result<HttpResponse>
where
    T: DeserializeOwned + Send + 'static,
    F: FnOnce(AppContext, T, Option<String>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Answer>> + Send + 'static,
{
    let body = read_body(payload, app.config().max_frame_bytes).await?;
    let key = match req.headers().get("Idempotency-Key") {
        None => None,
        Some(v) => {
            let k = v.to_str().unwrap_or_default().to_string();
            idempotency::check_key(&k)?;
            Some(k)
        }
    };
    let fp = key.as_ref().map(|_| fingerprint(req, &body));
    let app = app.clone();
    let task = tokio::spawn(async move {
        if let (Some(key), Some(fp)) = (&key, fp) {
            match idempotency::claim(&app, key, fp).await {
                Err(e) => return Err(e.into()),
                Ok(Claim::InFlight) => {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        "a request with this Idempotency-Key is still in progress",
                    ));
                }
                Ok(Claim::Answered {
                    status,
                    body,
                    same_request,
                }) => {
                    if !same_request {
                        return Err(ApiError::new(
                            ErrorCode::Conflict,
                            "this Idempotency-Key was used for another request",
                        ));
                    }
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                    return Ok((Answer { status, body }, true));
                }
                Ok(Claim::New) => {}
            }
        }
        let answer = match parse::<T>(&body) {
            Ok(v) => work(app.clone(), v, key.clone())
                .await
                .unwrap_or_else(|e| Answer::from_error(&e)),
            Err(e) => Answer::from_error(&e),
        };
        if let Some(key) = &key {
            idempotency::record(&app, key, answer.status.as_u16(), answer.body.clone()).await;
        }
        Ok((answer, false))
    });
    let (answer, replayed) = task
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error"))??;
    Ok(answer.into_response(replayed))
}

/// `POST /server/notifications`
#[utoipa::path(
    post,
    path = "/api/v1/server/notifications",
    tag = "server",
    params(("Idempotency-Key" = Option<String>, Header, description = "the first answer is kept 24 h")),
    request_body = crate::protocol::rest::NotifyRequest,
    responses((status = 201, body = crate::protocol::rest::NotifyReply), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn notify(
    app: web::Data<AppContext>,
    _: ServerKey,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse> {
    write(&app, &req, body, |app, r: NotifyRequest, _key| async move {
        let notifications = notifications::notify(&app, r).await?;
        Ok(Answer::json(
            StatusCode::CREATED,
            &NotifyReply { notifications },
        ))
    })
    .await
}

/// `PUT /server/templates/{key}`
#[utoipa::path(
    put,
    path = "/api/v1/server/templates/{key}",
    tag = "server",
    params(("key" = String, Path, description = "template key"), ("Idempotency-Key" = Option<String>, Header, description = "the first answer is kept 24 h")),
    request_body = crate::protocol::rest::TemplateBody,
    responses((status = 413, body = crate::protocol::rest::ErrorBody), (status = 200, body = crate::protocol::rest::Template), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn put_template(
    app: web::Data<AppContext>,
    _: ServerKey,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse> {
    let key = key.into_inner();
    write(
        &app,
        &req,
        body,
        move |app, t: TemplateBody, _key| async move {
            let t = templates::put(&app, &key, t).await?;
            Ok(Answer::json(StatusCode::OK, &t))
        },
    )
    .await
}

/// `GET /server/templates`
#[utoipa::path(
    get,
    path = "/api/v1/server/templates",
    tag = "server",
    responses((status = 200, body = crate::protocol::rest::TemplateList), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn list_templates(app: web::Data<AppContext>, _: ServerKey) -> Result<HttpResponse> {
    let templates = templates::list(&app).await?;
    Ok(HttpResponse::Ok().json(TemplateList { templates }))
}

/// `DELETE /server/templates/{key}`
#[utoipa::path(
    delete,
    path = "/api/v1/server/templates/{key}",
    tag = "server",
    params(("key" = String, Path, description = "template key")),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn delete_template(
    app: web::Data<AppContext>,
    _: ServerKey,
    key: web::Path<String>,
) -> Result<HttpResponse> {
    templates::delete(&app, &key).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /server/threads`: 201 with a new thread, 200 with the one already holding the
/// `external_ref`.
#[utoipa::path(
    post,
    path = "/api/v1/server/threads",
    tag = "server",
    params(("Idempotency-Key" = Option<String>, Header, description = "the first answer is kept 24 h")),
    request_body = crate::protocol::rest::HostThread,
    responses((status = 201, body = crate::protocol::Thread, description = "created"), (status = 200, body = crate::protocol::Thread, description = "the thread holding this external_ref"), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn create_thread(
    app: web::Data<AppContext>,
    _: ServerKey,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse> {
    write(&app, &req, body, |app, t: HostThread, _key| async move {
        let (thread, created) = host::create_thread(&app, t).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(Answer::json(status, &thread))
    })
    .await
}

/// `GET /server/threads/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/server/threads/{id}",
    tag = "server",
    params(("id" = String, Path, description = "thread id")),
    responses((status = 200, body = crate::protocol::Thread), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn get_thread(
    app: web::Data<AppContext>,
    _: ServerKey,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(host::get(&app, &id).await?))
}

/// `GET /server/threads/by-ref/{external_ref}`
#[utoipa::path(
    get,
    path = "/api/v1/server/threads/by-ref/{external_ref}",
    tag = "server",
    params(("external_ref" = String, Path, description = "the host's key, e.g. job:123")),
    responses((status = 200, body = crate::protocol::Thread), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn get_thread_by_ref(
    app: web::Data<AppContext>,
    _: ServerKey,
    external_ref: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(host::get_by_ref(&app, &external_ref).await?))
}

/// `POST /server/threads/{id}/members`
#[utoipa::path(
    post,
    path = "/api/v1/server/threads/{id}/members",
    tag = "server",
    params(("id" = String, Path, description = "thread id"), ("Idempotency-Key" = Option<String>, Header, description = "the first answer is kept 24 h")),
    request_body = crate::protocol::rest::AddMembers,
    responses((status = 200, body = crate::protocol::Thread), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn add_members(
    app: web::Data<AppContext>,
    _: ServerKey,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    write(
        &app,
        &req,
        body,
        move |app, b: AddMembers, _key| async move {
            let t = host::add_members(&app, &id, b.user_ids).await?;
            Ok(Answer::json(StatusCode::OK, &t))
        },
    )
    .await
}

/// `DELETE /server/threads/{id}/members/{user_id}`
#[utoipa::path(
    delete,
    path = "/api/v1/server/threads/{id}/members/{user_id}",
    tag = "server",
    params(("id" = String, Path, description = "thread id"), ("user_id" = String, Path, description = "the member")),
    responses((status = 204, description = "removed"), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn remove_member(
    app: web::Data<AppContext>,
    _: ServerKey,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, user) = path.into_inner();
    host::remove_member(&app, &id, &user).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /server/threads/{id}/messages`
#[utoipa::path(
    post,
    path = "/api/v1/server/threads/{id}/messages",
    tag = "server",
    params(("id" = String, Path, description = "thread id"), ("Idempotency-Key" = Option<String>, Header, description = "the first answer is kept 24 h")),
    request_body = crate::protocol::rest::HostMessage,
    responses((status = 200, body = crate::protocol::MessageReply), (status = 404, body = crate::protocol::rest::ErrorBody), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn post_message(
    app: web::Data<AppContext>,
    _: ServerKey,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    write(
        &app,
        &req,
        body,
        move |app, m: HostMessage, key| async move {
            let message = host::post_message(&app, &id, m, key.as_deref()).await?;
            Ok(Answer::json(StatusCode::OK, &MessageReply { message }))
        },
    )
    .await
}

/// `POST /server/broadcast`
#[utoipa::path(
    post,
    path = "/api/v1/server/broadcast",
    tag = "server",
    params(("Idempotency-Key" = Option<String>, Header, description = "the first answer is kept 24 h")),
    request_body = crate::protocol::rest::BroadcastRequest,
    responses((status = 200, body = crate::protocol::rest::BroadcastReply), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn broadcast(
    app: web::Data<AppContext>,
    _: ServerKey,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse> {
    write(
        &app,
        &req,
        body,
        |app, b: BroadcastRequest, _key| async move {
            let online_users = broadcast::send(&app, b).await?;
            Ok(Answer::json(
                StatusCode::OK,
                &BroadcastReply { online_users },
            ))
        },
    )
    .await
}

/// `POST /server/disconnect`: closes the user's sockets and streams with 4003, on every node.
#[utoipa::path(
    post,
    path = "/api/v1/server/disconnect",
    tag = "server",
    params(("Idempotency-Key" = Option<String>, Header, description = "the first answer is kept 24 h")),
    request_body = crate::protocol::rest::Disconnect,
    responses((status = 413, body = crate::protocol::rest::ErrorBody), (status = 204, description = "closed with 4003 on every node"), (status = 409, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn disconnect(
    app: web::Data<AppContext>,
    _: ServerKey,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse> {
    write(&app, &req, body, |app, d: Disconnect, _key| async move {
        sessions::disconnect(&app, &d.user_id).await?;
        Ok(Answer::empty())
    })
    .await
}

/// `GET /server/presence?user_ids=a,b`: unscoped.
#[utoipa::path(
    get,
    path = "/api/v1/server/presence",
    tag = "server",
    params(crate::protocol::rest::PresenceQuery),
    responses((status = 200, body = Vec<crate::protocol::Presence>), (status = 413, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn presence(
    app: web::Data<AppContext>,
    _: ServerKey,
    q: web::Query<PresenceQuery>,
) -> Result<HttpResponse> {
    let ids = super::inbox::split_ids(&q.user_ids)?;
    Ok(HttpResponse::Ok().json(presence::lookup(&app, &ids).await?))
}

/// Any other path under `/server`: `not_found`, but only for the key holder (others get
/// `401`, as on every server API route).
pub async fn unknown(_: ServerKey) -> Result<HttpResponse> {
    Err(ApiError::new(ErrorCode::NotFound, "no such route"))
}

/// `GET /server/orgs/{org}/online`: unscoped.
#[utoipa::path(
    get,
    path = "/api/v1/server/orgs/{org}/online",
    tag = "server",
    params(("org" = String, Path, description = "organisation id")),
    responses((status = 200, body = Vec<crate::protocol::Presence>), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("server_key" = []))
)]
pub async fn org_online(
    app: web::Data<AppContext>,
    _: ServerKey,
    org: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(orgs::online(&app, &org).await?))
}
