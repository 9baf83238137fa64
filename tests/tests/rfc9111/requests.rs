//! RFC 9111 §5.2.1: the request's own cache directives.

use std::sync::Arc;
use std::time::Duration;

use rampart_tests::test_origin::Reply;

use crate::support::{expect_eq, Ctx, Outcome};

// ---- §5.2.1: request directives --------------------------------------------------------------

pub(crate) async fn request_directives(c: Arc<Ctx>) -> Outcome {
    let path = "/s5.2.1/no-cache";
    c.origin.script(
        path,
        vec![
            Reply::ok("x")
                .header("Cache-Control", "max-age=600")
                .header("ETag", "\"n\""),
            Reply::status(304).header("ETag", "\"n\""),
        ],
    );
    c.get(path, &[]).await?;
    let validated = c.get(path, &[("cache-control", "no-cache")]).await?;
    expect_eq(
        c.origin
            .requests(path)
            .get(1)
            .and_then(|r| r.header("if-none-match")),
        Some("\"n\"".into()),
        "no-cache validates with the stored ETag",
    )?;
    expect_eq(validated.body.as_str(), "x", "body after validation")?;

    let path = "/s5.2.1/max-age";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.get(path, &[("cache-control", "max-age=0")]).await?;
    expect_eq(c.count(path), 2, "max-age=0 forwards")?;

    let path = "/s5.2.1/max-stale";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=1")],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.get(path, &[("cache-control", "max-stale=1000")]).await?;
    expect_eq(c.count(path), 1, "max-stale accepts the stale response")?;

    let path = "/s5.2.1/min-fresh";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(path, &[]).await?;
    c.get(path, &[("cache-control", "min-fresh=2000")]).await?;
    expect_eq(c.count(path), 2, "min-fresh beyond the lifetime forwards")?;

    let path = "/s5.2.1/only-if-cached";
    let got = c.get(path, &[("cache-control", "only-if-cached")]).await?;
    expect_eq(got.status, 504, "only-if-cached with nothing stored")?;
    expect_eq(c.count(path), 0, "only-if-cached never forwards")?;

    let path = "/s5.2.1/no-store";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(path, &[("cache-control", "no-store")]).await?;
    c.get(path, &[]).await?;
    expect_eq(c.count(path), 2, "a no-store request stores nothing")
}
