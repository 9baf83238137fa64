//! The one error model every client sees: `{"error", "code", "statusCode", "metadata"}` with a
//! stable machine-readable `code`. Causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

/// Stable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid.
    ValidationError,
    /// No such resource.
    NotFound,
    /// The method is not allowed on this resource.
    MethodNotAllowed,
    /// Credentials are missing or wrong.
    Unauthorized,
    /// Admin routes are off: no `ADMIN_TOKEN` is configured.
    AdminDisabled,
    /// Something failed inside the server.
    InternalError,
}

/// A client-facing error.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
    code: ErrorCode,
    #[serde(rename = "statusCode")]
    status_code: u16,
    metadata: Value,
}

impl ApiError {
    /// An error with `status`, `code` and a human-readable message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            error: message.into(),
            code,
            status_code: status.as_u16(),
            metadata: Value::Object(serde_json::Map::new()),
        }
    }

    /// 404 for a missing `what`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    /// Attaches structured details (e.g. the invalid fields).
    #[must_use]
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(self)).into_response();
        // Errors are never cached by shared caches.
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

/// The fallback for unknown routes.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("route")
}
