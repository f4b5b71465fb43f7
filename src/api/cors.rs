//! CORS for the user REST API and the SSE stream, so a web app served from another origin
//! can use the SSE + REST fallback (`EventSource` and `fetch` are bound by CORS; a WebSocket is
//! not). The same origins as the sockets: `ALLOWED_ORIGINS`, or any when it is unset. Tokens
//! travel in `Authorization`, never in cookies, so credentials are never allowed. The server
//! API (`/api/v1/server`) is for host backends and answers no browser.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

use crate::auth::origin_allowed;
use crate::context::AppContext;

/// How long a browser may cache a preflight's answer, seconds.
const PREFLIGHT_MAX_AGE_S: &str = "600";

/// Adds CORS headers to allowed cross-origin requests under `/api/v1`, and answers their
/// preflight `OPTIONS` itself (no route takes `OPTIONS`).
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let path = req.path();
    let browser_route = path.starts_with("/api/v1/") && !path.starts_with("/api/v1/server");
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = browser_route
        && origin.is_some()
        && req.app_data::<web::Data<AppContext>>().is_some_and(|app| {
            origin_allowed(req.request(), app.config().allowed_origins.as_deref())
        });
    let (Some(origin), true) = (origin, allowed) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let resp = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, PUT, PATCH, DELETE",
            ))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, Idempotency-Key",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_S))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let mut resp = next.call(req).await?;
    let headers = resp.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    // Lets the app read a 429's Retry-After.
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
    Ok(resp.map_into_left_body())
}
