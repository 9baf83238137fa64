//! Opaque pagination cursors: a position serialized as JSON and encoded as URL-safe base64, so
//! clients pass it back untouched and cannot depend on its contents.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::http::errors::{ApiError, FieldError};

/// `position` as an opaque cursor.
pub fn encode<T: Serialize>(position: &T) -> String {
    // Serializing plain data into a Vec cannot fail.
    let json = serde_json::to_vec(position).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The position inside `cursor`, or a 422 naming the `cursor` field.
pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| {
            ApiError::invalid_fields(vec![FieldError::new(
                "cursor",
                "not a cursor this list returned",
            )])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode(&(17_i64, "updated_at"));
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let back: (i64, String) = decode(&cursor).expect("round trip");
        assert_eq!(back, (17, "updated_at".to_owned()));
        let error = decode::<(i64, String)>("not!base64").expect_err("garbage");
        assert_eq!(error.status().as_u16(), 422);
    }
}
