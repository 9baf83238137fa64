//! The error body both tiers send to clients, and every stable code it can carry.
//!
//! ```json
//! {"error": "the origin did not answer in time", "code": "ORIGIN_TIMEOUT", "statusCode": 504, "metadata": {}}
//! ```
//!
//! `error` is for people and may change; `code` is for programs and never does: each
//! [`ErrorCode`] is sent byte for byte as [`ErrorCode::as_str`] gives it. `statusCode` repeats
//! the HTTP status; `metadata` carries structured details (the invalid fields, the failing
//! dependency) and is `{}` when there are none. Causes stay in the logs: a message never names
//! an internal error.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Every stable code either tier sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // Either tier: the request.
    /// The request is malformed or a field is invalid.
    ValidationError,
    /// No such resource.
    NotFound,
    /// The method is not allowed on this resource.
    MethodNotAllowed,
    /// Credentials are missing or wrong.
    Unauthorized,
    /// The body is larger than the route accepts.
    PayloadTooLarge,
    /// The body's media type is not one the route accepts.
    UnsupportedMediaType,
    /// The client spent its rate-limit budget; retry after `Retry-After` seconds.
    RateLimited,

    // The origin.
    /// Admin routes are off: no `ADMIN_TOKEN` is configured.
    AdminDisabled,
    /// A dependency's circuit breaker is open; retry later.
    CircuitOpen,
    /// The database failed or refused the query.
    DatabaseError,
    /// The database did not answer in time.
    Timeout,
    /// The database cannot be reached (down, restarting, or its breaker open); nothing was
    /// written. Retry after `Retry-After` seconds.
    DatabaseUnavailable,
    /// A dependency is unavailable; retry later.
    ServiceUnavailable,
    /// An outbound request failed: the target could not be reached or answered an error.
    UpstreamError,
    /// Something failed inside the server.
    InternalError,

    // The edge: requests and its own failures.
    /// The request has no host, or a target that can be neither cached nor forwarded.
    BadRequest,
    /// `only-if-cached`, and nothing usable is stored (RFC 9111 §5.2.1.7).
    NotCached,
    /// Purging is off: no `EDGE_PURGE_TOKEN` is configured.
    PurgeDisabled,
    /// The edge could not complete the request.
    EdgeError,

    // The edge: the origin behind it.
    /// The origin did not answer in time.
    OriginTimeout,
    /// The origin could not be reached.
    OriginUnreachable,
    /// The origin sent a response that is not valid HTTP.
    OriginInvalidResponse,

    // The edge: image transformations.
    /// The transformation URL names no valid source path.
    ImageSourceInvalid,
    /// An unknown, malformed or repeated transformation option.
    ImageOptionInvalid,
    /// A transformation option's value is of the wrong type or out of bounds.
    ImageOptionOutOfRange,
    /// Signing is on and the transformation URL has no `sig=`.
    ImageSignatureRequired,
    /// The transformation URL's signature does not match.
    ImageSignatureInvalid,
    /// The origin has no such source image.
    ImageSourceNotFound,
    /// The origin answered the source image's request with an error.
    ImageSourceFailed,
    /// The source image has more bytes than accepted.
    ImageSourceTooLarge,
    /// The source image declares more pixels than accepted.
    ImageTooManyPixels,
    /// The source is not an image format the edge reads.
    ImageUnsupported,
    /// The source image's bytes do not decode.
    ImageUndecodable,
    /// Encoding the transformed image failed.
    ImageEncodeFailed,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 34] = [
        Self::ValidationError,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::AdminDisabled,
        Self::CircuitOpen,
        Self::DatabaseError,
        Self::Timeout,
        Self::DatabaseUnavailable,
        Self::ServiceUnavailable,
        Self::UpstreamError,
        Self::InternalError,
        Self::BadRequest,
        Self::NotCached,
        Self::PurgeDisabled,
        Self::EdgeError,
        Self::OriginTimeout,
        Self::OriginUnreachable,
        Self::OriginInvalidResponse,
        Self::ImageSourceInvalid,
        Self::ImageOptionInvalid,
        Self::ImageOptionOutOfRange,
        Self::ImageSignatureRequired,
        Self::ImageSignatureInvalid,
        Self::ImageSourceNotFound,
        Self::ImageSourceFailed,
        Self::ImageSourceTooLarge,
        Self::ImageTooManyPixels,
        Self::ImageUnsupported,
        Self::ImageUndecodable,
        Self::ImageEncodeFailed,
    ];

    /// The code as it is sent, which is also its serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "VALIDATION_ERROR",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::RateLimited => "RATE_LIMITED",
            Self::AdminDisabled => "ADMIN_DISABLED",
            Self::CircuitOpen => "CIRCUIT_OPEN",
            Self::DatabaseError => "DATABASE_ERROR",
            Self::Timeout => "TIMEOUT",
            Self::DatabaseUnavailable => "DATABASE_UNAVAILABLE",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::UpstreamError => "UPSTREAM_ERROR",
            Self::InternalError => "INTERNAL_ERROR",
            Self::BadRequest => "BAD_REQUEST",
            Self::NotCached => "NOT_CACHED",
            Self::PurgeDisabled => "PURGE_DISABLED",
            Self::EdgeError => "EDGE_ERROR",
            Self::OriginTimeout => "ORIGIN_TIMEOUT",
            Self::OriginUnreachable => "ORIGIN_UNREACHABLE",
            Self::OriginInvalidResponse => "ORIGIN_INVALID_RESPONSE",
            Self::ImageSourceInvalid => "IMAGE_SOURCE_INVALID",
            Self::ImageOptionInvalid => "IMAGE_OPTION_INVALID",
            Self::ImageOptionOutOfRange => "IMAGE_OPTION_OUT_OF_RANGE",
            Self::ImageSignatureRequired => "IMAGE_SIGNATURE_REQUIRED",
            Self::ImageSignatureInvalid => "IMAGE_SIGNATURE_INVALID",
            Self::ImageSourceNotFound => "IMAGE_SOURCE_NOT_FOUND",
            Self::ImageSourceFailed => "IMAGE_SOURCE_FAILED",
            Self::ImageSourceTooLarge => "IMAGE_SOURCE_TOO_LARGE",
            Self::ImageTooManyPixels => "IMAGE_TOO_MANY_PIXELS",
            Self::ImageUnsupported => "IMAGE_UNSUPPORTED",
            Self::ImageUndecodable => "IMAGE_UNDECODABLE",
            Self::ImageEncodeFailed => "IMAGE_ENCODE_FAILED",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response: `{"error", "code", "statusCode", "metadata"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// The stable code, for programs.
    pub code: ErrorCode,
    /// The response's HTTP status.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// Structured details; `{}` when there are none.
    #[serde(default = "no_metadata")]
    pub metadata: Value,
}

fn no_metadata() -> Value {
    Value::Object(Map::new())
}

impl ErrorBody {
    /// An error answered with `status`, carrying `code` and a message for people.
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
            code,
            status_code: status,
            metadata: no_metadata(),
        }
    }

    /// The same error with structured details (e.g. the invalid fields).
    #[must_use]
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_sent_as_its_serde_form() {
        for code in ErrorCode::ALL {
            let serialised = serde_json::to_value(code).expect("a code serialises");
            assert_eq!(serialised, Value::String(code.as_str().to_owned()));
            let parsed: ErrorCode =
                serde_json::from_value(serialised).expect("a code deserialises");
            assert_eq!(parsed, code);
            assert_eq!(code.to_string(), code.as_str());
        }
    }

    #[test]
    fn all_lists_each_code_once() {
        for (at, code) in ErrorCode::ALL.iter().enumerate() {
            assert!(!ErrorCode::ALL[..at].contains(code), "{code} twice");
        }
    }

    #[test]
    fn codes_are_the_ones_clients_already_parse() {
        // These strings are the contract with clients: never change one.
        let sent: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(
            sent,
            [
                "VALIDATION_ERROR",
                "NOT_FOUND",
                "METHOD_NOT_ALLOWED",
                "UNAUTHORIZED",
                "PAYLOAD_TOO_LARGE",
                "UNSUPPORTED_MEDIA_TYPE",
                "RATE_LIMITED",
                "ADMIN_DISABLED",
                "CIRCUIT_OPEN",
                "DATABASE_ERROR",
                "TIMEOUT",
                "DATABASE_UNAVAILABLE",
                "SERVICE_UNAVAILABLE",
                "UPSTREAM_ERROR",
                "INTERNAL_ERROR",
                "BAD_REQUEST",
                "NOT_CACHED",
                "PURGE_DISABLED",
                "EDGE_ERROR",
                "ORIGIN_TIMEOUT",
                "ORIGIN_UNREACHABLE",
                "ORIGIN_INVALID_RESPONSE",
                "IMAGE_SOURCE_INVALID",
                "IMAGE_OPTION_INVALID",
                "IMAGE_OPTION_OUT_OF_RANGE",
                "IMAGE_SIGNATURE_REQUIRED",
                "IMAGE_SIGNATURE_INVALID",
                "IMAGE_SOURCE_NOT_FOUND",
                "IMAGE_SOURCE_FAILED",
                "IMAGE_SOURCE_TOO_LARGE",
                "IMAGE_TOO_MANY_PIXELS",
                "IMAGE_UNSUPPORTED",
                "IMAGE_UNDECODABLE",
                "IMAGE_ENCODE_FAILED",
            ]
        );
    }

    fn json(body: &ErrorBody) -> String {
        serde_json::to_string(body).expect("an error body serialises")
    }

    #[test]
    fn the_body_is_the_wire_format() {
        let body = ErrorBody::new(504, ErrorCode::OriginTimeout, "the origin did not answer");
        assert_eq!(
            json(&body),
            r#"{"error":"the origin did not answer","code":"ORIGIN_TIMEOUT","statusCode":504,"metadata":{}}"#
        );
        let detailed = ErrorBody::new(503, ErrorCode::CircuitOpen, "retry later")
            .with_metadata(serde_json::json!({ "dependency": "database" }));
        assert_eq!(
            json(&detailed),
            r#"{"error":"retry later","code":"CIRCUIT_OPEN","statusCode":503,"metadata":{"dependency":"database"}}"#
        );
    }

    #[test]
    fn a_body_reads_back_and_metadata_defaults_to_empty() {
        let body = ErrorBody::new(
            401,
            ErrorCode::Unauthorized,
            "a valid bearer token is required",
        );
        let parsed: ErrorBody = serde_json::from_str(&json(&body)).expect("reads back");
        assert_eq!(parsed, body);
        let bare: ErrorBody =
            serde_json::from_str(r#"{"error":"x","code":"NOT_CACHED","statusCode":504}"#)
                .expect("metadata may be left out");
        assert_eq!(bare.metadata, serde_json::json!({}));
    }
}
