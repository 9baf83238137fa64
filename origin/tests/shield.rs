//! Shield mode end to end: the origin binary started as `origin shield --upstream …` in front
//! of an application that is not Rust (Python's `http.server`, `support/python_upstream.py`),
//! checked with a real HTTP client and raw sockets: proxy hygiene in both directions, failover
//! between upstreams, timeouts per phase, an upstream dying mid-body, health checks, request
//! smuggling attempts, a 1 GiB body passed through with constant memory, caching as the
//! upstream's headers say; and in front of the task tracker (a real origin process).

mod common;
#[path = "support/shield_processes.rs"]
mod shield_processes;
#[path = "support/test_ca.rs"]
mod test_ca;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use shield_processes::{PythonUpstream, Shield};

fn headers_seen(echo: &Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_owned(),
                pair[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn seen<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn requests_and_responses_are_cleaned_on_their_way_through() {
    let upstream = PythonUpstream::start("a");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();
    let echo: Value = http
        .get(format!("{}/echo?x=1", shield.base))
        .header("connection", "x-client-hop")
        .header("x-client-hop", "secret")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-rampart-origin-auth", "guess")
        .header("host", "app.example")
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["path"], "/echo?x=1");
    let headers = headers_seen(&echo);
    assert_eq!(seen(&headers, "x-client-hop"), None, "named by Connection");
    assert_eq!(seen(&headers, "x-rampart-origin-auth"), None);
    assert_eq!(
        seen(&headers, "x-forwarded-for"),
        Some("127.0.0.1"),
        "not the client's word"
    );
    assert_eq!(
        seen(&headers, "forwarded"),
        Some("for=127.0.0.1;proto=http;host=app.example")
    );
    assert_eq!(
        seen(&headers, "host"),
        Some("app.example"),
        "the client's Host"
    );
    assert_eq!(seen(&headers, "via"), Some("1.1 rampart"));

    let hello = http
        .get(format!("{}/hello", shield.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(hello.status(), 200);
    let head = hello.headers().clone();
    assert_eq!(
        head["cache-control"], "public, max-age=60",
        "the upstream's own"
    );
    assert_eq!(
        head["content-security-policy"], "default-src 'self' upstream.example",
        "the upstream's own security headers are kept"
    );
    assert_eq!(
        head["x-content-type-options"], "nosniff",
        "defaults fill in"
    );
    assert!(!head.contains_key("x-hop-secret"), "named by Connection");
    assert!(head["via"].to_str().expect("text").contains("1.1 rampart"));
    assert!(head.contains_key("x-request-id"));
    assert_eq!(hello.text().await.expect("body"), "hello from a");

    let missing = http
        .get(format!("{}/nothing", shield.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(missing.status(), 404, "the upstream's answer, passed on");
    assert!(
        !missing.headers().contains_key("cache-control"),
        "none stamped"
    );
    let ready = http
        .get(format!("{}/health/ready", shield.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), 200, "the shield's own route");
    assert_eq!(
        ready.headers()["cache-control"],
        "no-store",
        "its own rule's header"
    );
}

#[tokio::test]
async fn with_an_admin_listener_every_path_of_the_public_one_is_the_upstreams() {
    let upstream = PythonUpstream::start("own-routes");
    let admin_port = common::free_port();
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let shield = Shield::start(
        &[upstream.url()],
        &[("ADMIN_ADDR", &admin_addr), ("ADMIN_TOKEN", "admin-secret")],
    )
    .await;
    shield_processes::wait_for_port(admin_port);
    let http = reqwest::Client::new();

    // The application's own /health, /metrics and /status are reached through the shield.
    for path in [
        "/health/ready",
        "/health",
        "/metrics",
        "/status",
        "/api/cache/stats",
    ] {
        let answer = http
            .get(format!("{}{path}", shield.base))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 404, "{path}: the upstream's answer");
        assert_eq!(answer.headers()["x-upstream"], "own-routes", "{path}");
    }
    // The shield's own are on the admin listener, which passes nothing on.
    let admin = format!("http://{admin_addr}");
    let ready = http
        .get(format!("{admin}/health/ready"))
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), 200);
    let metrics = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("answered");
    let text = metrics.text().await.expect("body");
    assert!(text.contains("http_requests_total"), "{text:.200}");
    let stats = http
        .get(format!("{admin}/api/cache/stats"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .expect("answered");
    assert_eq!(stats.status(), 200);
    let elsewhere = http
        .get(format!("{admin}/hello"))
        .send()
        .await
        .expect("answered");
    assert_eq!(elsewhere.status(), 404, "never proxied");
    assert!(!elsewhere.headers().contains_key("x-upstream"));
}

#[tokio::test]
async fn reads_go_round_a_dead_upstream_and_writes_are_never_sent_twice() {
    let live = PythonUpstream::start("live");
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let shield = Shield::start(&[dead.clone(), live.url()], &[]).await;
    let http = reqwest::Client::new();
    for _ in 0..6 {
        let answer = http
            .get(format!("{}/echo", shield.base))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 200, "retried on the live upstream");
        assert_eq!(answer.headers()["x-upstream"], "live");
    }
    let breakers: Value = http
        .get(format!("{}/health/circuit-breakers", shield.base))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert!(
        breakers.to_string().contains("upstream 127.0.0.1"),
        "each upstream has a breaker: {breakers}"
    );

    let only_dead = Shield::start(std::slice::from_ref(&dead), &[]).await;
    let write = http
        .post(format!("{}/count", only_dead.base))
        .body("x")
        .send()
        .await
        .expect("answered");
    assert_eq!(write.status(), 502);
    let error: Value = write.json().await.expect("json");
    assert_eq!(error["code"], "ORIGIN_UNREACHABLE");
}

#[tokio::test]
async fn each_phase_of_an_upstream_exchange_is_bounded() {
    let upstream = PythonUpstream::start("slow");
    let env = [
        ("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "800"),
        ("UPSTREAM_IDLE_TIMEOUT_MS", "800"),
    ];
    let shield = Shield::start(&[upstream.url()], &env).await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let late = http
        .get(format!("{}/slow-head?s=5", shield.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(late.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let error: Value = late.json().await.expect("json");
    assert_eq!(error["code"], "ORIGIN_TIMEOUT");

    let idle = http
        .get(format!("{}/idle?s=5", shield.base))
        .send()
        .await
        .expect("a head");
    assert_eq!(idle.status(), 200);
    let started = Instant::now();
    assert!(idle.bytes().await.is_err(), "a cut body is not a whole one");
    assert!(started.elapsed() < Duration::from_secs(3));

    // An upload slower than the first-byte timeout, never silent for the idle timeout, is
    // not cut; one that stalls is.
    let port = shield.port();
    let slow = tokio::task::spawn_blocking(move || upload(port, 6, Duration::from_millis(300)))
        .await
        .expect("uploaded");
    assert!(slow.starts_with("HTTP/1.1 200"), "{slow}");
    assert!(slow.contains("{\"bytes\": 6000}"), "{slow}");
    let stalled = tokio::task::spawn_blocking(move || upload(port, 2, Duration::from_secs(2)))
        .await
        .expect("uploaded");
    assert!(stalled.starts_with("HTTP/1.1 400"), "{stalled}");

    let died = http
        .get(format!("{}/die", shield.base))
        .send()
        .await
        .expect("a head");
    assert!(
        died.bytes().await.is_err(),
        "10 bytes of 1000 are not a body"
    );
    let after = http
        .get(format!("{}/hello", shield.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(after.status(), 200, "the shield carries on");
}

#[tokio::test]
async fn a_failing_health_check_takes_an_upstream_out_until_it_passes() {
    let (a, b) = (PythonUpstream::start("a"), PythonUpstream::start("b"));
    let env = [
        ("UPSTREAM_HEALTH_PATH", "/healthz"),
        ("UPSTREAM_HEALTH_INTERVAL_MS", "100"),
    ];
    let shield = Shield::start(&[a.url(), b.url()], &env).await;
    let http = reqwest::Client::new();
    let served_by = async |http: &reqwest::Client| -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..6 {
            let answer = http
                .get(format!("{}/echo", shield.base))
                .send()
                .await
                .expect("answered");
            names.push(
                answer.headers()["x-upstream"]
                    .to_str()
                    .expect("text")
                    .to_owned(),
            );
        }
        names
    };
    assert!(served_by(&http).await.contains(&"a".to_owned()));
    a.set_down(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(served_by(&http).await.iter().all(|name| name == "b"));
    a.set_down(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(served_by(&http).await.contains(&"a".to_owned()));
}

/// Uploads `chunks` chunks of 1000 bytes to `/count`, `pause` apart, and reads the answer.
fn upload(port: u16, chunks: usize, pause: Duration) -> String {
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    socket.write_all(head).expect("sent");
    for _ in 0..chunks {
        std::thread::sleep(pause);
        if socket.write_all(b"3e8\r\n").is_err() || socket.write_all(&[b'u'; 1000]).is_err() {
            break;
        }
        let _ = socket.write_all(b"\r\n");
    }
    let _ = socket.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `raw` on a new connection and reads what comes back until the shield closes it or
/// goes quiet.
fn exchange(port: u16, raw: &[u8]) -> String {
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    socket.write_all(raw).expect("sent");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = socket.read(&mut buffer) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn smuggling_attempts_are_refused_and_never_reach_the_upstream() {
    let upstream = PythonUpstream::start("a");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let port = shield.port();
    // Both framings: by one reading, a second request hides in the body. The shield reads
    // it by Transfer-Encoding alone, forwards it with one framing, and closes the
    // connection after answering (RFC 9112 §6.1), so nothing after it is read.
    let both = b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo?smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let answer = tokio::task::spawn_blocking(move || exchange(port, both))
        .await
        .expect("exchanged");
    assert!(!answer.contains("smuggled"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.contains("{\"bytes\": 0}"),
        "by its chunked framing: {answer}"
    );

    let attempts: [&[u8]; 2] = [
        // A header folded onto the next line (obs-fold).
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        // A chunk size that is not hexadecimal.
        b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ];
    for raw in attempts {
        let answer = tokio::task::spawn_blocking(move || exchange(port, raw))
            .await
            .expect("exchanged");
        let status_line = answer.lines().next().unwrap_or_default().to_owned();
        assert!(
            !answer.contains("smuggled"),
            "a hidden request reached the upstream: {answer}"
        );
        assert!(
            status_line.is_empty() || status_line.contains(" 400 "),
            "refused with 400, or the connection closed: {}\n---\n{answer}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(
            answer.matches("HTTP/1.1 ").count().min(1),
            answer.matches("HTTP/1.1 ").count(),
            "one answer at most: {answer}"
        );
    }
}

#[tokio::test]
async fn a_gigabyte_passes_through_in_constant_memory() {
    let upstream = PythonUpstream::start("big");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();
    // Warm the paths, then measure.
    let _ = http
        .get(format!("{}/bytes?mb=4", shield.base))
        .send()
        .await
        .expect("answered")
        .bytes()
        .await;
    let (before, _) = shield.memory();
    let mut download = http
        .get(format!("{}/bytes?mb=1024", shield.base))
        .send()
        .await
        .expect("answered");
    if download.status() != 200 {
        let status = download.status();
        panic!("{status}: {}", download.text().await.unwrap_or_default());
    }
    let mut received = 0u64;
    while let Some(chunk) = download.chunk().await.expect("a chunk") {
        received += chunk.len() as u64;
    }
    assert_eq!(received, 1 << 30);
    let upload = vec![7u8; 256 << 20];
    let counted: Value = http
        .post(format!("{}/count", shield.base))
        .body(upload)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(counted["bytes"], 256 << 20, "the whole upload arrived");
    let (_, peak) = shield.memory();
    let growth = peak.saturating_sub(before);
    eprintln!("peak resident memory growth: {growth} KiB (1 GiB down, 256 MiB up)");
    assert!(
        growth < 32 * 1024,
        "peak resident memory grew by {growth} KiB passing 1 GiB down and 256 MiB up"
    );
}

#[tokio::test]
async fn an_https_upstream_is_reached_with_the_configured_ca() {
    let ca = test_ca::TestCa::new();
    let upstream = PythonUpstream::start_tls("tls", &ca.cert, &ca.key);
    assert!(upstream.url().starts_with("https://"));
    let http = reqwest::Client::new();

    let trusting = ca.ca.display().to_string();
    let shield = Shield::start(&[upstream.url()], &[("UPSTREAM_TLS_CA_FILE", &trusting)]).await;
    let answer = http
        .get(format!("{}/hello", shield.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.expect("body"), "hello from tls");
    let echo: Value = http
        .get(format!("{}/echo", shield.base))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let forwarded = headers_seen(&echo);
    assert_eq!(
        seen(&forwarded, "x-forwarded-proto"),
        Some("http"),
        "the client's scheme, not the upstream's"
    );

    // Without the CA the upstream's certificate is not trusted: nothing is sent to it.
    let doubting = Shield::start(&[upstream.url()], &[]).await;
    let refused = http
        .get(format!("{}/hello", doubting.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 502);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "ORIGIN_UNREACHABLE", "{body}");

    // A CA file that is not one stops the shield at start, naming the variable.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args(["shield", "--upstream", &upstream.url()])
        .env("UPSTREAM_TLS_CA_FILE", &ca.key)
        .env("ORIGIN_ADDR", "127.0.0.1:0")
        .output()
        .expect("ran");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("UPSTREAM_TLS_CA_FILE="), "{message}");
}

#[tokio::test]
async fn a_websocket_upgrade_becomes_a_tunnel_closed_when_idle() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = PythonUpstream::start("ws");
    let shield = Shield::start(&[upstream.url()], &[("UPSTREAM_IDLE_TIMEOUT_MS", "800")]).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", shield.port()))
        .await
        .expect("connected");
    let handshake = "GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    stream.write_all(handshake.as_bytes()).await.expect("sent");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.expect("a head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // RFC 6455 §1.3's example key and answer: the upstream's handshake came through.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );

    for message in [&b"first frame"[..], &[0x81, 0x02, 0xff, 0x00][..]] {
        stream.write_all(message).await.expect("sent");
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("echoed in time")
            .expect("echoed");
        assert_eq!(echoed, message, "bytes pass both ways unchanged");
    }

    // Quiet for longer than the idle timeout: the shield closes the tunnel.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "closed after the idle timeout");

    // Only WebSocket is upgraded to: an h2c upgrade would open HTTP/2 past the shield.
    let echo: Value = reqwest::Client::new()
        .get(format!("{}/echo", shield.base))
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA")
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("an ordinary answer");
    let forwarded = headers_seen(&echo);
    assert_eq!(seen(&forwarded, "upgrade"), None, "{forwarded:?}");

    // The same path without an upgrade is an ordinary request.
    let plain = reqwest::get(format!("{}/ws", shield.base))
        .await
        .expect("answered");
    assert_eq!(plain.status(), 404);
}
