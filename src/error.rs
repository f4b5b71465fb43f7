//! The one place where every layer's error becomes a contract code and message: an HTTP
//! response with `{"error":{"code","message"}}` for REST, and an `error` frame for WebSocket
//! sessions. Causes from the database or Redis are logged here and never shown to clients.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};

use crate::auth::AuthError;
use crate::protocol::rest::{ErrorBody, ErrorDetail};
use crate::protocol::{BadFrame, ErrorCode, Ref, ServerFrame};
use crate::service::ServiceError;
use crate::store::StoreError;

/// An error as a client sees it: code, message and, for `rate_limited`, when to retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message for the client.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `rate_limited`, retry after `ms`.
    pub fn rate_limited(message: impl Into<String>, ms: u64) -> Self {
        ApiError {
            retry_after_ms: Some(ms),
            ..ApiError::new(ErrorCode::RateLimited, message)
        }
    }

    /// The WebSocket `error` frame for this error, echoing `reference`.
    pub fn to_frame(&self, reference: Option<Ref>) -> ServerFrame {
        ServerFrame::Error {
            reference,
            code: self.code,
            message: self.message.clone(),
            retry_after_ms: self.retry_after_ms,
        }
    }
}

impl ApiError {
    /// The JSON body of this error, as REST returns it.
    pub fn body_json(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                retry_after_ms: self.retry_after_ms,
            },
        })
        .unwrap_or_default()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if let Some(ms) = self.retry_after_ms {
            resp.insert_header(("Retry-After", ms.div_ceil(1000).to_string()));
        }
        resp.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                retry_after_ms: self.retry_after_ms,
            },
        })
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::BadRequest(m) => ApiError::new(ErrorCode::BadRequest, m),
            ServiceError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
            ServiceError::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
            ServiceError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            ServiceError::TooLarge(m) => ApiError::new(ErrorCode::TooLarge, m),
            ServiceError::RateLimited { retry_after_ms } => {
                ApiError::rate_limited("sending too fast", retry_after_ms)
            }
            ServiceError::Unavailable(m) => ApiError::new(ErrorCode::Unavailable, m),
            ServiceError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The cause is logged here, once; the client never sees database text.
        if e.is_nul_in_text() {
            // Any id from a path or a frame reaches a bind: the input's fault, not the node's.
            // Logged all the same, so a NUL the node made itself would not go unseen.
            log::info!("refused as bad_request: {e}");
            return ApiError::new(
                ErrorCode::BadRequest,
                "text must not contain NUL characters",
            );
        }
        log::error!("store error: {e}");
        if e.is_unavailable() {
            ApiError::new(ErrorCode::Unavailable, "database unavailable")
        } else {
            ApiError::new(ErrorCode::Internal, "internal error")
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NotConfigured => ApiError::new(ErrorCode::Internal, "internal error"),
            other => ApiError::new(ErrorCode::Unauthorized, other.to_string()),
        }
    }
}

impl From<BadFrame> for ApiError {
    fn from(b: BadFrame) -> Self {
        ApiError::new(ErrorCode::BadRequest, b.error.to_string())
    }
}

// Extractors fail with `AuthError`; the response is the same JSON error body.
impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        ApiError::from(self.clone()).status_code()
    }

    fn error_response(&self) -> HttpResponse {
        ApiError::from(self.clone()).error_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn json_body_has_the_contract_shape() {
        let resp = ApiError::new(ErrorCode::NotFound, "no such thread").error_response();
        assert_eq!(resp.status().as_u16(), 404);
        let body = resp.into_body().try_into_bytes().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"code":"not_found","message":"no such thread"}})
        );
    }

    #[test]
    fn error_frame_echoes_ref() {
        let f = ApiError::new(ErrorCode::Forbidden, "not a member").to_frame(Some("x".into()));
        assert_eq!(
            serde_json::to_value(f).unwrap(),
            serde_json::json!({"type":"error","ref":"x","code":"forbidden","message":"not a member"})
        );
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let resp = ApiError::from(ServiceError::RateLimited {
            retry_after_ms: 1500,
        })
        .error_response();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "2");
    }

    #[test]
    fn store_causes_never_reach_the_client() {
        let e = ApiError::from(StoreError::Unavailable(
            "connection refused at 10.0.0.5".into(),
        ));
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(!e.message.contains("10.0.0.5"));
    }
}
