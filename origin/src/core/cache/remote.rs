//! The shared second level: Redis, failing open.
//!
//! Entries live under `<prefix><key>` with a physical expiry covering both windows; each tag is a
//! Redis set of keys. Invalidations delete the tagged keys and are published on
//! `<prefix>invalidate`, so every instance drops its in-process copies. Every call is bounded by
//! a timeout; a failure is counted and treated as a miss, never as an error for the client.
//! After a lost subscription the in-process level is flushed, since invalidations may have been
//! missed meanwhile. Every call's outcome, the subscription's and each health `PING`'s tell
//! `redis_up` whether Redis answers, at no cost of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::time::Duration;
use tracing::Instrument;

use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::dependencies::guarded::{Failure, Guard, Outcome};
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
    client: redis::Client,
    conn: ConnectionManager,
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
    /// A tier on `url` whose keys start with `prefix`; connects lazily and reconnects by itself.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let instance = format!("{:016x}", rand_id());
        Ok(Self {
            client,
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
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut conn);
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
        command: &redis::Pipeline,
    ) -> Option<T> {
        let mut conn = self.conn.clone();
        let call = command.query_async::<T>(&mut conn);
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
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.key(key));
        self.run::<(Option<Vec<u8>>,)>("get", &pipe)
            .await
            .and_then(|(value,)| value)
    }

    /// Stores `bytes` under `key` for `retention`, indexed under `tags`.
    pub async fn put(&self, key: &str, bytes: Vec<u8>, retention: Duration, tags: &[String]) {
        let ms = retention.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.key(key))
            .arg(bytes)
            .arg("PX")
            .arg(ms)
            .ignore();
        for tag in tags {
            let set = self.tag(tag);
            pipe.cmd("SADD").arg(&set).arg(key).ignore();
            // A tag set lives as long as its longest-lived entry.
            pipe.cmd("PEXPIRE").arg(&set).arg(ms).arg("NX").ignore();
            pipe.cmd("PEXPIRE").arg(&set).arg(ms).arg("GT").ignore();
        }
        let _ = self.run::<()>("put", &pipe).await;
    }

    /// The keys of the entries carrying `tags` (none when Redis cannot say).
    pub async fn tagged(&self, tags: &[String]) -> Vec<String> {
        if tags.is_empty() {
            return Vec::new();
        }
        let mut lookup = redis::pipe();
        for tag in tags {
            lookup.cmd("SMEMBERS").arg(self.tag(tag));
        }
        let tagged: Vec<Vec<String>> = self.run("tag_lookup", &lookup).await.unwrap_or_default();
        tagged.into_iter().flatten().collect()
    }

    /// Deletes the `tagged` entries (see [`Self::tagged`]), `keys` and the sets of `tags`, and
    /// tells the other instances, in one round trip.
    pub async fn drop_entries(&self, tagged: &[String], tags: &[String], keys: &[String]) {
        let mut delete = redis::pipe();
        for key in tagged.iter().chain(keys) {
            delete.cmd("DEL").arg(self.key(key)).ignore();
        }
        for tag in tags {
            delete.cmd("DEL").arg(self.tag(tag)).ignore();
        }
        let message = Invalidation {
            from: self.instance.clone(),
            tags: tags.to_vec(),
            keys: keys.to_vec(),
            all: false,
        };
        let payload = serde_json::to_string(&message).unwrap_or_default();
        delete
            .cmd("PUBLISH")
            .arg(self.channel())
            .arg(payload)
            .ignore();
        let _ = self.run::<()>("invalidate", &delete).await;
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

    /// Redis keys matching `pattern`, at most `limit`, found with `SCAN` (never `KEYS`).
    async fn scan(&self, pattern: &str, limit: usize) -> Vec<String> {
        let mut conn = self.conn.clone();
        let mut found = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut command = redis::cmd("SCAN");
            command
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let step = command.query_async::<(u64, Vec<String>)>(&mut conn);
            let Ok(Ok((next, keys))) = tokio::time::timeout(self.guard.timeout * 4, step).await
            else {
                self.failed::<()>("scan failed");
                return found;
            };
            found.extend(keys);
            if next == 0 || found.len() >= limit {
                found.truncate(limit);
                return found;
            }
            cursor = next;
        }
    }

    /// Deletes every cached entry and tag set, and tells the other instances to drop theirs.
    pub async fn clear(&self) -> usize {
        let mut keys = self.keys_matching("GET *", usize::MAX).await;
        keys.extend(self.keys_matching("HEAD *", usize::MAX).await);
        let tags = self.scan(&self.tag("*"), usize::MAX).await;
        for chunk in keys.chunks(500) {
            let mut delete = redis::pipe();
            for key in chunk {
                delete.cmd("DEL").arg(self.key(key)).ignore();
            }
            let _ = self.run::<()>("clear", &delete).await;
        }
        let mut publish = redis::pipe();
        for tag in tags {
            publish.cmd("DEL").arg(tag).ignore();
        }
        let message = Invalidation {
            from: self.instance.clone(),
            tags: Vec::new(),
            keys: Vec::new(),
            all: true,
        };
        publish
            .cmd("PUBLISH")
            .arg(self.channel())
            .arg(serde_json::to_string(&message).unwrap_or_default())
            .ignore();
        let _ = self.run::<()>("clear", &publish).await;
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
            match self.client.get_async_pubsub().await {
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
