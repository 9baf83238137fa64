//! `POST /__rampart/purge`: removes entries from this data centre's edge cache by URL and by
//! tag, with `Authorization: Bearer $EDGE_PURGE_TOKEN`, answering what it removed.
//!
//! ```json
//! {"urls": ["https://app.example.com/api/tasks/1"], "tags": ["task:1"]}
//! ```

use serde::{Deserialize, Serialize};
use shared::error_body::ErrorCode;
use shared::image::ImageFormat;
use shared::key::CacheKey;
use shared::policy::Policy;
use worker::{Cache, CacheDeletionOutcome, Request, Response, Result, Url};

use crate::config::{constant_time_eq, EdgeConfig};
use crate::{respond, tags, url_parts};

/// The purge endpoint's path.
pub const PATH: &str = "/__rampart/purge";

/// Most URLs plus tags in one purge request.
const MAX_ITEMS: usize = 1_000;

/// Largest request body, in bytes.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct PurgeReport {
    /// URLs whose stored entry was removed.
    purged_urls: Vec<String>,
    /// URLs that had no stored entry.
    not_cached: Vec<String>,
    /// For each tag, how many stored entries were removed.
    purged_tags: Vec<TagReport>,
}

#[derive(Debug, Serialize)]
struct TagReport {
    tag: String,
    entries: usize,
}

/// Handles a purge request.
pub async fn handle(
    mut request: Request,
    config: &EdgeConfig,
    policy: &Policy,
) -> Result<Response> {
    if request.method() != worker::Method::Post {
        return respond::error(405, ErrorCode::MethodNotAllowed, "purge with POST");
    }
    let Some(expected) = config.purge_token.as_deref() else {
        return respond::error(
            403,
            ErrorCode::PurgeDisabled,
            "EDGE_PURGE_TOKEN is not configured",
        );
    };
    let presented = request.headers().get("authorization")?;
    let authorized = presented
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| constant_time_eq(token.as_bytes(), expected.as_bytes()));
    if !authorized {
        return respond::error(
            401,
            ErrorCode::Unauthorized,
            "a valid bearer token is required",
        );
    }
    let declared = request.headers().get("content-length")?;
    if declared
        .and_then(|length| length.parse::<usize>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES)
    {
        return respond::error(
            413,
            ErrorCode::PayloadTooLarge,
            "the purge request is too large",
        );
    }
    let body = request.bytes().await?;
    if body.len() > MAX_BODY_BYTES {
        return respond::error(
            413,
            ErrorCode::PayloadTooLarge,
            "the purge request is too large",
        );
    }
    let Ok(purge) = serde_json::from_slice::<PurgeRequest>(&body) else {
        return respond::error(
            400,
            ErrorCode::ValidationError,
            "send {\"urls\": [absolute URLs], \"tags\": [tags]}",
        );
    };
    if purge.urls.len() + purge.tags.len() > MAX_ITEMS {
        return respond::error(
            422,
            ErrorCode::ValidationError,
            "at most 1000 URLs and tags per request",
        );
    }
    let cache = Cache::default();
    let mut report = PurgeReport::default();
    for url in purge.urls {
        let Some(cache_urls) = cache_urls_of(&url, policy) else {
            return respond::error(
                422,
                ErrorCode::ValidationError,
                &format!("{url:?} is not an absolute http(s) URL"),
            );
        };
        let mut deleted = false;
        for cache_url in cache_urls {
            let outcome = cache.delete(cache_url.as_str(), false).await?;
            deleted |= matches!(outcome, CacheDeletionOutcome::Success);
        }
        if deleted {
            report.purged_urls.push(url);
        } else {
            report.not_cached.push(url);
        }
    }
    for tag in purge.tags {
        let mut entries = 0;
        for cache_url in tags::urls(&cache, &tag).await? {
            if matches!(
                cache.delete(cache_url.as_str(), false).await?,
                CacheDeletionOutcome::Success
            ) {
                entries += 1;
            }
        }
        tags::forget(&cache, &tag).await?;
        report.purged_tags.push(TagReport { tag, entries });
    }
    let mut response = Response::from_json(&report)?;
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

/// The cache URLs a client's GET of `url` is stored under: the URL's own and, for images, its
/// negotiated AVIF and WebP variants.
fn cache_urls_of(url: &str, policy: &Policy) -> Option<Vec<String>> {
    let parsed = Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = url_parts::authority(&parsed)?;
    let target = url_parts::target(&parsed);
    let key = CacheKey::new("GET", &host, &target, policy.keys()).ok()?;
    let mut urls = vec![key.cache_url()];
    let image_route = policy
        .route(key.path())
        .is_some_and(|(rule, _)| rule.policy.image_transform);
    if image_route {
        for format in [ImageFormat::Avif, ImageFormat::Webp] {
            urls.push(key.clone().with_image_format(format).cache_url());
        }
    }
    Some(urls)
}
