//! Security: no open proxy, and the origin's own security headers.

use std::sync::Arc;
use std::time::Duration;

use rampart_tests::test_origin::Reply;

use crate::support::{expect, expect_eq, Ctx, Outcome};

// ---- Security: no open proxy, origin's own security headers ---------------------------------

pub(crate) async fn never_fetches_from_another_host(c: Arc<Ctx>) -> Outcome {
    let other = c.elsewhere.url.trim_start_matches("http://").to_owned();
    for path in [
        format!("//{other}/x"),
        format!("/%2F%2F{other}/x"),
        format!("/@{other}/x"),
        format!("/..//{other}/x"),
        format!("/{}", "a".repeat(6000)),
    ] {
        let got = c.get(&path, &[]).await?;
        expect(got.status < 600, format!("{path}: answered {}", got.status))?;
    }
    // Targets reqwest would normalise, sent as raw bytes: a backslash and the absolute form.
    let edge = c.cache.trim_start_matches("http://").to_owned();
    for target in [format!("/\\{other}/x"), format!("http://{other}/x")] {
        raw_get(&edge, &target).await?;
    }
    expect_eq(
        c.elsewhere.all_requests().len(),
        0,
        "requests that reached the other host",
    )
}

async fn raw_get(edge: &str, target: &str) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(edge)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {edge}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    expect(read.is_ok(), format!("{target}: the edge answered in time"))
}

pub(crate) async fn origin_security_headers_win(c: Arc<Ctx>) -> Outcome {
    let path = "/security/own-headers";
    c.origin.script(
        path,
        vec![Reply::ok("x")
            .header("Content-Security-Policy", "default-src https:")
            .header("X-Frame-Options", "SAMEORIGIN")],
    );
    let got = c.get(path, &[]).await?;
    expect_eq(
        got.header("content-security-policy"),
        Some("default-src https:".into()),
        "the origin's CSP kept",
    )?;
    expect_eq(
        got.header("x-frame-options"),
        Some("SAMEORIGIN".into()),
        "XFO kept",
    )?;
    expect(
        got.header("x-content-type-options").is_some(),
        "defaults fill in what the origin left out",
    )
}
