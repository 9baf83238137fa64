//! Request coalescing: concurrent misses for one key within an isolate share one origin fetch.
//! The first request (the leader) forwards and stores; the others wait for it and then answer
//! from the cache, or forward themselves when the leader's response could not be stored.
//!
//! A leader answers its client first and stores in the background ([`Leader::storing`]). A
//! request that comes meanwhile waits for the store, briefly, before it looks in the cache
//! ([`settled`]), so that it is a hit, as it would be once the store is done.
//!
//! Followers poll for the leader's end on their own timers rather than being woken by it:
//! workerd runs each request in its own I/O context and cancels, as hung, a request whose only
//! pending work is another request's (a waker fired from the leader's context does not count).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use worker::{Date, Delay};

/// How often a follower looks whether its leader is done.
const POLL_INTERVAL: Duration = Duration::from_millis(15);
/// How often a request looks whether a response already answered has been stored: a store
/// takes about a millisecond.
const STORE_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Where a leader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Fetching from the origin.
    Fetching,
    /// Answered; storing what it fetched.
    Storing,
}

thread_local! {
    /// Keys with a fetch or a store in progress in this isolate.
    static IN_FLIGHT: RefCell<HashMap<String, Phase>> = RefCell::new(HashMap::new());
}

/// Held by the request fetching a key; dropping it lets the key's followers go on.
#[derive(Debug)]
pub struct Leader(String);

/// Becomes the leader for `cache_url`, or `None` when another request already is.
pub fn lead(cache_url: &str) -> Option<Leader> {
    IN_FLIGHT.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.contains_key(cache_url) {
            return None;
        }
        keys.insert(cache_url.to_owned(), Phase::Fetching);
        Some(Leader(cache_url.to_owned()))
    })
}

/// Waits until no request leads `cache_url` any more, at most `limit`.
pub async fn wait(cache_url: &str, limit: Duration) {
    wait_while(cache_url, limit, POLL_INTERVAL, |_| true).await;
}

/// Waits while the response for `cache_url`, already answered, is being stored, at most
/// `limit`. Returns at once when nothing is.
pub async fn settled(cache_url: &str, limit: Duration) {
    let storing = |phase: Phase| phase == Phase::Storing;
    wait_while(cache_url, limit, STORE_POLL_INTERVAL, storing).await;
}

/// Polls every `interval`, for at most `limit`, while `cache_url` is led in a phase that
/// `holds`.
async fn wait_while(
    cache_url: &str,
    limit: Duration,
    interval: Duration,
    holds: impl Fn(Phase) -> bool,
) {
    let led = || IN_FLIGHT.with(|keys| keys.borrow().get(cache_url).copied());
    if !led().is_some_and(&holds) {
        return;
    }
    let deadline = Date::now().as_millis() + limit.as_millis() as u64;
    while led().is_some_and(&holds) && Date::now().as_millis() < deadline {
        Delay::from(interval).await;
    }
}

impl Leader {
    /// Marks the leader's response answered and being stored.
    pub fn storing(self) -> Self {
        IN_FLIGHT.with(|keys| keys.borrow_mut().insert(self.0.clone(), Phase::Storing));
        self
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        IN_FLIGHT.with(|keys| keys.borrow_mut().remove(&self.0));
    }
}
