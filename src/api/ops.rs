//! Liveness and readiness for load balancers and orchestrators.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::app::AppState;

#[derive(Serialize)]
struct Ready {
    status: &'static str,
    database: String,
    relay: String,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /readyz`: 200 when the database (and the relay) answer, 503 with the reason if not.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.store.ping().await;
    let relay = state.relay.health().await;
    let draining = state.draining.load(std::sync::atomic::Ordering::SeqCst);
    let body = Ready {
        status: match (draining, db.is_ok() && relay.is_ok()) {
            (true, _) => "draining",
            (false, true) => "ok",
            (false, false) => "unavailable",
        },
        database: db.map_or_else(|e| e.to_string(), |()| "ok".into()),
        relay: relay.map_or_else(|e| e.to_string(), |()| "ok".into()),
    };
    if body.status == "ok" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
