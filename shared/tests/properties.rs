//! Property tests for the contract between the tiers: canonicalization is idempotent and never
//! reads headers, Cache-Control emission round-trips through parsing, and no parser panics.

use proptest::prelude::*;
use shared::cache_control::CacheControl;
use shared::image::ImageRequest;
use shared::key::{CacheKey, KeyConfig};
use shared::negotiate;
use shared::policy::{Policy, RequestFacts};

/// Request targets mixing every character class the canonicalizer treats specially.
fn target() -> impl Strategy<Value = String> {
    let segment = prop::string::string_regex(
        "([a-zA-Z0-9._~!$&'()*+,;=:@-]|%[0-9a-fA-F]{2}|%|\\.\\.|\\.| |\\||é){0,8}",
    )
    .expect("valid regex");
    let param = prop::string::string_regex(
        "(utm_[a-z]{1,4}|fbclid|gclid|[a-zA-Z%é ]{1,5})(=[a-zA-Z0-9%=+ ]{0,5})?",
    )
    .expect("valid regex");
    (
        prop::collection::vec(segment, 0..5),
        prop::option::of(prop::collection::vec(param, 0..5)),
    )
        .prop_map(|(segments, query)| {
            let mut target = format!("/{}", segments.join("/"));
            if let Some(params) = query {
                target.push('?');
                target.push_str(&params.join("&"));
            }
            target
        })
}

fn cache_control() -> impl Strategy<Value = CacheControl> {
    let seconds = prop::option::of(0u32..=(1 << 31));
    let fields = prop::option::of(prop::collection::vec("[a-z][a-z0-9-]{0,8}", 0..3));
    let flags = prop::collection::vec(any::<bool>(), 9);
    let extensions = prop::collection::vec(("x-[a-z]{1,6}", prop::option::of("[ -~]{0,8}")), 0..3);
    (
        (
            seconds.clone(),
            seconds.clone(),
            seconds.clone(),
            seconds.clone(),
            seconds.clone(),
        ),
        prop::option::of(prop::option::of(0u32..100_000)),
        (fields.clone(), fields),
        flags,
        extensions,
    )
        .prop_map(
            |(
                (max_age, s_maxage, swr, sie, min_fresh),
                max_stale,
                (no_cache, private),
                f,
                extensions,
            )| {
                CacheControl {
                    max_age,
                    s_maxage,
                    stale_while_revalidate: swr,
                    stale_if_error: sie,
                    min_fresh,
                    max_stale,
                    no_cache,
                    private,
                    no_store: f[0],
                    no_transform: f[1],
                    only_if_cached: f[2],
                    must_revalidate: f[3],
                    proxy_revalidate: f[4],
                    must_understand: f[5],
                    public: f[6],
                    immutable: f[7],
                    extensions,
                    invalid_freshness: false,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn canonicalization_is_idempotent(target in target(), host in "[a-zA-Z0-9.-]{1,12}(:[0-9]{1,5})?") {
        let config = KeyConfig::default();
        if let Ok(key) = CacheKey::new("GET", &host, &target, &config) {
            let again = CacheKey::new("GET", key.host(), &key.target(), &config).expect("canonical input is valid");
            prop_assert_eq!(&again, &key);
            prop_assert_eq!(again.to_string(), key.to_string());
            prop_assert!(!key.cache_url().contains(' '));
        }
    }

    #[test]
    fn keys_never_depend_on_unkeyed_headers(
        target in target(),
        forwarded_host in "[a-z]{1,8}\\.evil",
        original_url in "/[a-z]{0,8}",
        // Not a session cookie (those legitimately bypass): no session name starts with `x`.
        cookie in "x[a-z]{0,4}=[a-z]{1,5}",
    ) {
        // The key is a function of (method, host, target) only: requests that differ in
        // forwarding headers, cookies or any other header share one key, and the policy decision
        // for an unauthenticated request ignores them too.
        let headers_a: Vec<(String, String)> = vec![];
        let headers_b = vec![
            ("x-forwarded-host".to_owned(), forwarded_host),
            ("x-original-url".to_owned(), original_url),
            ("x-forwarded-scheme".to_owned(), "http".to_owned()),
            ("cookie".to_owned(), cookie),
        ];
        let policy = Policy::default();
        let key_of = |headers: &[(String, String)]| {
            let host = headers.iter().find(|(n, _)| n == "host").map_or("example.com", |(_, v)| v.as_str());
            CacheKey::new("GET", host, &target, policy.keys()).map(|k| k.to_string())
        };
        prop_assert_eq!(key_of(&headers_a), key_of(&headers_b));
        if let Ok(key) = CacheKey::new("GET", "example.com", &target, policy.keys()) {
            let cookie = headers_b.iter().find(|(n, _)| n == "cookie").map(|(_, v)| v.as_str());
            let plain = policy.decide(&RequestFacts { method: "GET", path: key.path(), ..RequestFacts::default() });
            let with_headers = policy.decide(&RequestFacts { method: "GET", path: key.path(), cookie, has_authorization: false });
            prop_assert_eq!(plain, with_headers);
        }
    }

    #[test]
    fn cache_control_emit_parse_round_trips(cc in cache_control()) {
        let emitted = cc.to_string();
        let mut expected = cc.clone();
        // Field names are case-insensitive and emitted lower-case.
        for list in [&mut expected.no_cache, &mut expected.private].into_iter().flatten() {
            for field in list.iter_mut() { *field = field.to_ascii_lowercase(); }
        }
        prop_assert_eq!(CacheControl::parse(&emitted), expected, "emitted: {}", emitted);
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,64}") {
        let _ = CacheControl::parse(&text);
        let _ = CacheControl::parse_targeted(&text);
        let _ = negotiate::content_encoding(Some(&text));
        let _ = negotiate::image_format(Some(&text), shared::image::ImageFormat::Jpeg, &[]);
        let _ = ImageRequest::parse(&format!("/cdn-cgi/image/{text}"));
        let _ = shared::validators::EntityTag::parse(&text);
        let _ = shared::cache_status::CacheStatus::parse_list(&text);
        let _ = CacheKey::new("GET", "a.com", &format!("/{text}"), &KeyConfig::default());
    }

    #[test]
    fn canonical_image_options_are_a_fixed_point(w in 1u32..=4096, q in 1u8..=100, dpr in 10u8..=40) {
        let url = format!("/cdn-cgi/image/q={q},w={w},dpr={}.{}/images/a.jpg", dpr / 10, dpr % 10);
        let request = ImageRequest::parse(&url).expect("in bounds");
        let canonical = ImageRequest::parse(&request.to_string()).expect("canonical form parses");
        prop_assert_eq!(canonical.to_string(), request.to_string());
    }
}
