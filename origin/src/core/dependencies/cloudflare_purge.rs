//! Cloudflare's cache purge API as a purge target: `POST {api_base}/zones/{zone_id}/purge_cache`
//! with a bearer token, purging by cache-tag, by URL or everything. A request is split into as
//! many calls as Cloudflare's per-call limits need; each answer is read from Cloudflare's
//! envelope and classified for the caller's retries: rate limited (with `Retry-After`),
//! unavailable, unreachable, or rejected for good. The token is never logged nor displayed.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{redirect, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// Cloudflare's API, unless configured otherwise (tests point it at a fake).
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";

// Cloudflare's limits, as documented in "Purge cache" › availability and limits
// (developers.cloudflare.com/cache/how-to/purge-cache/), "Purge cache by cache-tags" and
// "Rate limits" (developers.cloudflare.com/fundamentals/api/reference/limits/):
// - per call: at most 100 cache-tags (likewise hostnames and prefixes) on every plan; at most
//   100 URLs on Free, Pro and Business, 500 on Enterprise. A tag in a purge call is at most
//   1,024 characters.
// - per account, token buckets: tag, hostname, prefix and purge-everything calls 5 per minute
//   with a bucket of 25 (Free), 5/s and 25 (Pro), 10/s and 50 (Business), 50/s and 500
//   (Enterprise); URLs 800/s (Free), 1,500/s (Pro, Business), 3,000/s (Enterprise), as a moving
//   average.
// - the whole API: 1,200 requests per 5 minutes per user, 200 per second per IP. Past a limit
//   the answer is `429` with `Retry-After` in whole seconds, rounded up.
// So each call is filled to the per-call maximum (the fewest calls against the request-rate
// buckets), and nothing is paced here: the first `429` ends the purge with its `Retry-After`,
// for the caller's retry. Purges are idempotent, so retrying a whole request is safe.

/// Most cache-tags one call may name, on every plan.
pub const MAX_TAGS_PER_CALL: usize = 100;
/// Most URLs one call may name: 100 below Enterprise (Enterprise takes 500), so it fits every
/// plan.
pub const MAX_FILES_PER_CALL: usize = 100;
/// Longest cache-tag a purge call may name, in characters.
pub const MAX_TAG_LEN: usize = 1024;

/// What to purge: tags, URLs, or everything (which makes the others unnecessary).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PurgeRequest {
    /// Cache-tags, as the origin sent them in `Cache-Tag`.
    pub tags: Vec<String>,
    /// Absolute `http(s)` URLs.
    pub files: Vec<String>,
    /// Purge the whole zone.
    pub everything: bool,
}

/// What a purge took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    /// API calls made (none for an empty request).
    pub calls: usize,
}

/// Why a purge failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudflareError {
    /// `429`: over one of Cloudflare's rate limits; `retry_after` from `Retry-After`.
    #[error("Cloudflare is rate limiting purges ({})", wait(retry_after))]
    RateLimited {
        /// How long Cloudflare asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// `success: false` outside `429` and `5xx`: the call will not succeed as it is.
    #[error("Cloudflare rejected the purge (HTTP {status}): {}", describe(errors))]
    Rejected {
        /// The HTTP status (Cloudflare answers some refusals with `200`).
        status: u16,
        /// Cloudflare's `errors`, as `(code, message)`.
        errors: Vec<(i64, String)>,
    },
    /// `5xx`: Cloudflare's API is failing for now.
    #[error("Cloudflare's API is unavailable (HTTP {status})")]
    Unavailable {
        /// The HTTP status.
        status: u16,
    },
    /// No answer: the connection failed, broke off, or took longer than the timeout.
    #[error("Cloudflare's API could not be reached: {0}")]
    Transport(String),
    /// An answer that is not Cloudflare's envelope, or contradicts itself.
    #[error("Cloudflare's answer was not understood: {0}")]
    InvalidResponse(String),
    /// The API base, zone or token cannot be used.
    #[error("the Cloudflare purge target is misconfigured: {0}")]
    InvalidConfig(String),
    /// A tag or URL Cloudflare would refuse; nothing was sent.
    #[error("the purge request is invalid: {0}")]
    InvalidRequest(String),
}

impl CloudflareError {
    /// How long to wait before retrying, when Cloudflare said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying the same request cannot help (configuration, or Cloudflare's refusal).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. } | Self::InvalidConfig(_) | Self::InvalidRequest(_)
        )
    }
}

fn wait(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("retry after {} s", wait.as_secs()),
        None => "no Retry-After".to_owned(),
    }
}

fn describe(errors: &[(i64, String)]) -> String {
    if errors.is_empty() {
        return "no error given".to_owned();
    }
    let described: Vec<String> = errors
        .iter()
        .map(|(code, message)| format!("{code} {message}"))
        .collect();
    described.join("; ")
}

/// Cloudflare's answer: `{"success", "errors": [{"code", "message"}], "messages", "result"}`;
/// only what decides the outcome is read.
#[derive(Debug, Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// A zone's purge endpoint and the token for it; cheap to clone. Its `Debug` shows the
/// endpoint, never the token.
#[derive(Debug, Clone)]
pub struct CloudflarePurge {
    client: reqwest::Client,
    endpoint: Url,
    /// `Bearer {token}`, marked sensitive so that no `Debug` shows it.
    authorization: HeaderValue,
}

impl CloudflarePurge {
    /// A purge target for `zone_id` at `api_base` ([`DEFAULT_API_BASE`] for Cloudflare), with an
    /// API token allowed to purge the zone; each call bounded by `timeout`, redirects not followed.
    pub fn new(
        api_base: &str,
        zone_id: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Self, CloudflareError> {
        let endpoint = endpoint(api_base, zone_id)?;
        let authorization = authorization(token)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|error| CloudflareError::InvalidConfig(error.to_string()))?;
        Ok(Self {
            client,
            endpoint,
            authorization,
        })
    }

    /// Purges everything in `request`, in as many API calls as Cloudflare's per-call limit
    /// needs, stopping at the first failure (the calls before it took effect).
    pub async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReport, CloudflareError> {
        let bodies = request.bodies()?;
        for body in &bodies {
            self.call(body).await?;
        }
        Ok(PurgeReport {
            calls: bodies.len(),
        })
    }

    async fn call(&self, body: &Value) -> Result<(), CloudflareError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let body = response.bytes().await.map_err(transport)?;
        classify(status, retry_after, &body)
    }
}

/// `{api_base}/zones/{zone_id}/purge_cache`, if both can be used.
fn endpoint(api_base: &str, zone_id: &str) -> Result<Url, CloudflareError> {
    if zone_id.is_empty() || !zone_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CloudflareError::InvalidConfig(format!(
            "{zone_id:?} is not a zone identifier"
        )));
    }
    let not_a_base = || CloudflareError::InvalidConfig(format!("{api_base:?} is not an API base"));
    let base = api_base.trim_end_matches('/');
    let url =
        Url::parse(&format!("{base}/zones/{zone_id}/purge_cache")).map_err(|_| not_a_base())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(not_a_base());
    }
    Ok(url)
}

/// The `Authorization` header for `token`; its errors never repeat the token.
fn authorization(token: &str) -> Result<HeaderValue, CloudflareError> {
    if token.trim().is_empty() {
        return Err(CloudflareError::InvalidConfig(
            "the API token is empty".to_owned(),
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        CloudflareError::InvalidConfig("the API token has characters a header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

impl PurgeRequest {
    /// The body of each call, after checking every tag and URL.
    fn bodies(&self) -> Result<Vec<Value>, CloudflareError> {
        if self.everything {
            return Ok(vec![json!({ "purge_everything": true })]);
        }
        let tags = unique(&self.tags);
        let files = unique(&self.files);
        tags.iter().try_for_each(|tag| check_tag(tag))?;
        files.iter().try_for_each(|file| check_file(file))?;
        let tag_calls = tags
            .chunks(MAX_TAGS_PER_CALL)
            .map(|chunk| json!({ "tags": chunk }));
        let file_calls = files
            .chunks(MAX_FILES_PER_CALL)
            .map(|chunk| json!({ "files": chunk }));
        Ok(tag_calls.chain(file_calls).collect())
    }
}

/// `items` without repeats, in their order.
fn unique(items: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    items
        .iter()
        .map(String::as_str)
        .filter(|item| seen.insert(*item))
        .collect()
}

/// A tag Cloudflare takes: 1 to 1,024 printable ASCII characters, no spaces.
fn check_tag(tag: &str) -> Result<(), CloudflareError> {
    let printable = tag.bytes().all(|b| b.is_ascii_graphic());
    if tag.is_empty() || tag.len() > MAX_TAG_LEN || !printable {
        let shown: String = tag.chars().take(64).collect();
        return Err(CloudflareError::InvalidRequest(format!(
            "{shown:?} is not a cache-tag (1 to {MAX_TAG_LEN} printable ASCII characters, no spaces)"
        )));
    }
    Ok(())
}

/// A URL Cloudflare can purge: absolute, `http` or `https`.
fn check_file(file: &str) -> Result<(), CloudflareError> {
    match Url::parse(file) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(CloudflareError::InvalidRequest(format!(
            "{file:?} is not an absolute http(s) URL"
        ))),
    }
}

/// The outcome of one call from its status, `Retry-After` and body.
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<(), CloudflareError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(CloudflareError::RateLimited { retry_after });
    }
    if status.is_server_error() {
        return Err(CloudflareError::Unavailable {
            status: status.as_u16(),
        });
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|error| {
        CloudflareError::InvalidResponse(format!(
            "HTTP {status} without Cloudflare's envelope: {error}"
        ))
    })?;
    if !envelope.success {
        let errors = envelope
            .errors
            .into_iter()
            .map(|error| (error.code, error.message))
            .collect();
        return Err(CloudflareError::Rejected {
            status: status.as_u16(),
            errors,
        });
    }
    if !status.is_success() {
        return Err(CloudflareError::InvalidResponse(format!(
            "HTTP {status} with success: true"
        )));
    }
    Ok(())
}

/// The transport failure `error` stands for (its URL left out).
fn transport(error: reqwest::Error) -> CloudflareError {
    CloudflareError::Transport(describe_transport(error))
}

/// What went wrong with an exchange that never got an answer, with every cause, its URL left
/// out (it may carry secrets): `timed out (…)`, `could not connect (…)`.
pub fn describe_transport(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the exchange broke off"
    };
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    format!("{kind} ({detail})")
}

/// How long a `Retry-After` value asks to wait from `now`: delay-seconds, or an HTTP-date
/// (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`); a date in the past is no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = SystemTime::from(OffsetDateTime::parse(value, &Rfc2822).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[path = "../../../tests/support/fake_cloudflare.rs"]
mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const TOKEN: &str = "cf-token-Y2xvdWRmbGFyZQ";

    async fn purger(fake: &fake::FakeCloudflare, token: &str) -> CloudflarePurge {
        CloudflarePurge::new(&fake.api_base(), ZONE, token, Duration::from_secs(5))
            .expect("a purge target")
    }

    fn tags(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("product-{i}")).collect()
    }

    fn listed(body: &Value, key: &str) -> Vec<String> {
        let items = body[key].as_array().expect("an array");
        items
            .iter()
            .map(|item| item.as_str().expect("a string").to_owned())
            .collect()
    }

    /// A server answering every request with `status`, `headers` and `body`.
    async fn canned(
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
        format!("http://{addr}/client/v4")
    }

    #[tokio::test]
    async fn tags_are_sent_in_calls_of_at_most_the_per_call_limit() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = purger(&fake, TOKEN).await;

        let seventy = PurgeRequest {
            tags: tags(70),
            ..PurgeRequest::default()
        };
        let report = cloudflare.purge(&seventy).await.expect("purged");
        assert_eq!(report, PurgeReport { calls: 1 });
        assert_eq!(listed(&fake.received()[0], "tags"), tags(70));

        let many = PurgeRequest {
            tags: tags(250),
            ..PurgeRequest::default()
        };
        let report = cloudflare.purge(&many).await.expect("purged");
        assert_eq!(report.calls, 3);
        let received = fake.received();
        let sizes: Vec<usize> = received[1..]
            .iter()
            .map(|b| listed(b, "tags").len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        let sent: Vec<String> = received[1..]
            .iter()
            .flat_map(|b| listed(b, "tags"))
            .collect();
        assert_eq!(sent, tags(250));
    }

    #[tokio::test]
    async fn files_are_batched_apart_from_tags_and_repeats_are_sent_once() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = purger(&fake, TOKEN).await;
        let mut files: Vec<String> = (0..130)
            .map(|i| format!("https://www.example.com/products/{i}"))
            .collect();
        files.push(files[0].clone());
        let request = PurgeRequest {
            tags: vec!["catalog".into(), "catalog".into()],
            files,
            everything: false,
        };
        assert_eq!(cloudflare.purge(&request).await.expect("purged").calls, 3);
        let received = fake.received();
        assert_eq!(received[0], json!({"tags": ["catalog"]}));
        assert_eq!(listed(&received[1], "files").len(), 100);
        assert_eq!(listed(&received[2], "files").len(), 30);
        assert!(received
            .iter()
            .all(|body| body.as_object().map(|o| o.len()) == Some(1)));
    }

    #[tokio::test]
    async fn everything_is_one_call_that_covers_the_rest() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = purger(&fake, TOKEN).await;
        let request = PurgeRequest {
            tags: tags(300),
            files: vec!["https://www.example.com/".into()],
            everything: true,
        };
        assert_eq!(cloudflare.purge(&request).await.expect("purged").calls, 1);
        assert_eq!(fake.received(), [json!({"purge_everything": true})]);
    }

    #[tokio::test]
    async fn an_empty_request_makes_no_call() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = purger(&fake, TOKEN).await;
        let report = cloudflare
            .purge(&PurgeRequest::default())
            .await
            .expect("nothing to do");
        assert_eq!(report.calls, 0);
        assert!(fake.received().is_empty());
    }

    #[tokio::test]
    async fn a_429_carries_its_retry_after_and_is_not_permanent() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = purger(&fake, TOKEN).await;
        fake.fail_next_with_429(1, 7);
        let request = PurgeRequest {
            tags: vec!["catalog".into()],
            ..PurgeRequest::default()
        };
        let error = cloudflare.purge(&request).await.expect_err("rate limited");
        assert_eq!(
            error,
            CloudflareError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert!(!error.is_permanent());
        assert!(
            fake.received().is_empty(),
            "a throttled call purges nothing"
        );

        assert_eq!(cloudflare.purge(&request).await.expect("purged").calls, 1);
        assert_eq!(fake.received().len(), 1);
    }

    #[tokio::test]
    async fn a_wrong_token_is_rejected_with_cloudflares_authentication_error() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = purger(&fake, "not-the-token").await;
        let request = PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        };
        let error = cloudflare.purge(&request).await.expect_err("refused");
        assert_eq!(
            error,
            CloudflareError::Rejected {
                status: 403,
                errors: vec![(10000, "Authentication error".into())]
            }
        );
        assert!(error.is_permanent());
        assert_eq!(error.retry_after(), None);
        assert!(error.to_string().contains("10000 Authentication error"));
    }

    #[tokio::test]
    async fn an_unknown_zone_is_rejected_with_its_code() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = CloudflarePurge::new(
            &fake.api_base(),
            "nosuchzone",
            TOKEN,
            Duration::from_secs(5),
        )
        .expect("a purge target");
        let request = PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        };
        match cloudflare.purge(&request).await {
            Err(CloudflareError::Rejected {
                status: 400,
                errors,
            }) => assert_eq!(errors[0].0, 7003),
            other => panic!("expected a 7003 rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_fake_refuses_what_cloudflare_refuses() {
        let fake = fake::start(TOKEN).await;
        let url = format!("{}/zones/{ZONE}/purge_cache", fake.api_base());
        let client = reqwest::Client::new();
        let urls: Vec<String> = (0..=MAX_FILES_PER_CALL)
            .map(|i| format!("https://www.example.com/{i}"))
            .collect();
        let cases = [
            (json!({"tags": tags(MAX_TAGS_PER_CALL + 1)}), 400, 1016),
            (json!({ "files": urls }), 400, 1016),
            (
                json!({"tags": ["a"], "files": ["https://www.example.com/"]}),
                400,
                1012,
            ),
            (json!({"tags": "a"}), 400, 1014),
            (json!({"purge_everything": false}), 400, 1012),
            (json!({"tags": ["x".repeat(MAX_TAG_LEN + 1)]}), 200, 1100),
        ];
        for (body, status, code) in cases {
            let response = client
                .post(&url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .expect("an answer");
            assert_eq!(response.status().as_u16(), status, "{body}");
            let envelope: Value = response.json().await.expect("an envelope");
            assert_eq!(envelope["success"], false);
            assert_eq!(envelope["errors"][0]["code"], code, "{body}");
        }
        assert!(fake.received().is_empty());
    }

    #[test]
    fn success_false_is_a_rejection_naming_every_code_even_with_200() {
        let body = br#"{"success": false,
            "errors": [{"code": 1100, "message": "Tag exceeds maximum length of 1024 characters"},
                       {"code": 1016, "message": "One or more cache purge errors"}],
            "messages": [], "result": null}"#;
        let error = classify(StatusCode::OK, None, body).expect_err("rejected");
        assert!(error.is_permanent());
        let shown = error.to_string();
        assert!(shown.contains("HTTP 200"), "{shown}");
        assert!(shown.contains("1100 Tag exceeds maximum length"), "{shown}");
        assert!(
            shown.contains("1016 One or more cache purge errors"),
            "{shown}"
        );
        let ok = br#"{"success": true, "errors": [], "messages": [], "result": {"id": "abc"}}"#;
        assert_eq!(classify(StatusCode::OK, None, ok), Ok(()));
    }

    #[tokio::test]
    async fn a_5xx_is_unavailable_and_a_body_that_is_not_json_is_not_understood() {
        let base = canned(502, &[], "<html>Bad gateway</html>").await;
        let cloudflare =
            CloudflarePurge::new(&base, ZONE, TOKEN, Duration::from_secs(5)).expect("target");
        let request = PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        };
        let error = cloudflare.purge(&request).await.expect_err("unavailable");
        assert_eq!(error, CloudflareError::Unavailable { status: 502 });
        assert!(!error.is_permanent());

        let base = canned(200, &[], "<html>maintenance</html>").await;
        let cloudflare =
            CloudflarePurge::new(&base, ZONE, TOKEN, Duration::from_secs(5)).expect("target");
        let error = cloudflare
            .purge(&request)
            .await
            .expect_err("not understood");
        assert!(
            matches!(error, CloudflareError::InvalidResponse(_)),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_429_without_the_envelope_still_reads_an_http_date() {
        let base = canned(
            429,
            &[("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT")],
            "slow down",
        )
        .await;
        let cloudflare =
            CloudflarePurge::new(&base, ZONE, TOKEN, Duration::from_secs(5)).expect("target");
        let request = PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        };
        let wait = cloudflare
            .purge(&request)
            .await
            .expect_err("rate limited")
            .retry_after()
            .expect("a wait");
        assert!(wait > Duration::from_secs(365 * 24 * 3600), "{wait:?}");
    }

    #[tokio::test]
    async fn an_unreachable_api_or_a_slow_one_is_a_transport_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("an address");
        drop(listener);
        let base = format!("http://{addr}/client/v4");
        let cloudflare =
            CloudflarePurge::new(&base, ZONE, TOKEN, Duration::from_secs(5)).expect("target");
        let request = PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        };
        let error = cloudflare.purge(&request).await.expect_err("unreachable");
        assert!(
            matches!(&error, CloudflareError::Transport(detail) if detail.starts_with("could not connect")),
            "{error:?}"
        );
        assert!(!error.is_permanent());

        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base = format!(
            "http://{}/client/v4",
            silent.local_addr().expect("an address")
        );
        let cloudflare =
            CloudflarePurge::new(&base, ZONE, TOKEN, Duration::from_millis(200)).expect("target");
        let error = cloudflare.purge(&request).await.expect_err("timed out");
        assert!(
            matches!(&error, CloudflareError::Transport(detail) if detail.starts_with("timed out")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn bad_tags_and_urls_are_refused_before_any_call() {
        let fake = fake::start(TOKEN).await;
        let cloudflare = purger(&fake, TOKEN).await;
        for request in [
            PurgeRequest {
                tags: vec!["two words".into()],
                ..PurgeRequest::default()
            },
            PurgeRequest {
                tags: vec!["x".repeat(MAX_TAG_LEN + 1)],
                ..PurgeRequest::default()
            },
            PurgeRequest {
                tags: vec![String::new()],
                ..PurgeRequest::default()
            },
            PurgeRequest {
                files: vec!["/relative/path".into()],
                ..PurgeRequest::default()
            },
            PurgeRequest {
                files: vec!["ftp://example.com/file".into()],
                ..PurgeRequest::default()
            },
        ] {
            let error = cloudflare.purge(&request).await.expect_err("invalid");
            assert!(
                matches!(error, CloudflareError::InvalidRequest(_)),
                "{error:?}"
            );
            assert!(error.is_permanent());
        }
        assert!(fake.received().is_empty());
    }

    #[test]
    fn the_configuration_is_checked_and_the_token_never_shown() {
        let new = |base: &str, zone: &str, token: &str| {
            CloudflarePurge::new(base, zone, token, Duration::from_secs(1))
        };
        for (base, zone, token) in [
            ("not a url", ZONE, TOKEN),
            ("ftp://api.example.com", ZONE, TOKEN),
            (DEFAULT_API_BASE, "../accounts", TOKEN),
            (DEFAULT_API_BASE, "", TOKEN),
            (DEFAULT_API_BASE, ZONE, " "),
            (DEFAULT_API_BASE, ZONE, "line\nbreak-Y2xvdWRmbGFyZQ"),
        ] {
            let error = new(base, zone, token).expect_err("misconfigured");
            assert!(
                matches!(error, CloudflareError::InvalidConfig(_)),
                "{error:?}"
            );
            assert!(!error.to_string().contains("Y2xvdWRmbGFyZQ"), "{error}");
        }
        let cloudflare = new(&format!("{DEFAULT_API_BASE}/"), ZONE, TOKEN).expect("a target");
        let shown = format!("{cloudflare:?}");
        assert!(
            shown.contains(&format!("/client/v4/zones/{ZONE}/purge_cache")),
            "{shown}"
        );
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = "Sun, 06 Nov 1994 08:50:07 GMT";
        assert_eq!(parse_retry_after(later, now), Some(Duration::from_secs(30)));
        let earlier = "Sun, 06 Nov 1994 08:00:00 GMT";
        assert_eq!(parse_retry_after(earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
