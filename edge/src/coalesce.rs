//! Request coalescing: concurrent misses for one key within an isolate share one origin fetch.
//! The first request (the leader) forwards and stores; the others wait for it and then answer
//! from the cache, or forward themselves when the leader's response could not be stored.
//!
//! Followers poll for the leader's end on their own timers rather than being woken by it:
//! workerd runs each request in its own I/O context and cancels, as hung, a request whose only
//! pending work is another request's (a waker fired from the leader's context does not count).

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use worker::{Date, Delay};

/// How often a follower looks whether its leader is done.
const POLL_INTERVAL: Duration = Duration::from_millis(15);

thread_local! {
    /// Keys with a fetch in progress in this isolate.
    static IN_FLIGHT: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Held by the request fetching a key; dropping it lets the key's followers go on.
#[derive(Debug)]
pub struct Leader(String);

/// Becomes the leader for `cache_url`, or `None` when another request already is.
pub fn lead(cache_url: &str) -> Option<Leader> {
    IN_FLIGHT
        .with(|keys| keys.borrow_mut().insert(cache_url.to_owned()))
        .then(|| Leader(cache_url.to_owned()))
}

/// Waits until no request leads `cache_url` any more, at most `limit`.
pub async fn wait(cache_url: &str, limit: Duration) {
    let deadline = Date::now().as_millis() + limit.as_millis() as u64;
    while IN_FLIGHT.with(|keys| keys.borrow().contains(cache_url))
        && Date::now().as_millis() < deadline
    {
        Delay::from(POLL_INTERVAL).await;
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        IN_FLIGHT.with(|keys| keys.borrow_mut().remove(&self.0));
    }
}
