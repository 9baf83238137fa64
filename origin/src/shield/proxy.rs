//! The proxying service a shield runs where an application's router would be: each request
//! goes to an upstream over a pooled HTTP/1.1 connection, bodies streamed both ways.
//!
//! Every phase is bounded: opening a connection (`UPSTREAM_CONNECT_TIMEOUT_MS`), waiting for
//! the response head once the request body has all gone (`UPSTREAM_FIRST_BYTE_TIMEOUT_MS`),
//! and each silence within either body (`UPSTREAM_IDLE_TIMEOUT_MS`; a response body then ends
//! in an error, so the client sees a cut response rather than a complete-looking one, and a
//! request body that stalls is answered `400`). A request with no body and a safe method
//! whose connection could not be opened goes to another upstream, within the retry budget; a
//! request that reached an upstream is never sent twice. Failures answer `502
//! ORIGIN_UNREACHABLE` or `504 ORIGIN_TIMEOUT` with the JSON error body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::connector::UpstreamConnector;
use super::tunnel::Upgrade;
use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::uri::{PathAndQuery, Scheme};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shared::error_body::ErrorCode;
use tokio::sync::oneshot;

use super::bodies::Watched;
use super::hygiene::{self, Hop};
use super::upstreams::{InFlight, Upstreams};
use crate::config::ShieldConfig;
use crate::core::cache::TieredCache;
use crate::core::dependencies::retry::RetryBudget;
use crate::core::http::client::{EdgeTrust, CONNECTING_IP, ORIGIN_AUTH_HEADER};
use crate::core::http::errors::{ApiError, Unreachable};
use crate::core::layers::response_freshness::SurrogateControl;

/// Idle pooled connections to one upstream kept at most.
const POOL_IDLE_PER_HOST: usize = 256;
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxying service.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

struct Shared {
    upstreams: Arc<Upstreams>,
    client: Client<UpstreamConnector, Body>,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    trust: EdgeTrust,
    budget: RetryBudget,
    invalidation: Option<Invalidation>,
}

/// What a successful unsafe request makes stale (RFC 9111 §4.4): the cached responses to its
/// URI, and to its `Location` and `Content-Location` on the same host.
#[derive(Debug, Clone)]
pub struct Invalidation {
    /// The response cache.
    pub cache: TieredCache,
    /// How keys are made (the policy's).
    pub keys: shared::key::KeyConfig,
}

impl Invalidation {
    /// The cache keys of `GET` and `HEAD` of `target` on `host`.
    fn keys_of(&self, host: &str, target: &str, into: &mut Vec<String>) {
        for method in ["GET", "HEAD"] {
            if let Ok(key) = shared::key::CacheKey::new(method, host, target, &self.keys) {
                into.push(key.to_string());
            }
        }
    }

    /// Drops what a `status` answer to an unsafe request for `target` on `host` made stale.
    async fn after(&self, host: &str, target: &str, status: StatusCode, headers: &HeaderMap) {
        if !(status.is_success() || status.is_redirection()) {
            return;
        }
        let mut keys = Vec::new();
        self.keys_of(host, target, &mut keys);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let Ok(uri) = value.parse::<Uri>() else {
                continue;
            };
            let same_host = uri.authority().is_none_or(|a| a.as_str() == host);
            let path = uri.path_and_query().map(PathAndQuery::as_str);
            if let (true, Some(path)) = (same_host, path.filter(|p| p.starts_with('/'))) {
                self.keys_of(host, path, &mut keys);
            }
        }
        self.cache.invalidate_keys(&keys).await;
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstreams", &self.shared.upstreams.all().len())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy to `upstreams` through `connector`, with `config`'s timeouts; `trust` says whose
    /// forwarding fields are believed; retries draw from `budget`; `invalidation` drops what
    /// writes make stale.
    pub fn new(
        upstreams: Arc<Upstreams>,
        config: &ShieldConfig,
        trust: EdgeTrust,
        budget: RetryBudget,
        invalidation: Option<Invalidation>,
        connector: UpstreamConnector,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Self {
            shared: Arc::new(Shared {
                upstreams,
                client,
                first_byte_timeout: config.first_byte_timeout,
                idle_timeout: config.idle_timeout,
                trust,
                budget,
                invalidation,
            }),
        }
    }
}

impl tower::Service<Request> for Proxy {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(shared.forward(request).await) })
    }
}

/// Why an attempt got no response.
enum Failed {
    /// No connection could be opened: nothing reached the upstream.
    Connect(hyper_util::client::legacy::Error),
    /// The request may have reached it, and no head came back.
    Exchange(hyper_util::client::legacy::Error),
    /// No head within the first-byte timeout.
    TimedOut,
}

impl Shared {
    async fn forward(self: Arc<Self>, mut request: Request) -> Response {
        let mut upgrade = Upgrade::take(&mut request);
        let (mut parts, body, key_host) = self.outgoing(request);
        if let Some(upgrade) = &upgrade {
            upgrade.ask(&mut parts.headers);
        }
        let replayable = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
            && body.is_end_stream();
        self.budget.record_call();
        // A body to send is watched: cut when the client goes silent, and the first-byte
        // timeout starts once it has all gone.
        let (mut body, mut body_sent) = if body.is_end_stream() {
            (Some(body), None)
        } else {
            let (watched, sent) = Watched::new(body, self.idle_timeout).telling_end();
            (Some(Body::new(watched)), Some(sent))
        };
        let mut tried = Vec::new();
        loop {
            let Some(index) = self.upstreams.pick(&tried) else {
                return unreachable_answer("no upstream could be reached");
            };
            tried.push(index);
            let upstream = self.upstreams.get(index);
            let mut attempt = Request::from_parts(parts.clone(), body.take().unwrap_or_default());
            *attempt.uri_mut() = upstream_uri(&upstream.base, &parts.uri);
            let in_flight = self.upstreams.start(index);
            let failed = match self.exchange(attempt, body_sent.take()).await {
                Ok(response) => {
                    self.settle(index, response.status());
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        if let Some(upgrade) = upgrade.take() {
                            return upgrade.answer(response, self.idle_timeout, in_flight);
                        }
                    }
                    self.after_write(&parts, &key_host, &response).await;
                    return self.answer(response, in_flight);
                }
                Err(failed) => failed,
            };
            let again = replayable && tried.len() < self.upstreams.all().len();
            if let Some(answer) = self.failure(index, failed, again) {
                return answer;
            }
        }
    }

    /// The request as it goes upstream, and the host its cache keys name (the policy's
    /// reading of it): hop-by-hop fields gone, the forwarding fields and `Via` set, the edge's
    /// secret removed, HTTP/1.1.
    fn outgoing(&self, request: Request) -> (axum::http::request::Parts, Body, String) {
        let hop = Hop {
            client: self.trust.client_ip(&request),
            trusted: self.trust.from_edge(&request),
            host: None,
        };
        let (mut parts, body) = request.into_parts();
        let header_host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok());
        let key_host = header_host.unwrap_or("localhost").to_owned();
        let host = header_host
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .map(str::to_owned);
        let headers = &mut parts.headers;
        hygiene::remove_hop_by_hop(headers);
        let host_hop = Hop {
            host: host.as_deref(),
            ..hop
        };
        hygiene::set_forwarded(headers, host_hop);
        hygiene::add_via(headers);
        headers.remove(ORIGIN_AUTH_HEADER);
        if !hop.trusted {
            headers.remove(CONNECTING_IP);
        }
        if let Some(host) = host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
            headers.insert(header::HOST, host);
        }
        parts.version = Version::HTTP_11;
        (parts, body, key_host)
    }

    /// After an unsafe request's answer: the cached copies it made stale are dropped.
    async fn after_write(
        &self,
        parts: &axum::http::request::Parts,
        key_host: &str,
        response: &Response<hyper::body::Incoming>,
    ) {
        let safe = matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if let Some(invalidation) = self.invalidation.as_ref().filter(|_| !safe) {
            let target = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
            invalidation
                .after(key_host, target, response.status(), response.headers())
                .await;
        }
    }

    /// The answer to a failed attempt on upstream `index`, or `None` to try another (when
    /// `may_retry` and the budget allows: only a connection that could not be opened).
    fn failure(&self, index: usize, failed: Failed, may_retry: bool) -> Option<Response> {
        let upstream = self.upstreams.get(index);
        match failed {
            Failed::Connect(error) => {
                upstream.breaker.failed();
                self.upstreams.rest(index);
                tracing::warn!(upstream = %upstream.authority, %error, "upstream connection failed");
                let again = may_retry && self.budget.try_retry();
                (!again).then(|| unreachable_answer("the upstream could not be reached"))
            }
            Failed::Exchange(error) if client_body_failed(&error) => {
                tracing::info!(%error, "the client's request body broke off or was malformed");
                Some(malformed_body())
            }
            Failed::Exchange(error) => {
                upstream.breaker.failed();
                tracing::warn!(upstream = %upstream.authority, %error, "upstream exchange failed");
                Some(unreachable_answer("the upstream closed the connection"))
            }
            Failed::TimedOut => {
                upstream.breaker.failed();
                let timeout = ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::OriginTimeout,
                    "the upstream did not answer in time",
                );
                Some(unreached(timeout))
            }
        }
    }

    /// Sends `request`; once its body has gone (`body_sent`), the head must come within the
    /// first-byte timeout.
    async fn exchange(
        &self,
        request: Request,
        body_sent: Option<oneshot::Receiver<()>>,
    ) -> Result<Response<hyper::body::Incoming>, Failed> {
        let exchange = self.client.request(request);
        tokio::pin!(exchange);
        if let Some(sent) = body_sent {
            tokio::select! {
                answered = &mut exchange => return classify(answered),
                _ = sent => {}
            }
        }
        match tokio::time::timeout(self.first_byte_timeout, exchange).await {
            Err(_) => Err(Failed::TimedOut),
            Ok(answered) => classify(answered),
        }
    }

    /// Counts an upstream's answer for its breaker: a 502, 503 or 504 is its failure.
    fn settle(&self, index: usize, status: StatusCode) {
        let breaker = &self.upstreams.get(index).breaker;
        match status.as_u16() {
            502..=504 => breaker.failed(),
            _ => breaker.succeeded(),
        }
    }

    fn answer(&self, response: Response<hyper::body::Incoming>, in_flight: InFlight) -> Response {
        let (mut parts, body) = response.into_parts();
        hygiene::remove_hop_by_hop(&mut parts.headers);
        // Addressed to the shield alone: read by the response cache, never sent on.
        let surrogate: Vec<&str> = parts
            .headers
            .get_all("surrogate-control")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !surrogate.is_empty() {
            let directives = SurrogateControl(surrogate.join(", "));
            parts.headers.remove("surrogate-control");
            parts.extensions.insert(directives);
        }
        hygiene::add_via(&mut parts.headers);
        let body = Watched::new(body, self.idle_timeout).counting(in_flight);
        Response::from_parts(parts, Body::new(body))
    }
}

fn classify(
    answered: Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
) -> Result<Response<hyper::body::Incoming>, Failed> {
    match answered {
        Ok(response) => Ok(response),
        Err(error) if error.is_connect() => Err(Failed::Connect(error)),
        Err(error) => Err(Failed::Exchange(error)),
    }
}

/// Whether an exchange failed because the client's request body did (a malformed chunk,
/// a connection cut mid-body), not the upstream.
fn client_body_failed(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// `400` and the connection closed: the request's body could not be read as framed.
fn malformed_body() -> Response {
    let mut response =
        ApiError::bad_request("the request body is malformed or incomplete").into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `502 ORIGIN_UNREACHABLE` with `message`.
fn unreachable_answer(message: &str) -> Response {
    unreached(ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::OriginUnreachable,
        message,
    ))
}

/// `error`'s response, marked as standing for an upstream that gave no answer, so that a
/// cache may serve a stale copy instead.
fn unreached(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.extensions_mut().insert(Unreachable);
    response
}

/// The request's path and query on `base`.
fn upstream_uri(base: &Uri, request: &Uri) -> Uri {
    let mut parts = base.clone().into_parts();
    parts.scheme = Some(base.scheme().cloned().unwrap_or(Scheme::HTTP));
    parts.path_and_query = Some(
        request
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_target_moves_onto_the_upstream() {
        let base: Uri = "http://10.0.0.2:3000".parse().expect("uri");
        let target: Uri = "/a/b?c=d".parse().expect("uri");
        assert_eq!(
            upstream_uri(&base, &target).to_string(),
            "http://10.0.0.2:3000/a/b?c=d"
        );
        let absolute: Uri = "http://evil.example/x".parse().expect("uri");
        assert_eq!(
            upstream_uri(&base, &absolute).to_string(),
            "http://10.0.0.2:3000/x",
            "an absolute-form target never picks the host"
        );
    }
}
