//! Durations in whole seconds, as policy files write them: `300`, `"5m"`, `"1y"`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration in seconds. One year is 365 days (31 536 000 s), as in
/// `max-age=31536000`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(pub u32);

impl Seconds {
    /// Zero seconds.
    pub const ZERO: Self = Self(0);
    /// One minute.
    pub const MINUTE: Self = Self(60);
    /// One hour.
    pub const HOUR: Self = Self(3_600);
    /// One day.
    pub const DAY: Self = Self(86_400);
    /// One year of 365 days.
    pub const YEAR: Self = Self(31_536_000);

    /// The value in seconds.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// A duration string that is not `<digits>[s|m|h|d|w|y]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected seconds or a number with unit s, m, h, d, w or y")]
pub struct InvalidDuration(pub String);

impl FromStr for Seconds {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration(text.to_owned());
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let value: u64 = digits.parse().map_err(|_| invalid())?;
        let scale: u64 = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            "y" => 31_536_000,
            _ => return Err(invalid()),
        };
        let total = value.checked_mul(scale).ok_or_else(invalid)?;
        u32::try_from(total).map(Seconds).map_err(|_| invalid())
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;

        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds as an integer, or a string such as \"5m\" or \"1y\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                u32::try_from(v)
                    .map(Seconds)
                    .map_err(|_| E::custom(format!("{v} seconds is out of range")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("a duration cannot be negative: {v}")))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("300".parse(), Ok(Seconds(300)));
        assert_eq!("5m".parse(), Ok(Seconds(300)));
        assert_eq!("1y".parse(), Ok(Seconds::YEAR));
        assert_eq!("2w".parse(), Ok(Seconds(1_209_600)));
        assert!("5 minutes".parse::<Seconds>().is_err());
        assert!("-1".parse::<Seconds>().is_err());
        assert!("999999y".parse::<Seconds>().is_err());
        assert!("".parse::<Seconds>().is_err());
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        let from_json: Vec<Seconds> = serde_json::from_str(r#"[60, "1h"]"#).expect("valid");
        assert_eq!(from_json, vec![Seconds::MINUTE, Seconds::HOUR]);
        assert!(serde_json::from_str::<Seconds>("-5").is_err());
    }
}
