//! The one error model every client sees: `{"error", "code", "statusCode", "metadata"}` with a
//! stable machine-readable `code`. Causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::database::DbError;
use super::outbound::OutboundError;

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
    /// The client spent its rate-limit budget; retry after `Retry-After` seconds.
    RateLimited,
    /// A dependency's circuit breaker is open; retry later.
    CircuitOpen,
    /// The body is larger than the route accepts.
    PayloadTooLarge,
    /// The body's media type is not one the route accepts.
    UnsupportedMediaType,
    /// The database failed or refused the query.
    DatabaseError,
    /// The database did not answer in time.
    Timeout,
    /// A dependency is unavailable; retry later.
    ServiceUnavailable,
    /// An outbound request failed: the target could not be reached or answered an error.
    UpstreamError,
    /// Something failed inside the server.
    InternalError,
}

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
        self.code
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
            DbError::Timeout(after) => {
                tracing::warn!(?after, "database query timed out");
                Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::Timeout,
                    "the database did not answer in time",
                )
            }
            DbError::CircuitOpen => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::CircuitOpen,
                "the database is failing: its circuit breaker is open; retry later",
            )
            .with_metadata(serde_json::json!({ "dependency": "database" })),
            DbError::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ServiceUnavailable,
                    "the database is unavailable",
                )
            }
            other => {
                tracing::error!(error = %other, "database error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::DatabaseError,
                    "the database failed to answer",
                )
            }
        }
    }
}

impl From<OutboundError> for ApiError {
    fn from(error: OutboundError) -> Self {
        let (status, code) = match &error {
            OutboundError::InvalidUrl | OutboundError::Forbidden => {
                return Self::invalid_fields(vec![FieldError::new("url", error.to_string())])
            }
            OutboundError::CircuitOpen => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::CircuitOpen),
            OutboundError::Timeout => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::Timeout),
            OutboundError::Unreachable(_) | OutboundError::ServerError(_) => {
                (StatusCode::BAD_GATEWAY, ErrorCode::UpstreamError)
            }
        };
        tracing::warn!(%error, "outbound request failed");
        Self::new(status, code, error.to_string())
            .with_metadata(serde_json::json!({ "dependency": "http" }))
    }
}

/// The fallback for unknown routes.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("route")
}
