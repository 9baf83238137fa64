//! Storability, freshness lifetime and age for a shared cache (RFC 9111 §3, §4.2), with the
//! stale windows of RFC 5861.
//!
//! Both tiers call [`storability`] before storing and [`Freshness::state`] on every lookup, so
//! the edge and the origin agree on when an entry is fresh, when it may be served stale, and when
//! it must be fetched again. Times are Unix seconds passed in by the caller.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache_control::CacheControl;

/// Heuristic freshness is 10% of the time since `Last-Modified` (§4.2.2), capped at one day.
const HEURISTIC_CAP: u32 = 86_400;

/// The response header values that caching depends on. Repeated field lines are joined with
/// `", "` by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseFacts<'a> {
    /// The status code.
    pub status: u16,
    /// `Cache-Control`.
    pub cache_control: Option<&'a str>,
    /// `CDN-Cache-Control` (RFC 9213), which overrides `Cache-Control` and `Expires` when valid.
    pub cdn_cache_control: Option<&'a str>,
    /// `Expires`.
    pub expires: Option<&'a str>,
    /// `Date`.
    pub date: Option<&'a str>,
    /// `Age`.
    pub age: Option<&'a str>,
    /// `Last-Modified`.
    pub last_modified: Option<&'a str>,
    /// `Vary`.
    pub vary: Option<&'a str>,
    /// Whether the response sets a cookie.
    pub has_set_cookie: bool,
}

impl ResponseFacts<'_> {
    /// The directives a CDN cache obeys: a valid, non-empty `CDN-Cache-Control` replaces
    /// `Cache-Control` and `Expires` (RFC 9213 §2.2); the flag says whether it did.
    pub fn directives(&self) -> (CacheControl, bool) {
        match self
            .cdn_cache_control
            .and_then(CacheControl::parse_targeted)
        {
            Some(targeted) => (targeted, true),
            None => (
                CacheControl::parse(self.cache_control.unwrap_or_default()),
                false,
            ),
        }
    }
}

/// Why a shared cache must not store a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Only `GET` and `HEAD` responses are stored.
    Method,
    /// A status that is neither final, nor understood, nor cacheable here (e.g. 206, 304, 1xx).
    Status,
    /// `no-store` (§3).
    NoStore,
    /// `private` (§3): a shared cache must not store it.
    Private,
    /// The request carried `Authorization` and the response does not allow sharing (§3.5).
    Authorization,
    /// `Set-Cookie`: the response may be personal.
    SetCookie,
    /// `Vary: *` (§4.1): no later request can match it.
    VaryStar,
    /// No explicit freshness, no `public`, and a status that is not heuristically cacheable.
    NoFreshness,
}

impl NotStorable {
    /// A stable name for headers, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::SetCookie => "set-cookie",
            Self::VaryStar => "vary-star",
            Self::NoFreshness => "no-freshness",
        }
    }
}

/// §15.1 / §4.2.2: status codes "defined as heuristically cacheable".
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The status codes whose caching semantics this cache implements (§5.2.2.3): the final codes
/// RFC 9110 defines, less 206 and 304, which it never stores.
fn understood(status: u16) -> bool {
    matches!(
        status,
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421..=426 | 428 | 429 | 431 | 451
            | 500..=505 | 511
    )
}

/// Whether a shared cache may store `response` to a request with `method`, following RFC 9111
/// §3 (plus two CDN rules: `Set-Cookie` responses and partial content are never stored).
pub fn storability(
    method: &str,
    request_has_authorization: bool,
    response: &ResponseFacts<'_>,
) -> Result<(), NotStorable> {
    if !matches!(method, "GET" | "HEAD") {
        return Err(NotStorable::Method);
    }
    let status = response.status;
    if !(200..600).contains(&status) || matches!(status, 206 | 304) {
        return Err(NotStorable::Status);
    }
    let (cc, _) = response.directives();
    // §5.2.2.3: with must-understand, a cache stores only statuses it understands, and then
    // ignores no-store.
    if cc.must_understand && !understood(status) {
        return Err(NotStorable::Status);
    }
    if cc.no_store && !(cc.must_understand && understood(status)) {
        return Err(NotStorable::NoStore);
    }
    if cc.private.is_some() {
        return Err(NotStorable::Private);
    }
    // §3.5: with Authorization, only must-revalidate, public or s-maxage allow a shared cache.
    if request_has_authorization && !(cc.must_revalidate || cc.public || cc.s_maxage.is_some()) {
        return Err(NotStorable::Authorization);
    }
    if response.has_set_cookie {
        return Err(NotStorable::SetCookie);
    }
    if response
        .vary
        .is_some_and(|vary| vary.split(',').any(|field| field.trim() == "*"))
    {
        return Err(NotStorable::VaryStar);
    }
    let explicit = cc.max_age.is_some()
        || cc.s_maxage.is_some()
        || cc.invalid_freshness
        || response.expires.is_some();
    if !(explicit || cc.public || heuristically_cacheable(status)) {
        return Err(NotStorable::NoFreshness);
    }
    Ok(())
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime) to Unix seconds ([`crate::http_date`]).
pub fn parse_http_date(text: &str) -> Option<u64> {
    crate::http_date::parse(text)
}

/// Formats Unix seconds as an IMF-fixdate.
pub fn format_http_date(unix_seconds: u64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds);
    httpdate::fmt_http_date(time.max(SystemTime::UNIX_EPOCH))
}

/// How long a stored response stays fresh and how long it may be served stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The freshness lifetime (§4.2.1), in seconds.
    pub lifetime: u32,
    /// Seconds after expiry during which a stale copy is served while it is refreshed.
    pub stale_while_revalidate: u32,
    /// Seconds after expiry during which a stale copy is served when the origin fails.
    pub stale_if_error: u32,
    /// Once stale, the response must not be used without validation, whatever a client's
    /// `max-stale` says (`must-revalidate`, `proxy-revalidate`, `s-maxage`, `no-cache`).
    pub must_revalidate: bool,
}

/// The request's own cache directives (§5.2.1), as a shared cache reads them. `Pragma:
/// no-cache` counts as `Cache-Control: no-cache` when the request has no `Cache-Control`
/// (§5.4, for HTTP/1.0 clients).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `no-cache`: use nothing stored without validating it first.
    pub no_cache: bool,
    /// `no-store`: store nothing of this exchange.
    pub no_store: bool,
    /// `max-age`: nothing older than this.
    pub max_age: Option<u32>,
    /// `min-fresh`: only what stays fresh at least this much longer.
    pub min_fresh: Option<u32>,
    /// `max-stale`: stale responses are acceptable (`Some(None)`: however stale).
    pub max_stale: Option<Option<u32>>,
    /// `only-if-cached`: answer from the cache or with 504, never forward.
    pub only_if_cached: bool,
}

impl RequestDirectives {
    /// Reads the request's `Cache-Control` and `Pragma` values.
    pub fn parse(cache_control: Option<&str>, pragma: Option<&str>) -> Self {
        let Some(value) = cache_control.filter(|v| !v.trim().is_empty()) else {
            let no_cache = pragma.is_some_and(|p| {
                p.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
            });
            return Self {
                no_cache,
                ..Self::default()
            };
        };
        let cc = CacheControl::parse(value);
        Self {
            no_cache: cc.no_cache.is_some(),
            no_store: cc.no_store,
            max_age: cc.max_age,
            min_fresh: cc.min_fresh,
            max_stale: cc.max_stale,
            only_if_cached: cc.only_if_cached,
        }
    }
}

/// How a stored response may be used for a request (§4, RFC 5861).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh for `remaining` more seconds: serve it.
    Fresh {
        /// Seconds until it becomes stale.
        remaining: u32,
    },
    /// Stale but inside the stale-while-revalidate window: serve it and refresh it in the
    /// background.
    WhileRevalidating {
        /// Seconds since it became stale.
        stale_for: u32,
    },
    /// Stale, and the client's `max-stale` accepts it: serve it.
    StaleAccepted {
        /// Seconds since it became stale.
        stale_for: u32,
    },
    /// Not usable as it is: validate it with the origin (forward a conditional request), and
    /// serve it if the origin fails while `serve_if_error` holds.
    Validate {
        /// Inside the stale-if-error window.
        serve_if_error: bool,
    },
}

/// Where a stored response stands at a given age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessState {
    /// Fresh for `remaining` more seconds.
    Fresh {
        /// Seconds until the response becomes stale.
        remaining: u32,
    },
    /// Stale, with what may still be done with it.
    Stale {
        /// Seconds since it became stale.
        stale_for: u32,
        /// Inside the stale-while-revalidate window.
        serve_while_revalidating: bool,
        /// Inside the stale-if-error window.
        serve_if_error: bool,
    },
}

impl Freshness {
    /// The freshness of `response` for a shared cache (§4.2.1): `s-maxage`, then `max-age`, then
    /// `Expires` − `Date`, then the heuristic. `response_time` stands in for a missing `Date`.
    ///
    /// Serving stale is prohibited by `no-cache`, `must-revalidate` and `proxy-revalidate` (§4).
    /// `s-maxage` implies `proxy-revalidate` (§5.2.2.10), but an explicit RFC 5861 directive in
    /// the same response is the more specific instruction and wins, as at every major CDN.
    pub fn of(response: &ResponseFacts<'_>, response_time: u64) -> Self {
        let (cc, targeted) = response.directives();
        let lifetime = lifetime(&cc, targeted, response, response_time);
        let stale_allowed = cc.no_cache.is_none() && !cc.must_revalidate && !cc.proxy_revalidate;
        let window = |value: Option<u32>| if stale_allowed { value.unwrap_or(0) } else { 0 };
        Self {
            lifetime,
            stale_while_revalidate: window(cc.stale_while_revalidate),
            stale_if_error: window(cc.stale_if_error),
            must_revalidate: !stale_allowed || cc.s_maxage.is_some(),
        }
    }

    /// How a response whose current age is `age` may answer a request with `request`'s
    /// directives (§5.2.1): `no-cache`, `max-age` and `min-fresh` send it to validation;
    /// `max-stale` accepts a stale response unless the response forbids serving it stale.
    pub fn reuse(&self, age: u64, request: &RequestDirectives) -> Reuse {
        let state = self.state(age);
        let serve_if_error = match state {
            FreshnessState::Stale { serve_if_error, .. } => serve_if_error,
            FreshnessState::Fresh { .. } => self.stale_if_error > 0,
        };
        let validate = Reuse::Validate { serve_if_error };
        if request.no_cache || request.max_age.is_some_and(|max| age > u64::from(max)) {
            return validate;
        }
        match state {
            FreshnessState::Fresh { remaining } => {
                if request.min_fresh.is_some_and(|min| remaining < min) {
                    return validate;
                }
                Reuse::Fresh { remaining }
            }
            FreshnessState::Stale {
                stale_for,
                serve_while_revalidating,
                ..
            } => {
                let accepted = request
                    .max_stale
                    .is_some_and(|limit| limit.is_none_or(|limit| stale_for <= limit));
                if accepted && !self.must_revalidate {
                    Reuse::StaleAccepted { stale_for }
                } else if serve_while_revalidating && request.min_fresh.is_none() {
                    Reuse::WhileRevalidating { stale_for }
                } else {
                    validate
                }
            }
        }
    }

    /// The state of a response whose current age is `age` seconds.
    pub fn state(&self, age: u64) -> FreshnessState {
        let lifetime = u64::from(self.lifetime);
        if age < lifetime {
            return FreshnessState::Fresh {
                remaining: (lifetime - age) as u32,
            };
        }
        let stale_for = age - lifetime;
        FreshnessState::Stale {
            stale_for: stale_for.min(u64::from(u32::MAX)) as u32,
            serve_while_revalidating: stale_for < u64::from(self.stale_while_revalidate),
            serve_if_error: stale_for < u64::from(self.stale_if_error),
        }
    }

    /// How long a store must keep the entry so that both stale windows stay usable.
    pub fn retention(&self) -> u32 {
        self.lifetime
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
    }
}

fn lifetime(
    cc: &CacheControl,
    targeted: bool,
    response: &ResponseFacts<'_>,
    response_time: u64,
) -> u32 {
    if cc.invalid_freshness || cc.no_cache.as_ref().is_some_and(Vec::is_empty) {
        return 0;
    }
    if let Some(seconds) = cc.s_maxage.or(cc.max_age) {
        return seconds;
    }
    let date = response
        .date
        .and_then(parse_http_date)
        .unwrap_or(response_time);
    if !targeted {
        if let Some(expires) = response.expires {
            // §5.3: an invalid Expires (e.g. "0") means already expired.
            return parse_http_date(expires).map_or(0, |expires| {
                expires.saturating_sub(date).min(u64::from(u32::MAX)) as u32
            });
        }
    }
    // §4.2.2: heuristics apply to heuristically cacheable statuses and to responses marked
    // explicitly cacheable (`public`).
    let last_modified = response.last_modified.and_then(parse_http_date);
    match last_modified {
        Some(modified) if heuristically_cacheable(response.status) || cc.public => {
            let tenth = date.saturating_sub(modified) / 10;
            tenth.min(u64::from(HEURISTIC_CAP)) as u32
        }
        _ => 0,
    }
}

/// An `Age` value in seconds (§5.1): of a list, the first member; an invalid value (negative,
/// not a number) is ignored, and one too large to represent is 2^31.
pub fn age_seconds(value: &str) -> u32 {
    let first = value.split(',').next().unwrap_or_default().trim();
    crate::cache_control::parse_delta_seconds(first).unwrap_or(0)
}

/// The current age of a stored response (§4.2.3).
///
/// `request_time` and `response_time` are when the cache sent the request and received the
/// response; `now` is the time of the lookup.
pub fn current_age(
    response: &ResponseFacts<'_>,
    request_time: u64,
    response_time: u64,
    now: u64,
) -> u64 {
    let age_value = response.age.map_or(0, |age| u64::from(age_seconds(age)));
    let date_value = response
        .date
        .and_then(parse_http_date)
        .unwrap_or(response_time);
    let apparent_age = response_time.saturating_sub(date_value);
    let response_delay = response_time.saturating_sub(request_time);
    let corrected_age_value = age_value + response_delay;
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = now.saturating_sub(response_time);
    corrected_initial_age + resident_time
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn ok(cc: &str) -> ResponseFacts<'_> {
        ResponseFacts {
            status: 200,
            cache_control: Some(cc),
            ..ResponseFacts::default()
        }
    }

    #[test]
    fn storability_follows_rfc9111_section_3() {
        assert_eq!(storability("GET", false, &ok("max-age=60")), Ok(()));
        assert_eq!(storability("HEAD", false, &ok("max-age=60")), Ok(()));
        assert_eq!(
            storability("POST", false, &ok("max-age=60")),
            Err(NotStorable::Method)
        );
        assert_eq!(
            storability("GET", false, &ok("no-store")),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            storability("GET", false, &ok("private, max-age=9")),
            Err(NotStorable::Private)
        );
        assert_eq!(
            storability("GET", false, &ok("private=\"x\", max-age=9")),
            Err(NotStorable::Private)
        );
        let partial = ResponseFacts {
            status: 206,
            ..ok("max-age=60")
        };
        assert_eq!(
            storability("GET", false, &partial),
            Err(NotStorable::Status)
        );
        let informational = ResponseFacts {
            status: 103,
            ..ok("max-age=60")
        };
        assert_eq!(
            storability("GET", false, &informational),
            Err(NotStorable::Status)
        );
    }

    #[test]
    fn authorization_needs_an_explicit_permission() {
        // §3.5.
        assert_eq!(
            storability("GET", true, &ok("max-age=60")),
            Err(NotStorable::Authorization)
        );
        for allowed in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=5",
        ] {
            assert_eq!(storability("GET", true, &ok(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn cookies_vary_star_and_missing_freshness_are_not_stored() {
        let cookie = ResponseFacts {
            has_set_cookie: true,
            ..ok("max-age=60")
        };
        assert_eq!(
            storability("GET", false, &cookie),
            Err(NotStorable::SetCookie)
        );
        let vary = ResponseFacts {
            vary: Some("Accept, *"),
            ..ok("max-age=60")
        };
        assert_eq!(storability("GET", false, &vary), Err(NotStorable::VaryStar));
        let created = ResponseFacts {
            status: 201,
            ..ResponseFacts::default()
        };
        assert_eq!(
            storability("GET", false, &created),
            Err(NotStorable::NoFreshness)
        );
        // 404 is heuristically cacheable.
        let missing = ResponseFacts {
            status: 404,
            ..ResponseFacts::default()
        };
        assert_eq!(storability("GET", false, &missing), Ok(()));
    }

    #[test]
    fn targeted_field_overrides_cache_control() {
        // RFC 9213 §2.2: the CDN obeys CDN-Cache-Control and ignores Cache-Control.
        let facts = ResponseFacts {
            cdn_cache_control: Some("max-age=600"),
            ..ok("no-store")
        };
        assert_eq!(storability("GET", false, &facts), Ok(()));
        assert_eq!(Freshness::of(&facts, NOW).lifetime, 600);
        let invalid = ResponseFacts {
            cdn_cache_control: Some("max-age=600,"),
            ..ok("max-age=5")
        };
        assert_eq!(Freshness::of(&invalid, NOW).lifetime, 5);
    }

    #[test]
    fn lifetime_precedence() {
        // §4.2.1: s-maxage, then max-age, then Expires - Date, then heuristic.
        assert_eq!(
            Freshness::of(&ok("max-age=60, s-maxage=300"), NOW).lifetime,
            300
        );
        assert_eq!(Freshness::of(&ok("max-age=60"), NOW).lifetime, 60);
        let date = format_http_date(NOW);
        let expires = format_http_date(NOW + 120);
        let by_expires = ResponseFacts {
            date: Some(&date),
            expires: Some(&expires),
            ..ResponseFacts {
                status: 200,
                ..ResponseFacts::default()
            }
        };
        assert_eq!(Freshness::of(&by_expires, NOW).lifetime, 120);
        let bad_expires = ResponseFacts {
            expires: Some("0"),
            ..by_expires
        };
        assert_eq!(Freshness::of(&bad_expires, NOW).lifetime, 0);
        let modified = format_http_date(NOW - 1000);
        let heuristic = ResponseFacts {
            date: Some(&date),
            last_modified: Some(&modified),
            status: 200,
            ..ResponseFacts::default()
        };
        assert_eq!(Freshness::of(&heuristic, NOW).lifetime, 100);
        assert_eq!(
            Freshness::of(&ok("max-age=60, max-age=90"), NOW).lifetime,
            0
        );
        assert_eq!(Freshness::of(&ok("no-cache, max-age=60"), NOW).lifetime, 0);
    }

    #[test]
    fn stale_windows_and_their_prohibitions() {
        let f = Freshness::of(
            &ok("max-age=60, stale-while-revalidate=30, stale-if-error=300"),
            NOW,
        );
        assert_eq!(f.state(10), FreshnessState::Fresh { remaining: 50 });
        assert_eq!(
            f.state(70),
            FreshnessState::Stale {
                stale_for: 10,
                serve_while_revalidating: true,
                serve_if_error: true
            }
        );
        assert_eq!(
            f.state(100),
            FreshnessState::Stale {
                stale_for: 40,
                serve_while_revalidating: false,
                serve_if_error: true
            }
        );
        assert_eq!(f.retention(), 360);
        let strict = Freshness::of(&ok("max-age=60, must-revalidate, stale-if-error=300"), NOW);
        assert_eq!(strict.stale_if_error, 0);
        let shared = Freshness::of(&ok("s-maxage=60, stale-while-revalidate=30"), NOW);
        assert_eq!(shared.stale_while_revalidate, 30);
    }

    #[test]
    fn current_age_follows_section_4_2_3() {
        let date = format_http_date(NOW - 10);
        let facts = ResponseFacts {
            date: Some(&date),
            age: Some("5"),
            ..ok("max-age=60")
        };
        // apparent_age = 10; corrected_age_value = 5 + 2 = 7; initial = 10; resident = 30.
        assert_eq!(current_age(&facts, NOW - 2, NOW, NOW + 30), 40);
        let clock_skew = format_http_date(NOW + 100);
        let ahead = ResponseFacts {
            date: Some(&clock_skew),
            ..ok("max-age=60")
        };
        assert_eq!(current_age(&ahead, NOW, NOW, NOW), 0);
    }

    #[test]
    fn must_understand_stores_understood_statuses_despite_no_store() {
        // §5.2.2.3.
        let understood = ok("must-understand, no-store, max-age=60");
        assert_eq!(storability("GET", false, &understood), Ok(()));
        let unknown = ResponseFacts {
            status: 299,
            ..understood
        };
        assert_eq!(
            storability("GET", false, &unknown),
            Err(NotStorable::Status)
        );
        assert_eq!(
            storability("GET", false, &ok("no-store, max-age=60")),
            Err(NotStorable::NoStore)
        );
    }

    #[test]
    fn age_values_follow_section_5_1() {
        assert_eq!(age_seconds("10"), 10);
        assert_eq!(age_seconds("10, 20"), 10);
        assert_eq!(age_seconds("-5"), 0);
        assert_eq!(age_seconds("abc"), 0);
        assert_eq!(
            age_seconds("99999999999999"),
            crate::cache_control::DELTA_SECONDS_MAX
        );
        // An upstream Age makes a response stale on arrival.
        let facts = ResponseFacts {
            age: Some("7200"),
            ..ok("max-age=3600")
        };
        let age = current_age(&facts, NOW, NOW, NOW);
        assert_eq!(age, 7200);
        assert!(matches!(
            Freshness::of(&facts, NOW).state(age),
            FreshnessState::Stale { .. }
        ));
    }

    #[test]
    fn request_directives_decide_reuse() {
        let f = Freshness::of(&ok("max-age=100, stale-while-revalidate=50"), NOW);
        let none = RequestDirectives::default();
        assert_eq!(f.reuse(10, &none), Reuse::Fresh { remaining: 90 });
        assert_eq!(
            f.reuse(120, &none),
            Reuse::WhileRevalidating { stale_for: 20 }
        );
        let validate = Reuse::Validate {
            serve_if_error: false,
        };
        assert_eq!(f.reuse(200, &none), validate);
        let no_cache = RequestDirectives::parse(Some("no-cache"), None);
        assert_eq!(f.reuse(10, &no_cache), validate);
        let pragma = RequestDirectives::parse(None, Some("no-cache"));
        assert!(pragma.no_cache);
        let max_age = RequestDirectives::parse(Some("max-age=5"), None);
        assert_eq!(f.reuse(10, &max_age), validate);
        assert_eq!(f.reuse(4, &max_age), Reuse::Fresh { remaining: 96 });
        let min_fresh = RequestDirectives::parse(Some("min-fresh=95"), None);
        assert_eq!(f.reuse(10, &min_fresh), validate);
        let max_stale = RequestDirectives::parse(Some("max-stale=500"), None);
        assert_eq!(
            f.reuse(400, &max_stale),
            Reuse::StaleAccepted { stale_for: 300 }
        );
        let any_stale = RequestDirectives::parse(Some("max-stale"), None);
        assert_eq!(
            f.reuse(9000, &any_stale),
            Reuse::StaleAccepted { stale_for: 8900 }
        );
        // must-revalidate overrides max-stale.
        let strict = Freshness::of(&ok("max-age=100, must-revalidate"), NOW);
        assert_eq!(strict.reuse(400, &any_stale), validate);
        assert!(RequestDirectives::parse(Some("only-if-cached"), None).only_if_cached);
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(
            format_http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        // RFC 9110 §5.6.7: only GMT, exact spacing, four-digit years in IMF-fixdate.
        for invalid in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT, Thu, 18 Aug 2050 2:01:18 GMT",
        ] {
            assert_eq!(parse_http_date(invalid), None, "{invalid}");
        }
        for valid in [
            "Tue, 19 Jan 2038 14:14:08 GMT",
            "Sun, 21 Nov 2286 04:46:39 GMT",
            "Thursday, 18-Aug-50 02:01:18 GMT",
            "Thu Aug  8 02:01:18 2050",
        ] {
            assert!(parse_http_date(valid).is_some(), "{valid}");
        }
    }
}
