//! What a shared cache may do with a response, from the response's own headers, for routes
//! whose lifetimes the responses say (a shield's upstream paths): RFC 9111 §3 decides whether
//! it is stored and §4.2 for how long it is fresh, with the stale windows of RFC 5861, through
//! the same `shared` code as the edge. `Surrogate-Control`, addressed to the shield alone,
//! replaces `Cache-Control` there; `Surrogate-Key` (space-separated) and `Cache-Tag`
//! (comma-separated) name the tags a purge finds it by. A response with a validator (`ETag`,
//! `Last-Modified`) is kept for [`KEEP_FOR_VALIDATION`] after it goes stale, even with no
//! freshness at all, so that the next load asks the upstream whether it changed rather than
//! for the whole body again. Unless it forbids serving it stale, a stale response also stands
//! in when the upstream cannot be reached (RFC 9111 §4.2.4), kept for that at least
//! [`KEEP_FOR_UNREACHABLE`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use shared::freshness::{current_age, storability, Freshness, ResponseFacts};

use crate::core::cache::CacheOptions;
use crate::core::http::header_values::joined;

/// How long a stale response with a validator is kept to be validated (as Varnish's
/// `beresp.keep`, and the day the edge keeps one).
pub const KEEP_FOR_VALIDATION: Duration = Duration::from_secs(24 * 3600);

/// How long a stale response without a validator is kept to stand in for an upstream that
/// cannot be reached: an outage of that length is ridden out, and short-lived copies of many
/// URLs do not fill the caches for a day.
pub const KEEP_FOR_UNREACHABLE: Duration = Duration::from_secs(3600);

/// RFC 9213's field for caches run by the operator.
const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// `Surrogate-Control`, as the proxy found it before removing it from the response.
#[derive(Debug, Clone)]
pub struct SurrogateControl(pub String);

/// The verdict on one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether it may be stored.
    pub store: bool,
    /// Its lifetimes and tags.
    pub options: CacheOptions,
    /// How old it already is.
    pub age: Duration,
}

/// The request a response answers, as far as storing it is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asker {
    /// The request carried `Authorization` (RFC 9111 §3.5).
    pub authorized: bool,
}

/// Whether and how long a response to a `GET` may be kept, from its status and headers.
/// `Surrogate-Control` (`surrogate`) replaces `Cache-Control` and `CDN-Cache-Control` (RFC
/// 9213, which also speaks to the shield, a cache the operator runs) where present.
pub fn judge(
    status: StatusCode,
    headers: &HeaderMap,
    surrogate: Option<&str>,
    asker: Asker,
) -> Verdict {
    let joined = |name: &HeaderName| joined(headers, name);
    let cache_control = surrogate
        .map(str::to_owned)
        .or_else(|| joined(&header::CACHE_CONTROL));
    let cdn_cache_control = match surrogate {
        Some(_) => None,
        None => joined(&CDN_CACHE_CONTROL),
    };
    let (expires, date, age, last_modified, vary) = (
        joined(&header::EXPIRES),
        joined(&header::DATE),
        joined(&header::AGE),
        joined(&header::LAST_MODIFIED),
        joined(&header::VARY),
    );
    let facts = ResponseFacts {
        status: status.as_u16(),
        cache_control: cache_control.as_deref(),
        cdn_cache_control: cdn_cache_control.as_deref(),
        expires: expires.as_deref(),
        date: date.as_deref(),
        age: age.as_deref(),
        last_modified: last_modified.as_deref(),
        vary: vary.as_deref(),
        has_set_cookie: headers.contains_key(header::SET_COOKIE),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let freshness = Freshness::of(&facts, now);
    let initial_age = current_age(&facts, now, now, now);
    let seconds = |s: u32| Duration::from_secs(u64::from(s));
    let validated = headers.contains_key(header::ETAG) || last_modified.is_some();
    let options = CacheOptions {
        ttl: seconds(freshness.lifetime),
        stale_while_revalidate: seconds(freshness.stale_while_revalidate),
        stale_if_error: seconds(freshness.stale_if_error),
        // Kept to be validated, or to stand in for an upstream that cannot be reached.
        keep: match (validated, freshness.must_revalidate) {
            (true, _) => KEEP_FOR_VALIDATION,
            (false, false) => KEEP_FOR_UNREACHABLE,
            (false, true) => Duration::ZERO,
        },
        stale_if_unreachable: !freshness.must_revalidate,
        tags: tags(headers).into(),
    };
    let useful = u64::from(freshness.lifetime) > initial_age
        || freshness.stale_while_revalidate > 0
        || freshness.stale_if_error > 0
        || validated;
    Verdict {
        store: storability("GET", asker.authorized, &facts).is_ok() && useful,
        options,
        age: Duration::from_secs(initial_age),
    }
}

/// The purge tags a response names: `Surrogate-Key` and `Cache-Tag`.
fn tags(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let words = headers
        .get_all("surrogate-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(str::split_whitespace)
        .chain(
            headers
                .get_all("cache-tag")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim),
        );
    for tag in words.filter(|t| !t.is_empty()) {
        if !tags.iter().any(|known| known == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn explicit_freshness_is_followed_shared_first() {
        let verdict = judge(
            StatusCode::OK,
            &headers(&[(
                "cache-control",
                "max-age=60, s-maxage=300, stale-while-revalidate=30",
            )]),
            None,
            Asker::default(),
        );
        assert!(verdict.store);
        assert_eq!(verdict.options.ttl, Duration::from_secs(300));
        assert_eq!(
            verdict.options.stale_while_revalidate,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn what_a_shared_cache_must_not_keep_is_not_kept() {
        for cc in ["no-store", "private, max-age=60", "max-age=0", "no-cache"] {
            let verdict = judge(
                StatusCode::OK,
                &headers(&[("cache-control", cc)]),
                None,
                Asker::default(),
            );
            assert!(!verdict.store, "{cc}");
        }
        let cookie = headers(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]);
        assert!(!judge(StatusCode::OK, &cookie, None, Asker::default()).store);
        let star = headers(&[
            ("cache-control", "max-age=60"),
            ("vary", "Accept-Language, *"),
        ]);
        assert!(!judge(StatusCode::OK, &star, None, Asker::default()).store);
        let coding = headers(&[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")]);
        assert!(judge(StatusCode::OK, &coding, None, Asker::default()).store);
        assert!(
            !judge(StatusCode::OK, &HeaderMap::new(), None, Asker::default()).store,
            "no freshness"
        );
    }

    #[test]
    fn a_response_with_a_validator_is_kept_to_be_validated_even_when_never_fresh() {
        for validator in [
            ("etag", "\"v1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ] {
            let map = headers(&[("cache-control", "no-cache"), validator]);
            let verdict = judge(StatusCode::OK, &map, None, Asker::default());
            assert!(verdict.store, "{validator:?}");
            assert_eq!(
                verdict.options.ttl,
                Duration::ZERO,
                "never served unvalidated"
            );
            assert_eq!(verdict.options.keep, KEEP_FOR_VALIDATION);
        }
        let refused = headers(&[("cache-control", "no-store"), ("etag", "\"v1\"")]);
        assert!(!judge(StatusCode::OK, &refused, None, Asker::default()).store);
    }

    #[test]
    fn a_stale_copy_stands_in_for_an_unreachable_upstream_unless_forbidden() {
        let fresh = judge(
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60")]),
            None,
            Asker::default(),
        );
        assert!(fresh.options.stale_if_unreachable);
        assert_eq!(fresh.options.keep, KEEP_FOR_UNREACHABLE);
        for forbidding in [
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "max-age=60, no-cache",
            "s-maxage=60",
        ] {
            let map = headers(&[("cache-control", forbidding)]);
            let verdict = judge(StatusCode::OK, &map, None, Asker::default());
            assert!(!verdict.options.stale_if_unreachable, "{forbidding}");
            assert_eq!(verdict.options.keep, Duration::ZERO, "{forbidding}");
        }
    }

    #[test]
    fn authorized_requests_keep_only_what_says_it_is_shared() {
        let authorized = Asker { authorized: true };
        let plain = headers(&[("cache-control", "max-age=60")]);
        assert!(!judge(StatusCode::OK, &plain, None, authorized).store);
        for cc in [
            "public, max-age=60",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            let shared = headers(&[("cache-control", cc)]);
            assert!(
                judge(StatusCode::OK, &shared, None, authorized).store,
                "{cc}"
            );
        }
    }

    #[test]
    fn cdn_cache_control_speaks_to_the_shield_unless_surrogate_control_does() {
        let map = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=90"),
        ]);
        let verdict = judge(StatusCode::OK, &map, None, Asker::default());
        assert!(verdict.store);
        assert_eq!(verdict.options.ttl, Duration::from_secs(90));
        let surrogate = judge(StatusCode::OK, &map, Some("max-age=30"), Asker::default());
        assert_eq!(surrogate.options.ttl, Duration::from_secs(30));
    }

    #[test]
    fn an_age_already_spent_is_counted() {
        let old = headers(&[("cache-control", "max-age=60"), ("age", "50")]);
        let verdict = judge(StatusCode::OK, &old, None, Asker::default());
        assert!(verdict.store);
        assert_eq!(verdict.age, Duration::from_secs(50));
        let spent = headers(&[("cache-control", "max-age=60"), ("age", "90")]);
        assert!(!judge(StatusCode::OK, &spent, None, Asker::default()).store);
    }

    #[test]
    fn surrogate_control_speaks_to_the_shield_alone_and_tags_are_read() {
        let map = headers(&[
            ("cache-control", "no-store"),
            ("surrogate-key", "task-1  board"),
            ("cache-tag", "board, html"),
        ]);
        let verdict = judge(StatusCode::OK, &map, Some("max-age=120"), Asker::default());
        assert!(verdict.store);
        assert_eq!(verdict.options.ttl, Duration::from_secs(120));
        assert_eq!(&*verdict.options.tags, ["task-1", "board", "html"]);
    }
}
