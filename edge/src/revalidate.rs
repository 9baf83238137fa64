//! Background refreshes for stale-while-revalidate: the stale copy is served at once and the
//! origin is asked again in `ctx.wait_until`, at most once per key per isolate at a time.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use worker::{Cache, Context, Request};

use crate::{forward, store};

thread_local! {
    /// Cache URLs being refreshed by this isolate (wasm32 Workers run one thread per isolate).
    static IN_FLIGHT: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Releases a key when its refresh ends, however it ends.
struct Claim(String);

impl Claim {
    fn take(cache_url: &str) -> Option<Self> {
        IN_FLIGHT
            .with(|keys| keys.borrow_mut().insert(cache_url.to_owned()))
            .then(|| Claim(cache_url.to_owned()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        IN_FLIGHT.with(|keys| keys.borrow_mut().remove(&self.0));
    }
}

/// What to refresh, and how to store it.
#[derive(Debug)]
pub struct Refresh {
    /// The stored entry's cache URL.
    pub cache_url: String,
    /// How long the origin may take.
    pub timeout: Duration,
    /// Whether the route's policy has text stored as a brotli copy.
    pub compress: bool,
}

/// Refreshes an entry from the origin in the background, unless a refresh of it is already
/// running here. A failed refresh keeps the stale copy; the next request past the window forwards.
pub fn spawn(ctx: &Context, outgoing: Request, refresh: Refresh) {
    let Some(claim) = Claim::take(&refresh.cache_url) else {
        return;
    };
    ctx.wait_until(async move {
        let _claim = claim;
        if let Err(reason) = run(&outgoing, &refresh).await {
            let cache_url = &refresh.cache_url;
            worker::console_error!(
                "rampart-edge: refresh of {cache_url} kept the stale copy: {reason}"
            );
        }
    });
}

async fn run(outgoing: &Request, refresh: &Refresh) -> Result<(), String> {
    let request_time = store::now();
    let mut response = forward::send(outgoing, refresh.timeout)
        .await
        .map_err(|error| error.to_string())?;
    let response_time = store::now();
    let owned = store::OwnedFacts::of(&response).map_err(|e| e.to_string())?;
    if response.status_code() >= 500 {
        return Err(format!("the origin answered {}", response.status_code()));
    }
    let retention = store::admit("GET", false, &owned.facts(), response_time)
        .map_err(|reason| format!("not storable: {reason:?}"))?;
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    store::put(
        &Cache::default(),
        &refresh.cache_url,
        response.status_code(),
        response.headers(),
        body,
        retention,
        (request_time, response_time),
        refresh.compress,
    )
    .await
    .map_err(|e| e.to_string())
}
