//! The shared second level: Redis, failing open.
//!
//! Entries live under `<prefix><key>` with a physical expiry covering both windows; each tag is a
//! Redis set of keys. Invalidations delete the tagged keys and are published on
//! `<prefix>invalidate`, so every instance drops its in-process copies. Every call is bounded by
//! a timeout; a failure is counted and treated as a miss, never as an error for the client.
//! After a lost subscription the in-process level is flushed, since invalidations may have been
//! missed meanwhile. Every call's outcome, the subscription's and each health `PING`'s tell
//! `redis_up` whether Redis answers, at no cost of its own. It runs on any shape of Redis
//! ([`RedisTarget`]): on a cluster an entry and its tag sets live in different slots, so a
//! write or an invalidation is one pipeline per slot ([`Batch`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Duration;
use tracing::Instrument;

use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::dependencies::guarded::{Failure, Guard, Outcome};
use crate::core::dependencies::redis::{Batch, RedisConnection, RedisTarget};
use crate::core::observability::dependency_metrics::RedisMetrics;
use crate::core::observability::telemetry;

/// An invalidation as published to the other instances.
#[derive(Debug, Serialize, Deserialize)]
pub struct Invalidation {
    /// The publishing instance (it has already applied it).
    pub from: String,
    /// Tags to drop.
    pub tags: Vec<String>,
    /// Keys to drop.
    pub keys: Vec<String>,
    /// Drop everything (an operator cleared the cache).
    #[serde(default)]
    pub all: bool,
}

/// The Redis level.
pub struct RedisTier {
    target: RedisTarget,
    conn: RedisConnection,
    prefix: String,
    instance: String,
    guard: Guard,
    errors: Arc<AtomicU64>,
    metrics: RedisMetrics,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A tier on `target` whose keys start with `prefix`; connects lazily and reconnects by
    /// itself.
    pub fn new(target: &RedisTarget, prefix: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let conn = target.shared(timeout, 1)?;
        let instance = format!("{:016x}", rand_id());
        Ok(Self {
            target: target.clone(),
            conn,
            prefix: prefix.to_owned(),
            instance,
            guard: Guard::unguarded(timeout),
            errors: Arc::default(),
            metrics: RedisMetrics::default(),
        })
    }

    /// Skips Redis while `breaker` is open, and tells it how calls went.
    #[must_use]
    pub fn with_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.guard.breaker = Some(breaker);
        self
    }

    /// Records every call in `metrics`, and whether Redis answers (`redis_up`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: RedisMetrics) -> Self {
        metrics.in_use();
        self.metrics = metrics;
        self
    }

    /// How long a `PING` takes, or why it failed (never gated by the breaker).
    pub async fn ping(&self) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let ping = async move { conn.ping().await };
        let answered = Guard::unguarded(self.guard.timeout)
            .call(ping, |_| true, |_, _| {})
            .await;
        self.metrics.answered(answered.is_ok());
        match answered {
            Ok(_) => Ok(started.elapsed()),
            Err(Failure::Error(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.guard.timeout)),
        }
    }

    /// Failed Redis calls so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn tag(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        batch: &Batch,
    ) -> Option<T> {
        let call = async {
            let answers = batch.run(&self.conn).await?;
            Ok::<T, redis::RedisError>(redis::from_redis_value(redis::Value::Array(answers))?)
        };
        let record =
            |outcome: Outcome, elapsed| self.metrics.record(operation, outcome.as_str(), elapsed);
        let span = telemetry::dependency_span("redis", operation, "cache");
        match self
            .guard
            .call(call, |_| true, record)
            .instrument(span)
            .await
        {
            Ok(value) => Some(value),
            Err(Failure::CircuitOpen) => None,
            Err(Failure::Error(error)) => self.failed(&error.to_string()),
            Err(Failure::Timeout(_)) => self.failed("timed out"),
        }
    }

    fn failed<T>(&self, why: &str) -> Option<T> {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            error = why,
            "redis call failed; serving without the shared cache"
        );
        None
    }

    /// The stored bytes of `key`, if any and reachable.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let key = self.key(key);
        let mut batch = self.batch();
        batch.add(Some(&key), redis::cmd("GET").arg(&key).to_owned());
        self.run::<(Option<Vec<u8>>,)>("get", &batch)
            .await
            .and_then(|(value,)| value)
    }

    /// Stores `bytes` under `key` for `retention`, indexed under `tags`.
    pub async fn put(&self, key: &str, bytes: Vec<u8>, retention: Duration, tags: &[String]) {
        let ms = retention.as_millis().max(1) as u64;
        let stored = self.key(key);
        let mut batch = self.batch();
        let set = redis::cmd("SET")
            .arg(&stored)
            .arg(bytes)
            .arg("PX")
            .arg(ms)
            .to_owned();
        batch.add_quiet(Some(&stored), set);
        for tag in tags {
            let set = self.tag(tag);
            batch.add_quiet(Some(&set), redis::cmd("SADD").arg(&set).arg(key).to_owned());
            // A tag set lives as long as its longest-lived entry.
            for only in ["NX", "GT"] {
                let expire = redis::cmd("PEXPIRE").arg(&set).arg(ms).arg(only).to_owned();
                batch.add_quiet(Some(&set), expire);
            }
        }
        let _ = self.run::<()>("put", &batch).await;
    }

    /// The keys of the entries carrying `tags` (none when Redis cannot say).
    pub async fn tagged(&self, tags: &[String]) -> Vec<String> {
        if tags.is_empty() {
            return Vec::new();
        }
        let mut lookup = self.batch();
        for tag in tags {
            let set = self.tag(tag);
            lookup.add(Some(&set), redis::cmd("SMEMBERS").arg(&set).to_owned());
        }
        let tagged: Vec<Vec<String>> = self.run("tag_lookup", &lookup).await.unwrap_or_default();
        tagged.into_iter().flatten().collect()
    }

    /// Deletes the `tagged` entries (see [`Self::tagged`]), `keys` and the sets of `tags`, and
    /// tells the other instances: in one round trip on one node, after the deletions on a
    /// cluster (whose nodes do not order one client's commands between them).
    pub async fn drop_entries(&self, tagged: &[String], tags: &[String], keys: &[String]) {
        let mut delete = self.batch();
        let stored = tagged.iter().chain(keys).map(|key| self.key(key));
        for doomed in stored.chain(tags.iter().map(|tag| self.tag(tag))) {
            delete.add_quiet(Some(&doomed), redis::cmd("DEL").arg(&doomed).to_owned());
        }
        let message = Invalidation {
            from: self.instance.clone(),
            tags: tags.to_vec(),
            keys: keys.to_vec(),
            all: false,
        };
        self.publish_after("invalidate", delete, &message).await;
    }

    /// Runs `batch`, then publishes `message` to the other instances, so that none of them
    /// reads what `batch` deletes from Redis after hearing of it.
    async fn publish_after(
        &self,
        operation: &'static str,
        mut batch: Batch,
        message: &Invalidation,
    ) {
        let payload = serde_json::to_string(message).unwrap_or_default();
        let publish = redis::cmd("PUBLISH")
            .arg(self.channel())
            .arg(payload)
            .to_owned();
        if self.conn.is_cluster() {
            let _ = self.run::<()>(operation, &batch).await;
            batch = self.batch();
        }
        batch.add_quiet(None, publish);
        let _ = self.run::<()>(operation, &batch).await;
    }

    fn batch(&self) -> Batch {
        Batch::for_connection(&self.conn)
    }

    /// Cache keys matching the glob `pattern` (Redis `MATCH` syntax), at most `limit` of them.
    pub async fn keys_matching(&self, pattern: &str, limit: usize) -> Vec<String> {
        self.scan(&self.key(pattern), limit)
            .await
            .into_iter()
            .filter_map(|key| key.strip_prefix(&self.prefix).map(str::to_owned))
            .filter(|key| !key.starts_with("tag:") && !key.starts_with("jobs:"))
            .collect()
    }

    /// Redis keys matching `pattern`, at most `limit`, found with `SCAN` (never `KEYS`) on
    /// every node that holds keys.
    async fn scan(&self, pattern: &str, limit: usize) -> Vec<String> {
        let mut conn = self.conn.clone();
        match conn.scan(pattern, limit, self.guard.timeout * 4).await {
            Ok(found) => found,
            Err(error) => {
                self.failed::<()>(&format!("scan failed: {error}"));
                Vec::new()
            }
        }
    }

    /// Deletes every cached entry and tag set, and tells the other instances to drop theirs.
    pub async fn clear(&self) -> usize {
        let mut keys = self.keys_matching("GET *", usize::MAX).await;
        keys.extend(self.keys_matching("HEAD *", usize::MAX).await);
        let tags = self.scan(&self.tag("*"), usize::MAX).await;
        for chunk in keys.chunks(500) {
            let mut delete = self.batch();
            for key in chunk.iter().map(|key| self.key(key)) {
                delete.add_quiet(Some(&key), redis::cmd("DEL").arg(&key).to_owned());
            }
            let _ = self.run::<()>("clear", &delete).await;
        }
        let mut delete_tags = self.batch();
        for tag in tags {
            delete_tags.add_quiet(Some(&tag), redis::cmd("DEL").arg(&tag).to_owned());
        }
        let message = Invalidation {
            from: self.instance.clone(),
            tags: Vec::new(),
            keys: Vec::new(),
            all: true,
        };
        self.publish_after("clear", delete_tags, &message).await;
        keys.len()
    }

    /// Listens for other instances' invalidations forever, resubscribing after failures.
    /// `apply` drops local entries; `flush` drops them all after a lost subscription.
    pub async fn listen(
        self: Arc<Self>,
        apply: impl Fn(Invalidation) + Send,
        flush: impl Fn() + Send,
    ) {
        let mut subscribed_before = false;
        loop {
            match self.target.subscriber().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(self.channel()).await.is_ok() {
                        self.metrics.answered(true);
                        if subscribed_before {
                            flush();
                        }
                        subscribed_before = true;
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let parsed = message
                                .get_payload::<String>()
                                .ok()
                                .and_then(|text| serde_json::from_str::<Invalidation>(&text).ok());
                            match parsed {
                                Some(invalidation) if invalidation.from != self.instance => {
                                    apply(invalidation)
                                }
                                Some(_) => {}
                                None => tracing::warn!("ignoring a malformed invalidation message"),
                            }
                        }
                    }
                    self.metrics.answered(false);
                    self.failed::<()>("invalidation subscription lost");
                }
                Err(error) => {
                    self.metrics.answered(false);
                    self.failed::<()>(&error.to_string());
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A process-unique id without a random-number dependency: time and address entropy.
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(super::codec::unix_ms());
    hasher.write_u32(std::process::id());
    hasher.finish()
}
