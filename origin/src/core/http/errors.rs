//! The one error model every client sees: `{"error", "code", "statusCode", "metadata"}` with a
//! stable machine-readable `code`. Causes are never sent: an error carries its cause to the
//! pipeline ([`ErrorCause`]), which logs it with the request's id.

use std::any::Any;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use shared::error_body::ErrorBody;

use crate::core::dependencies::database::DbError;
use crate::core::dependencies::outbound::OutboundError;

/// The stable error codes, shared with the edge: one list for both tiers.
pub use shared::error_body::ErrorCode;

/// One invalid field of a request, as listed in a validation error's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name (`items[3].actor` inside lists).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// `field` is invalid because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What went wrong inside, carried on an error response's extensions for the log; never sent.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub Arc<str>);

/// Marks an error response that stands for a source that could not be reached at all (the
/// connection refused or broken, no answer in time), not for an answer it gave: a cache may
/// serve a stale copy in its place (RFC 9111 §4.2.4). Never sent.
#[derive(Debug, Clone, Copy)]
pub struct Unreachable;

/// A client-facing error: the shared body, the status it answers with and, for the log, its
/// cause.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    /// Seconds a client should wait before trying again (`Retry-After`).
    retry_after: Option<u32>,
    cause: Option<Arc<str>>,
    body: ErrorBody,
}

impl ApiError {
    /// An error with `status`, `code` and a human-readable message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            retry_after: None,
            cause: None,
            body: ErrorBody::new(status.as_u16(), code, message),
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

    /// 422 listing each invalid field in `metadata.fields`.
    pub fn invalid_fields(fields: Vec<FieldError>) -> Self {
        let summary = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationError,
            format!("invalid request: {summary}"),
        )
        .with_metadata(serde_json::json!({ "fields": fields }))
    }

    /// 400 for a request that cannot be read at all (bad JSON, bad query string).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::ValidationError, message)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.body.code
    }

    /// Records what went wrong inside, for the request's log line (never sent).
    #[must_use]
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(Arc::from(cause.to_string()));
        self
    }

    /// Attaches structured details (e.g. the invalid fields).
    /// Tells the client to wait `seconds` before trying again (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    #[must_use]
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.body.metadata = metadata;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let cause = self.cause.clone();
        let mut response = (status, Json(self.body)).into_response();
        if let Some(cause) = cause {
            response.extensions_mut().insert(ErrorCause(cause));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        // Errors are never cached by shared caches.
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        // A refused body is left unread, so the connection cannot carry another request:
        // say so, and clients open a new one instead of reusing it (as nginx does).
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// `Retry-After` when the database cannot be reached: about as long as a restart takes, and
/// the breaker lets a trial through as soon as its probe finds the database back.
const DATABASE_RETRY_AFTER_SECONDS: u32 = 2;

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Timeout(after) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Timeout,
                "the database did not answer in time",
            )
            .with_cause(format_args!("database query timed out after {after:?}")),
            DbError::CircuitOpen => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::DatabaseUnavailable,
                "the database is failing: its circuit breaker is open; retry later",
            )
            .with_metadata(serde_json::json!({ "dependency": "database", "circuit": "open" }))
            .with_retry_after(DATABASE_RETRY_AFTER_SECONDS),
            DbError::Unavailable(cause) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable; nothing was written; retry later",
            )
            .with_metadata(serde_json::json!({ "dependency": "database" }))
            .with_retry_after(DATABASE_RETRY_AFTER_SECONDS)
            .with_cause(format_args!("database unavailable: {cause}")),
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::DatabaseError,
                "the database failed to answer",
            )
            .with_cause(other),
        }
    }
}

impl From<OutboundError> for ApiError {
    fn from(error: OutboundError) -> Self {
        let (status, code, message) = match &error {
            OutboundError::InvalidUrl | OutboundError::Forbidden => {
                return Self::invalid_fields(vec![FieldError::new("url", error.to_string())])
            }
            OutboundError::CircuitOpen => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::CircuitOpen,
                "outbound requests are failing: circuit open",
            ),
            OutboundError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Timeout,
                "the target did not answer in time",
            ),
            OutboundError::Unreachable(_) => (
                StatusCode::BAD_GATEWAY,
                ErrorCode::UpstreamError,
                "the target could not be reached",
            ),
            OutboundError::ServerError(_) => (
                StatusCode::BAD_GATEWAY,
                ErrorCode::UpstreamError,
                "the target answered with a server error",
            ),
        };
        // The client sees a fixed message; reqwest's text (addresses, TLS details) is logged.
        Self::new(status, code, message)
            .with_cause(format_args!("outbound request failed: {error}"))
            .with_metadata(serde_json::json!({ "dependency": "http" }))
    }
}

/// The answer when a handler panicked: `500 INTERNAL_ERROR`, with the panic's message logged
/// (through the response's [`ErrorCause`]) and never sent.
pub fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::InternalError,
        "internal error",
    )
    .with_cause(format_args!("handler panicked: {message}"))
    .into_response()
}

/// The fallback for unknown routes.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_a_503_to_retry_after_a_while() {
        for error in [DbError::Unavailable("refused".into()), DbError::CircuitOpen] {
            let error = ApiError::from(error);
            assert_eq!(error.code(), ErrorCode::DatabaseUnavailable);
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let retry_after = response.headers().get(axum::http::header::RETRY_AFTER);
            assert_eq!(retry_after.and_then(|v| v.to_str().ok()), Some("2"));
        }
        let timeout = ApiError::from(DbError::Timeout(std::time::Duration::from_secs(5)));
        let response = timeout.into_response();
        assert!(!response
            .headers()
            .contains_key(axum::http::header::RETRY_AFTER));
    }
}
