//! The demo chat at `/` (built from clients/demo and shipped inside the binary, so
//! `cargo build` needs no npm) and the dev login it offers while the development secret is on.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::context::AppContext;
use crate::error::ApiError;
use crate::protocol::ErrorCode;
use crate::protocol::rest::{DevLogin, DevToken};
use crate::service::dev;

/// The built demo (clients/demo/dist; `clients/demo/check-built.sh` fails when it is stale).
const INDEX_HTML: &[u8] = include_bytes!("../../clients/demo/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../../clients/demo/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../../clients/demo/dist/app.css");

/// `GET /`: the demo chat.
pub async fn index() -> HttpResponse {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /app.js`
pub async fn app_js() -> HttpResponse {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// `GET /app.css`
pub async fn app_css() -> HttpResponse {
    asset(APP_CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static [u8], content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        // The names carry no hash: revalidate, so a new binary's page is never mixed with an
        // old script.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

/// `POST /api/v1/dev/token`: a token for any user, only while the development secret is in
/// use (404 otherwise).
#[utoipa::path(
    post,
    path = "/api/v1/dev/token",
    tag = "dev",
    request_body = crate::protocol::rest::DevLogin,
    responses((status = 200, body = crate::protocol::rest::DevToken), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 404, body = crate::protocol::rest::ErrorBody))
)]
pub async fn token(app: web::Data<AppContext>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    // Off means absent, whatever the body: checked before it is read.
    dev::ensure_enabled(&app)?;
    let DevLogin { user_id, name } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body: {e}")))?;
    let token = dev::login(&app, &user_id, name)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(DevToken { token }))
}
