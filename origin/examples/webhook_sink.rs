//! The receiver of the write-path benchmark's webhook deliveries and edge purges: answers
//! every request `200` at once with an empty body, and counts them (`GET /count`), so that the
//! origin's workers spend as little as they can waiting on it and the benchmark can check that
//! deliveries arrive.
//!
//! `cargo run --release -p origin --example webhook_sink -- ADDR` (part of
//! `scripts/bench-jobs.sh`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).ok_or("usage: webhook_sink ADDR")?;
    // One thread: the sink shares the machine with the origin it serves.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let received = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&received);
        let app = Router::new()
            .route(
                "/count",
                get(move || {
                    let count = count.load(Ordering::Relaxed);
                    async move { count.to_string() }
                }),
            )
            .fallback(move |_: axum::body::Bytes| {
                received.fetch_add(1, Ordering::Relaxed);
                async {}
            });
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}
