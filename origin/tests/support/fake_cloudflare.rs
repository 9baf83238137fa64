//! A fake of Cloudflare's cache purge API (`POST /client/v4/zones/{zone_id}/purge_cache`) on
//! 127.0.0.1, for tests: it checks the bearer token, the path, the JSON body and the per-call
//! limits as Cloudflare does for a zone below Enterprise, answers with Cloudflare's envelope
//! (`success`, `errors`, `messages`, `result`), can be told to answer `429` with `Retry-After`,
//! and records the purges it accepted.
//!
//! Error codes are Cloudflare's where they are known (`10000` authentication, `7003` unknown
//! zone, `971` throttled, `1012` nothing to purge, `1014` not an array, `6007` malformed JSON,
//! `1100`/`1315` with `1016` for bad tags, answered with HTTP 200). Cloudflare documents no code
//! for a call over the per-call limit; the fake answers that with HTTP 400 and `1016`.
//!
//! Uses only axum, tokio and serde_json, so that integration tests can include it
//! (`#[path = "support/fake_cloudflare.rs"] mod fake_cloudflare;`) as the unit tests do.
// Each test binary includes this module and may use a subset of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Map, Value};

/// Cache-tags, hostnames or prefixes one call may name.
const MAX_KEYS: usize = 100;
/// URLs one call may name below Enterprise.
const MAX_FILES: usize = 100;
/// Longest cache-tag a purge call may name.
const MAX_TAG_LEN: usize = 1024;

/// A running fake; it stops with the test's runtime.
#[derive(Debug)]
pub struct FakeCloudflare {
    addr: SocketAddr,
    state: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    token: String,
    received: Mutex<Vec<Value>>,
    throttle: Mutex<Throttle>,
}

/// How many of the next calls get a `429`, and the `Retry-After` they carry.
#[derive(Debug, Default)]
struct Throttle {
    calls: usize,
    retry_after_secs: u64,
}

/// A failed call: its status and Cloudflare's `errors`.
type Refusal = (StatusCode, Vec<(i64, String)>);

/// Starts a fake that accepts `Authorization: Bearer {token}`.
pub async fn start(token: &str) -> FakeCloudflare {
    let state = Arc::new(Shared {
        token: token.to_owned(),
        ..Shared::default()
    });
    let app = Router::new()
        .route("/client/v4/zones/{zone_id}/purge_cache", post(purge_cache))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("the fake's address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake serves") });
    FakeCloudflare { addr, state }
}

impl FakeCloudflare {
    /// The API base to configure, as `DEFAULT_API_BASE` is for the real API.
    pub fn api_base(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// The bodies of the purges accepted (answered `success: true`), in order.
    pub fn received(&self) -> Vec<Value> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Answers the next `calls` authenticated calls with `429` and `Retry-After: {secs}`.
    pub fn fail_next_with_429(&self, calls: usize, retry_after_secs: u64) {
        *self.state.throttle.lock().expect("lock") = Throttle {
            calls,
            retry_after_secs,
        };
    }
}

impl Shared {
    /// The `Retry-After` for this call if it is to be throttled.
    fn take_throttle(&self) -> Option<u64> {
        let mut throttle = self.throttle.lock().expect("lock");
        if throttle.calls == 0 {
            return None;
        }
        throttle.calls -= 1;
        Some(throttle.retry_after_secs)
    }
}

async fn purge_cache(
    State(state): State<Arc<Shared>>,
    Path(zone_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = check_call(&state, &zone_id, &headers) {
        return refused(refusal);
    }
    if let Some(secs) = state.take_throttle() {
        return throttled(secs);
    }
    let body = match check_body(&body) {
        Ok(body) => body,
        Err(refusal) => return refused(refusal),
    };
    state.received.lock().expect("lock").push(body);
    let envelope =
        json!({"success": true, "errors": [], "messages": [], "result": {"id": zone_id}});
    (StatusCode::OK, axum::Json(envelope)).into_response()
}

/// The zone, the token and the content type, checked in Cloudflare's order.
fn check_call(state: &Shared, zone_id: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    if zone_id.len() != 32 || !zone_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let message = format!(
            "Could not route to /zones/{zone_id}/purge_cache, perhaps your object identifier is invalid?"
        );
        return Err((StatusCode::BAD_REQUEST, vec![(7003, message)]));
    }
    let expected = format!("Bearer {}", state.token);
    if header_str(headers, header::AUTHORIZATION.as_str()) != Some(expected.as_str()) {
        let error = (10000, "Authentication error".to_owned());
        return Err((StatusCode::FORBIDDEN, vec![error]));
    }
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str()).unwrap_or_default();
    if !content_type.starts_with("application/json") {
        let error = (6003, "Invalid request headers".to_owned());
        return Err((StatusCode::BAD_REQUEST, vec![error]));
    }
    Ok(())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The body, if it is one purge Cloudflare would take.
fn check_body(body: &[u8]) -> Result<Value, Refusal> {
    let bad_request =
        |code: i64, message: &str| (StatusCode::BAD_REQUEST, vec![(code, message.to_owned())]);
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| bad_request(6007, "Malformed JSON in request body"))?;
    let object = value
        .as_object()
        .ok_or_else(|| bad_request(6007, "Malformed JSON in request body"))?;
    check_keys(object)?;
    Ok(value)
}

/// One kind of purge per call: everything, files, or tags/hosts/prefixes.
fn check_keys(object: &Map<String, Value>) -> Result<(), Refusal> {
    let nothing = || {
        let message = r#"Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes""#;
        (StatusCode::BAD_REQUEST, vec![(1012, message.to_owned())])
    };
    if object.contains_key("purge_everything") {
        return match (object.len(), object.get("purge_everything")) {
            (1, Some(Value::Bool(true))) => Ok(()),
            _ => Err(nothing()),
        };
    }
    if object.contains_key("files") {
        if object.len() != 1 {
            return Err(nothing());
        }
        return check_list(object, "files", MAX_FILES, check_file);
    }
    let keys = ["tags", "hosts", "prefixes"];
    if object.is_empty() || !object.keys().all(|key| keys.contains(&key.as_str())) {
        return Err(nothing());
    }
    for (key, _) in object {
        check_list(object, key, MAX_KEYS, |item| check_key(key, item))?;
    }
    Ok(())
}

/// `object[key]` is a non-empty array of at most `max` items that `check` accepts.
fn check_list(
    object: &Map<String, Value>,
    key: &str,
    max: usize,
    check: impl Fn(&Value) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    let Some(items) = object.get(key).and_then(Value::as_array) else {
        let message = r#""files", "tags", or "hosts" must be an array"#.to_owned();
        return Err((StatusCode::BAD_REQUEST, vec![(1014, message)]));
    };
    if items.is_empty() || items.len() > max {
        let message =
            format!("One or more cache purge errors: between 1 and {max} {key} per request");
        return Err((StatusCode::BAD_REQUEST, vec![(1016, message)]));
    }
    items.iter().try_for_each(check)
}

/// A URL to purge: an absolute `http(s)` URL, alone or with the headers of its cache key.
fn check_file(item: &Value) -> Result<(), Refusal> {
    let url = match item {
        Value::String(url) => Some(url.as_str()),
        Value::Object(file) => file.get("url").and_then(Value::as_str),
        _ => None,
    };
    let absolute = url
        .and_then(|url| {
            url.strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
        })
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if absolute {
        Ok(())
    } else {
        Err(purge_errors(1016, format!("Invalid URL: {item}")))
    }
}

/// A tag, host or prefix: a string; a tag at most 1,024 printable ASCII characters.
fn check_key(key: &str, item: &Value) -> Result<(), Refusal> {
    let Some(text) = item.as_str().filter(|text| !text.is_empty()) else {
        return Err(purge_errors(1016, format!("Invalid {key} item: {item}")));
    };
    if key != "tags" {
        return Ok(());
    }
    if text.len() > MAX_TAG_LEN {
        let message = format!("Tag exceeds maximum length of {MAX_TAG_LEN} characters: {text}");
        return Err(purge_errors(1100, message));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        let message = "Non-printable characters are forbidden in tags".to_owned();
        return Err(purge_errors(1315, message));
    }
    Ok(())
}

/// Cloudflare's answer to an item it cannot purge: HTTP 200, `success: false`, the item's
/// error followed by `1016`.
fn purge_errors(code: i64, message: String) -> Refusal {
    let summary = (1016, "One or more cache purge errors".to_owned());
    (StatusCode::OK, vec![(code, message), summary])
}

fn refused((status, errors): Refusal) -> Response {
    let errors: Vec<Value> = errors
        .into_iter()
        .map(|(code, message)| json!({"code": code, "message": message}))
        .collect();
    let envelope = json!({"success": false, "errors": errors, "messages": [], "result": null});
    (status, axum::Json(envelope)).into_response()
}

fn throttled(retry_after_secs: u64) -> Response {
    let errors = vec![(
        971,
        "Please wait and consider throttling your request speed".to_owned(),
    )];
    let mut response = refused((StatusCode::TOO_MANY_REQUESTS, errors));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}
