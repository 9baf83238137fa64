//! The origin's response cache: in-process, bounded by bytes, with stale-while-revalidate,
//! single-flight loads and tag invalidation.
//!
//! [`TieredCache::get_with_refresh`] is the central call: a fresh value is served; a stale value
//! inside its stale-while-revalidate window is served at once while exactly one background load
//! refreshes it; an expired or missing value is loaded, and concurrent misses for one key share
//! that load. When that load fails and the expired value is still inside its stale-if-error
//! window, the stale value is served instead of the failure. Invalidation by tag or key drops
//! entries at once, and a load that was running when an invalidation named its key or one of its
//! tags returns its value to its callers but does not store it, so an invalidation can never be
//! undone by a load that read the old data (loads of other keys store as usual).
//!
//! Admission and eviction are moka's (TinyLFU admission, LRU eviction, per-entry expiry); its
//! eviction listener counts every removal by cause ([`LocalPressure`], for the metrics).

mod admin;
pub mod background;
mod codec;
mod counters;
mod entry;
mod flight;
mod invalidations;
mod remote;
mod values;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use moka::future::Cache;
use moka::notification::RemovalCause;
use tokio::time::{Duration, Instant};

use counters::Counters;
pub use counters::{CacheStats, LevelCount, LocalPressure, EVICTION_CAUSES};
pub use entry::{CacheOptions, Entry, State};
use flight::Flights;
pub use flight::LoadError;
pub use remote::{Invalidation, RedisTier};
pub use values::{Cached, ForceRefresh, Loaded, Outcome};
use values::{Landed, RetentionExpiry};

use crate::core::jobs::NewJob;
use background::Purges;

type TagIndex = Arc<Mutex<HashMap<String, HashSet<String>>>>;

/// The cache; cheap to clone (clones share one store).
#[derive(Clone)]
pub struct TieredCache {
    store: Cache<String, Arc<Entry>>,
    tags: TagIndex,
    flights: Arc<Flights<Landed>>,
    /// Recent invalidations: a load stores its value only if none named it meanwhile.
    invalidations: Arc<invalidations::Invalidations>,
    counters: Arc<Counters>,
    /// The shared Redis level, when configured.
    remote: Option<Arc<RedisTier>>,
    /// The job system: stale refreshes, re-warms, and purges at the edge.
    background: Option<Arc<background::Background>>,
}

impl std::fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache")
            .field("entries", &self.store.entry_count())
            .finish()
    }
}

impl TieredCache {
    /// A cache holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let tags: TagIndex = Arc::default();
        let index = Arc::clone(&tags);
        let counters: Arc<Counters> = Arc::default();
        let evictions = Arc::clone(&counters);
        let store = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                u32::try_from(key.len() + entry.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(RetentionExpiry)
            .eviction_listener(move |key: Arc<String>, entry: Arc<Entry>, cause| {
                evictions.evicted(cause);
                // A replaced entry's key stays indexed: the new value registered its own tags.
                if cause == RemovalCause::Replaced {
                    return;
                }
                let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
                for tag in entry.options.tags.iter() {
                    if let Some(keys) = index.get_mut(tag) {
                        keys.remove(key.as_str());
                        if keys.is_empty() {
                            index.remove(tag);
                        }
                    }
                }
            })
            .build();
        Self {
            store,
            tags,
            flights: Arc::default(),
            invalidations: Arc::default(),
            counters,
            remote: None,
            background: None,
        }
    }

    /// Hands stale refreshes, re-warms of hot keys and edge purges to `background`.
    #[must_use]
    pub fn with_background(mut self, background: background::Background) -> Self {
        self.background = Some(Arc::new(background));
        self
    }

    /// The job system the cache hands its background work to, if any.
    pub fn background(&self) -> Option<&background::Background> {
        self.background.as_deref()
    }

    /// Adds the shared Redis level and starts listening for other instances' invalidations.
    #[must_use]
    pub fn with_redis(mut self, tier: RedisTier) -> Self {
        let tier = Arc::new(tier);
        let (apply_to, flush) = (self.clone(), self.store.clone());
        tokio::spawn(Arc::clone(&tier).listen(
            move |invalidation| {
                let cache = apply_to.clone();
                tokio::spawn(async move {
                    if invalidation.all {
                        cache.clear_local();
                    } else {
                        cache
                            .invalidate_local(&invalidation.tags, &invalidation.keys)
                            .await;
                    }
                });
            },
            move || flush.invalidate_all(),
        ));
        self.remote = Some(tier);
        self
    }

    /// The entry for `key` from the in-process level, else from Redis (copied in-process).
    async fn lookup(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(entry) = self.store.get(key).await {
            self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            entry.hits.fetch_add(1, Ordering::Relaxed);
            return Some(entry);
        }
        self.counters.memory_misses.fetch_add(1, Ordering::Relaxed);
        // Boxed: a hit in process, the hottest path, does not carry Redis's future in its own.
        Box::pin(self.lookup_remote(key)).await
    }

    /// The entry Redis holds for `key`, kept in process too.
    async fn lookup_remote(&self, key: &str) -> Option<Arc<Entry>> {
        let remote = self.remote.as_ref()?;
        let found = remote
            .get(key)
            .await
            .and_then(|bytes| codec::decode(&bytes, (Instant::now(), codec::unix_ms())));
        let Some(entry) = found.map(Arc::new) else {
            self.counters.redis_misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.counters.redis_hits.fetch_add(1, Ordering::Relaxed);
        self.insert_local(key.to_owned(), Arc::clone(&entry)).await;
        Some(entry)
    }

    /// The entry this instance holds for `key`, whatever its state (a loader reads the copy it
    /// is about to replace, to validate it with a conditional request).
    pub async fn resident(&self, key: &str) -> Option<Cached> {
        let entry = self.store.get(key).await?;
        Some(Cached::from_entry(entry, Outcome::Stale))
    }

    /// Where the invalidation log stands: a value loaded from now on is stored by
    /// [`Self::put_since`] only if no invalidation after this names it.
    pub fn mark(&self) -> u64 {
        self.invalidations.mark()
    }

    /// Stores `loaded` under `key`, unless an invalidation since `mark` (taken before what it
    /// holds was read) names `key` or one of its tags; `options` where `loaded` has none.
    pub async fn put_since(
        &self,
        key: &str,
        options: CacheOptions,
        loaded: Loaded,
        mark: u64,
    ) -> Cached {
        let now = Instant::now();
        let stored_at = now.checked_sub(loaded.age).unwrap_or(now);
        let options = loaded.options.unwrap_or(options);
        let entry = Arc::new(Entry::new(loaded.value, stored_at, options));
        let stored = loaded.store
            && !loaded.failed
            && self.invalidations.spares(mark, key, &entry.options.tags);
        if stored {
            self.insert(key.to_owned(), Arc::clone(&entry)).await;
        }
        Cached::from_entry(
            entry,
            Outcome::Miss {
                collapsed: false,
                stored,
            },
        )
    }

    /// Whether either level holds an entry for `key`, whatever its state; counted as no lookup.
    pub async fn holds(&self, key: &str) -> bool {
        if self.store.contains_key(key) {
            return true;
        }
        match &self.remote {
            Some(remote) => remote.get(key).await.is_some(),
            None => false,
        }
    }

    /// Serves `key` from the cache, or loads it with `loader` (see the module documentation).
    pub async fn get_with_refresh<F, Fut, V, E>(
        &self,
        key: &str,
        options: CacheOptions,
        loader: F,
    ) -> Result<Cached, LoadError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        V: Into<Loaded>,
        E: std::fmt::Display,
    {
        let (mut reserve, mut kept) = (None, None);
        if let Some(entry) = self.lookup(key).await {
            match entry.state(Instant::now()) {
                State::Fresh { remaining } => {
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Cached::from_entry(entry, Outcome::Hit { remaining }));
                }
                State::Stale => {
                    self.counters.stale_hits.fetch_add(1, Ordering::Relaxed);
                    if !self.flights.is_running(key) {
                        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                        match &self.background {
                            // A durable, retried refresh that any instance may run.
                            Some(background) if background.can_refresh(key) => {
                                if background.refresh_later(key) && self.remote.is_some() {
                                    // Another instance may run the refresh: the next request
                                    // here reads the shared level, where it lands.
                                    Box::pin(self.store.invalidate(key)).await;
                                }
                            }
                            // Not awaited: the load task runs on, and stores its result.
                            _ => drop(self.start_load(key, options, loader)),
                        }
                    }
                    return Ok(Cached::from_entry(entry, Outcome::Stale));
                }
                State::Reserve => reserve = Some((entry, Outcome::StaleOnError)),
                State::Expired if entry.stands_in_unreachable(Instant::now()) => {
                    kept = Some((entry, Outcome::StaleUnreachable));
                }
                State::Expired => {}
            }
        }
        let (flight, collapsed) = self.start_load(key, options, loader);
        let counter = if collapsed {
            &self.counters.collapsed
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let landed = flight.await;
        // A copy kept past its windows stands in only for a source that could not be reached.
        if matches!(
            &landed,
            Ok(Landed {
                unreachable: true,
                ..
            })
        ) {
            reserve = reserve.or(kept);
        }
        match (landed, reserve) {
            (
                Ok(Landed {
                    failed: false,
                    entry,
                    stored,
                    ..
                }),
                _,
            )
            | (Ok(Landed { entry, stored, .. }), None) => Ok(Cached::from_entry(
                entry,
                Outcome::Miss { collapsed, stored },
            )),
            (Err(error), None) => Err(error),
            (_, Some((stale, outcome))) => {
                self.counters.stale_on_error.fetch_add(1, Ordering::Relaxed);
                Ok(Cached::from_entry(stale, outcome))
            }
        }
    }

    /// Loads `key` with `loader` now and stores the result, whatever the cache holds (a
    /// running load of the key is joined instead). Refresh jobs come this way.
    pub async fn load_now<F, Fut, V, E>(
        &self,
        key: &str,
        options: CacheOptions,
        loader: F,
    ) -> Result<Cached, LoadError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        V: Into<Loaded>,
        E: std::fmt::Display,
    {
        let (flight, collapsed) = self.start_load(key, options, loader);
        let landed = flight.await?;
        Ok(Cached::from_entry(
            landed.entry,
            Outcome::Miss {
                collapsed,
                stored: landed.stored,
            },
        ))
    }

    fn start_load<F, Fut, V, E>(
        &self,
        key: &str,
        options: CacheOptions,
        loader: F,
    ) -> (flight::Flight<Landed>, bool)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        V: Into<Loaded>,
        E: std::fmt::Display,
    {
        let cache = self.clone();
        let owned_key = key.to_owned();
        self.flights.join_or_start(key, async move {
            let mark = cache.invalidations.mark();
            let loaded: Loaded = loader()
                .await
                .map_err(|e| {
                    cache.counters.load_errors.fetch_add(1, Ordering::Relaxed);
                    LoadError::from_message(e.to_string())
                })?
                .into();
            let now = Instant::now();
            let stored_at = now.checked_sub(loaded.age).unwrap_or(now);
            let options = loaded.options.unwrap_or(options);
            let entry = Arc::new(Entry::new(loaded.value, stored_at, options));
            // A failure that may be stored (an upstream's 5xx with its own freshness) is,
            // unless a copy is held anywhere: a failure never replaces a response.
            let stands_in = loaded.failed && (!loaded.store || cache.holds(&owned_key).await);
            let stored = loaded.store
                && !stands_in
                && cache
                    .invalidations
                    .spares(mark, &owned_key, &entry.options.tags);
            if stored {
                cache.insert(owned_key, Arc::clone(&entry)).await;
            }
            Ok(Landed {
                entry,
                stored,
                failed: loaded.failed,
                unreachable: loaded.failed && loaded.unreachable,
            })
        })
    }

    async fn insert(&self, key: String, entry: Arc<Entry>) {
        if let Some(remote) = &self.remote {
            let bytes = codec::encode(&entry, (Instant::now(), codec::unix_ms()));
            remote
                .put(&key, bytes, entry.retention(), &entry.options.tags)
                .await;
        }
        self.insert_local(key, entry).await;
    }

    async fn insert_local(&self, key: String, entry: Arc<Entry>) {
        {
            let mut index = self.tags.lock().unwrap_or_else(|p| p.into_inner());
            for tag in entry.options.tags.iter() {
                index.entry(tag.clone()).or_default().insert(key.clone());
            }
        }
        self.store.insert(key, entry).await;
    }

    /// Drops every entry carrying one of `tags`, here, in Redis and in every other instance,
    /// and waits until the purges that carry it to the edge are stored; returns how many
    /// in-process entries were dropped.
    pub async fn invalidate_tags(&self, tags: &[String]) -> u64 {
        self.invalidate(tags, &[], Purges::Enqueue).await
    }

    /// As [`Self::invalidate_tags`] for a caller that stored the invalidation's purges itself
    /// ([`Self::purge_jobs`], in a write's outbox) and queues them once this returns.
    pub async fn invalidate_tags_purged_by_caller(&self, tags: &[String]) -> u64 {
        self.invalidate(tags, &[], Purges::Caller).await
    }

    /// The jobs that carry an invalidation of `tags` to the edge and to Cloudflare, where
    /// this cache purges.
    pub fn purge_jobs(&self, tags: &[String]) -> Vec<NewJob> {
        self.background
            .as_ref()
            .map(|background| background.purge_jobs(tags, &[]))
            .unwrap_or_default()
    }

    /// Drops the entries under `keys` everywhere; returns how many in-process entries were dropped.
    pub async fn invalidate_keys(&self, keys: &[String]) -> u64 {
        self.invalidate(&[], keys, Purges::Enqueue).await
    }

    /// Drops locally, then in Redis and every instance, with the purges enqueued as the Redis
    /// entries are deleted (unless the caller queues them after, [`Purges::Caller`]): the
    /// caller waits for the tag lookup and then one more round trip, not two. The deletion is
    /// sent first, and a purge reaches the edge only after a worker has read its job and called
    /// the edge, so the edge cannot fetch the old copy from Redis again.
    async fn invalidate(&self, tags: &[String], keys: &[String], purges: Purges) -> u64 {
        let (removed, hot) = self.invalidate_local(tags, keys).await;
        let tagged = match &self.remote {
            Some(remote) => remote.tagged(tags).await,
            None => Vec::new(),
        };
        let remote = async {
            if let Some(remote) = &self.remote {
                remote.drop_entries(&tagged, tags, keys).await;
            }
        };
        let purges = async {
            if let Some(background) = &self.background {
                background
                    .after_invalidation(tags, keys, &hot, purges)
                    .await;
            }
        };
        tokio::join!(remote, purges);
        removed
    }

    /// Drops tagged entries and keys from the in-process level only; returns how many, and
    /// the keys of those that were hot.
    async fn invalidate_local(&self, tags: &[String], keys: &[String]) -> (u64, Vec<String>) {
        self.invalidations.record(tags, keys);
        let mut doomed: HashSet<String> = {
            let mut index = self.tags.lock().unwrap_or_else(|p| p.into_inner());
            tags.iter()
                .filter_map(|tag| index.remove(tag))
                .flatten()
                .collect()
        };
        doomed.extend(keys.iter().cloned());
        self.remove_keys(doomed.iter().map(String::as_str)).await
    }

    /// Drops `keys` from the in-process level. An entry still inside its stale-if-error window
    /// stays behind as a stand-in only (a soft purge, as Varnish and Fastly do): the next
    /// request loads the value again and gets the old one only if that load fails, so a write
    /// is read back at once and an outage right after it still finds a copy to serve.
    async fn remove_keys(&self, keys: impl Iterator<Item = &str>) -> (u64, Vec<String>) {
        let (mut removed, mut hot) = (0, Vec::new());
        let now = Instant::now();
        for key in keys {
            if let Some(entry) = self.store.remove(key).await {
                removed += 1;
                if entry.hits.load(Ordering::Relaxed) >= background::HOT_HITS {
                    hot.push(key.to_owned());
                }
                if let Some(stand_in) = entry.stand_in(now) {
                    self.insert_local(key.to_owned(), Arc::new(stand_in)).await;
                }
            }
        }
        self.counters
            .invalidated
            .fetch_add(removed, Ordering::Relaxed);
        (removed, hot)
    }

    /// Hits and misses per level (Redis only when configured), read without waiting.
    pub fn level_counts(&self) -> Vec<LevelCount> {
        self.counters.levels(self.remote.is_some())
    }

    /// How full the in-process level is, what it evicted and the stale copies served, read
    /// without waiting (the size is moka's, as of its last maintenance: see [`Self::settle`]).
    pub fn local_pressure(&self) -> LocalPressure {
        let c = &self.counters;
        LocalPressure {
            entries: self.store.entry_count(),
            bytes: self.store.weighted_size(),
            evictions: c.evictions(),
            stale_revalidate: c.stale_hits.load(Ordering::Relaxed),
            stale_error: c.stale_on_error.load(Ordering::Relaxed),
        }
    }

    /// Runs the in-process level's pending maintenance (evictions, expiries, size), so that
    /// what it reports next is current; requests run it too, now and then.
    pub async fn settle(&self) {
        self.store.run_pending_tasks().await;
    }

    /// How long a Redis `PING` takes, or why it failed; `None` without a Redis level.
    pub async fn ping_redis(&self) -> Option<Result<Duration, String>> {
        Some(self.remote.as_ref()?.ping().await)
    }

    /// A snapshot of the counters.
    pub async fn stats(&self) -> CacheStats {
        self.settle().await;
        let redis_errors = self.remote.as_ref().map_or(0, |remote| remote.errors());
        let (entries, bytes) = (self.store.entry_count(), self.store.weighted_size());
        self.counters.stats(entries, bytes, redis_errors)
    }
}

#[cfg(test)]
mod tests;
