//! Browser → edge (workerd) → origin, for real: a miss is stored, the next request is a hit that
//! never reaches the origin, and nothing outside the cache key can change what is served.

use rampart_tests::{cache_status, Edge, Origin};
use shared::cache_status::{CacheStatus, EDGE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_caches_through_workerd() {
    let origin = Origin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();

    // 1. The same GET twice: a miss that is stored, then a hit; the origin is reached once.
    let before = origin.requests_served("/").await;
    let first = client
        .get(format!("{}/", edge.url))
        .send()
        .await
        .expect("edge reachable");
    assert_eq!(first.status(), 200);
    let status = cache_status(&first);
    assert!(
        status.contains("rampart-edge; fwd=uri-miss") && status.contains("stored"),
        "first: {status}"
    );
    let first_body = first.text().await.expect("body");
    let second = client
        .get(format!("{}/", edge.url))
        .send()
        .await
        .expect("edge reachable");
    let status = cache_status(&second);
    assert!(
        status.starts_with("rampart-edge; hit; ttl="),
        "second: {status}"
    );
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.text().await.expect("body"), first_body);
    assert_eq!(
        origin.requests_served("/").await - before,
        1,
        "the origin must be reached exactly once"
    );

    // 2. Tracking parameters and unkeyed headers land on the same entry: no extra origin trip,
    //    and a forged X-Forwarded-Host cannot poison or split the cache.
    let tracked = client
        .get(format!("{}/?utm_source=newsletter&fbclid=abc", edge.url))
        .header("x-forwarded-host", "evil.example")
        .header("x-original-url", "/admin")
        .send()
        .await
        .expect("edge reachable");
    assert!(
        cache_status(&tracked).contains("hit"),
        "tracked: {}",
        cache_status(&tracked)
    );
    assert_eq!(tracked.text().await.expect("body"), first_body);
    assert_eq!(origin.requests_served("/").await - before, 1);

    // 3. A session cookie bypasses the cache and reaches the origin.
    let personal = client
        .get(format!("{}/", edge.url))
        .header("cookie", "session=s1")
        .send()
        .await
        .expect("edge");
    assert!(
        cache_status(&personal).contains("fwd=bypass"),
        "{}",
        cache_status(&personal)
    );
    assert_eq!(personal.headers()["cache-control"], "private, no-store");
    assert_eq!(origin.requests_served("/").await - before, 2);

    // 4. Bypass routes always go through; security headers are on every response.
    for _ in 0..2 {
        let health = client
            .get(format!("{}/health", edge.url))
            .send()
            .await
            .expect("edge");
        assert!(cache_status(&health).contains("rampart-edge; fwd=bypass"));
        assert_eq!(health.headers()["x-content-type-options"], "nosniff");
        assert!(health.headers()["strict-transport-security"]
            .to_str()
            .expect("ascii")
            .contains("max-age="));
        assert!(!health.headers().contains_key("server"));
    }

    // 5. A stored asset answers revalidation from the edge with 304.
    let css = first_body
        .split("href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("stylesheet");
    let asset = client
        .get(format!("{}{css}", edge.url))
        .send()
        .await
        .expect("edge");
    let etag = asset.headers()["etag"].to_str().expect("ascii").to_owned();
    let assets_before = origin.requests_served("/assets/{file}").await;
    let revalidated = client
        .get(format!("{}{css}", edge.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("edge");
    assert_eq!(revalidated.status(), 304);
    assert!(cache_status(&revalidated).contains("hit"));
    assert_eq!(
        origin.requests_served("/assets/{file}").await,
        assets_before
    );

    // 6. A HEAD miss is forwarded but never stored (it has no body), so the next GET is a miss
    //    that stores the full response.
    let page = format!("{}/?view=head-first", edge.url);
    let head = client.head(&page).send().await.expect("edge");
    assert_eq!(head.status(), 200);
    let edge_member = CacheStatus::parse_list(&cache_status(&head))
        .into_iter()
        .find(|member| member.cache == EDGE)
        .expect("an edge member");
    assert!(
        !edge_member.stored,
        "the edge stored a HEAD: {}",
        cache_status(&head)
    );
    let get = client.get(&page).send().await.expect("edge");
    assert!(
        cache_status(&get).contains("fwd=uri-miss"),
        "{}",
        cache_status(&get)
    );
    assert_eq!(get.text().await.expect("body"), first_body);
    let head_hit = client.head(&page).send().await.expect("edge");
    assert!(
        cache_status(&head_hit).contains("hit"),
        "{}",
        cache_status(&head_hit)
    );

    // 7. A write is never cached and reaches the origin.
    let write = client
        .post(format!("{}/", edge.url))
        .send()
        .await
        .expect("edge");
    assert!(
        cache_status(&write).contains("fwd=method"),
        "{}",
        cache_status(&write)
    );
}
