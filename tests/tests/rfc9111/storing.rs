//! RFC 9111 §3: what a shared cache may store (§3.5 Authorization, §5.2.2.3 must-understand).

use std::sync::Arc;

use rampart_tests::test_origin::Reply;

use crate::support::{expect, expect_eq, not_reused, reused, Ctx, Outcome};

// ---- RFC 9111 §3: storing responses ---------------------------------------------------------

pub(crate) async fn no_store_is_not_stored(c: Arc<Ctx>) -> Outcome {
    not_reused(
        &c,
        "/s3/no-store",
        Reply::ok("x").header("Cache-Control", "No-Store"),
    )
    .await
}

pub(crate) async fn private_is_not_stored(c: Arc<Ctx>) -> Outcome {
    let reply = Reply::ok("x").header("Cache-Control", "private, max-age=600");
    not_reused(&c, "/s3/private", reply).await
}

pub(crate) async fn explicit_freshness_stores_any_final_status(c: Arc<Ctx>) -> Outcome {
    for code in [204u16, 299, 404, 410, 500, 503] {
        let path = format!("/s3/status-{code}");
        let body = if code == 204 { "" } else { "status body" };
        let reply = Reply::status(code)
            .body(body)
            .header("Cache-Control", "max-age=600");
        c.origin.script(&path, vec![reply]);
        c.get(&path, &[]).await?;
        let second = c.get(&path, &[]).await?;
        expect_eq(
            second.status,
            code,
            &format!("status of the hit for {code}"),
        )?;
        expect_eq(c.count(&path), 1, &format!("origin requests for {code}"))?;
        expect_eq(
            second.body.as_str(),
            body,
            &format!("body of the hit for {code}"),
        )?;
    }
    Ok(())
}

pub(crate) async fn must_understand_overrides_no_store_for_known_statuses(c: Arc<Ctx>) -> Outcome {
    let cc = "max-age=600, no-store, must-understand";
    reused(&c, "/s3/mu-200", Reply::ok("x").header("Cache-Control", cc)).await?;
    not_reused(
        &c,
        "/s3/mu-599",
        Reply::status(599).body("x").header("Cache-Control", cc),
    )
    .await
}

pub(crate) async fn set_cookie_is_not_stored_by_default(c: Arc<Ctx>) -> Outcome {
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Set-Cookie", "a=b");
    not_reused(&c, "/s3/set-cookie", reply).await
}

pub(crate) async fn authorization_needs_explicit_permission(c: Arc<Ctx>) -> Outcome {
    let auth = [("authorization", "Bearer x")];
    let plain = "/s3/auth-plain";
    c.origin.script(
        plain,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(plain, &auth).await?;
    c.get(plain, &[]).await?;
    expect_eq(
        c.count(plain),
        2,
        "max-age alone must not store an authorized response",
    )?;
    for (name, cc) in [
        ("public", "public, max-age=600"),
        ("s-maxage", "s-maxage=600"),
        ("must-revalidate", "max-age=600, must-revalidate"),
    ] {
        let path = format!("/s3/auth-{name}");
        c.origin
            .script(&path, vec![Reply::ok("x").header("Cache-Control", cc)]);
        c.get(&path, &auth).await?;
        c.get(&path, &[]).await?;
        c.get(&path, &auth).await?;
        expect_eq(c.count(&path), 1, &format!("origin requests with {cc}"))?;
        let seen = c.origin.requests(&path);
        expect(
            seen[0].header("authorization").is_some(),
            "the origin must see Authorization",
        )?;
    }
    Ok(())
}
