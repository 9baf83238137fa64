//! What operators do to the whole cache in an emergency: clear it everywhere, or find the keys
//! matching a pattern to drop them.

use std::collections::HashSet;

use super::TieredCache;

impl TieredCache {
    /// Drops every entry, here, in Redis and in every other instance, and purges everything at
    /// the edge where a target can (Cloudflare's API); returns the entries dropped here and in
    /// Redis.
    pub async fn clear(&self) -> (u64, usize) {
        let here = self.store.entry_count();
        self.clear_local();
        let shared = match &self.remote {
            Some(remote) => remote.clear().await,
            None => 0,
        };
        if let Some(background) = &self.background {
            if let Err(error) = background.purge_everything().await {
                tracing::error!(%error, "edge-wide purge not enqueued");
            }
        }
        (here, shared)
    }

    pub(super) fn clear_local(&self) {
        self.invalidations.record_everything();
        self.tags.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.store.invalidate_all();
    }

    /// The keys matching the glob `pattern` (`*`, `?`, `[…]`), here and in Redis, at most
    /// `limit`.
    pub async fn keys_matching(&self, pattern: &glob::Pattern, limit: usize) -> Vec<String> {
        let mut keys: HashSet<String> = self
            .store
            .iter()
            .map(|(key, _)| key.as_ref().clone())
            .filter(|key| pattern.matches(key))
            .take(limit)
            .collect();
        if let Some(remote) = &self.remote {
            keys.extend(remote.keys_matching(pattern.as_str(), limit).await);
        }
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort();
        keys.truncate(limit);
        keys
    }
}
