//! RFC 9111 §4.1: secondary keys from `Vary`.

use std::sync::Arc;

use rampart_tests::test_origin::Reply;

use crate::support::{expect_eq, not_reused, Ctx, Outcome};

// ---- §4.1: Vary ------------------------------------------------------------------------------

pub(crate) async fn vary_keeps_variants_side_by_side(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/variants";
    c.origin.script(
        path,
        vec![
            Reply::ok("english")
                .header("Cache-Control", "max-age=600")
                .header("Vary", "Accept-Language"),
            Reply::ok("deutsch")
                .header("Cache-Control", "max-age=600")
                .header("Vary", "Accept-Language"),
        ],
    );
    let en = [("accept-language", "en")];
    let de = [("accept-language", "de")];
    expect_eq(c.get(path, &en).await?.body, "english".into(), "first en")?;
    expect_eq(c.get(path, &de).await?.body, "deutsch".into(), "first de")?;
    expect_eq(c.get(path, &en).await?.body, "english".into(), "en hit")?;
    expect_eq(c.get(path, &de).await?.body, "deutsch".into(), "de hit")?;
    expect_eq(c.count(path), 2, "origin requests")
}

pub(crate) async fn vary_absent_matches_only_absent(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/absent";
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Vary", "X-Tenant");
    c.origin.script(path, vec![reply]);
    c.get(path, &[]).await?;
    c.get(path, &[("x-tenant", "acme")]).await?;
    expect_eq(c.count(path), 2, "present after absent is a miss")?;
    c.get(path, &[]).await?;
    c.get(path, &[("x-tenant", "acme")]).await?;
    expect_eq(c.count(path), 2, "both variants are then hits")
}

pub(crate) async fn vary_star_is_never_reused(c: Arc<Ctx>) -> Outcome {
    for (name, vary) in [("star", "*"), ("foo-star", "Foo, *"), ("empty-star", ", *")] {
        let path = format!("/s4.1/vary-{name}");
        let reply = Reply::ok("x")
            .header("Cache-Control", "max-age=600")
            .header("Vary", vary);
        not_reused(&c, &path, reply).await?;
    }
    Ok(())
}

pub(crate) async fn vary_normalises_values(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/normalise";
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Vary", "Accept-Language, Foo");
    c.origin.script(path, vec![reply]);
    c.get(path, &[("accept-language", "en, de"), ("foo", "1,2")])
        .await?;
    c.get(
        path,
        &[("accept-language", " DE ,   en"), ("foo", " 1, 2 ")],
    )
    .await?;
    expect_eq(c.count(path), 1, "equivalent values share a variant")?;
    c.get(path, &[("accept-language", "en, de"), ("foo", "2,1")])
        .await?;
    expect_eq(c.count(path), 2, "a custom field keeps its order")
}

pub(crate) async fn vary_on_several_fields_in_any_order(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/three";
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Vary", "Foo, Bar")
        .header("Vary", "Baz");
    c.origin.script(path, vec![reply]);
    let all = [("foo", "1"), ("bar", "abc"), ("baz", "789")];
    c.get(path, &all).await?;
    c.get(path, &[("baz", "789"), ("foo", "1"), ("bar", "abc")])
        .await?;
    expect_eq(c.count(path), 1, "same values in another order")?;
    c.get(path, &[("foo", "1"), ("bar", "abcde"), ("baz", "789")])
        .await?;
    expect_eq(c.count(path), 2, "one value differs")
}
