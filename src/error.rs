//! The nine error codes of the contract and the one place where every layer's error becomes a
//! code, an HTTP status, a JSON body and a WebSocket `error` frame.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;

use crate::auth::AuthError;
use crate::service::ServiceError;
use crate::store::StoreError;
use crate::ws::frames::{Ref, ServerFrame};

/// An error code from PROTOCOL.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

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

    /// The WebSocket `error` frame for this error, echoing `reference`.
    pub fn to_frame(&self, reference: Option<Ref>) -> ServerFrame {
        ServerFrame::Error {
            reference,
            code: self.code.as_str(),
            message: self.message.clone(),
            retry_after_ms: self.retry_after_ms,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
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
            ServiceError::RateLimited { retry_after_ms } => ApiError {
                code: ErrorCode::RateLimited,
                message: "sending too fast".into(),
                retry_after_ms: Some(retry_after_ms),
            },
            ServiceError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The cause is logged here, once; the client never sees database text.
        log::error!("store error: {e}");
        match e {
            StoreError::Unavailable(_) => {
                ApiError::new(ErrorCode::Unavailable, "database unavailable")
            }
            _ => ApiError::new(ErrorCode::Internal, "internal error"),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(ErrorCode::Unauthorized, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn codes_map_to_statuses() {
        let cases = [
            (ErrorCode::BadRequest, 400),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::Conflict, 409),
            (ErrorCode::TooLarge, 413),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Unavailable, 503),
            (ErrorCode::Internal, 500),
        ];
        for (code, status) in cases {
            assert_eq!(code.status().as_u16(), status, "{code:?}");
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }

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
}
