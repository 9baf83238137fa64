//! Signed webhook deliveries: an event is `POST`ed as JSON with `Rampart-Event-Id` and
//! `Rampart-Signature: t={unix seconds},v1={hex HMAC-SHA256(secret, "{t}.{body}")}`, Stripe's
//! scheme, so that a receiver can tell the delivery is ours and fresh ([`verify`]). The outcome
//! is classified for the job system: `2xx` delivered; `429`, `5xx` and transport failures worth
//! retrying (with `Retry-After` on `429` and `503`); any other status refused for good. Failures
//! carry the status and a short excerpt of the answer for the dead-letter record.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{redirect, StatusCode, Url};
use sha2::Sha256;

use crate::core::dependencies::cloudflare_purge::{describe_transport, parse_retry_after};

/// The header naming the event, so that receivers can drop repeated deliveries.
pub const EVENT_ID_HEADER: &str = "Rampart-Event-Id";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Rampart-Signature";
/// Most characters of a failed answer kept for the dead-letter record.
pub const EXCERPT_CHARS: usize = 200;
/// Bytes of a failed answer read at most: enough for the excerpt in any UTF-8.
const EXCERPT_BYTES: usize = EXCERPT_CHARS * 4;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// `429` or `5xx`: the receiver cannot take it now; worth retrying.
    #[error("the receiver answered {status}, to be retried: {excerpt}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// How long the receiver asked to wait (`Retry-After` on `429` and `503`).
        retry_after: Option<Duration>,
        /// The start of its answer, at most [`EXCERPT_CHARS`] characters.
        excerpt: String,
    },
    /// Any other status that is not `2xx` (redirects are not followed): retrying will not help.
    #[error("the receiver refused the delivery with {status}: {excerpt}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of its answer, at most [`EXCERPT_CHARS`] characters.
        excerpt: String,
    },
    /// No answer: the connection failed, broke off, or took longer than the timeout.
    #[error("the receiver could not be reached: {0}")]
    Transport(String),
    /// The event id cannot be sent in a header.
    #[error("the event id is not a valid header value")]
    InvalidEventId,
    /// The URL or the secret cannot be used.
    #[error("the webhook is misconfigured: {0}")]
    InvalidConfig(String),
}

impl WebhookError {
    /// How long to wait before retrying, when the receiver said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying the same delivery cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Unavailable { .. } | Self::Transport(_))
    }

    /// The receiver's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unavailable { status, .. } | Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header has no `t=` timestamp or no `v1=` hex signature.
    #[error("the signature header is malformed")]
    Malformed,
    /// No `v1` signature matches the body under the secret.
    #[error("the signature does not match")]
    Mismatch,
    /// The signature matches but its timestamp is too far from now (a replay, or a skewed clock).
    #[error("the signature's timestamp is outside the tolerance")]
    OutsideTolerance,
}

/// Where events go and the secret they are signed with; cheap to clone. Its `Debug` never
/// shows the secret.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: Url,
    secret: Vec<u8>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook to `url` (absolute `http(s)`) signed with `secret`, each delivery bounded by
    /// `timeout`, redirects not followed.
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Result<Self, WebhookError> {
        let url = Url::parse(url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or_else(|| WebhookError::InvalidConfig(format!("{url:?} is not an http(s) URL")))?;
        if secret.is_empty() {
            return Err(WebhookError::InvalidConfig(
                "the secret is empty".to_owned(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|error| WebhookError::InvalidConfig(error.to_string()))?;
        Ok(Self {
            client,
            url,
            secret: secret.as_bytes().to_vec(),
        })
    }

    /// Delivers `body` (JSON) as event `event_id`, signed now; the receiver's `2xx` status when
    /// delivered.
    pub async fn deliver(&self, event_id: &str, body: &[u8]) -> Result<u16, WebhookError> {
        let event_id = HeaderValue::from_str(event_id).map_err(|_| WebhookError::InvalidEventId)?;
        let signature = sign(&self.secret, unix_now(), body);
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id)
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(transport)?;
        outcome(response).await
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The delivery's outcome from the receiver's answer.
async fn outcome(response: reqwest::Response) -> Result<u16, WebhookError> {
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now())),
        _ => None,
    };
    let excerpt = excerpt(response).await;
    let status = status.as_u16();
    if status == 429 || (500..600).contains(&status) {
        Err(WebhookError::Unavailable {
            status,
            retry_after,
            excerpt,
        })
    } else {
        Err(WebhookError::Refused { status, excerpt })
    }
}

/// The start of the answer's body, at most [`EXCERPT_CHARS`] characters, reading no more
/// than needed; what could not be read is left out.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes)
        .trim()
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

/// The transport failure `error` stands for.
fn transport(error: reqwest::Error) -> WebhookError {
    WebhookError::Transport(describe_transport(error))
}

/// HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Rampart-Signature` value for `body` sent at `timestamp` (Unix seconds):
/// `t={timestamp},v1={hex HMAC-SHA256(secret, "{timestamp}.{body}")}`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Checks a `Rampart-Signature` `header` against `body`, as a receiver does: one of its `v1`
/// signatures (several during a secret rotation; other schemes ignored) must match, compared
/// in constant time, and its timestamp must be within `tolerance` of `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let (timestamp, signatures) = parse_signature(header)?;
    let expected = mac(secret, timestamp, body);
    let matches = signatures
        .iter()
        .any(|signature| expected.clone().verify_slice(signature).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(())
}

/// The timestamp and the decoded `v1` signatures of a signature header.
fn parse_signature(header: &str) -> Result<(u64, Vec<Vec<u8>>), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<u64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok((timestamp, signatures)),
        _ => Err(SignatureError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::HeaderMap;

    use super::*;

    const SECRET: &[u8] = b"whsec_rampart_test";
    const BODY: &[u8] = br#"{"event":"purge.completed","id":"evt_1"}"#;
    const TOLERANCE: Duration = Duration::from_secs(300);

    /// A server answering every request with `status`, `headers` and `body`.
    async fn canned(
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: String,
    ) -> String {
        let app = axum::Router::new().fallback(move || async move {
            let status = axum::http::StatusCode::from_u16(status).expect("a status");
            let mut response = axum::response::IntoResponse::into_response((status, body));
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(*name, axum::http::HeaderValue::from_static(value));
            }
            response
        });
        serve(app).await
    }

    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
        format!("http://{addr}/hooks/rampart")
    }

    fn webhook(url: &str) -> Webhook {
        Webhook::new(url, "whsec_rampart_test", Duration::from_secs(5)).expect("a webhook")
    }

    #[test]
    fn the_signature_matches_an_independent_computation() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_rampart_test",b"1700000000."+b"{\"event\":\"purge.completed\",\"id\":\"evt_1\"}",hashlib.sha256).hexdigest())'
        assert_eq!(
            sign(SECRET, 1_700_000_000, BODY),
            "t=1700000000,v1=fb5baf9ad0e295b38983db3e7585c8da7dfb8b840d8a8eb18bb3b72003194d00"
        );
    }

    #[test]
    fn verify_accepts_a_fresh_signature_and_refuses_tampering_and_age() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_100, TOLERANCE),
            Ok(())
        );
        let tampered = br#"{"event":"purge.completed","id":"evt_2"}"#;
        assert_eq!(
            verify(SECRET, &header, tampered, 1_700_000_100, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another secret", &header, BODY, 1_700_000_100, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_301, TOLERANCE),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_699_999_000, TOLERANCE),
            Err(SignatureError::OutsideTolerance)
        );
    }

    #[test]
    fn verify_reads_stripes_header_shape() {
        let genuine = sign(SECRET, 1_700_000_000, BODY);
        let v1 = genuine.split_once(",v1=").expect("a v1").1;
        let rotated = format!("t=1700000000, v1={}, v1={v1}, v0=ignored", "00".repeat(32));
        assert_eq!(
            verify(SECRET, &rotated, BODY, 1_700_000_000, TOLERANCE),
            Ok(())
        );
        for malformed in [
            "",
            "v1=abcd",
            "t=1700000000",
            "t=soon,v1=abcd",
            "t=1700000000,v1=zz",
        ] {
            assert_eq!(
                verify(SECRET, malformed, BODY, 1_700_000_000, TOLERANCE),
                Err(SignatureError::Malformed),
                "{malformed:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_delivery_reaches_a_receiver_that_verifies_it() {
        type Seen = Arc<Mutex<Vec<String>>>;
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                "/hooks/rampart",
                axum::routing::post(
                    |axum::extract::State(seen): axum::extract::State<Seen>,
                     headers: HeaderMap,
                     body: axum::body::Bytes| async move {
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let verified = verify(
                            SECRET,
                            &header(SIGNATURE_HEADER),
                            &body,
                            unix_now(),
                            TOLERANCE,
                        );
                        if verified.is_err() || header("content-type") != "application/json" {
                            return axum::http::StatusCode::BAD_REQUEST;
                        }
                        seen.lock().expect("lock").push(header(EVENT_ID_HEADER));
                        axum::http::StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(Arc::clone(&seen));
        let url = serve(app).await;
        assert_eq!(webhook(&url).deliver("evt_1", BODY).await, Ok(204));
        assert_eq!(*seen.lock().expect("lock"), ["evt_1"]);

        let forged =
            Webhook::new(&url, "not the secret", Duration::from_secs(5)).expect("a webhook");
        let error = forged.deliver("evt_2", BODY).await.expect_err("refused");
        assert!(
            matches!(error, WebhookError::Refused { status: 400, .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_500_is_retryable_and_keeps_an_excerpt() {
        let url = canned(500, &[("retry-after", "60")], "database is down".into()).await;
        let error = webhook(&url)
            .deliver("evt_1", BODY)
            .await
            .expect_err("failed");
        assert_eq!(
            error,
            WebhookError::Unavailable {
                status: 500,
                retry_after: None,
                excerpt: "database is down".into()
            }
        );
        assert!(!error.is_permanent());
        assert_eq!(error.status(), Some(500));
    }

    #[tokio::test]
    async fn a_400_is_permanent_with_an_excerpt_of_at_most_200_characters() {
        let url = canned(400, &[], "é".repeat(5_000)).await;
        let error = webhook(&url)
            .deliver("evt_1", BODY)
            .await
            .expect_err("refused");
        assert!(error.is_permanent());
        assert_eq!(error.retry_after(), None);
        match error {
            WebhookError::Refused {
                status: 400,
                excerpt,
            } => {
                assert_eq!(excerpt, "é".repeat(EXCERPT_CHARS));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_429_or_503_carries_its_retry_after() {
        let url = canned(429, &[("retry-after", "30")], "slow down".into()).await;
        let error = webhook(&url)
            .deliver("evt_1", BODY)
            .await
            .expect_err("throttled");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
        assert!(!error.is_permanent());

        let url = canned(
            503,
            &[("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT")],
            String::new(),
        )
        .await;
        let error = webhook(&url)
            .deliver("evt_1", BODY)
            .await
            .expect_err("unavailable");
        assert!(error
            .retry_after()
            .is_some_and(|wait| wait > Duration::from_secs(3600)));
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_an_unreachable_receiver_is_retryable() {
        let url = canned(
            301,
            &[("location", "http://127.0.0.1:9/elsewhere")],
            String::new(),
        )
        .await;
        let error = webhook(&url)
            .deliver("evt_1", BODY)
            .await
            .expect_err("refused");
        assert!(
            matches!(error, WebhookError::Refused { status: 301, .. }),
            "{error:?}"
        );

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("an address");
        drop(listener);
        let error = webhook(&format!("http://{addr}/hooks"))
            .deliver("evt_1", BODY)
            .await
            .expect_err("unreachable");
        assert!(matches!(error, WebhookError::Transport(_)), "{error:?}");
        assert!(!error.is_permanent());
        assert_eq!(error.status(), None);
    }

    #[tokio::test]
    async fn bad_configuration_and_event_ids_are_permanent_and_the_secret_is_never_shown() {
        for url in [
            "not a url",
            "ftp://example.com/hook",
            "mailto:ops@example.com",
        ] {
            let error =
                Webhook::new(url, "s3cret-value", Duration::from_secs(1)).expect_err("bad URL");
            assert!(matches!(error, WebhookError::InvalidConfig(_)), "{error:?}");
        }
        let error = Webhook::new("https://example.com/hook", "", Duration::from_secs(1))
            .expect_err("empty");
        assert!(error.is_permanent());

        let hook = Webhook::new(
            "https://example.com/hook",
            "s3cret-value",
            Duration::from_secs(1),
        )
        .expect("a webhook");
        assert!(!format!("{hook:?}").contains("s3cret-value"));
        let error = hook.deliver("evt\n1", BODY).await.expect_err("bad id");
        assert_eq!(error, WebhookError::InvalidEventId);
        assert!(error.is_permanent());
    }
}
