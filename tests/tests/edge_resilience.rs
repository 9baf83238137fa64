//! The edge's own stale-while-revalidate and stale-if-error, in workerd, in front of an origin
//! the test controls: it can answer, fail with 503, hang, or stop.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use rampart_tests::{cache_status, Edge};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ANSWER: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;
const SLOW: u8 = 3;

/// An origin whose behaviour the test switches; each answer's body counts the requests.
#[derive(Debug, Default)]
struct Switchboard {
    mode: AtomicU8,
    served: AtomicU32,
}

struct TestOrigin {
    url: String,
    board: Arc<Switchboard>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let board = Arc::new(Switchboard::default());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(board.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            url,
            board,
            stop: Some(stop),
        }
    }

    fn set(&self, mode: u8) {
        self.board.mode.store(mode, Ordering::SeqCst);
    }

    fn served(&self) -> u32 {
        self.board.served.load(Ordering::SeqCst)
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `/api/tasks/swr` and `/api/tasks/sie` are fresh for 1 s with a 60 s stale window of their
/// kind (a refreshed `/swr` for 60 s); `/poison` echoes the request; `/cookie` sets a cookie.
async fn answer(
    State(board): State<Arc<Switchboard>>,
    request: Request,
) -> axum::response::Response {
    let path = request.uri().path().to_owned();
    if !path.starts_with("/api/tasks/") {
        // The harness's readiness probe.
        return ([(header::CACHE_CONTROL, "no-store")], "ready").into_response();
    }
    match board.mode.load(Ordering::SeqCst) {
        FAIL => {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [(header::CACHE_CONTROL, "no-store")],
                "down".to_owned(),
            )
                .into_response()
        }
        HANG => tokio::time::sleep(Duration::from_secs(5)).await,
        SLOW => tokio::time::sleep(Duration::from_millis(400)).await,
        _ => {}
    }
    let n = board.served.fetch_add(1, Ordering::SeqCst) + 1;
    if path.ends_with("/poison") {
        return echo(request, n).await;
    }
    if path.ends_with("/cookie") {
        return (
            [
                (header::CACHE_CONTROL, "public, max-age=60".to_owned()),
                (header::SET_COOKIE, format!("visitor={n}; Path=/")),
            ],
            format!("{path} #{n}"),
        )
            .into_response();
    }
    // `/cold`, and `/swr` once refreshed, stay fresh for a minute, so that waiting followers
    // and late stale hits find them fresh however loaded the machine; the others go stale
    // after a second.
    let cache_control = if path.ends_with("/cold") || (path.ends_with("/swr") && n > 1) {
        "public, max-age=60"
    } else if path.ends_with("/swr") {
        "public, max-age=1, stale-while-revalidate=60"
    } else {
        "public, max-age=1, stale-if-error=60"
    };
    (
        axum::http::StatusCode::OK,
        [(header::CACHE_CONTROL, cache_control)],
        format!("{path} #{n}"),
    )
        .into_response()
}

/// What the origin saw of a request, in the (cacheable) body: poisoning would show up here.
async fn echo(request: Request, n: u32) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let seen = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let (host, proto) = (seen("x-forwarded-host"), seen("x-forwarded-proto"));
    let (scheme, original) = (seen("x-forwarded-scheme"), seen("x-original-url"));
    let target = parts.uri.to_string();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        format!(
            "#{n} target={target} host={host} proto={proto} scheme={scheme} original={original} body={body}"
        ),
    )
        .into_response()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    let response = client.get(url).send().await.expect("edge reachable");
    let status = response.status().as_u16();
    let cache = cache_status(&response);
    (status, cache, response.text().await.expect("body"))
}

/// Past `max-age=1`: freshness is counted in whole seconds.
async fn let_it_go_stale() {
    tokio::time::sleep(Duration::from_millis(2200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copies_are_served_at_once_and_refreshed_once() {
    let origin = TestOrigin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    let url = format!("{}/api/tasks/swr", edge.url);

    let (status, cache, body) = get(&client, &url).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "/api/tasks/swr #1"),
        "{cache}"
    );
    let_it_go_stale().await;

    // Each answer is the stale copy, at once, or (when the refresh already landed) the new one.
    let answers = futures_join(&client, &url, 5).await;
    let mut stale = 0;
    for (status, cache, body) in &answers {
        assert_eq!(*status, 200, "{cache}");
        if body == "/api/tasks/swr #1" {
            assert!(cache.contains("rampart-edge; hit; ttl=-"), "{cache}");
            assert!(cache.contains("detail=stale-while-revalidate"), "{cache}");
            stale += 1;
        } else {
            assert_eq!(body, "/api/tasks/swr #2", "{cache}");
            assert!(cache.starts_with("rampart-edge; hit; ttl="), "{cache}");
        }
    }
    assert!(stale >= 1, "no answer waited for the refresh: {answers:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.served() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        origin.served(),
        2,
        "five stale hits caused exactly one refresh"
    );
    let (_, cache, body) = get(&client, &url).await;
    assert_eq!(
        body, "/api/tasks/swr #2",
        "the refreshed copy is served: {cache}"
    );
    assert!(cache.starts_with("rampart-edge; hit; ttl="), "{cache}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_origin_fetch() {
    let origin = TestOrigin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    origin.set(SLOW);
    let answers = futures_join(&client, &format!("{}/api/tasks/cold", edge.url), 10).await;
    let collapsed = answers
        .iter()
        .filter(|(_, cache, _)| cache.contains("collapsed"))
        .count();
    for (status, cache, body) in &answers {
        assert_eq!(
            (*status, body.as_str()),
            (200, "/api/tasks/cold #1"),
            "{cache}"
        );
    }
    assert_eq!(
        origin.served(),
        1,
        "ten concurrent misses, one origin request"
    );
    assert_eq!(collapsed, 9, "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoning_attempts_change_nothing_that_is_served() {
    let origin = TestOrigin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    let url = format!("{}/api/tasks/poison", edge.url);

    // Unkeyed headers and a fat GET body on the request that fills the entry.
    let poisoned = client
        .get(&url)
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-scheme", "nothttps")
        .header("x-forwarded-proto", "gopher")
        .header("x-original-url", "/api/admin/cache/invalidate")
        .header("x-rewrite-url", "/api/admin")
        .body("a fat GET body that must not reach the origin")
        .send()
        .await
        .expect("edge reachable");
    let stored = poisoned.text().await.expect("body");
    let edge_host = edge.url.trim_start_matches("http://");
    assert!(
        stored.starts_with("#1 target=/api/tasks/poison "),
        "{stored}"
    );
    assert!(
        stored.contains(&format!("host={edge_host} ")),
        "X-Forwarded-Host is the edge's: {stored}"
    );
    assert!(stored.contains("proto=http "), "{stored}");
    assert!(
        stored.contains("body=0"),
        "the GET body is dropped: {stored}"
    );
    assert!(
        !stored.contains("evil") && !stored.contains("gopher"),
        "{stored}"
    );

    // What a clean request gets is that entry; tracking parameters share it; other parameters
    // and other hosts get their own.
    let (_, cache, body) = get(&client, &url).await;
    assert!(cache.contains("hit"), "{cache}");
    assert_eq!(body, stored);
    let (_, cache, body) = get(&client, &format!("{url}?utm_source=mail&fbclid=x")).await;
    assert!(cache.contains("hit") && body == stored, "{cache}");
    let (_, cache, body) = get(&client, &format!("{url}?evil=1")).await;
    assert!(
        cache.contains("fwd=uri-miss") && body.starts_with("#2 target=/api/tasks/poison?evil=1"),
        "{cache} {body}"
    );
    let other_host = client
        .get(&url)
        .header("host", "evil.example")
        .send()
        .await
        .expect("edge reachable");
    let other = cache_status(&other_host);
    let other_body = other_host.text().await.expect("body");
    assert!(
        !other.contains("hit") || !other_body.contains(&stored),
        "{other}"
    );
    let (_, cache, body) = get(&client, &url).await;
    assert!(
        cache.contains("hit") && body == stored,
        "the real host's entry is untouched: {cache}"
    );

    // A response that sets a cookie is never stored.
    let cookie_url = format!("{}/api/tasks/cookie", edge.url);
    for _ in 0..2 {
        let (_, cache, _) = get(&client, &cookie_url).await;
        assert!(
            cache.contains("fwd=uri-miss") && !cache.contains("stored"),
            "{cache}"
        );
    }
}

async fn futures_join(client: &reqwest::Client, url: &str, n: usize) -> Vec<(u16, String, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { get(&client, &url).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("request task"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_fall_back_on_stale_copies_or_a_clear_error() {
    let mut origin = TestOrigin::start().await;
    let edge = Edge::start_with_vars(&origin.url, &[("ORIGIN_TIMEOUT_MS", "800")]).await;
    let client = rampart_tests::client();
    let url = format!("{}/api/tasks/sie", edge.url);

    let (status, _, body) = get(&client, &url).await;
    assert_eq!((status, body.as_str()), (200, "/api/tasks/sie #1"));
    let_it_go_stale().await;

    // The origin answers 503: the stale copy stands in.
    origin.set(FAIL);
    let (status, cache, body) = get(&client, &url).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "/api/tasks/sie #1"),
        "{cache}"
    );
    assert!(
        cache.contains("rampart-edge; fwd=stale; fwd-status=503"),
        "{cache}"
    );
    assert!(cache.contains("detail=stale-if-error"), "{cache}");

    // The origin hangs: past ORIGIN_TIMEOUT_MS the stale copy stands in; with nothing stored,
    // 504 with a JSON error.
    origin.set(HANG);
    let started = Instant::now();
    let (status, cache, body) = get(&client, &url).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "/api/tasks/sie #1"),
        "{cache}"
    );
    let (status, cache, body) = get(&client, &format!("{}/api/tasks/uncached", edge.url)).await;
    assert_eq!(status, 504, "{cache} {body}");
    assert!(body.contains("\"ORIGIN_TIMEOUT\""), "{body}");
    assert!(cache.contains("detail=origin-timeout"), "{cache}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "both bounded by the timeout"
    );

    // The origin is gone: the stale copy still stands in; elsewhere 502, as HTML for browsers.
    origin.set(ANSWER);
    origin.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, cache, body) = get(&client, &url).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "/api/tasks/sie #1"),
        "{cache}"
    );
    assert!(
        cache.contains("fwd=stale") && cache.contains("stale-if-error"),
        "{cache}"
    );
    let page = client
        .get(format!("{}/tasks/404", edge.url))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("edge reachable");
    assert_eq!(page.status(), 502);
    let content_type = page
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    assert!(content_type.is_some_and(|t| t.starts_with("text/html")));
    assert!(
        page.headers().contains_key("x-content-type-options"),
        "security headers on errors"
    );
    let text = page.text().await.expect("body");
    assert!(
        text.contains("Bad Gateway") && text.contains("ORIGIN_UNREACHABLE"),
        "{text}"
    );
    let (status, _, body) = get(&client, &format!("{}/api/tasks/gone", edge.url)).await;
    assert_eq!(status, 502);
    assert!(body.contains("\"ORIGIN_UNREACHABLE\""), "{body}");
}
