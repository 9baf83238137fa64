//! What the cache counts, as atomics its paths add to and its reports read without waiting:
//! lookups per level, stale copies served, loads, invalidations, and the in-process level's
//! evictions by cause (moka's [`RemovalCause`]).

use std::sync::atomic::{AtomicU64, Ordering};

use moka::notification::RemovalCause;
use serde::Serialize;

/// Counters for `/api/cache/stats` and metrics.
#[derive(Debug, Default, Serialize)]
pub struct CacheStats {
    /// Fresh hits.
    pub hits: u64,
    /// Stale values served while refreshing.
    pub stale_hits: u64,
    /// Loads started.
    pub misses: u64,
    /// Calls that joined another caller's load.
    pub collapsed: u64,
    /// Background refreshes started.
    pub refreshes: u64,
    /// Stale values served because their load failed (stale-if-error).
    pub stale_on_error: u64,
    /// Loads that failed.
    pub load_errors: u64,
    /// Entries removed by invalidation.
    pub invalidated: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now (keys and values).
    pub bytes: u64,
    /// Values found in Redis after an in-process miss.
    pub redis_hits: u64,
    /// Failed Redis calls (each served without the shared level).
    pub redis_errors: u64,
}

/// Lookups answered and missed by one cache level, for `cache_hits_total{cache}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelCount {
    /// `memory` or `redis`.
    pub level: &'static str,
    /// Lookups this level answered.
    pub hits: u64,
    /// Lookups this level could not answer.
    pub misses: u64,
}

/// The causes of `cache_evictions_total{cause}`, in the order of [`Counters::evictions`].
pub const EVICTION_CAUSES: [&str; 4] = ["size", "expired", "replaced", "explicit"];

/// How full the in-process level is and what it let go, for the saturation metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPressure {
    /// Entries held.
    pub entries: u64,
    /// Their weighted size: bytes of keys and values.
    pub bytes: u64,
    /// Entries removed, per cause of [`EVICTION_CAUSES`].
    pub evictions: [u64; 4],
    /// Stale copies served while a refresh runs (stale-while-revalidate).
    pub stale_revalidate: u64,
    /// Stale copies served in place of a failed load (stale-if-error).
    pub stale_error: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) stale_hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) collapsed: AtomicU64,
    pub(super) refreshes: AtomicU64,
    pub(super) stale_on_error: AtomicU64,
    pub(super) load_errors: AtomicU64,
    pub(super) invalidated: AtomicU64,
    pub(super) memory_hits: AtomicU64,
    pub(super) memory_misses: AtomicU64,
    pub(super) redis_hits: AtomicU64,
    pub(super) redis_misses: AtomicU64,
    /// Removals from the in-process level, per cause of [`EVICTION_CAUSES`].
    evictions: [AtomicU64; 4],
}

impl Counters {
    /// Counts one entry the in-process level let go of for `cause`.
    pub(super) fn evicted(&self, cause: RemovalCause) {
        let index = match cause {
            RemovalCause::Size => 0,
            RemovalCause::Expired => 1,
            RemovalCause::Replaced => 2,
            RemovalCause::Explicit => 3,
        };
        self.evictions[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Removals per cause of [`EVICTION_CAUSES`].
    pub(super) fn evictions(&self) -> [u64; 4] {
        self.evictions
            .each_ref()
            .map(|count| count.load(Ordering::Relaxed))
    }

    /// Hits and misses per level (Redis only when `redis`).
    pub(super) fn levels(&self, redis: bool) -> Vec<LevelCount> {
        let mut levels = vec![LevelCount {
            level: "memory",
            hits: self.memory_hits.load(Ordering::Relaxed),
            misses: self.memory_misses.load(Ordering::Relaxed),
        }];
        if redis {
            levels.push(LevelCount {
                level: "redis",
                hits: self.redis_hits.load(Ordering::Relaxed),
                misses: self.redis_misses.load(Ordering::Relaxed),
            });
        }
        levels
    }

    /// The counters, with what the store holds (`entries`, `bytes`) and `redis_errors`.
    pub(super) fn stats(&self, entries: u64, bytes: u64, redis_errors: u64) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            hits: read(&self.hits),
            stale_hits: read(&self.stale_hits),
            misses: read(&self.misses),
            collapsed: read(&self.collapsed),
            refreshes: read(&self.refreshes),
            stale_on_error: read(&self.stale_on_error),
            load_errors: read(&self.load_errors),
            invalidated: read(&self.invalidated),
            entries,
            bytes,
            redis_hits: read(&self.redis_hits),
            redis_errors,
        }
    }
}
