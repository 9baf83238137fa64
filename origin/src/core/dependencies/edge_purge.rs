//! Carries the origin's tag invalidations to the edge (`EDGE_PURGE_URL`, the Worker's
//! `POST /__rampart/purge`), so that one invalidation empties every tier. Purges are sent in
//! the background and bounded in time; a failure is logged and the edge copy ages out by its TTL.

use std::time::Duration;

use serde_json::json;

/// How long one purge request may take.
const PURGE_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Asks the edge to drop everything tagged with one of `tags`, without waiting.
    pub fn purge_tags(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        let mut request = self.client.post(&self.url).json(&json!({ "tags": tags }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let tags = tags.to_vec();
        tokio::spawn(async move {
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(?tags, "edge purged");
                }
                Ok(response) => {
                    tracing::warn!(?tags, status = %response.status(), "the edge refused a purge");
                }
                Err(error) => tracing::warn!(?tags, %error, "the edge purge failed"),
            }
        });
    }
}
