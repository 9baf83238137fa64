//! A cached value and its logical freshness.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::time::{Duration, Instant};

/// How long a value stays fresh, how long it may then be served stale while it is refreshed,
/// and which tags invalidate it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOptions {
    /// Freshness lifetime.
    pub ttl: Duration,
    /// After `ttl`, how long the stale value is served while one background load refreshes it.
    pub stale_while_revalidate: Duration,
    /// After `ttl`, how long the stale value may stand in for a load that failed.
    pub stale_if_error: Duration,
    /// After `ttl`, how long the value is kept to be validated again with a conditional
    /// request (it is never served in that time unless its loader says it is still current).
    pub keep: Duration,
    /// Whether, during `keep`, the stale value may stand in for a load whose source could not
    /// be reached at all (a cache that is disconnected may serve stale, RFC 9111 §4.2.4); its
    /// response decides, as `must-revalidate`, `proxy-revalidate`, `no-cache` and `s-maxage`
    /// forbid it.
    pub stale_if_unreachable: bool,
    /// Tags for [`super::TieredCache::invalidate_tags`].
    pub tags: Arc<[String]>,
}

/// One stored value.
#[derive(Debug)]
pub struct Entry {
    /// The value.
    pub value: Bytes,
    /// When it was stored.
    pub stored_at: Instant,
    /// Its options.
    pub options: CacheOptions,
    /// The value as its user decoded it, kept so that each hit does not decode again.
    decoded: OnceLock<Option<Arc<dyn Any + Send + Sync>>>,
    /// Hits served from this instance's copy: an invalidated entry read this often is warmed again.
    pub hits: std::sync::atomic::AtomicU32,
}

/// Where an entry stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Fresh for `remaining` more.
    Fresh {
        /// Time left.
        remaining: Duration,
    },
    /// Expired, inside the stale-while-revalidate window.
    Stale,
    /// Past the stale-while-revalidate window but inside stale-if-error: loaded again, and
    /// served only when that load fails.
    Reserve,
    /// Past both windows: must be loaded again. Inside `keep`, it stands in for a load whose
    /// source could not be reached, where `stale_if_unreachable` allows.
    Expired,
}

impl Entry {
    /// An entry holding `value` since `stored_at`.
    pub fn new(value: Bytes, stored_at: Instant, options: CacheOptions) -> Self {
        Self {
            value,
            stored_at,
            options,
            decoded: OnceLock::new(),
            hits: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The value decoded by `decode`, which runs once per entry; `None` when it fails or when
    /// another type was decoded from this entry before.
    pub fn decoded<T: Any + Send + Sync>(
        &self,
        decode: impl FnOnce(&Bytes) -> Option<T>,
    ) -> Option<Arc<T>> {
        let any = self
            .decoded
            .get_or_init(|| {
                decode(&self.value).map(|value| Arc::new(value) as Arc<dyn Any + Send + Sync>)
            })
            .clone()?;
        any.downcast::<T>().ok()
    }

    /// The entry's state at `now`.
    pub fn state(&self, now: Instant) -> State {
        let age = now.saturating_duration_since(self.stored_at);
        if age < self.options.ttl {
            State::Fresh {
                remaining: self.options.ttl - age,
            }
        } else if age < self.options.ttl + self.options.stale_while_revalidate {
            State::Stale
        } else if age < self.options.ttl + self.options.stale_if_error {
            State::Reserve
        } else {
            State::Expired
        }
    }

    /// The entry, stale from `now`, as a stand-in for a failed load only (never fresh, never
    /// served while a load may succeed) for its stale-if-error window, and no longer than it
    /// would have stood in otherwise; `None` without such a window.
    pub fn stand_in(&self, now: Instant) -> Option<Self> {
        let deadline = self.stored_at + self.options.ttl + self.options.stale_if_error;
        let left = deadline
            .checked_duration_since(now)?
            .min(self.options.stale_if_error);
        (!left.is_zero()).then(|| {
            let options = CacheOptions {
                ttl: Duration::ZERO,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: left,
                keep: Duration::ZERO,
                stale_if_unreachable: false,
                tags: Arc::clone(&self.options.tags),
            };
            Self::new(self.value.clone(), now, options)
        })
    }

    /// Whether the entry, past its windows, may stand in at `now` for a load whose source could
    /// not be reached.
    pub fn stands_in_unreachable(&self, now: Instant) -> bool {
        let age = now.saturating_duration_since(self.stored_at);
        self.options.stale_if_unreachable && age < self.options.ttl + self.options.keep
    }

    /// How long the entry is worth keeping at all.
    pub fn retention(&self) -> Duration {
        self.options.ttl
            + self
                .options
                .stale_while_revalidate
                .max(self.options.stale_if_error)
                .max(self.options.keep)
    }
}
