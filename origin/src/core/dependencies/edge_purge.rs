//! The Worker's purge endpoint (`EDGE_PURGE_URL`, the edge's `POST /__rampart/purge`): one
//! request drops tags and URLs from the data centre's edge cache the Worker runs in. Called by
//! the `edge-purge` job, which retries until the edge confirms.

use std::time::Duration;

use serde_json::json;

/// How long one purge request may take.
const PURGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the edge did not confirm a purge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgePurgeError {
    /// The edge refused the request as it stands (a bad token or body): retrying cannot help.
    #[error("the edge refused the purge: {status}")]
    Refused {
        /// The edge's status.
        status: u16,
    },
    /// The edge failed, was busy or could not be reached: worth retrying.
    #[error("the edge purge failed: {0}")]
    Unavailable(String),
}

impl EdgePurgeError {
    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, EdgePurgeError::Refused { .. })
    }
}

/// Where the edge's purge endpoint is, and the token it wants.
#[derive(Debug, Clone)]
pub struct EdgePurge {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl EdgePurge {
    /// A purger for `url` (`https://app.example.com/__rampart/purge`) with `EDGE_PURGE_TOKEN`.
    pub fn new(url: String, token: Option<String>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(PURGE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, url, token })
    }

    /// Asks the edge to drop everything tagged with one of `tags` and the responses for `urls`.
    pub async fn purge(&self, tags: &[String], urls: &[String]) -> Result<(), EdgePurgeError> {
        if tags.is_empty() && urls.is_empty() {
            return Ok(());
        }
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "tags": tags, "urls": urls }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| EdgePurgeError::Unavailable(error.to_string()))?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(?tags, urls = urls.len(), "edge purged");
            return Ok(());
        }
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            return Err(EdgePurgeError::Refused {
                status: status.as_u16(),
            });
        }
        Err(EdgePurgeError::Unavailable(format!("status {status}")))
    }
}
