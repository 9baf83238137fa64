//! Conditions in Cloudflare's Rules language, built from the policy's path patterns so that the
//! zone's rules select exactly the paths the edge and the origin select.
//!
//! Patterns become `eq` and `strict wildcard` comparisons (case-sensitive, available on every
//! plan; `matches` would need a regex-capable plan). A wildcard `*` also matches `/`, so a
//! one-segment slot (`{id}` or a middle `*`) is bounded by excluding the same glob with that
//! slot widened to two segments. One approximation remains: an empty segment (`/api/tasks//x`)
//! fills a slot, where the policy wants a non-empty one.

use std::fmt;

use shared::policy::{PathPattern, PatternSegment};

/// The field every path condition reads.
pub const PATH_FIELD: &str = "http.request.uri.path";

/// A condition over a request, rendered with [`fmt::Display`] as a Rules-language expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Always true.
    True,
    /// The path equals this text.
    PathEq(String),
    /// The path matches this glob (`*` = any run of characters, `/` included).
    PathGlob(String),
    /// Raw Rules-language text for facts other than the path (headers, cookies, methods).
    Raw(String),
    /// Negation.
    Not(Box<Condition>),
    /// Every condition holds.
    All(Vec<Condition>),
    /// At least one condition holds.
    Any(Vec<Condition>),
}

/// A pattern the translation cannot express exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {pattern}: {reason}")]
pub struct UnsupportedPattern {
    /// The pattern, as written in the policy.
    pub pattern: String,
    /// Why.
    pub reason: &'static str,
}

impl Condition {
    /// The paths `pattern` matches.
    pub fn for_pattern(pattern: &PathPattern) -> Result<Self, UnsupportedPattern> {
        let pieces: Vec<Piece> = pattern
            .segments()
            .map(|segment| match segment {
                PatternSegment::Literal(text) => Piece::Literal(text),
                PatternSegment::Capture(_) | PatternSegment::Any => Piece::Slot,
            })
            .collect();
        let slots = pieces.iter().filter(|p| **p == Piece::Slot).count();
        if !pattern.is_prefix() {
            return Ok(exact(&pieces));
        }
        if pieces.is_empty() {
            return Ok(Condition::True);
        }
        if slots > 0 {
            return Err(UnsupportedPattern {
                pattern: pattern.to_string(),
                reason: "a one-segment slot before a final '*' has no exact wildcard form",
            });
        }
        let base = glob(&pieces, None);
        Ok(Condition::Any(vec![
            Condition::PathEq(base.clone()),
            Condition::PathGlob(format!("{base}/*")),
        ]))
    }

    /// Any of the patterns.
    pub fn for_patterns<'p>(
        patterns: impl IntoIterator<Item = &'p PathPattern>,
    ) -> Result<Self, UnsupportedPattern> {
        let mut conditions = Vec::new();
        for pattern in patterns {
            conditions.push(Self::for_pattern(pattern)?);
        }
        Ok(match conditions.len() {
            1 => conditions.remove(0),
            _ => Condition::Any(conditions),
        })
    }

    /// Every condition, simplified: `true` parts dropped, one part unwrapped.
    pub fn all(parts: Vec<Condition>) -> Self {
        let mut parts: Vec<Condition> = parts
            .into_iter()
            .filter(|c| *c != Condition::True)
            .collect();
        match parts.len() {
            0 => Condition::True,
            1 => parts.remove(0),
            _ => Condition::All(parts),
        }
    }

    /// Any condition, simplified: `true` if any part is, one part unwrapped. `None` for no parts
    /// (nothing matches).
    pub fn any(mut parts: Vec<Condition>) -> Option<Self> {
        if parts.contains(&Condition::True) {
            return Some(Condition::True);
        }
        match parts.len() {
            0 => None,
            1 => Some(parts.remove(0)),
            _ => Some(Condition::Any(parts)),
        }
    }

    /// The negation, simplified.
    pub fn negate(self) -> Self {
        match self {
            Condition::Not(inner) => *inner,
            other => Condition::Not(Box::new(other)),
        }
    }

    /// Whether the condition holds for a request with this path, assuming every [`Raw`] fact
    /// is `raw`. Mirrors Cloudflare's semantics for the operators used here, for tests.
    ///
    /// [`Raw`]: Condition::Raw
    pub fn holds_for_path(&self, path: &str, raw: bool) -> bool {
        match self {
            Condition::True => true,
            Condition::PathEq(text) => path == text,
            Condition::PathGlob(pattern) => glob_matches(pattern.as_bytes(), path.as_bytes()),
            Condition::Raw(_) => raw,
            Condition::Not(inner) => !inner.holds_for_path(path, raw),
            Condition::All(all) => all.iter().all(|c| c.holds_for_path(path, raw)),
            Condition::Any(any) => any.iter().any(|c| c.holds_for_path(path, raw)),
        }
    }
}

/// Whether no path matches both patterns (conservative: `false` when unsure).
pub fn disjoint(a: &PathPattern, b: &PathPattern) -> bool {
    let (sa, sb): (Vec<_>, Vec<_>) = (a.segments().collect(), b.segments().collect());
    let literal_conflict = sa.iter().zip(&sb).any(|pair| match pair {
        (PatternSegment::Literal(x), PatternSegment::Literal(y)) => x != y,
        _ => false,
    });
    let length_conflict = match (a.is_prefix(), b.is_prefix()) {
        (false, false) => sa.len() != sb.len(),
        (false, true) => sa.len() < sb.len(),
        (true, false) => sb.len() < sa.len(),
        (true, true) => false,
    };
    literal_conflict || length_conflict
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'p> {
    Literal(&'p str),
    Slot,
}

/// A non-prefix pattern: the glob, minus each slot widened to two segments.
fn exact(pieces: &[Piece<'_>]) -> Condition {
    let base = glob(pieces, None);
    let slots: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i] == Piece::Slot)
        .collect();
    if slots.is_empty() {
        return Condition::PathEq(base);
    }
    let mut all = vec![Condition::PathGlob(base)];
    all.extend(
        slots
            .into_iter()
            .map(|slot| Condition::PathGlob(glob(pieces, Some(slot))).negate()),
    );
    Condition::All(all)
}

/// `/a/*/b`; with `widen`, that slot becomes `*/*`. Literal `\` is escaped for the glob.
fn glob(pieces: &[Piece<'_>], widen: Option<usize>) -> String {
    if pieces.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        out.push('/');
        match piece {
            Piece::Literal(text) => out.push_str(&text.replace('\\', "\\\\")),
            Piece::Slot if widen == Some(i) => out.push_str("*/*"),
            Piece::Slot => out.push('*'),
        }
    }
    out
}

/// Cloudflare's wildcard semantics: `*` matches any run of bytes, `\` escapes the next byte.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') => (0..=text.len()).any(|skip| glob_matches(&pattern[1..], &text[skip..])),
        Some(b'\\') if pattern.len() > 1 => {
            text.first() == Some(&pattern[1]) && glob_matches(&pattern[2..], &text[1..])
        }
        Some(&byte) => text.first() == Some(&byte) && glob_matches(&pattern[1..], &text[1..]),
    }
}

/// A Rules-language string literal.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::True => f.write_str("true"),
            Condition::PathEq(text) => write!(f, "{PATH_FIELD} eq {}", quote(text)),
            Condition::PathGlob(pattern) => {
                write!(f, "{PATH_FIELD} strict wildcard {}", quote(pattern))
            }
            Condition::Raw(text) => f.write_str(text),
            Condition::Not(inner) => write!(f, "not ({inner})"),
            Condition::All(all) => join(f, all, " and "),
            Condition::Any(any) => join(f, any, " or "),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, conditions: &[Condition], separator: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, condition) in conditions.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write!(f, "{condition}")?;
    }
    f.write_str(")")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(pattern: &str) -> Condition {
        Condition::for_pattern(&PathPattern::parse(pattern).expect("valid")).expect("supported")
    }

    #[test]
    fn patterns_render_as_rules_language() {
        assert_eq!(
            condition("/api/stats").to_string(),
            r#"http.request.uri.path eq "/api/stats""#
        );
        assert_eq!(
            condition("/assets/*").to_string(),
            r#"(http.request.uri.path eq "/assets" or http.request.uri.path strict wildcard "/assets/*")"#
        );
        assert_eq!(
            condition("/api/tasks/{id}/comments").to_string(),
            concat!(
                r#"(http.request.uri.path strict wildcard "/api/tasks/*/comments" and "#,
                r#"not (http.request.uri.path strict wildcard "/api/tasks/*/*/comments"))"#
            )
        );
        assert_eq!(condition("/*").to_string(), "true");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn conditions_select_the_paths_the_policy_selects() {
        let patterns = [
            "/",
            "/*",
            "/assets/*",
            "/api/tasks/{id}",
            "/api/tasks/{id}/comments",
            "/api/*/x",
            "/api/tasks/popular",
            "/health/*",
        ];
        let paths = [
            "/",
            "/a",
            "/assets",
            "/assets/",
            "/assets/app.css",
            "/assets/a/b.js",
            "/assetsx/a",
            "/api/tasks",
            "/api/tasks/42",
            "/api/tasks/42/comments",
            "/api/tasks/42/comments/7",
            "/api/tasks/a/b/comments",
            "/api/tasks/popular",
            "/api/q/x",
            "/api/q/r/x",
            "/health",
            "/health/ready",
            "/API/tasks/42",
        ];
        for pattern in patterns {
            let parsed = PathPattern::parse(pattern).expect("valid");
            let condition = Condition::for_pattern(&parsed).expect("supported");
            for path in paths {
                assert_eq!(
                    condition.holds_for_path(path, false),
                    parsed.matches(path).is_some(),
                    "{pattern} on {path}: {condition}"
                );
            }
        }
    }

    #[test]
    fn slots_before_a_final_wildcard_are_refused() {
        let pattern = PathPattern::parse("/x/{id}/*").expect("valid");
        assert!(Condition::for_pattern(&pattern).is_err());
    }

    #[test]
    fn globs_follow_cloudflare_semantics() {
        assert!(glob_matches(b"/a/*", b"/a/b/c"));
        assert!(glob_matches(b"/a/*", b"/a/"));
        assert!(!glob_matches(b"/a/*", b"/a"));
        assert!(glob_matches(b"/a\\\\b", b"/a\\b"));
        assert!(!glob_matches(b"/A/*", b"/a/b"));
    }
}
