//! Signed image URLs: with a signing key configured, the edge transforms only
//! `/cdn-cgi/image/…` URLs whose `sig=` option is the HMAC-SHA256 of their canonical options and
//! source, so that nobody else can make the edge produce (and store) variants at will. The
//! origin signs the URLs it renders with the same key, through [`sign`].

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error_body::ErrorCode;
use crate::image::{ImageOptionError, ImageRequest, PREFIX};

/// Hex digits of the signature: the leftmost 128 bits of the HMAC.
pub const SIGNATURE_HEX_LEN: usize = 32;

/// Why a transformation URL's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Signing is on and the URL has no `sig=`.
    #[error("this image URL must be signed (sig=)")]
    Missing,
    /// The signature does not match the options and source.
    #[error("the image URL's signature does not match")]
    Invalid,
}

impl SignatureError {
    /// The stable code of its error body.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Missing => ErrorCode::ImageSignatureRequired,
            Self::Invalid => ErrorCode::ImageSignatureInvalid,
        }
    }
}

fn mac(key: &[u8], request: &ImageRequest) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(request.canonical_options().as_bytes());
    mac.update(b"\n");
    mac.update(request.source.as_bytes());
    mac
}

/// The signature of `request` under `key`, as lower-case hex.
pub fn signature(key: &[u8], request: &ImageRequest) -> String {
    let tag = mac(key, request).finalize().into_bytes();
    tag.iter()
        .take(SIGNATURE_HEX_LEN / 2)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Checks `request`'s `sig=` against `key`, in constant time.
pub fn verify(key: &[u8], request: &ImageRequest) -> Result<(), SignatureError> {
    let given = request
        .signature
        .as_deref()
        .ok_or(SignatureError::Missing)?;
    let bytes = decode_hex(given).ok_or(SignatureError::Invalid)?;
    if bytes.len() != SIGNATURE_HEX_LEN / 2 {
        return Err(SignatureError::Invalid);
    }
    mac(key, request)
        .verify_truncated_left(&bytes)
        .map_err(|_| SignatureError::Invalid)
}

/// The signed URL of `options` (Cloudflare's option string) applied to `source`:
/// `/cdn-cgi/image/<options>,sig=<hex><source>`.
pub fn sign(key: &[u8], options: &str, source: &str) -> Result<String, ImageOptionError> {
    let request = ImageRequest::parse(&format!("{PREFIX}{options}{source}"))?;
    let signature = signature(key, &request);
    let separator = if options.is_empty() { "" } else { "," };
    Ok(format!(
        "{PREFIX}{options}{separator}sig={signature}{source}"
    ))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a signing key";

    fn parsed(url: &str) -> ImageRequest {
        ImageRequest::parse(url).expect("valid")
    }

    #[test]
    fn signed_urls_verify_and_tampering_is_caught() {
        let url = sign(KEY, "width=640,format=auto", "/images/a.png").expect("signs");
        assert!(
            url.starts_with("/cdn-cgi/image/width=640,format=auto,sig="),
            "{url}"
        );
        assert_eq!(verify(KEY, &parsed(&url)), Ok(()));
        // The same image asked for with options in another order or spelling still verifies.
        let sig = parsed(&url).signature.expect("has sig");
        let reordered = format!("/cdn-cgi/image/sig={sig},f=auto,w=640/images/a.png");
        assert_eq!(verify(KEY, &parsed(&reordered)), Ok(()));

        let wider = url.replace("width=640", "width=4000");
        assert_eq!(verify(KEY, &parsed(&wider)), Err(SignatureError::Invalid));
        let other = url.replace("/images/a.png", "/images/b.png");
        assert_eq!(verify(KEY, &parsed(&other)), Err(SignatureError::Invalid));
        assert_eq!(
            verify(b"another key", &parsed(&url)),
            Err(SignatureError::Invalid)
        );
        let unsigned = parsed("/cdn-cgi/image/width=640/images/a.png");
        assert_eq!(verify(KEY, &unsigned), Err(SignatureError::Missing));
        let short = parsed(&format!(
            "/cdn-cgi/image/width=640,format=auto,sig={}/images/a.png",
            &sig[..8]
        ));
        assert_eq!(verify(KEY, &short), Err(SignatureError::Invalid));
        let junk = parsed("/cdn-cgi/image/width=640,format=auto,sig=zz/images/a.png");
        assert_eq!(verify(KEY, &junk), Err(SignatureError::Invalid));
    }

    #[test]
    fn the_signature_is_not_part_of_the_canonical_options() {
        let url = sign(KEY, "width=320", "/images/a.png").expect("signs");
        assert_eq!(parsed(&url).canonical_options(), "width=320");
    }
}
