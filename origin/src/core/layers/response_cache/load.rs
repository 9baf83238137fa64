//! Loading a response for the cache: the request replayed without the client's own conditions
//! and range (the cache answers those from what it loads), a stale copy validated with the
//! upstream by a conditional request (RFC 9111 §4.3), the response buffered when it may be
//! stored, and placed where its `Vary` says it belongs.

use std::sync::{Arc, Mutex};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use shared::cache_control::CacheControl;
use shared::validators::EntityTag;

use super::answer::CACHE_STATUS;
use super::stored::{self, Stamped, Stored, Value};
use super::variants::{fields_of, Variants};
use crate::core::cache::{Loaded, TieredCache};
use crate::core::http::errors::{ApiError, ErrorCause, ErrorCode, Unreachable};
use crate::core::layers::response_freshness::{judge, Asker, SurrogateControl};
use crate::core::route::RouteTemplate;
use crate::core::service::{call, Inner};

/// Response headers never stored with a cached response.
const UNSTORED: &[&str] = &[
    "set-cookie",
    "date",
    "content-length",
    "cache-status",
    "age",
    "transfer-encoding",
];

/// Request headers a load leaves out: the client's own conditions and range, which the cache
/// answers from the whole response it loads.
const CLIENT_ONLY: [HeaderName; 6] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// Fields of a `304` that never replace the stored response's (RFC 9111 §3.2).
const KEPT_ON_VALIDATION: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::CONTENT_RANGE,
];

/// Finishes the headers of a loaded response with its status (the policy's stamp).
pub type Stamp = dyn Fn(StatusCode, &mut HeaderMap) + Send + Sync;

/// What a load hands the caller that started it, beside the value it stores under its key.
#[derive(Debug, Default)]
pub struct Handover {
    /// The response itself, when it streams (it cannot be cached).
    pub streamed: Option<Response>,
    /// The cause of an error response, for its log line.
    pub cause: Option<ErrorCause>,
    /// A value for the URL's own key, loaded under a variant's key.
    pub primary: Option<Loaded>,
    /// A response for the variant key that the value stored names.
    pub variant: Option<Loaded>,
    /// Where the invalidation log stood before the load read anything: what is handed over is
    /// stored only if no invalidation since names it.
    pub mark: Option<u64>,
    /// The load asked whether a stale copy changed, and the upstream answered `304`.
    pub revalidated: bool,
    /// The loaded response's own `Cache-Status` (an upstream cache's members), never stored:
    /// the answer to this request keeps it before this cache's member (RFC 9211 §2).
    pub upstream_status: Option<HeaderValue>,
}

/// Everything a load needs, shared by the loads one request may start.
pub struct Load<S> {
    /// The request's head.
    pub parts: Arc<Parts>,
    pub inner: S,
    /// Finishes a loaded response's headers before it is stored.
    pub stamp: Arc<Stamp>,
    pub max_body: usize,
    /// The response's own headers say whether and how long it is kept (an upstream's).
    pub from_response: bool,
    pub cache: TieredCache,
    pub handover: Arc<Mutex<Handover>>,
}

impl<S: Inner> Load<S> {
    /// The loader of `key`, where a response selected by `variants` (`None`: the URL's own
    /// key, for a response that does not vary) belongs.
    pub fn loader(
        &self,
        key: &str,
        variants: Option<Variants>,
    ) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<Loaded, &'static str>>
           + Send
           + 'static {
        let (parts, inner, stamp) = (
            Arc::clone(&self.parts),
            self.inner.clone(),
            Arc::clone(&self.stamp),
        );
        let (max_body, from_response, cache) =
            (self.max_body, self.from_response, self.cache.clone());
        let (key, slot) = (key.to_owned(), Arc::clone(&self.handover));
        move || {
            Box::pin(async move {
                let mark = cache.mark();
                let prior = match from_response {
                    true => resident(&cache, &key).await,
                    false => None,
                };
                let mut request = replay(&parts);
                if let Some(Value::Response(stale)) = prior.as_deref() {
                    ask_if_changed(request.headers_mut(), stale);
                }
                let mut response = call(inner, request).await;
                let upstream_status = joined(response.headers(), &CACHE_STATUS);
                let mut revalidated = false;
                if let Some(Value::Response(stale)) = prior.as_deref() {
                    revalidated = response.status() == StatusCode::NOT_MODIFIED;
                    response = freshened(stale, response);
                }
                stamp(response.status(), response.headers_mut());
                response.extensions_mut().insert(Stamped);
                let cause = response.extensions_mut().remove::<ErrorCause>();
                let asker = Asker {
                    authorized: parts.headers.contains_key(header::AUTHORIZATION),
                };
                let held = matches!(prior.as_deref(), Some(Value::Response(_)));
                let reading = Reading {
                    max_body,
                    asker: from_response.then_some(asker),
                    held,
                };
                let mut captured = capture(response, reading).await;
                if matches!(captured, Err(Uncaptured::BrokeOff)) {
                    // As good as unreachable: a kept copy may stand in, else a 502 answers.
                    let mut answer = broken_off();
                    stamp(answer.status(), answer.headers_mut());
                    answer.extensions_mut().insert(Stamped);
                    let reading = Reading {
                        asker: None,
                        held: false,
                        max_body,
                    };
                    captured = capture(answer, reading).await;
                }
                let mut handover = slot.lock().unwrap_or_else(|p| p.into_inner());
                handover.cause = cause;
                handover.mark = Some(mark);
                handover.revalidated = revalidated;
                handover.upstream_status = upstream_status;
                match captured {
                    Ok(captured) if from_response => {
                        let previous = match (&variants, prior.as_deref()) {
                            (Some(variants), _) => Some(variants),
                            (None, Some(Value::Variants(marker))) => Some(marker),
                            _ => None,
                        };
                        Ok(place(captured, variants.as_ref(), previous, &mut handover))
                    }
                    Ok(captured) => Ok(captured.loaded),
                    Err(uncaptured) => {
                        handover.streamed = Some(match uncaptured {
                            Uncaptured::Streams(response) => response,
                            Uncaptured::BrokeOff => StatusCode::BAD_GATEWAY.into_response(),
                        });
                        Err("response streamed: not cacheable")
                    }
                }
            })
        }
    }
}

/// Every line of the field `name` in `headers`, joined with commas; `None` when absent.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    let mut value = first.as_bytes().to_vec();
    for line in lines {
        value.extend_from_slice(b", ");
        value.extend_from_slice(line.as_bytes());
    }
    HeaderValue::from_bytes(&value).ok()
}

/// What this instance holds under `key`, decoded.
async fn resident(cache: &TieredCache, key: &str) -> Option<Arc<Value>> {
    cache.resident(key).await?.decoded(stored::decode)
}

/// A copy of a request's head with `body`.
pub fn copy(parts: &Parts, body: Body) -> Request {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    request
}

/// The `GET` a load sends for a request: its head with an empty body, without the client's own
/// conditions and range.
fn replay(parts: &Parts) -> Request {
    let mut request = copy(parts, Body::empty());
    *request.method_mut() = Method::GET;
    for name in CLIENT_ONLY {
        request.headers_mut().remove(name);
    }
    request
}

/// Makes `headers` ask whether `stale` changed: its `ETag` as `If-None-Match`, its
/// `Last-Modified` as `If-Modified-Since`.
fn ask_if_changed(headers: &mut HeaderMap, stale: &Stored) {
    if let Some(etag) = stale.headers.get(header::ETAG) {
        headers.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stale.headers.get(header::LAST_MODIFIED) {
        headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
}

/// The stored response brought up to date by a `304` (RFC 9111 §4.3.4): its body, with the
/// `304`'s fields replacing its own; any other response as it is.
fn freshened(stale: &Stored, response: Response) -> Response {
    if response.status() != StatusCode::NOT_MODIFIED {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let mut headers = stale.headers.clone();
    for name in parts.headers.keys() {
        if KEPT_ON_VALIDATION.contains(name) {
            continue;
        }
        headers.remove(name);
        for value in parts.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    parts.status = stale.status;
    parts.headers = headers;
    if let Some(route) = &stale.route {
        parts.extensions.insert(route.clone());
    }
    // Surrogate-Control is rarely sent again with a 304: the stored one still speaks.
    if let (None, Some(surrogate)) = (
        parts.extensions.get::<SurrogateControl>(),
        stale.surrogate.as_deref(),
    ) {
        parts
            .extensions
            .insert(SurrogateControl(surrogate.to_owned()));
    }
    Response::from_parts(parts, Body::from(stale.body.clone()))
}

/// A buffered response and the request fields it varies on.
pub struct Captured {
    pub loaded: Loaded,
    fields: Vec<String>,
}

/// Where a storable response loaded under a key made for `variants` (`None`: the URL's own)
/// belongs, by its own `Vary`: the value to store under the loaded key, with what belongs
/// elsewhere handed over. `previous` is the URL's marker, whose generation a marker for the
/// same fields keeps.
fn place(
    captured: Captured,
    variants: Option<&Variants>,
    previous: Option<&Variants>,
    handover: &mut Handover,
) -> Loaded {
    let Captured { loaded, fields } = captured;
    let expected = variants.map_or(&[][..], |v| v.fields.as_slice());
    if !loaded.store || fields == expected {
        return loaded;
    }
    if fields.is_empty() {
        // It no longer varies: it belongs under the URL's own key, replacing the marker.
        handover.primary = Some(loaded.clone());
        return Loaded {
            store: false,
            ..loaded
        };
    }
    // Stored under a variant's key the marker names; those waiting for this load look there.
    // The marker carries the response's tags, so a purge of them starts a new generation.
    let marker = Variants::new(fields, previous);
    let tags = loaded
        .options
        .as_ref()
        .map(|o| o.tags.clone())
        .unwrap_or_default();
    handover.variant = Some(loaded);
    match variants {
        None => marker.loaded(tags),
        Some(_) => {
            handover.primary = Some(marker.loaded(tags.clone()));
            Loaded {
                store: false,
                ..marker.loaded(tags)
            }
        }
    }
}

/// How a loaded response is read.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// The most a body read whole may hold.
    max_body: usize,
    /// For an upstream's response, the request it answers: its own headers say whether and how
    /// long it is kept, and a body of unknown length is read up to the limit before it is given
    /// up on.
    asker: Option<Asker>,
    /// A stale copy is held: the response is read whole even when it may not be kept, so that
    /// if it breaks off the copy stands in (where it may) or a clean `502` answers, never a
    /// body cut short after a stored copy's URL answered `200`.
    held: bool,
}

/// Why a loaded response was not made a cache value.
enum Uncaptured {
    /// It streams on to its own client, as it came.
    Streams(Response),
    /// Its body broke off before its end.
    BrokeOff,
}

/// Buffers a response into a cache value, or hands it back when it must stream.
async fn capture(response: Response, reading: Reading) -> Result<Captured, Uncaptured> {
    let Reading {
        max_body,
        asker,
        held,
    } = reading;
    // A body of known size (the header is only added when hyper writes the response).
    let length = HttpBody::size_hint(response.body())
        .exact()
        .and_then(|length| usize::try_from(length).ok());
    let from_response = asker.is_some();
    if length.is_some_and(|length| length > max_body) || (length.is_none() && !from_response) {
        return Err(Uncaptured::Streams(response));
    }
    // A response that says it may not be kept streams on unread (a server error is read, so
    // that a stale copy may stand in for it).
    let verdict = asker.map(|asker| {
        let surrogate = response.extensions().get::<SurrogateControl>();
        judge(
            response.status(),
            response.headers(),
            surrogate.map(|s| s.0.as_str()),
            asker,
        )
    });
    let kept_not = verdict
        .as_ref()
        .is_some_and(|v| !(v.store || response.status().is_server_error()));
    if kept_not && !held {
        return Err(Uncaptured::Streams(response));
    }
    let (parts, body) = response.into_parts();
    let body = match read_whole(body, max_body).await {
        Read::Whole(body) => body,
        Read::TooLong(body) => return Err(Uncaptured::Streams(Response::from_parts(parts, body))),
        Read::Failed => return Err(Uncaptured::BrokeOff),
    };
    if kept_not {
        // Read whole only in case it broke off: it goes to its own client alone, as it came.
        return Err(Uncaptured::Streams(Response::from_parts(
            parts,
            Body::from(body),
        )));
    }
    let mut store = parts.status == StatusCode::OK && app_may_store(&parts.headers);
    let (mut options, mut age) = (None, std::time::Duration::ZERO);
    if let Some(verdict) = verdict {
        (store, options, age) = (verdict.store, Some(verdict.options), verdict.age);
    }
    // A server error (the database down, a breaker open, a timeout) gives way to a stale copy.
    let failed = parts.status.is_server_error();
    // An upstream that gave no answer at all: a copy kept past its windows may stand in too.
    let unreachable = parts.extensions.get::<Unreachable>().is_some();
    // A made-up ETag lets clients validate a stored copy; an upstream's Last-Modified does
    // that already, and a made-up tag sent upstream would hide it (If-None-Match wins).
    let dated = from_response && parts.headers.contains_key(header::LAST_MODIFIED);
    let made_up = !(parts.headers.contains_key(header::ETAG) || dated);
    let etag = made_up
        .then(|| HeaderValue::from_str(&EntityTag::from_bytes(&body).to_string()).ok())
        .flatten();
    // An upstream's `Date` is when its response was made, and goes on with every copy.
    let unstored = |name: &HeaderName| {
        UNSTORED.contains(&name.as_str()) && !(from_response && *name == header::DATE)
    };
    let mut headers: Vec<(&HeaderName, &HeaderValue)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !unstored(name))
        .collect();
    if let Some(etag) = &etag {
        headers.push((&header::ETAG, etag));
    }
    let route = parts.extensions.get::<RouteTemplate>();
    let surrogate = parts.extensions.get::<SurrogateControl>();
    let extras = stored::Extras {
        route,
        surrogate: surrogate.map(|s| s.0.as_str()),
    };
    let value = stored::encode(parts.status, extras, &headers, &body);
    Ok(Captured {
        fields: fields_of(&parts.headers).unwrap_or_default(),
        loaded: Loaded {
            value,
            store,
            failed,
            unreachable,
            options,
            age,
        },
    })
}

/// The answer to a load whose response broke off before its end.
fn broken_off() -> Response {
    let error = ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::OriginUnreachable,
        "the response broke off before its end",
    );
    let mut response = error.into_response();
    response.extensions_mut().insert(Unreachable);
    response
}

/// A body read up to a limit.
enum Read {
    /// All of it.
    Whole(bytes::Bytes),
    /// Longer than the limit: what was read, then the rest, as one body to stream on.
    TooLong(Body),
    /// The body failed before its end.
    Failed,
}

/// Reads `body` whole when it ends within `max_body` bytes.
async fn read_whole(mut body: Body, max_body: usize) -> Read {
    use futures::StreamExt;
    use http_body_util::BodyExt;
    let (mut read, mut length) = (Vec::new(), 0usize);
    loop {
        match body.frame().await {
            None => break,
            Some(Err(_)) => return Read::Failed,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                length += data.len();
                read.push(data);
                if length > max_body {
                    let rest = body.into_data_stream();
                    let read = futures::stream::iter(read.into_iter().map(Ok::<_, axum::Error>));
                    return Read::TooLong(Body::from_stream(read.chain(rest)));
                }
            }
        }
    }
    Read::Whole(match read.len() {
        1 => read.remove(0),
        _ => read.concat().into(),
    })
}

/// Whether the application's own response may be kept: no `no-store`, `private` or cookie.
fn app_may_store(headers: &HeaderMap) -> bool {
    let directives = crate::core::http::header_values::joined(headers, header::CACHE_CONTROL);
    let cc = CacheControl::parse(directives.as_deref().unwrap_or_default());
    !cc.no_store && cc.private.is_none() && !headers.contains_key(header::SET_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn captured(fields: &[&str]) -> Captured {
        Captured {
            loaded: Loaded::from(Bytes::from_static(b"response")),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn marker_in(loaded: &Loaded) -> Variants {
        Variants::decode(&loaded.value).expect("a marker")
    }

    #[test]
    fn a_response_that_varies_leaves_a_marker_under_the_url_and_goes_to_its_variant() {
        let mut handover = Handover::default();
        let stored = place(captured(&["accept-language"]), None, None, &mut handover);
        assert!(stored.store);
        assert_eq!(marker_in(&stored).fields, ["accept-language"]);
        let variant = handover.variant.expect("handed over");
        assert_eq!(variant.value.as_ref(), b"response");
        assert!(handover.primary.is_none());
    }

    #[test]
    fn a_response_as_its_key_expects_is_stored_there() {
        let marker = Variants::new(vec!["accept-language".into()], None);
        let mut handover = Handover::default();
        let stored = place(
            captured(&["accept-language"]),
            Some(&marker),
            Some(&marker),
            &mut handover,
        );
        assert_eq!(
            (stored.store, stored.value.as_ref()),
            (true, &b"response"[..])
        );
        let plain = place(captured(&[]), None, None, &mut handover);
        assert!(plain.store);
        assert!(handover.primary.is_none() && handover.variant.is_none());
    }

    #[test]
    fn a_variant_that_stopped_varying_replaces_the_marker() {
        let marker = Variants::new(vec!["accept-language".into()], None);
        let mut handover = Handover::default();
        let here = place(captured(&[]), Some(&marker), Some(&marker), &mut handover);
        assert!(!here.store, "not under the variant's key");
        assert_eq!(here.value.as_ref(), b"response", "still the answer");
        let primary = handover.primary.expect("for the URL's key");
        assert!(primary.store && primary.value.as_ref() == b"response");
    }

    #[test]
    fn a_variant_that_varies_otherwise_makes_a_new_marker() {
        let marker = Variants::new(vec!["accept-language".into()], None);
        let mut handover = Handover::default();
        let here = place(
            captured(&["x-tenant"]),
            Some(&marker),
            Some(&marker),
            &mut handover,
        );
        assert!(!here.store);
        let fresh = marker_in(&here);
        assert_eq!(fresh.fields, ["x-tenant"]);
        assert_ne!(fresh.generation, marker.generation);
        assert_eq!(marker_in(&handover.primary.expect("the new marker")), fresh);
        assert!(handover.variant.is_some());
    }

    #[test]
    fn what_may_not_be_stored_stays_where_it_was_loaded() {
        let mut refused = captured(&["accept-language"]);
        refused.loaded.store = false;
        let mut handover = Handover::default();
        let here = place(refused, None, None, &mut handover);
        assert_eq!(here.value.as_ref(), b"response");
        assert!(handover.primary.is_none() && handover.variant.is_none());
    }

    #[test]
    fn a_load_leaves_out_the_clients_conditions_and_range() {
        let request = Request::builder()
            .method(Method::HEAD)
            .uri("/p")
            .header(header::IF_NONE_MATCH, "\"a\"")
            .header(header::RANGE, "bytes=0-1")
            .header(header::ACCEPT_LANGUAGE, "fr")
            .body(Body::empty())
            .expect("a request");
        let (parts, _) = request.into_parts();
        let replayed = replay(&parts);
        assert_eq!(replayed.method(), Method::GET);
        assert!(!replayed.headers().contains_key(header::IF_NONE_MATCH));
        assert!(!replayed.headers().contains_key(header::RANGE));
        assert_eq!(replayed.headers()[header::ACCEPT_LANGUAGE], "fr");
        assert_eq!(
            copy(&parts, Body::empty()).headers()[header::RANGE],
            "bytes=0-1"
        );
    }
}
