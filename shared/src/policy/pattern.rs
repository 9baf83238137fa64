//! Path patterns of route rules: `/assets/*`, `/api/tasks/{id}/comments`, `/`.
//!
//! A pattern is a list of `/`-separated segments: a literal matches itself, `{name}` matches one
//! non-empty segment and captures it, `*` matches one segment, and a final `*` matches the rest
//! of the path (zero or more segments).

use std::fmt;

/// One segment of a [`PathPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
    Any,
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    segments: Vec<Segment>,
    /// Ends in `*`: matches any remainder.
    prefix: bool,
}

/// One segment of a pattern, as other tiers see it (for example to translate a pattern into
/// Cloudflare's Rules language).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternSegment<'p> {
    /// Matches exactly this (percent-normalized) text.
    Literal(&'p str),
    /// `{name}`: one non-empty segment, captured.
    Capture(&'p str),
    /// `*` before the end: one non-empty segment.
    Any,
}

/// Captured `{name}` segments of a match, in pattern order.
pub type Captures<'p> = Vec<(&'p str, String)>;

impl PathPattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(source: &str) -> Result<Self, String> {
        let rest = source
            .strip_prefix('/')
            .ok_or_else(|| format!("{source:?} must start with '/'"))?;
        let mut parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let prefix = parts.last() == Some(&"*");
        if prefix {
            parts.pop();
        }
        let mut segments = Vec::with_capacity(parts.len());
        for part in parts {
            segments.push(parse_segment(part, source)?);
        }
        let mut names: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Capture(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(format!("{source:?} captures the same name twice"));
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
            prefix,
        })
    }

    /// The segments before any final `*`, in order.
    pub fn segments(&self) -> impl Iterator<Item = PatternSegment<'_>> {
        self.segments.iter().map(|segment| match segment {
            Segment::Literal(text) => PatternSegment::Literal(text),
            Segment::Capture(name) => PatternSegment::Capture(name),
            Segment::Any => PatternSegment::Any,
        })
    }

    /// Whether the pattern ends in `*`, matching any remainder (including none).
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// The names this pattern captures.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Capture(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Matches a canonical path (no query), returning the captures.
    pub fn matches(&self, path: &str) -> Option<Captures<'_>> {
        self.matches_segments(&split_path(path)?)
    }

    /// Matches a path already split by [`split_path`], so a policy splits each request once.
    pub fn matches_segments(&self, parts: &[&str]) -> Option<Captures<'_>> {
        let fits = if self.prefix {
            parts.len() >= self.segments.len()
        } else {
            parts.len() == self.segments.len() || (self.segments.is_empty() && parts == [""])
        };
        if !fits {
            return None;
        }
        let mut captures = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Capture(name) if !part.is_empty() => {
                    captures.push((name.as_str(), (*part).to_owned()))
                }
                Segment::Any if !part.is_empty() => {}
                _ => return None,
            }
        }
        Some(captures)
    }
}

/// The `/`-separated segments of an absolute path (`/` alone has none); `None` when the path
/// does not start with `/`.
pub fn split_path(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    Some(if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    })
}

fn parse_segment(part: &str, source: &str) -> Result<Segment, String> {
    if part == "*" {
        return Ok(Segment::Any);
    }
    if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        return if valid {
            Ok(Segment::Capture(name.to_owned()))
        } else {
            Err(format!("{source:?} has an invalid capture {part:?}"))
        };
    }
    if part.contains(['*', '{', '}', '?', '#']) {
        return Err(format!(
            "{source:?}: segment {part:?} mixes literal text with '*', '{{', '}}', '?' or '#'"
        ));
    }
    Ok(Segment::Literal(crate::key::normalize_percent(part, |b| {
        b != b'%' && b.is_ascii_graphic()
    })))
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> PathPattern {
        PathPattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn literals_captures_and_wildcards() {
        assert!(pattern("/").matches("/").is_some());
        assert!(pattern("/").matches("/a").is_none());
        assert!(pattern("/*").matches("/").is_some());
        assert!(pattern("/*").matches("/a/b").is_some());
        assert!(pattern("/assets/*").matches("/assets/app.css").is_some());
        assert!(pattern("/assets/*").matches("/assets/a/b.js").is_some());
        assert!(pattern("/assets/*").matches("/assetsx/a").is_none());
        assert!(pattern("/health/*").matches("/health").is_some());
        let comments = pattern("/api/tasks/{id}/comments");
        assert_eq!(
            comments.matches("/api/tasks/42/comments"),
            Some(vec![("id", "42".to_owned())])
        );
        assert!(comments.matches("/api/tasks//comments").is_none());
        assert!(comments.matches("/api/tasks/42/comments/x").is_none());
        assert!(pattern("/api/*/x").matches("/api/anything/x").is_some());
        assert!(pattern("/api/*/x").matches("/api/a/b/x").is_none());
    }

    #[test]
    fn invalid_patterns_are_explained() {
        assert!(PathPattern::parse("assets/*").is_err());
        assert!(PathPattern::parse("/a*b").is_err());
        assert!(PathPattern::parse("/{}").is_err());
        assert!(PathPattern::parse("/{a-b}").is_err());
        assert!(PathPattern::parse("/{id}/{id}").is_err());
        let p = pattern("/x/{a}/{b}");
        assert_eq!(p.capture_names().collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
