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

/// A client-facing error: the shared body, the status it answers with and, for the log, its
/// cause.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    cause: Option<Arc<str>>,
    body: ErrorBody,
}

impl ApiError {
    /// An error with `status`, `code` and a human-readable message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
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
                ErrorCode::CircuitOpen,
                "the database is failing: its circuit breaker is open; retry later",
            )
            .with_metadata(serde_json::json!({ "dependency": "database" })),
            DbError::Unavailable(cause) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "the database is unavailable",
            )
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
