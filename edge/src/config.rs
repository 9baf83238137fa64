//! The Worker's configuration: `[vars]` from `wrangler.toml` and secrets.

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;

use worker::Env;

use crate::origins::Origins;
use crate::trace::Span;

/// `ORIGIN_URL`: where cache misses go (scheme, host and optional port), or several origins
/// separated by commas (see [`crate::origins`]).
pub const VAR_ORIGIN_URL: &str = "ORIGIN_URL";
/// `ORIGIN_AUTH_TOKEN`: a secret sent to the origin so it can refuse traffic that bypassed the edge.
pub const SECRET_ORIGIN_AUTH_TOKEN: &str = "ORIGIN_AUTH_TOKEN";
/// `EDGE_PURGE_TOKEN`: the bearer token `POST /__rampart/purge` requires (unset: purging is off).
pub const SECRET_EDGE_PURGE_TOKEN: &str = "EDGE_PURGE_TOKEN";
/// `ADMIN_TOKEN`: requests bearing it (`Authorization: Bearer <token>`) are answered with the
/// edge's `Server-Timing` (unset: only routes whose policy sets `server_timing` are). The same
/// token as the origin's `ADMIN_TOKEN`, which then adds its own members.
pub const SECRET_ADMIN_TOKEN: &str = "ADMIN_TOKEN";
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
    /// The origins' base URLs, and which of them rest.
    pub origins: Rc<Origins>,
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
    /// The operators' bearer token, when configured.
    pub admin_token: Option<String>,
    /// This request's span: its `traceparent` goes to the origin with every fetch, and what the
    /// request did is recorded on it (set by the fetch handler).
    pub span: Option<Rc<Span>>,
}

thread_local! {
    /// The settings this isolate's first request read: an isolate's bindings (vars and
    /// secrets) do not change while it lives, so later requests skip a dozen calls into
    /// JavaScript and a URL parse.
    static ISOLATE_CONFIG: OnceCell<EdgeConfig> = const { OnceCell::new() };
}

impl EdgeConfig {
    /// The isolate's settings ([`EdgeConfig::from_env`] once, then a copy), with no span.
    pub fn of_isolate(env: &Env) -> worker::Result<Self> {
        ISOLATE_CONFIG.with(|cell| {
            if let Some(config) = cell.get() {
                return Ok(config.clone());
            }
            let config = Self::from_env(env)?;
            let _ = cell.set(config.clone());
            Ok(config)
        })
    }

    /// Records on the request's span, when there is one.
    pub fn trace(&self, record: impl FnOnce(&Span)) {
        if let Some(span) = &self.span {
            record(span);
        }
    }

    /// Whether `authorization` (the request's header) bears the admin token.
    pub fn bears_admin_token(&self, authorization: Option<&str>) -> bool {
        let Some(expected) = self.admin_token.as_deref() else {
            return false;
        };
        authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
    }

    /// Reads the configuration; a missing or invalid `ORIGIN_URL` is an error naming it.
    pub fn from_env(env: &Env) -> worker::Result<Self> {
        let origin = env
            .var(VAR_ORIGIN_URL)
            .map_err(|_| worker::Error::RustError(format!("{VAR_ORIGIN_URL} is not set")))?
            .to_string();
        let origins = Origins::parse(&origin)
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
        let admin_token = secret(env, SECRET_ADMIN_TOKEN);
        Ok(Self {
            origins: Rc::new(origins),
            origin_auth_token,
            expose_cache_key,
            origin_timeout,
            purge_token,
            image_signing_key,
            admin_token,
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

/// Compares secrets without revealing through timing how much of them matched (only their
/// lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(token: Option<&str>) -> EdgeConfig {
        EdgeConfig {
            origins: Rc::new(Origins::parse("http://127.0.0.1:8080").expect("a URL")),
            origin_auth_token: None,
            expose_cache_key: false,
            origin_timeout: DEFAULT_ORIGIN_TIMEOUT,
            purge_token: None,
            image_signing_key: None,
            admin_token: token.map(str::to_owned),
            span: None,
        }
    }

    #[test]
    fn only_the_exact_bearer_token_is_the_admin_token() {
        let config = with_token(Some("s3cret"));
        assert!(config.bears_admin_token(Some("Bearer s3cret")));
        for refused in [
            None,
            Some(""),
            Some("s3cret"),
            Some("Bearer "),
            Some("Bearer s3cre"),
            Some("Bearer s3cret "),
            Some("Bearer S3CRET"),
            Some("Basic s3cret"),
        ] {
            assert!(!config.bears_admin_token(refused), "{refused:?}");
        }
        assert!(!with_token(None).bears_admin_token(Some("Bearer ")));
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
