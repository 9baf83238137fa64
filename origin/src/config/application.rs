//! What the application and its operators hold: the admin token, the image signing key, upload
//! limits, the comments' cache lifetime, and the edge's purge endpoint.

use std::time::Duration;

use super::read;
use super::{saturating_u64, ConfigError, Range};
use crate::app::UploadLimits;
use crate::core::dependencies::database::redact;

/// `ADMIN_TOKEN`: bearer token for admin routes; unset disables them (403 `ADMIN_DISABLED`).
pub const ENV_ADMIN_TOKEN: &str = "ADMIN_TOKEN";
/// `IMAGE_SIGNING_KEY`: the key the edge checks `/cdn-cgi/image/` URLs with; the pages' image
/// URLs are signed with it (unset: unsigned URLs).
pub const ENV_IMAGE_SIGNING_KEY: &str = "IMAGE_SIGNING_KEY";
/// `UPLOAD_MAX_BYTES`: largest image upload.
pub const ENV_UPLOAD_MAX_BYTES: &str = "UPLOAD_MAX_BYTES";
/// `UPLOAD_MAX_PIXELS`: most pixels of an uploaded image.
pub const ENV_UPLOAD_MAX_PIXELS: &str = "UPLOAD_MAX_PIXELS";
/// `COMMENTS_CACHE_TTL`: seconds the origin keeps a task's comments fresh.
pub const ENV_COMMENTS_CACHE_TTL: &str = "COMMENTS_CACHE_TTL";
/// `EDGE_PURGE_URL`: the edge's purge endpoint, told about every tag invalidation.
pub const ENV_EDGE_PURGE_URL: &str = "EDGE_PURGE_URL";
/// `EDGE_PURGE_TOKEN`: the bearer token the edge's purge endpoint wants.
pub const ENV_EDGE_PURGE_TOKEN: &str = "EDGE_PURGE_TOKEN";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_ADMIN_TOKEN,
    ENV_IMAGE_SIGNING_KEY,
    ENV_UPLOAD_MAX_BYTES,
    ENV_UPLOAD_MAX_PIXELS,
    ENV_COMMENTS_CACHE_TTL,
    ENV_EDGE_PURGE_URL,
    ENV_EDGE_PURGE_TOKEN,
];

/// From 1 byte to 1 GiB.
pub const UPLOAD_MAX_BYTES: Range = Range::new(1, 1 << 30);
/// From 1 pixel to a billion.
pub const UPLOAD_MAX_PIXELS: Range = Range::new(1, 1_000_000_000);
/// From 0 s to a year.
pub const COMMENTS_CACHE_TTL: Range = Range::new(0, 31_536_000);
/// What `EDGE_PURGE_URL` accepts.
pub const EDGE_PURGE_URL: &str =
    "an http:// or https:// URL, such as https://app.example.com/__rampart/purge";

/// Where the origin tells the edge about tag invalidations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgePurgeTarget {
    /// The edge's purge endpoint.
    pub url: String,
    /// The bearer token it wants, if any.
    pub token: Option<String>,
}

/// What the application served out of the box reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationConfig {
    /// The admin bearer token, if admin routes are enabled.
    pub admin_token: Option<String>,
    /// The key image transformation URLs are signed with, if the edge requires signatures.
    pub image_signing_key: Option<String>,
    /// Bounds on image uploads.
    pub uploads: UploadLimits,
    /// Origin freshness of a task's comments.
    pub comments_cache_ttl: Duration,
    /// The edge's purge endpoint, if invalidations are sent there.
    pub edge_purge: Option<EdgePurgeTarget>,
}

impl Default for ApplicationConfig {
    /// No admin routes, unsigned image URLs, uploads up to 10 MiB and 40 megapixels, comments
    /// fresh for 300 s, no edge purges.
    fn default() -> Self {
        Self {
            admin_token: None,
            image_signing_key: None,
            uploads: UploadLimits {
                max_bytes: 10 << 20,
                max_pixels: 40_000_000,
            },
            comments_cache_ttl: Duration::from_secs(300),
            edge_purge: None,
        }
    }
}

impl ApplicationConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let secret = |variable| read::secret(source, variable, read::SECRET_LENGTH);
        // The token is read (and checked) even without a URL to send it to.
        let purge_token = secret(ENV_EDGE_PURGE_TOKEN)?;
        let config = Self {
            admin_token: secret(ENV_ADMIN_TOKEN)?.or(defaults.admin_token),
            image_signing_key: secret(ENV_IMAGE_SIGNING_KEY)?.or(defaults.image_signing_key),
            uploads: UploadLimits {
                max_bytes: read::whole(source, ENV_UPLOAD_MAX_BYTES, UPLOAD_MAX_BYTES)?
                    .unwrap_or(defaults.uploads.max_bytes),
                max_pixels: read::whole(source, ENV_UPLOAD_MAX_PIXELS, UPLOAD_MAX_PIXELS)?
                    .unwrap_or(defaults.uploads.max_pixels),
            },
            comments_cache_ttl: read::seconds(source, ENV_COMMENTS_CACHE_TTL, COMMENTS_CACHE_TTL)?
                .unwrap_or(defaults.comments_cache_ttl),
            edge_purge: read::trimmed(source, ENV_EDGE_PURGE_URL)
                .map(|url| EdgePurgeTarget {
                    url,
                    token: purge_token,
                })
                .or(defaults.edge_purge),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against what its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secrets = [
            (ENV_ADMIN_TOKEN, &self.admin_token),
            (ENV_IMAGE_SIGNING_KEY, &self.image_signing_key),
            (
                ENV_EDGE_PURGE_TOKEN,
                &self.edge_purge.as_ref().and_then(|e| e.token.clone()),
            ),
        ];
        for (variable, value) in secrets {
            if let Some(value) = value {
                read::check_secret(variable, value, read::SECRET_LENGTH)?;
            }
        }
        let max_bytes = saturating_u64(self.uploads.max_bytes);
        UPLOAD_MAX_BYTES.check(ENV_UPLOAD_MAX_BYTES, max_bytes)?;
        UPLOAD_MAX_PIXELS.check(ENV_UPLOAD_MAX_PIXELS, self.uploads.max_pixels)?;
        COMMENTS_CACHE_TTL.check_seconds(ENV_COMMENTS_CACHE_TTL, self.comments_cache_ttl)?;
        match &self.edge_purge {
            Some(edge) if !is_http_url(&edge.url) => Err(read::malformed(
                ENV_EDGE_PURGE_URL,
                &redact(&edge.url),
                EDGE_PURGE_URL,
            )),
            _ => Ok(()),
        }
    }
}

/// Whether `text` is an absolute `http` or `https` URL with a host.
fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}
