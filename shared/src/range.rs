//! Byte ranges (RFC 9110 §14): which part of a stored complete representation a `Range`
//! request asks for, so a cache can answer `206 Partial Content` or `416 Range Not
//! Satisfiable` itself (RFC 9111 §3.4 lets a cache serve ranges from a complete response).
//!
//! One range is served as one part. A request for several ranges is answered with the whole
//! representation, which §14.2 allows ("a server MAY ignore the Range header field"): multipart
//! answers cost more to build than they save.

/// What to send for a `Range` header against a representation of `length` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole representation (no range, an unknown unit, several ranges, a syntax
    /// error: §14.2 says to ignore an invalid Range).
    Full,
    /// `206` with bytes `first..=last`.
    Partial {
        /// First byte position.
        first: u64,
        /// Last byte position, inclusive.
        last: u64,
    },
    /// `416`: no range overlaps the representation.
    Unsatisfiable,
}

impl RangeAnswer {
    /// The `Content-Range` value for this answer (`bytes 0-99/1000`, `bytes */1000`).
    pub fn content_range(&self, length: u64) -> Option<String> {
        match self {
            Self::Full => None,
            Self::Partial { first, last } => Some(format!("bytes {first}-{last}/{length}")),
            Self::Unsatisfiable => Some(format!("bytes */{length}")),
        }
    }
}

/// Reads a `Range` value against a representation of `length` bytes.
pub fn answer(range: &str, length: u64) -> RangeAnswer {
    let Some((unit, set)) = range.split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        return RangeAnswer::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first.is_empty(), number(first), number(last)) {
        // Suffix range: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || length == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    first: length.saturating_sub(suffix),
                    last: length - 1,
                }
            }
        }
        (false, Some(first), last_position) => {
            if !last.is_empty() && last_position.is_none() {
                return RangeAnswer::Full;
            }
            if last_position.is_some_and(|last| last < first) {
                return RangeAnswer::Full;
            }
            if first >= length {
                return RangeAnswer::Unsatisfiable;
            }
            let last = last_position.map_or(length - 1, |last| last.min(length - 1));
            RangeAnswer::Partial { first, last }
        }
        _ => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(
            answer("bytes=0-4", 10),
            RangeAnswer::Partial { first: 0, last: 4 }
        );
        assert_eq!(
            answer("bytes=5-", 10),
            RangeAnswer::Partial { first: 5, last: 9 }
        );
        assert_eq!(
            answer("bytes=-3", 10),
            RangeAnswer::Partial { first: 7, last: 9 }
        );
        assert_eq!(
            answer("bytes=-30", 10),
            RangeAnswer::Partial { first: 0, last: 9 }
        );
        assert_eq!(
            answer("bytes=8-100", 10),
            RangeAnswer::Partial { first: 8, last: 9 }
        );
        assert_eq!(
            answer("Bytes = 1-1", 10),
            RangeAnswer::Partial { first: 1, last: 1 }
        );
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(answer("bytes=10-", 10), RangeAnswer::Unsatisfiable);
        assert_eq!(answer("bytes=-0", 10), RangeAnswer::Unsatisfiable);
        assert_eq!(answer("bytes=5-2", 10), RangeAnswer::Full);
        assert_eq!(answer("bytes=0-1,3-4", 10), RangeAnswer::Full);
        assert_eq!(answer("items=0-1", 10), RangeAnswer::Full);
        assert_eq!(answer("bytes=a-b", 10), RangeAnswer::Full);
        assert_eq!(answer("bytes", 10), RangeAnswer::Full);
        assert_eq!(answer("bytes=-1", 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn content_range_values() {
        assert_eq!(
            RangeAnswer::Partial { first: 0, last: 4 }.content_range(10),
            Some("bytes 0-4/10".to_owned())
        );
        assert_eq!(
            RangeAnswer::Unsatisfiable.content_range(10),
            Some("bytes */10".to_owned())
        );
    }
}
