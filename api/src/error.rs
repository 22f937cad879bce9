//! The one error envelope: `{"error":{"code","message","details","request_id"}}`.
//!
//! Codes are stable and upper-case. A 5xx body never carries the internal cause; the
//! cause is logged once here, with the request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// The internal cause of a 5xx (logged, never sent).
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            cause: None,
        }
    }
    pub fn details(mut self, d: Value) -> ApiError {
        self.details = d;
        self
    }
    pub fn not_found(code: &'static str, what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, what)
    }
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL",
            message: "internal error; the request id identifies it in the daemon's log".into(),
            details: json!({}),
            cause: Some(cause.to_string()),
        }
    }
    pub fn unavailable(cause: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "UNAVAILABLE",
            message: "a backing service is unavailable; see /api/v1/health/ready".into(),
            details: json!({}),
            cause: Some(cause.to_string()),
        }
    }
}

/// 413 for a body (declared or sent) over `api.max_body_size`.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "the request body is larger than api.max_body_size",
    )
}

impl From<tributary_catalog::CatalogError> for ApiError {
    fn from(e: tributary_catalog::CatalogError) -> Self {
        ApiError::unavailable(format!("catalog: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        if let Some(cause) = &self.cause {
            tracing::error!(request_id = %request_id, code = self.code, error = %cause, "request failed");
        }
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
                "request_id": request_id,
            }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
