//! The Worker's configuration: `[vars]` from `wrangler.toml` and secrets.

use std::rc::Rc;
use std::time::Duration;

use worker::{Env, Url};

use crate::trace::Span;

/// `ORIGIN_URL`: where cache misses go (scheme, host and optional port).
pub const VAR_ORIGIN_URL: &str = "ORIGIN_URL";
/// `ORIGIN_AUTH_TOKEN`: a secret sent to the origin so it can refuse traffic that bypassed the edge.
pub const SECRET_ORIGIN_AUTH_TOKEN: &str = "ORIGIN_AUTH_TOKEN";
/// `EDGE_PURGE_TOKEN`: the bearer token `POST /__rampart/purge` requires (unset: purging is off).
pub const SECRET_EDGE_PURGE_TOKEN: &str = "EDGE_PURGE_TOKEN";
/// `IMAGE_SIGNING_KEY`: when set, `/cdn-cgi/image/` URLs must carry a valid `sig=` option.
pub const SECRET_IMAGE_SIGNING_KEY: &str = "IMAGE_SIGNING_KEY";
/// `EXPOSE_CACHE_KEY`: `"true"` adds the cache key to `Cache-Status` (`key="…"`), for debugging
/// and for the tests that check the wasm32 key equals the native one.
pub const VAR_EXPOSE_CACHE_KEY: &str = "EXPOSE_CACHE_KEY";
/// `ORIGIN_TIMEOUT_MS`: how long the edge waits for the origin's response head (default 10 s).
pub const VAR_ORIGIN_TIMEOUT_MS: &str = "ORIGIN_TIMEOUT_MS";
/// The origin timeout when `ORIGIN_TIMEOUT_MS` is unset.
pub const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The header carrying the origin auth token.
pub const ORIGIN_AUTH_HEADER: &str = shared::security::ORIGIN_AUTH_HEADER;

/// The edge's settings for one request.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The origin's base URL.
    pub origin_url: Url,
    /// The shared secret for the origin, when configured.
    pub origin_auth_token: Option<String>,
    /// Whether `Cache-Status` names the cache key.
    pub expose_cache_key: bool,
    /// How long to wait for the origin.
    pub origin_timeout: Duration,
    /// The purge endpoint's bearer token, when configured.
    pub purge_token: Option<String>,
    /// The key image transformation URLs are signed with, when configured.
    pub image_signing_key: Option<String>,
    /// This request's span: its `traceparent` goes to the origin with every fetch, and what the
    /// request did is recorded on it (set by the fetch handler).
    pub span: Option<Rc<Span>>,
}

impl EdgeConfig {
    /// Records on the request's span, when there is one.
    pub fn trace(&self, record: impl FnOnce(&Span)) {
        if let Some(span) = &self.span {
            record(span);
        }
    }

    /// Reads the configuration; a missing or invalid `ORIGIN_URL` is an error naming it.
    pub fn from_env(env: &Env) -> worker::Result<Self> {
        let origin = env
            .var(VAR_ORIGIN_URL)
            .map_err(|_| worker::Error::RustError(format!("{VAR_ORIGIN_URL} is not set")))?
            .to_string();
        let origin_url = Url::parse(&origin)
            .map_err(|e| worker::Error::RustError(format!("{VAR_ORIGIN_URL}={origin:?}: {e}")))?;
        let origin_auth_token = secret(env, SECRET_ORIGIN_AUTH_TOKEN);
        let expose_cache_key = env
            .var(VAR_EXPOSE_CACHE_KEY)
            .is_ok_and(|value| value.to_string() == "true");
        let origin_timeout = match env.var(VAR_ORIGIN_TIMEOUT_MS) {
            Ok(value) => {
                let text = value.to_string();
                let millis: u64 = text.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    worker::Error::RustError(format!(
                        "{VAR_ORIGIN_TIMEOUT_MS}={text:?} is not a positive number of milliseconds"
                    ))
                })?;
                Duration::from_millis(millis)
            }
            Err(_) => DEFAULT_ORIGIN_TIMEOUT,
        };
        let purge_token = secret(env, SECRET_EDGE_PURGE_TOKEN);
        let image_signing_key = secret(env, SECRET_IMAGE_SIGNING_KEY);
        Ok(Self {
            origin_url,
            origin_auth_token,
            expose_cache_key,
            origin_timeout,
            purge_token,
            image_signing_key,
            span: None,
        })
    }
}

/// A non-empty secret (or, in local development, a var of the same name).
fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|secret| secret.to_string())
        .or_else(|_| env.var(name).map(|var| var.to_string()))
        .ok()
        .filter(|value| !value.is_empty())
}
