//! The benchmark peer for the origin's middleware cost: the same response a cache hit sends
//! (head and body captured from a running origin), served by a bare axum handler with no
//! layers at all: no request id, rate limit, policy, cache lookup, metrics or compression.
//! Everything else is the origin's own: its listener (hyper-util, same limits) and allocator.
//!
//! `cargo run --release -p origin --example bare_hit -- ADDR HEAD_FILE BODY_FILE`, where
//! HEAD_FILE holds `name: value` lines (as `curl -sI` prints them) and BODY_FILE the body.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response};
use axum::routing::get;
use axum::Router;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_hit ADDR HEAD_FILE BODY_FILE";
    let (addr, head, body) = match (args.next(), args.next(), args.next()) {
        (Some(addr), Some(head), Some(body)) => (addr, head, body),
        _ => return Err(usage.into()),
    };
    let mut headers = HeaderMap::new();
    for line in std::fs::read_to_string(head)?.lines().skip(1) {
        let Some((name, value)) = line.trim_end().split_once(": ") else {
            continue;
        };
        let name = HeaderName::from_bytes(name.as_bytes())?;
        if ["date", "content-length", "connection", "transfer-encoding"].contains(&name.as_str()) {
            continue;
        }
        headers.append(name, HeaderValue::from_str(value)?);
    }
    let body = bytes::Bytes::from(std::fs::read(body)?);
    let app = Router::new().fallback(get(move || {
        let (headers, body) = (headers.clone(), body.clone());
        async move {
            // The head is built once and cloned, as the origin's cache does with a stored copy.
            let mut response = Response::new(Body::from(body));
            *response.headers_mut() = headers;
            response
        }
    }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let limits = origin::config::ListenerConfig::default().connection_limits();
    let open = origin::core::serving::listener::OpenConnections::default();
    origin::core::serving::listener::serve(listener, app, limits, open, std::future::pending())
        .await;
    Ok(())
}
