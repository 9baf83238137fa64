//! Property tests for the contract between the tiers: canonicalization is idempotent, a request's
//! key reads its keyed headers and no other, Cache-Control emission round-trips through parsing,
//! and no parser panics.

use std::cell::RefCell;

use proptest::prelude::*;
use shared::cache_control::CacheControl;
use shared::image::ImageRequest;
use shared::key::{CacheKey, KeyConfig, KeyError};
use shared::negotiate;
use shared::policy::{Policy, RequestFacts};
use shared::request_key::{request_key, KEYED_HEADERS};

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

/// Chrome's `Accept` for images: it names AVIF and WebP.
const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

/// Paths whose images are negotiated from `Accept`: an original on an image route, and a
/// transformation URL without a fixed format.
const NEGOTIATED: [&str; 2] = ["/images/photo.jpg", "/cdn-cgi/image/w=320/images/photo.jpg"];

/// Targets of every kind the key treats apart: negotiated images, a transformation with a fixed
/// format, a page, and arbitrary targets.
fn keyed_target() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(NEGOTIATED[0].to_owned()),
        Just(NEGOTIATED[1].to_owned()),
        Just("/cdn-cgi/image/w=320,format=webp/images/photo.jpg".to_owned()),
        Just("/tasks/7".to_owned()),
        target(),
    ]
}

fn host() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9-]{0,6}\\.(com|test)(:[0-9]{1,5})?"
}

fn accept() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(CHROME.to_owned()),
        Just("image/webp,*/*".to_owned()),
        Just("*/*".to_owned()),
        Just("text/html,application/xhtml+xml".to_owned()),
        "[ -~]{0,24}",
    ]
}

/// The keyed headers of a request to `host`.
fn keyed_headers(host: &str, accept: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![("Host".to_owned(), host.to_owned())];
    if let Some(accept) = accept {
        headers.push(("Accept".to_owned(), accept.to_owned()));
    }
    headers
}

/// Headers no key may read: forwarding headers, cookies, credentials, the client's coding,
/// language and agent, conditions, and arbitrary names, with arbitrary values.
fn unkeyed_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let known = prop::sample::select(vec![
        "X-Forwarded-Host",
        "x-original-url",
        "X-Forwarded-Scheme",
        "x-forwarded-proto",
        "Forwarded",
        "X-HTTP-Method-Override",
        "Cookie",
        "authorization",
        "User-Agent",
        "Accept-Encoding",
        "accept-language",
        "Cache-Control",
        "If-None-Match",
        "Range",
    ])
    .prop_map(str::to_owned);
    let name = prop_oneof![known, "[xX]-[a-zA-Z-]{1,12}"];
    prop::collection::vec((name, "[ -~]{0,24}"), 0..8)
}

/// The key of a request with `headers`, through the API both tiers use, and the header names
/// it asked for (lower-cased).
fn key_of(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    policy: &Policy,
) -> (Result<String, KeyError>, Vec<String>) {
    let asked = RefCell::new(Vec::new());
    let header = |name: &str| {
        asked.borrow_mut().push(name.to_ascii_lowercase());
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let key = request_key(method, target, header, policy).map(|key| key.to_string());
    (key, asked.into_inner())
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
        method in prop_oneof![Just("GET"), Just("HEAD")],
        target in keyed_target(),
        host in host(),
        other_host in host(),
        accept in prop::option::of(accept()),
        unkeyed in unkeyed_headers(),
        // Not a session cookie (those legitimately bypass): no session name starts with `x`.
        cookie in "x[a-z]{0,4}=[a-z]{1,5}",
    ) {
        // A request's key, through the API both tiers use, is the same whether it sees the
        // whole header set or the keyed headers alone: no forwarding header, cookie, coding,
        // agent or any other header reaches it, and only the keyed ones are read at all.
        let policy = Policy::default();
        let keyed = keyed_headers(&host, accept.as_deref());
        let unkeyed: Vec<(String, String)> =
            unkeyed.into_iter().chain([("Cookie".to_owned(), cookie.clone())]).collect();
        let full: Vec<(String, String)> = unkeyed.iter().chain(&keyed).cloned().collect();
        let (key, asked) = key_of(method, &target, &full, &policy);
        prop_assert_eq!(&key, &key_of(method, &target, &keyed, &policy).0);
        for name in &asked {
            prop_assert!(KEYED_HEADERS.contains(&name.as_str()), "the key read {}", name);
        }
        // The keyed headers do reach it: another host is another key, and on a path whose
        // images are negotiated, so is an Accept that selects another format.
        let with_keyed = |host: &str, accept: Option<&str>| -> Vec<(String, String)> {
            unkeyed.iter().cloned().chain(keyed_headers(host, accept)).collect()
        };
        let canonical = |host: &str| {
            CacheKey::new("GET", host, "/", policy.keys()).map(|key| key.host().to_owned())
        };
        if key.is_ok() && canonical(&host) != canonical(&other_host) {
            let elsewhere = with_keyed(&other_host, accept.as_deref());
            prop_assert_ne!(&key, &key_of(method, &target, &elsewhere, &policy).0);
        }
        if NEGOTIATED.contains(&target.as_str()) {
            let modern = key_of(method, &target, &with_keyed(&host, Some(CHROME)), &policy).0;
            let plain = key_of(method, &target, &with_keyed(&host, Some("*/*")), &policy).0;
            prop_assert_ne!(modern, plain);
        }
        // The policy decision ignores them too, a cookie included when it is not a session's.
        if let Ok(key) = CacheKey::new("GET", "example.com", &target, policy.keys()) {
            let facts = RequestFacts { method: "GET", path: key.path(), ..RequestFacts::default() };
            let with_cookie = RequestFacts { cookie: Some(&cookie), ..facts };
            prop_assert_eq!(policy.decide(&facts), policy.decide(&with_cookie));
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
