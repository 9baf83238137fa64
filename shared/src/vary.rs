//! Secondary cache keys (RFC 9111 §4.1): which request headers a stored response was selected
//! by, and the normalised values that a later request must present to reuse it.
//!
//! A response with `Vary: Accept-Language, X-Tenant` is stored under its URL's key plus a
//! secondary key built from the request's `Accept-Language` and `X-Tenant`; a later request is
//! served that variant only when its own values normalise to the same key. Normalisation follows
//! §4.1's allowance ("by adding or removing whitespace, combining multiple field lines, or
//! normalizing both values in a way that is known to have identical semantics"):
//! - whitespace around list members and runs of spaces collapse;
//! - for the `Accept*` fields, whose tokens are case-insensitive, case is folded and list
//!   members are sorted (their weights, not their order, carry the preference);
//! - a field absent from the request only matches an absent field (§4.1: "if a header field is
//!   absent from a request, it can only match another request if it is also absent").
//!
//! `Accept-Encoding` is left out of the key on purpose: both tiers fetch identity bodies and
//! negotiate content codings with clients themselves.

/// The field names a `Vary` value lists, lower-cased, without duplicates, in sorted order, and
/// without the fields a tier negotiates itself. `None` for `Vary: *` (never reusable).
pub fn fields(vary: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for name in vary.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "*" {
            return None;
        }
        let name = name.to_ascii_lowercase();
        if name != "accept-encoding" && !names.contains(&name) {
            names.push(name);
        }
    }
    names.sort();
    Some(names)
}

/// A request's secondary key for the listed `fields`: one `name=value` line per field, each
/// value normalised; an absent field is written as `name` alone, so that it matches only
/// absence. `value_of` returns the request's (combined) field value.
pub fn secondary_key(fields: &[String], value_of: impl Fn(&str) -> Option<String>) -> String {
    let mut key = String::new();
    for name in fields {
        key.push_str(name);
        if let Some(value) = value_of(name) {
            key.push('=');
            key.push_str(&normalize(name, &value));
        }
        key.push('\n');
    }
    key
}

/// A short, stable digest of a secondary key (64-bit FNV-1a in hex), for cache URLs.
pub fn digest(secondary_key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in secondary_key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// One field's value in canonical form.
pub fn normalize(name: &str, value: &str) -> String {
    let case_insensitive_list = name.starts_with("accept");
    let mut members: Vec<String> = split_list(value)
        .map(collapse_whitespace)
        .filter(|member| !member.is_empty())
        .map(|member| {
            if case_insensitive_list {
                member.to_ascii_lowercase()
            } else {
                member
            }
        })
        .collect();
    if case_insensitive_list {
        members.sort();
    }
    members.join(",")
}

/// Members of a comma-separated list, commas inside quoted strings kept.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let mut escaped = false;
        let mut end = rest.len();
        for (index, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = index;
                    break;
                }
                _ => {}
            }
        }
        let member = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        Some(member)
    })
}

/// `value` trimmed, with runs of spaces and tabs (and the spaces around `;` and `=`) removed.
fn collapse_whitespace(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut pending_space = false;
    for c in value.trim().chars() {
        if c == ' ' || c == '\t' {
            pending_space = true;
            continue;
        }
        if pending_space && !matches!(c, ';' | '=') && !out.ends_with([';', '=']) {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields_value: &str, headers: &[(&str, &str)]) -> String {
        let names = fields(fields_value).expect("not *");
        secondary_key(&names, |name| {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        })
    }

    #[test]
    fn fields_are_canonical() {
        assert_eq!(
            fields("X-B, accept-language ,X-b, Accept-Encoding"),
            Some(vec!["accept-language".to_owned(), "x-b".to_owned()])
        );
        assert_eq!(fields("Accept, *"), None);
        assert_eq!(fields(""), Some(Vec::new()));
    }

    #[test]
    fn order_of_vary_fields_does_not_matter() {
        let headers = [("a", "1"), ("b", "2")];
        assert_eq!(key("A, B", &headers), key("b,a", &headers));
    }

    #[test]
    fn absent_matches_only_absent() {
        assert_ne!(key("X-Foo", &[]), key("X-Foo", &[("x-foo", "")]));
        assert_eq!(key("X-Foo", &[]), key("X-Foo", &[("x-bar", "1")]));
    }

    #[test]
    fn whitespace_case_and_order_normalise_where_semantics_allow() {
        assert_eq!(
            key(
                "Accept-Language",
                &[("accept-language", "en-US,  fr;q=0.5")]
            ),
            key(
                "Accept-Language",
                &[("accept-language", "FR; q=0.5 , en-us")]
            ),
        );
        // Combined field lines equal one line with the same members.
        assert_eq!(
            key(
                "Accept",
                &[("accept", "text/html"), ("accept", "image/png")]
            ),
            key("Accept", &[("accept", "text/html, image/png")]),
        );
        // Custom fields keep case and order.
        assert_ne!(
            key("X-Tenant", &[("x-tenant", "Acme")]),
            key("X-Tenant", &[("x-tenant", "acme")]),
        );
        assert_ne!(
            key("X-List", &[("x-list", "a, b")]),
            key("X-List", &[("x-list", "b, a")]),
        );
        assert_eq!(
            key("X-List", &[("x-list", " a ,b")]),
            key("X-List", &[("x-list", "a, b")]),
        );
        assert_ne!(
            key("Accept-Language", &[("accept-language", "en")]),
            key("Accept-Language", &[("accept-language", "de")]),
        );
    }

    #[test]
    fn quoted_commas_stay_in_their_member() {
        assert_eq!(normalize("x-q", "\"a, b\", c"), "\"a, b\",c");
        assert_eq!(digest("a"), digest("a"));
        assert_ne!(digest("a"), digest("b"));
    }
}
