//! What the cache hands out and takes in: loaded values, how a value was obtained, and the
//! expiry that drops an entry once none of its windows is left.

use std::sync::Arc;

use bytes::Bytes;
use moka::Expiry;
use tokio::time::{Duration, Instant};

use super::entry::{CacheOptions, Entry, State};

/// A request extension (never a header: clients cannot set it) asking the response cache to
/// load and store the response whatever it holds; refresh and warm-up jobs send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForceRefresh;

/// What a loader produced: the value, whether it may be stored, and whether it reports a
/// failure. A value that must not be stored (e.g. a response marked `no-store`) still reaches
/// every caller waiting for the load; a failure (e.g. a `503`) is replaced by a stale copy
/// inside its stale-if-error window, where there is one.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The value.
    pub value: Bytes,
    /// Whether to store it.
    pub store: bool,
    /// Whether the value reports a failure of what it was loaded from: a stale copy inside its
    /// stale-if-error window is served instead, and the failure is stored only when `store`
    /// allows it and no stale copy is held.
    pub failed: bool,
    /// Whether that failure is that the source could not be reached at all (refused, reset,
    /// timed out): a copy kept past its windows stands in, where it allows (see
    /// [`super::CacheOptions::stale_if_unreachable`]).
    pub unreachable: bool,
    /// Its own lifetimes and tags, where the value says them (an upstream's `Cache-Control`
    /// and `Surrogate-Key`); `None` keeps those of the request that loaded it.
    pub options: Option<CacheOptions>,
    /// How old it already was when it arrived (an upstream's `Age`, or `Date` in the past).
    pub age: Duration,
}

impl From<Bytes> for Loaded {
    fn from(value: Bytes) -> Self {
        Self {
            value,
            store: true,
            failed: false,
            unreachable: false,
            options: None,
            age: Duration::ZERO,
        }
    }
}

/// What a finished load hands to every caller that waited for it.
#[derive(Debug, Clone)]
pub(super) struct Landed {
    pub(super) entry: Arc<Entry>,
    pub(super) stored: bool,
    pub(super) failed: bool,
    pub(super) unreachable: bool,
}

/// How a value was obtained, for `Cache-Status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fresh from the cache.
    Hit {
        /// Freshness left.
        remaining: Duration,
    },
    /// Stale from the cache; a background refresh is running.
    Stale,
    /// Stale from the cache, standing in for a load that failed (stale-if-error).
    StaleOnError,
    /// Stale from the cache, kept past its windows, standing in for a load whose source could
    /// not be reached (RFC 9111 §4.2.4).
    StaleUnreachable,
    /// Loaded; `collapsed` when this call waited for another caller's load.
    Miss {
        /// Joined a load already in flight.
        collapsed: bool,
        /// The loaded value was stored (the loader allowed it and no invalidation intervened).
        stored: bool,
    },
}

impl Outcome {
    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit { .. } => "hit",
            Self::Stale => "stale",
            Self::StaleOnError => "stale-if-error",
            Self::StaleUnreachable => "stale-unreachable",
            Self::Miss {
                collapsed: false, ..
            } => "miss",
            Self::Miss {
                collapsed: true, ..
            } => "collapsed",
        }
    }
}

/// A value and how it was obtained.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The value.
    pub value: Bytes,
    /// Hit, stale or miss.
    pub outcome: Outcome,
    /// How long ago the value was loaded.
    pub age: Duration,
    /// The entry it came from.
    entry: Arc<Entry>,
}

impl Cached {
    pub(super) fn from_entry(entry: Arc<Entry>, outcome: Outcome) -> Self {
        Self {
            value: entry.value.clone(),
            outcome,
            age: entry.stored_at.elapsed(),
            entry,
        }
    }

    /// Whether the value is fresh now (not merely stored: a response with no freshness of its
    /// own is stored to be validated, and may not be handed to another request unvalidated).
    pub fn is_fresh(&self) -> bool {
        matches!(self.entry.state(Instant::now()), State::Fresh { .. })
    }

    /// The value decoded by `decode`, which runs once per cache entry (see [`Entry::decoded`]).
    pub fn decoded<T: std::any::Any + Send + Sync>(
        &self,
        decode: impl FnOnce(&Bytes) -> Option<T>,
    ) -> Option<Arc<T>> {
        self.entry.decoded(decode)
    }
}

/// Entries expire physically when both windows have passed.
pub(super) struct RetentionExpiry;

impl Expiry<String, Arc<Entry>> for RetentionExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        _now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        Some(entry.retention())
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        _now: std::time::Instant,
        _remaining: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        Some(entry.retention())
    }
}
