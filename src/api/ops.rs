//! Liveness, readiness and metrics, for load balancers, orchestrators and Prometheus.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::{bearer_token, constant_time_eq};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::protocol::ErrorCode;
use crate::protocol::rest::{Health, Readiness};

/// `/readyz` answers within this, whatever its dependencies do.
const READY_WITHIN: Duration = Duration::from_millis(1500);

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

fn word(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}

/// `GET /readyz`: 200 when the database (and the relay) answer, 503 naming which does not.
/// Error details stay in the log: this endpoint is often public.
pub async fn readyz(app: web::Data<AppContext>) -> HttpResponse {
    let db = tokio::time::timeout(READY_WITHIN, app.store().ping());
    let relay = tokio::time::timeout(READY_WITHIN, app.relay().health());
    let (db, relay) = futures_util::join!(db, relay);
    let db_ok = matches!(db, Ok(Ok(())));
    let relay_ok = matches!(relay, Ok(Ok(())));
    if let Ok(Err(e)) = &db {
        log::warn!("readyz: database: {e}");
    }
    let body = Readiness {
        status: match (app.is_draining(), db_ok && relay_ok) {
            (true, _) => "draining",
            (false, true) => "ok",
            (false, false) => "unavailable",
        },
        database: word(db_ok),
        relay: word(relay_ok),
    };
    if body.status == "ok" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: the Prometheus text format, behind `METRICS_TOKEN` when it is set.
pub async fn metrics(
    req: HttpRequest,
    app: web::Data<AppContext>,
) -> Result<HttpResponse, ApiError> {
    if let Some(want) = &app.config().metrics_token {
        let given = bearer_token(&req, false).unwrap_or_default();
        if !constant_time_eq(want.as_bytes(), given.as_bytes()) {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "metrics need Authorization: Bearer <METRICS_TOKEN>",
            ));
        }
    }
    crate::metrics::db_pool_connections(app.store().pool_size());
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(app.metrics().render()))
}
