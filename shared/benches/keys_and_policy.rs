//! Cache-key canonicalization and policy lookup, each beside a naive baseline measured in the
//! same run: `format!` of the raw URL (what a cache without canonicalization would do) and a
//! `starts_with` scan over the same prefixes.
//!
//! Run: `cargo bench -p shared --bench keys_and_policy`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use shared::key::CacheKey;
use shared::policy::{Policy, RequestFacts};

const TARGETS: &[&str] = &[
    "/api/tasks?status=open&sort=-updated&limit=50&utm_source=newsletter&utm_medium=email",
    "/api/tasks/1234/comments?page=2&per_page=20",
    "/assets/app.4f9a2c.js",
    "/cdn-cgi/image/width=800,quality=75,format=auto/images/9f/photo.jpg",
    "/tasks/88?fbclid=IwAR0xyz&ref=home",
    "/a/b/../c/%7euser/./d?z=1&y=2&x=3",
];

fn keys(c: &mut Criterion) {
    let policy = Policy::default();
    let mut group = c.benchmark_group("cache_key");
    group.bench_function("canonical", |b| {
        b.iter(|| {
            for target in TARGETS {
                let key = CacheKey::new("GET", "Example.com:443", black_box(target), policy.keys());
                black_box(key.map(|k| k.cache_url()).ok());
            }
        })
    });
    group.bench_function("naive_format", |b| {
        b.iter(|| {
            for target in TARGETS {
                black_box(format!(
                    "https://{}{}",
                    black_box("example.com"),
                    black_box(target)
                ));
            }
        })
    });
    group.finish();
}

fn policy_lookup(c: &mut Criterion) {
    let policy = Policy::default();
    let paths: Vec<String> = TARGETS
        .iter()
        .map(|t| t.split('?').next().unwrap_or("/").to_owned())
        .collect();
    let prefixes = [
        "/health",
        "/metrics",
        "/assets/",
        "/cdn-cgi/image/",
        "/images/",
        "/api/",
        "/tasks/",
        "/",
    ];
    let mut group = c.benchmark_group("policy");
    group.bench_function("decide", |b| {
        b.iter(|| {
            for path in &paths {
                let facts = RequestFacts {
                    method: "GET",
                    path,
                    has_authorization: false,
                    cookie: Some("theme=dark"),
                };
                black_box(policy.decide(black_box(&facts)).is_cacheable());
            }
        })
    });
    group.bench_function("naive_prefix_scan", |b| {
        b.iter(|| {
            for path in &paths {
                black_box(
                    prefixes
                        .iter()
                        .position(|p| black_box(path.as_str()).starts_with(p)),
                );
            }
        })
    });
    group.finish();
}

criterion_group!(benches, keys, policy_lookup);
criterion_main!(benches);
