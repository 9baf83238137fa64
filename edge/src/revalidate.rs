//! Background refreshes for stale-while-revalidate: the stale copy is served at once and the
//! origin is asked again in `ctx.wait_until`, at most once per key per isolate at a time.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use worker::{Cache, Context, Request};

use crate::forward::{self, Deadline};
use crate::origins::Origins;
use crate::{prepare, store};

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
    /// The URL's cache URL (where a new response is stored, as a variant when it varies).
    pub cache_url: String,
    /// Where the stale response lives (freshened in place by a `304`).
    pub stored_url: String,
    /// How long the origin may take.
    pub timeout: Duration,
    /// Whether the route's policy lets the edge minify and compress text.
    pub compress: bool,
    /// Whether the route's policy lets responses that set cookies be stored.
    pub keep_set_cookie: bool,
    /// The id of the request that started the refresh, for logs.
    pub request_id: String,
    /// Where to turn when the origin's connection fails.
    pub origins: Rc<Origins>,
}

/// Refreshes an entry from the origin in the background, unless a refresh of it is already
/// running here. A failed refresh keeps the stale copy; the next request past the window
/// forwards.
pub fn spawn(ctx: &Context, outgoing: Request, refresh: Refresh) {
    let Some(claim) = Claim::take(&refresh.cache_url) else {
        return;
    };
    ctx.wait_until(async move {
        let _claim = claim;
        if let Err(reason) = run(&outgoing, &refresh).await {
            let (id, cache_url) = (&refresh.request_id, &refresh.cache_url);
            worker::console_error!(
                "rampart-edge: request {id}: refresh of {cache_url} kept the stale copy: {reason}"
            );
        }
    });
}

/// Sends the (conditional) refresh: a `304` freshens the stored response, a new one replaces it.
async fn run(outgoing: &Request, refresh: &Refresh) -> Result<(), String> {
    let deadline = Deadline::after(refresh.timeout);
    let request_time = store::now();
    let response = forward::send(outgoing, false, deadline, &refresh.origins)
        .await
        .map_err(|error| error.to_string())?;
    let times = (request_time, store::now());
    let cache = Cache::default();
    let code = response.status_code();
    if code == 304 {
        return store::freshen(&cache, &refresh.stored_url, response.headers(), times)
            .await
            .map_err(|e| e.to_string());
    }
    if code >= 500 {
        return Err(format!("the origin answered {code}"));
    }
    let owned = store::OwnedFacts::of(&response).map_err(|e| e.to_string())?;
    let mut facts = owned.facts();
    facts.has_set_cookie &= !refresh.keep_set_cookie;
    let validator = store::has_validator(response.headers()).map_err(|e| e.to_string())?;
    let retention = store::admit("GET", false, &facts, times.1, validator)
        .map_err(|reason| format!("not storable: {}", reason.as_str()))?;
    let (head, body) = match forward::read_body(response, usize::MAX, deadline).await {
        Ok(Ok(read)) => read,
        Ok(Err(_)) => return Err("the body is too large".to_owned()),
        Err(error) => return Err(error.to_string()),
    };
    // Prepared as a first store prepares it: the same page, the same validators.
    let headers = head.headers().clone();
    let body =
        prepare::for_storing(code, &headers, body, refresh.compress).map_err(|e| e.to_string())?;
    let entry = store::Entry {
        status: code,
        headers: &headers,
        body,
        retention,
        times,
        authorized: false,
        keep_set_cookie: refresh.keep_set_cookie,
    };
    store::put(&cache, &refresh.cache_url, outgoing.headers(), entry)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
