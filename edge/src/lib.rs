//! Rampart's edge: a Cloudflare Worker in front of the origin.
//!
//! Every request is decided by the shared policy (the same crate the origin links), keyed by the
//! shared canonical cache key, answered from the Workers Cache API when a fresh copy is stored,
//! served stale while it is refreshed in the background (stale-while-revalidate) or when the
//! origin fails (stale-if-error), and otherwise forwarded to `ORIGIN_URL` (one origin, or several
//! taking turns: [`origins`]). Responses leave with
//! the shared security headers and a `Cache-Status` (RFC 9211) member named `rampart-edge`.
//!
//! | module | role |
//! | --- | --- |
//! | [`config`] | `[vars]` and secrets |
//! | [`flow`] | the request flow: decide, look up, forward, store |
//! | `exchange` | one request and what every step needs to know about it |
//! | `fill` | misses and validations: fetch, freshen, store, stand in when the origin fails |
//! | `answer` | conditions, ranges and HEAD answered from a response; the edge's own errors |
//! | [`forward`] | the request to the origin |
//! | [`origins`] | which origin a request goes to, and where it turns when one fails |
//! | [`store`] | stored entries and their logical freshness |
//! | [`revalidate`] | background refreshes for stale-while-revalidate |
//! | [`coalesce`] | one origin fetch for concurrent misses of a key |
//! | [`tags`] | the index from `Cache-Tag` values to stored entries |
//! | [`purge`] | `POST /__rampart/purge`, by URL and by tag |
//! | [`url_parts`] | a request URL's authority and target |
//! | [`minify`] | safe HTML minification before storing |
//! | [`precompress`] | the brotli copy of stored text, served as it is to br clients |
//! | [`prepare`] | a body made ready for storing, on every path that stores one |
//! | [`images`] | `/cdn-cgi/image/…` resizing through the `imaging` crate |
//! | [`respond`] | response headers and error bodies |
//! | [`runtime`] | responses and methods without the `worker` crate's panics |
//! | [`trace`] | the request's span: W3C `traceparent` in and out, OTLP export after the response |
//! | [`server_timing`] | the edge's `Server-Timing` for operators and opted-in routes; removed for everyone else |
#![forbid(unsafe_code)]

mod answer;
pub mod coalesce;
pub mod config;
mod exchange;
mod fill;
pub mod flow;
pub mod forward;
pub mod images;
pub mod minify;
pub mod origins;
pub mod precompress;
pub mod prepare;
pub mod purge;
pub mod respond;
pub mod revalidate;
pub mod runtime;
pub mod server_timing;
pub mod store;
pub mod tags;
pub mod trace;
pub mod url_parts;

use std::rc::Rc;

use shared::error_body::ErrorCode;
use worker::{event, web_sys, Context, Env, Request, Result};

/// The Worker's entry point: hands off to [`flow::handle`], turning any internal failure into a
/// 502 with a JSON body rather than Cloudflare's generic error page. Responses are converted
/// for the runtime by [`runtime::into_runtime`], which cannot panic: no request and no origin
/// answer can abort the isolate. `Server-Timing` is finished last ([`server_timing::stamp`]),
/// so no response leaves with one unless the request may see it. Every answer carries the
/// request's own `X-Request-Id` ([`forward::request_id`]), a stored one's never. The request's span
/// ([`trace`]) is exported after the response, in `ctx.wait_until`.
#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let tracing = trace::TraceConfig::of_isolate(&env);
    let span = Rc::new(trace::Span::of_request(&request, &tracing));
    let method = runtime::method(&request);
    let path = request.path();
    let id = forward::request_id(&request);
    let outcome = flow::handle(request, &id, &env, &ctx, Rc::clone(&span))
        .await
        .and_then(|response| respond::identify(response, &id))
        .and_then(runtime::into_runtime)
        .and_then(|response| server_timing::stamp(response, &span));
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            worker::console_error!("rampart-edge: {error}");
            let message = "the edge could not complete the request";
            let fallback = respond::error(502, ErrorCode::EdgeError, message)?;
            let fallback = respond::identify(fallback, &id)?;
            runtime::into_runtime(fallback)?
        }
    };
    let ending = trace::ending_of(method, path, &response);
    trace::export(&ctx, &tracing, &span, &ending);
    Ok(response)
}
