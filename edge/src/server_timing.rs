//! `Server-Timing` (W3C Server Timing) for the edge's own tier, shown only to those allowed to
//! see it: requests bearing the admin token (`ADMIN_TOKEN`) and routes whose policy sets
//! `server_timing`. Everyone else gets no `Server-Timing` at all, the origin's included: it
//! tells about both tiers' internals.
//!
//! | member | meaning |
//! | --- | --- |
//! | `cache;dur=…;desc="hit"` | time in Workers Cache API lookups and stores on the request path; `desc` is the outcome of the edge's `Cache-Status` member ([`trace::cache_outcome`]): `hit`, `stale`, `miss` or `bypass` |
//! | `origin;dur=…` | time waiting for the origin, only when it was contacted on the request path |
//! | `edge;dur=…` | the whole request in the Worker (named apart from the origin's `total`) |
//!
//! The edge's members follow the origin's in one comma-separated field, as `Cache-Status` lists
//! caches from the origin outwards. A stored copy never carries `Server-Timing` (the store
//! drops it), so the origin's members shown are always this request's.
//!
//! Durations come from `Date.now()`, which in workerd only advances across I/O (a Spectre
//! mitigation): the Cache API and the origin fetch are I/O, so their times are real, but CPU
//! work between them counts as nothing, and durations are whole milliseconds.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{web_sys, Date, Delay};

use crate::config::EdgeConfig;
use crate::runtime::js_error;
use crate::trace::{self, Span};

/// The field's name.
pub const HEADER: &str = "server-timing";

/// What the edge measured of one request, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeTimings {
    /// Time in the Cache API and the cache outcome, when the edge named one.
    pub cache: Option<(f64, &'static str)>,
    /// Time waiting for the origin, when it was contacted.
    pub origin: Option<f64>,
    /// The whole request in the Worker.
    pub edge: f64,
}

impl EdgeTimings {
    /// The members, comma-separated, in the order of the table above.
    pub fn members(&self) -> String {
        let mut members = Vec::with_capacity(3);
        if let Some((ms, outcome)) = self.cache {
            members.push(member("cache", ms, Some(outcome)));
        }
        if let Some(ms) = self.origin {
            members.push(member("origin", ms, None));
        }
        members.push(member("edge", self.edge, None));
        members.join(", ")
    }
}

/// One member: `name;dur=<ms>` and, when given, `;desc="<desc>"`.
pub fn member(name: &str, ms: f64, desc: Option<&str>) -> String {
    let mut text = format!("{name};dur={}", duration(ms));
    if let Some(desc) = desc {
        text.push_str(";desc=");
        text.push_str(&quoted(desc));
    }
    text
}

/// Milliseconds with at most three decimals, trailing zeros dropped; a negative or non-finite
/// value (a clock that went backwards) is `0`.
pub fn duration(ms: f64) -> String {
    let ms = if ms.is_finite() && ms > 0.0 { ms } else { 0.0 };
    let text = format!("{ms:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

/// An RFC 9110 quoted-string: `"` and `\` escaped, control characters dropped.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars().filter(|c| !c.is_control()) {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The field sent: the origin's members (when it sent any), then the edge's.
pub fn merged(upstream: Option<&str>, edge: &str) -> String {
    match upstream.map(str::trim) {
        Some(upstream) if !upstream.is_empty() => format!("{upstream}, {edge}"),
        _ => edge.to_owned(),
    }
}

/// What `span` recorded, for a response whose `Cache-Status` field is `cache_status`, at
/// `now_ms`.
pub fn timings_of(span: &Span, cache_status: Option<&str>, now_ms: u64) -> EdgeTimings {
    let recorded = span.recorded();
    let outcome = cache_status
        .and_then(trace::edge_member)
        .map(|member| trace::cache_outcome(&member));
    EdgeTimings {
        cache: outcome.map(|outcome| (recorded.cache_ms.unwrap_or(0.0), outcome)),
        origin: recorded.origin_ms,
        edge: now_ms.saturating_sub(span.start_ms) as f64,
    }
}

/// Finishes the outgoing response's `Server-Timing`: the edge's members added when the request
/// may see them, the field removed otherwise. The response is the runtime's own (built by
/// [`crate::runtime::into_runtime`]), whose headers are mutable; should changing them fail
/// anyway, the error fails the response rather than let a public one keep the field.
pub fn stamp(response: web_sys::Response, span: &Span) -> worker::Result<web_sys::Response> {
    let headers = response.headers();
    if !span.recorded().server_timing {
        headers.delete(HEADER).map_err(js_error)?;
        return Ok(response);
    }
    let cache_status = headers.get("cache-status").map_err(js_error)?;
    let edge = timings_of(span, cache_status.as_deref(), Date::now().as_millis()).members();
    let upstream = headers.get(HEADER).map_err(js_error)?;
    headers
        .set(HEADER, &merged(upstream.as_deref(), &edge))
        .map_err(js_error)?;
    Ok(response)
}

/// The longest a Cache API operation may hold a request: past it, the operation counts as
/// failed (a lookup as a miss, a store as not stored), so that a cache that stops answering
/// never hangs a request.
pub const CACHE_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a Cache API operation on the request path, bounded by [`CACHE_IO_TIMEOUT`], adding its
/// time to the request's span.
pub async fn cache_io<T, F>(config: &EdgeConfig, work: F) -> worker::Result<T>
where
    F: Future<Output = worker::Result<T>>,
{
    let started = Date::now().as_millis();
    let output = bounded(work).await;
    let spent = Date::now().as_millis().saturating_sub(started);
    config.trace(|span| span.add_cache_time(spent as f64));
    output
}

/// `work` on the cache, failed when the cache does not answer within [`CACHE_IO_TIMEOUT`]:
/// for work off the request path, which no span times.
pub async fn bounded<T, F>(work: F) -> worker::Result<T>
where
    F: Future<Output = worker::Result<T>>,
{
    match select(Box::pin(work), Delay::from(CACHE_IO_TIMEOUT)).await {
        Either::Left((output, _)) => output,
        Either::Right(((), _)) => Err(worker::Error::RustError(format!(
            "the cache did not answer within {} s",
            CACHE_IO_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_span() -> Span {
        let mut ones = |buffer: &mut [u8]| buffer.fill(1);
        Span::start(None, 0.0, &mut ones, 1_000)
    }

    #[test]
    fn durations_are_milliseconds_with_few_decimals() {
        assert_eq!(duration(0.0), "0");
        assert_eq!(duration(12.0), "12");
        assert_eq!(duration(1.2), "1.2");
        assert_eq!(duration(0.1234), "0.123");
        assert_eq!(duration(100.5), "100.5");
        assert_eq!(duration(-3.0), "0");
        assert_eq!(duration(f64::NAN), "0");
        assert_eq!(duration(f64::INFINITY), "0");
    }

    #[test]
    fn members_follow_the_spec_grammar() {
        assert_eq!(member("origin", 34.0, None), "origin;dur=34");
        assert_eq!(
            member("cache", 1.2, Some("hit")),
            r#"cache;dur=1.2;desc="hit""#
        );
        assert_eq!(quoted(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(quoted("new\nline"), r#""newline""#);
    }

    #[test]
    fn a_miss_names_the_cache_the_origin_and_the_whole() {
        let timings = EdgeTimings {
            cache: Some((2.0, "miss")),
            origin: Some(30.25),
            edge: 35.0,
        };
        assert_eq!(
            timings.members(),
            r#"cache;dur=2;desc="miss", origin;dur=30.25, edge;dur=35"#
        );
    }

    #[test]
    fn a_hit_has_no_origin_member() {
        let timings = EdgeTimings {
            cache: Some((1.0, "hit")),
            origin: None,
            edge: 1.0,
        };
        assert_eq!(timings.members(), r#"cache;dur=1;desc="hit", edge;dur=1"#);
        let bare = EdgeTimings::default();
        assert_eq!(bare.members(), "edge;dur=0");
    }

    #[test]
    fn the_origin_members_come_first() {
        let edge = "edge;dur=3";
        assert_eq!(
            merged(Some("db;dur=1.5, total;dur=2"), edge),
            "db;dur=1.5, total;dur=2, edge;dur=3"
        );
        assert_eq!(merged(Some("  "), edge), edge);
        assert_eq!(merged(None, edge), edge);
    }

    #[test]
    fn the_span_gives_the_timings() {
        let span = new_span();
        span.add_cache_time(1.0);
        span.add_cache_time(2.0);
        span.add_origin_time(20.0);
        let field = "origin; fwd=uri-miss, rampart-edge; fwd=uri-miss; stored";
        let timings = timings_of(&span, Some(field), 1_030);
        assert_eq!(
            timings,
            EdgeTimings {
                cache: Some((3.0, "miss")),
                origin: Some(20.0),
                edge: 30.0,
            }
        );
        let hit = timings_of(&new_span(), Some("rampart-edge; hit; ttl=30"), 999);
        assert_eq!(hit.cache, Some((0.0, "hit")));
        assert_eq!((hit.origin, hit.edge), (None, 0.0));
        assert_eq!(timings_of(&new_span(), None, 1_000).cache, None);
    }
}
