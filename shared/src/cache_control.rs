//! `Cache-Control` (RFC 9111 §5.2), its RFC 5861 and RFC 8246 extensions, and the targeted
//! `CDN-Cache-Control` field (RFC 9213).
//!
//! Parsing follows the RFC text:
//! - directive names are case-insensitive tokens; arguments may be tokens or quoted strings, and
//!   "recipients ought to accept both forms, even if a specific form is required for generation"
//!   (§5.2), so `max-age="60"` is read as 60;
//! - "Cache directives that are unrecognized MUST be ignored" (§5.2.3): they are kept in
//!   [`CacheControl::extensions`] and have no effect;
//! - delta-seconds larger than the greatest representable value become 2^31 (§1.2.2);
//! - for a repeated or malformed freshness directive (`max-age`, `s-maxage`) the response is
//!   considered stale, as §4.2.1 allows ("either the first occurrence should be used or the response
//!   should be considered stale") and encourages for "invalid freshness information";
//! - a repeated `stale-while-revalidate` / `stale-if-error` keeps the smaller window.

use std::fmt::{self, Write as _};

/// §1.2.2: the value a cache uses for delta-seconds it cannot represent.
pub const DELTA_SECONDS_MAX: u32 = 1 << 31;

/// The parsed directives of one `Cache-Control` (or targeted) field value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age` (§5.2.1.1, §5.2.2.1).
    pub max_age: Option<u32>,
    /// `s-maxage` (§5.2.2.10): overrides `max-age` in shared caches.
    pub s_maxage: Option<u32>,
    /// `max-stale` (§5.2.1.2), request only; `Some(None)` accepts any staleness.
    pub max_stale: Option<Option<u32>>,
    /// `min-fresh` (§5.2.1.3), request only.
    pub min_fresh: Option<u32>,
    /// `stale-while-revalidate` (RFC 5861 §3).
    pub stale_while_revalidate: Option<u32>,
    /// `stale-if-error` (RFC 5861 §4).
    pub stale_if_error: Option<u32>,
    /// `no-cache` (§5.2.1.4, §5.2.2.4); a non-empty list is the qualified form naming fields.
    pub no_cache: Option<Vec<String>>,
    /// `private` (§5.2.2.7); a non-empty list is the qualified form naming fields.
    pub private: Option<Vec<String>>,
    /// `no-store` (§5.2.1.5, §5.2.2.5).
    pub no_store: bool,
    /// `no-transform` (§5.2.1.6, §5.2.2.6).
    pub no_transform: bool,
    /// `only-if-cached` (§5.2.1.7), request only.
    pub only_if_cached: bool,
    /// `must-revalidate` (§5.2.2.2).
    pub must_revalidate: bool,
    /// `proxy-revalidate` (§5.2.2.8).
    pub proxy_revalidate: bool,
    /// `must-understand` (§5.2.2.3).
    pub must_understand: bool,
    /// `public` (§5.2.2.9).
    pub public: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// Unrecognized directives, names lower-cased, in order of appearance.
    pub extensions: Vec<(String, Option<String>)>,
    /// A freshness directive was repeated with different values or had an invalid argument: the
    /// response must be treated as stale.
    pub invalid_freshness: bool,
}

impl CacheControl {
    /// Parses a `Cache-Control` field value. Several field lines are parsed by joining them with
    /// `", "` first (RFC 9110 §5.3). Parsing never fails: malformed parts are skipped.
    pub fn parse(value: &str) -> Self {
        let mut parsed = Self::default();
        for (name, argument) in Directives::new(value) {
            parsed.apply(&name, argument);
        }
        parsed
    }

    /// Parses a targeted field such as `CDN-Cache-Control` (RFC 9213 §2.1). Its value is a
    /// structured-field Dictionary; "if the field value fails to parse or is empty, the field is
    /// considered invalid and MUST be ignored", hence `None`.
    pub fn parse_targeted(value: &str) -> Option<Self> {
        let members = crate::structured::parse_dictionary(value)?;
        if members.is_empty() {
            return None;
        }
        let mut parsed = Self::default();
        for (name, item) in members {
            use crate::structured::Item;
            let argument = match item {
                Item::Boolean(false) => continue,
                Item::Boolean(true) => None,
                Item::Integer(n) => Some(n.to_string()),
                // Directives with seconds take an Integer; a String there is invalid.
                Item::String(_) if takes_seconds(&name) => Some(String::from("\u{0}")),
                Item::String(s) | Item::Token(s) => Some(s),
                // A decimal or byte sequence is never a valid argument of a known directive.
                Item::Other => Some(String::from("\u{0}")),
            };
            parsed.apply(&name, argument);
        }
        Some(parsed)
    }

    /// Whether no directive at all is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn apply(&mut self, name: &str, argument: Option<String>) {
        match name {
            "max-age" => self.set_freshness(Field::MaxAge, argument.as_deref()),
            "s-maxage" => self.set_freshness(Field::SMaxAge, argument.as_deref()),
            "stale-while-revalidate" => {
                set_window(&mut self.stale_while_revalidate, argument.as_deref())
            }
            "stale-if-error" => set_window(&mut self.stale_if_error, argument.as_deref()),
            "min-fresh" => {
                if let Some(seconds) = argument.as_deref().and_then(parse_delta_seconds) {
                    self.min_fresh.get_or_insert(seconds);
                }
            }
            "max-stale" => {
                let limit = argument.as_deref().and_then(parse_delta_seconds);
                self.max_stale.get_or_insert(limit);
            }
            "no-cache" => merge_fields(&mut self.no_cache, argument.as_deref()),
            "private" => merge_fields(&mut self.private, argument.as_deref()),
            "no-store" => self.no_store = true,
            "no-transform" => self.no_transform = true,
            "only-if-cached" => self.only_if_cached = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "must-understand" => self.must_understand = true,
            "public" => self.public = true,
            "immutable" => self.immutable = true,
            _ => self.extensions.push((name.to_owned(), argument)),
        }
    }

    fn set_freshness(&mut self, field: Field, argument: Option<&str>) {
        let Some(seconds) = argument.and_then(parse_delta_seconds) else {
            self.invalid_freshness = true;
            return;
        };
        let slot = match field {
            Field::MaxAge => &mut self.max_age,
            Field::SMaxAge => &mut self.s_maxage,
        };
        match *slot {
            Some(existing) if existing != seconds => self.invalid_freshness = true,
            Some(_) => {}
            None => *slot = Some(seconds),
        }
    }
}

fn takes_seconds(name: &str) -> bool {
    matches!(
        name,
        "max-age"
            | "s-maxage"
            | "stale-while-revalidate"
            | "stale-if-error"
            | "min-fresh"
            | "max-stale"
    )
}

enum Field {
    MaxAge,
    SMaxAge,
}

fn set_window(slot: &mut Option<u32>, argument: Option<&str>) {
    if let Some(seconds) = argument.and_then(parse_delta_seconds) {
        *slot = Some(slot.map_or(seconds, |existing| existing.min(seconds)));
    }
}

/// An unqualified `no-cache`/`private` wins over qualified ones: it applies to the whole response.
fn merge_fields(slot: &mut Option<Vec<String>>, argument: Option<&str>) {
    let fields: Vec<String> = argument
        .map(|list| {
            list.split(',')
                .map(|field| field.trim().to_ascii_lowercase())
                .filter(|field| !field.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match slot {
        Some(existing) if existing.is_empty() => {}
        Some(existing) if fields.is_empty() => existing.clear(),
        Some(existing) => existing.extend(fields),
        None => *slot = Some(fields),
    }
}

/// `delta-seconds = 1*DIGIT` (§1.2.2), saturating at 2^31.
pub fn parse_delta_seconds(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 10 {
        return Some(DELTA_SECONDS_MAX);
    }
    let value: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(value.min(u64::from(DELTA_SECONDS_MAX)) as u32)
}

/// Iterates `(lower-cased name, unquoted argument)` pairs of a field value, honouring quoted
/// strings (a comma inside quotes does not end a directive).
struct Directives<'a> {
    rest: &'a str,
}

impl<'a> Directives<'a> {
    fn new(value: &'a str) -> Self {
        Self { rest: value }
    }

    /// Consumes up to the next top-level comma, returning the directive text.
    fn next_directive(&mut self) -> &'a str {
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, c) in self.rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    let directive = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    return directive;
                }
                _ => {}
            }
        }
        std::mem::take(&mut self.rest)
    }
}

impl Iterator for Directives<'_> {
    type Item = (String, Option<String>);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let directive = self.next_directive().trim();
            if let Some(parsed) = parse_directive(directive) {
                return Some(parsed);
            }
        }
        None
    }
}

fn parse_directive(directive: &str) -> Option<(String, Option<String>)> {
    let (name, argument) = match directive.split_once('=') {
        Some((name, argument)) => (name.trim(), Some(argument.trim())),
        None => (directive, None),
    };
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return None;
    }
    let argument = match argument {
        Some(text) if text.starts_with('"') => Some(unquote(text)?),
        Some(text) if text.bytes().all(is_tchar) && !text.is_empty() => Some(text.to_owned()),
        Some(_) => Some(String::from("\u{0}")), // present but malformed: invalid argument
        None => None,
    };
    Some((name.to_ascii_lowercase(), argument))
}

/// Removes the quotes and backslash escapes of a `quoted-string` (RFC 9110 §5.6.4).
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

impl fmt::Display for CacheControl {
    /// Emits the directives in a fixed order, arguments in token form where the RFC requires it
    /// and field lists as quoted strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let flag = |on: bool, name: &str, parts: &mut Vec<String>| {
            if on {
                parts.push(name.to_owned());
            }
        };
        flag(self.public, "public", &mut parts);
        push_fields(&mut parts, "private", self.private.as_deref());
        push_fields(&mut parts, "no-cache", self.no_cache.as_deref());
        flag(self.no_store, "no-store", &mut parts);
        flag(self.no_transform, "no-transform", &mut parts);
        flag(self.must_revalidate, "must-revalidate", &mut parts);
        flag(self.proxy_revalidate, "proxy-revalidate", &mut parts);
        flag(self.must_understand, "must-understand", &mut parts);
        let seconds = [
            ("max-age", self.max_age),
            ("s-maxage", self.s_maxage),
            ("stale-while-revalidate", self.stale_while_revalidate),
            ("stale-if-error", self.stale_if_error),
        ];
        for (name, value) in seconds {
            if let Some(value) = value {
                parts.push(format!("{name}={value}"));
            }
        }
        flag(self.immutable, "immutable", &mut parts);
        match self.max_stale {
            Some(Some(limit)) => parts.push(format!("max-stale={limit}")),
            Some(None) => parts.push("max-stale".into()),
            None => {}
        }
        if let Some(min_fresh) = self.min_fresh {
            parts.push(format!("min-fresh={min_fresh}"));
        }
        flag(self.only_if_cached, "only-if-cached", &mut parts);
        for (name, argument) in &self.extensions {
            parts.push(match argument {
                Some(argument) => format!("{name}={}", token_or_quoted(argument)),
                None => name.clone(),
            });
        }
        f.write_str(&parts.join(", "))
    }
}

fn push_fields(parts: &mut Vec<String>, name: &str, fields: Option<&[String]>) {
    match fields {
        Some([]) => parts.push(name.to_owned()),
        Some(fields) => parts.push(format!("{name}=\"{}\"", fields.join(", "))),
        None => {}
    }
}

fn token_or_quoted(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(is_tchar) {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        let _ = quoted.write_char(c);
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_rfc9111_directive() {
        let cc = CacheControl::parse(
            "public, private, no-cache, no-store, no-transform, must-revalidate, \
             proxy-revalidate, must-understand, max-age=60, s-maxage=120, immutable, \
             stale-while-revalidate=30, stale-if-error=600, max-stale, min-fresh=5, only-if-cached",
        );
        assert!(cc.public && cc.no_store && cc.no_transform && cc.must_revalidate);
        assert!(cc.proxy_revalidate && cc.must_understand && cc.immutable && cc.only_if_cached);
        assert_eq!(cc.private, Some(vec![]));
        assert_eq!(cc.no_cache, Some(vec![]));
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(120));
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert_eq!(cc.stale_if_error, Some(600));
        assert_eq!(cc.max_stale, Some(None));
        assert_eq!(cc.min_fresh, Some(5));
        assert!(!cc.invalid_freshness);
    }

    #[test]
    fn names_are_case_insensitive_and_arguments_may_be_quoted() {
        // §5.2: "recipients ought to accept both forms".
        let cc = CacheControl::parse("Max-Age=\"60\", S-MAXAGE=10");
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(10));
    }

    #[test]
    fn qualified_no_cache_and_private_keep_field_names() {
        // §5.2.2.4 / §5.2.2.7: the qualified form lists field names in a quoted string, which
        // may contain commas.
        let cc = CacheControl::parse("private=\"Set-Cookie, X-Secret\", no-cache=\"Foo\"");
        assert_eq!(
            cc.private,
            Some(vec!["set-cookie".into(), "x-secret".into()])
        );
        assert_eq!(cc.no_cache, Some(vec!["foo".into()]));
        let unqualified_wins = CacheControl::parse("private=\"a\", private");
        assert_eq!(unqualified_wins.private, Some(vec![]));
    }

    #[test]
    fn invalid_or_conflicting_freshness_makes_the_response_stale() {
        // §4.2.1: duplicates → "either the first occurrence should be used or the response should
        // be considered stale"; invalid freshness information → stale.
        assert!(CacheControl::parse("max-age=60, max-age=120").invalid_freshness);
        assert!(CacheControl::parse("max-age=abc").invalid_freshness);
        assert!(CacheControl::parse("max-age").invalid_freshness);
        assert!(CacheControl::parse("s-maxage=-1").invalid_freshness);
        let same = CacheControl::parse("max-age=60, max-age=60");
        assert!(!same.invalid_freshness);
        assert_eq!(same.max_age, Some(60));
    }

    #[test]
    fn huge_delta_seconds_saturate_at_2_pow_31() {
        // §1.2.2.
        let cc = CacheControl::parse("max-age=99999999999999999999");
        assert_eq!(cc.max_age, Some(DELTA_SECONDS_MAX));
        assert_eq!(parse_delta_seconds("0000000000000000060"), Some(60));
        assert_eq!(parse_delta_seconds("2147483649"), Some(DELTA_SECONDS_MAX));
        assert_eq!(parse_delta_seconds("+5"), None);
    }

    #[test]
    fn unknown_directives_are_kept_but_ignored() {
        // §5.2.3.
        let cc = CacheControl::parse("community=\"UCI\", max-age=5, foo");
        assert_eq!(cc.max_age, Some(5));
        assert_eq!(
            cc.extensions,
            vec![
                ("community".into(), Some("UCI".into())),
                ("foo".into(), None)
            ]
        );
    }

    #[test]
    fn garbage_is_skipped_without_failing() {
        let cc = CacheControl::parse(",, ;;, max-age=5 ,\"oops\", =x, no-store");
        assert_eq!(cc.max_age, Some(5));
        assert!(cc.no_store);
        assert!(CacheControl::parse("").is_empty());
    }

    #[test]
    fn stale_windows_keep_the_smaller_duplicate() {
        let cc = CacheControl::parse("stale-while-revalidate=60, stale-while-revalidate=30");
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert!(CacheControl::parse("stale-if-error=x")
            .stale_if_error
            .is_none());
    }

    #[test]
    fn emits_in_a_fixed_order() {
        let cc = CacheControl {
            public: true,
            max_age: Some(60),
            s_maxage: Some(300),
            stale_while_revalidate: Some(30),
            immutable: true,
            extensions: vec![("x-note".into(), Some("a b".into()))],
            ..CacheControl::default()
        };
        assert_eq!(
            cc.to_string(),
            "public, max-age=60, s-maxage=300, stale-while-revalidate=30, immutable, x-note=\"a b\""
        );
        assert_eq!(CacheControl::parse(&cc.to_string()), cc);
    }

    #[test]
    fn targeted_field_is_a_structured_dictionary() {
        // RFC 9213 §2.1.
        let cc = CacheControl::parse_targeted("max-age=600, stale-while-revalidate=60, private=?0")
            .expect("valid dictionary");
        assert_eq!(cc.max_age, Some(600));
        assert_eq!(cc.stale_while_revalidate, Some(60));
        assert_eq!(cc.private, None);
        let no_store = CacheControl::parse_targeted("no-store").expect("valid");
        assert!(no_store.no_store);
        // Parse failures invalidate the whole field.
        assert!(CacheControl::parse_targeted("max-age=60,").is_none());
        assert!(CacheControl::parse_targeted("Max-Age=60").is_none());
        assert!(CacheControl::parse_targeted("max-age=\"unterminated").is_none());
        assert!(CacheControl::parse_targeted("").is_none());
        // A string where an integer belongs is an invalid argument, not a parse failure.
        let quoted = CacheControl::parse_targeted("max-age=\"60\"").expect("valid dictionary");
        assert!(quoted.invalid_freshness);
        let decimal = CacheControl::parse_targeted("max-age=1.5").expect("valid dictionary");
        assert!(decimal.invalid_freshness);
        let params = CacheControl::parse_targeted("max-age=5;a=1, public").expect("valid");
        assert_eq!(params.max_age, Some(5));
        assert!(params.public);
    }
}
