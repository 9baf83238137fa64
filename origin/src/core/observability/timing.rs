//! `Server-Timing` (W3C Server Timing): where a request's time went, for the requests that ask
//! to see it, namely operators' (the admin token) and routes whose policy sets `server_timing`.
//! Everyone else gets no header, so the public learns nothing about the origin's internals.
//!
//! A request that is timed runs inside a task-local [`Timings`]; the database adds each
//! query's time to it, the pipeline the time its response cache and application took, and the
//! cache carries it into the tasks that load on a request's behalf. Code outside a timed
//! request pays one failed task-local lookup.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use futures::future::{BoxFuture, Either};
use futures::FutureExt;
use tower::Service;

use crate::core::service::Inner;

tokio::task_local! {
    static TIMINGS: Arc<Timings>;
}

/// Where one request's time went so far, in nanoseconds.
#[derive(Debug, Default)]
pub struct Timings {
    db: AtomicU64,
    app: AtomicU64,
    app_ran: AtomicBool,
}

impl Timings {
    fn add(counter: &AtomicU64, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(nanos, Ordering::Relaxed);
    }

    fn measured(&self) -> Measured {
        Measured {
            db: Duration::from_nanos(self.db.load(Ordering::Relaxed)),
            app: self
                .app_ran
                .load(Ordering::Relaxed)
                .then(|| Duration::from_nanos(self.app.load(Ordering::Relaxed))),
        }
    }
}

/// What a timed request measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// Time in database queries.
    pub db: Duration,
    /// Time in the application's handler; `None` when the cache answered alone.
    pub app: Option<Duration>,
}

/// Runs `work` with a fresh [`Timings`], returning its output and what was measured. Not an
/// `async fn`, so that the future holds `work` once (see [`super::log_context::scope`]).
pub fn measure<F: Future>(work: F) -> impl Future<Output = (F::Output, Measured)> {
    let timings = Arc::new(Timings::default());
    TIMINGS
        .scope(Arc::clone(&timings), work)
        .map(move |output| (output, timings.measured()))
}

/// `work`, to run in a task of its own, still adding to the current request's timings (the
/// cache's loads run apart from the request that started them). Not an `async` block, so that
/// the future holds `work` once (a block awaiting it in two arms keeps three places for it).
pub fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    match TIMINGS.try_with(Arc::clone) {
        Ok(timings) => Either::Left(TIMINGS.scope(timings, work)),
        Err(_) => Either::Right(work),
    }
}

/// Adds a database query's time to the current request, when it is timed.
pub fn add_db(elapsed: Duration) {
    let _ = TIMINGS.try_with(|t| Timings::add(&t.db, elapsed));
}

/// Runs the application's part of the current request, adding its time when it is timed.
pub async fn app<F: Future>(work: F) -> F::Output {
    let started = Instant::now();
    let output = work.await;
    let _ = TIMINGS.try_with(|t| {
        Timings::add(&t.app, started.elapsed());
        t.app_ran.store(true, Ordering::Relaxed);
    });
    output
}

/// The `Server-Timing` value, in milliseconds: `cache` (the response cache's own work, its
/// lookups and the storing of a miss; given for cacheable requests), `app` (when the
/// application ran), `db` and `total`.
pub fn header(measured: Measured, cache: Option<Duration>, total: Duration) -> HeaderValue {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut parts = Vec::with_capacity(4);
    if let Some(cache) = cache {
        let own = cache.saturating_sub(measured.app.unwrap_or_default());
        parts.push(format!("cache;dur={:.3}", ms(own)));
    }
    if let Some(app) = measured.app {
        parts.push(format!("app;dur={:.3}", ms(app)));
    }
    parts.push(format!("db;dur={:.3}", ms(measured.db)));
    parts.push(format!("total;dur={:.3}", ms(total)));
    HeaderValue::from_str(&parts.join(", ")).unwrap_or_else(|_| HeaderValue::from_static("total"))
}

/// A service whose calls count as the application's time (see [`app`]).
#[derive(Debug, Clone)]
pub struct Timed<S>(pub S);

impl<S: Inner> Service<Request> for Timed<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        Box::pin(app(self.0.call(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queries_and_the_application_are_added_only_inside_a_timed_request() {
        add_db(Duration::from_millis(5));
        let ((), measured) = measure(async {
            add_db(Duration::from_millis(2));
            app(async { add_db(Duration::from_millis(3)) }).await;
        })
        .await;
        assert_eq!(measured.db, Duration::from_millis(5));
        assert!(measured.app.is_some());
        let ((), alone) = measure(async {}).await;
        assert_eq!(
            alone,
            Measured {
                db: Duration::ZERO,
                app: None
            }
        );
    }

    #[test]
    fn the_header_names_each_part_in_milliseconds() {
        let measured = Measured {
            db: Duration::from_micros(1500),
            app: Some(Duration::from_millis(4)),
        };
        let cache = Some(Duration::from_millis(5));
        let value = header(measured, cache, Duration::from_millis(6));
        assert_eq!(
            value,
            "cache;dur=1.000, app;dur=4.000, db;dur=1.500, total;dur=6.000"
        );
    }
}
