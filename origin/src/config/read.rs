//! One variable read from the source and checked against what it accepts: whole numbers and
//! durations in a [`Range`], flags, words from a list, visible-ASCII text (tokens, keys,
//! prefixes) and values of a particular form (addresses, URLs). Each reader returns `None` when
//! the variable is unset or blank, so the concern keeps its default.

use std::time::Duration;

use super::{ConfigError, Problem, Range};

/// The words a flag accepts, `true` words first.
pub const FLAG_WORDS: &[&str] = &["true", "false", "1", "0", "yes", "no", "on", "off"];

/// Tokens and keys: 1 to 1024 characters, since each travels in a header or is compared with one.
pub const SECRET_LENGTH: Range = Range::new(1, 1024);

/// `variable`'s value, trimmed; `None` when unset or blank.
pub fn trimmed(source: &impl Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    source(variable)
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// A whole number within `range`.
pub fn whole<T: TryFrom<u64>>(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    range: Range,
) -> Result<Option<T>, ConfigError> {
    let Some(text) = trimmed(source, variable) else {
        return Ok(None);
    };
    let number: u64 = text
        .parse()
        .map_err(|_| ConfigError::new(variable, &text, Problem::NotANumber(range)))?;
    let refused = || ConfigError::new(variable, &text, Problem::OutOfRange(range));
    if !(range.min..=range.max).contains(&number) {
        return Err(refused());
    }
    T::try_from(number).map(Some).map_err(|_| refused())
}

/// A duration written in milliseconds, within `range`.
pub fn millis(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    range: Range,
) -> Result<Option<Duration>, ConfigError> {
    Ok(whole(source, variable, range)?.map(Duration::from_millis))
}

/// A duration written in seconds, within `range`.
pub fn seconds(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    range: Range,
) -> Result<Option<Duration>, ConfigError> {
    Ok(whole(source, variable, range)?.map(Duration::from_secs))
}

/// A flag: one of [`FLAG_WORDS`].
pub fn flag(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<bool>, ConfigError> {
    choice(source, variable, FLAG_WORDS, |word| match word {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    })
}

/// One of `words`, turned into a value by `pick`.
pub fn choice<T>(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    words: &'static [&'static str],
    pick: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(text) = trimmed(source, variable) else {
        return Ok(None);
    };
    match pick(&text) {
        Some(value) => Ok(Some(value)),
        None => Err(ConfigError::new(variable, text, Problem::NotOneOf(words))),
    }
}

/// A value of the form `expected` describes, turned into a value by `parse`.
pub fn parsed<T>(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(text) = trimmed(source, variable) else {
        return Ok(None);
    };
    match parse(&text) {
        Some(value) => Ok(Some(value)),
        None => Err(ConfigError::new(
            variable,
            text,
            Problem::Malformed { expected },
        )),
    }
}

/// A secret (token or key): `None` when unset or empty, refused unless visible ASCII of a
/// length in `lengths`. Never trimmed: a stray newline is an error, not part of the secret.
pub fn secret(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    lengths: Range,
) -> Result<Option<String>, ConfigError> {
    let Some(text) = source(variable).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    check_secret(variable, &text, lengths)?;
    Ok(Some(text))
}

/// `text` of `variable`, refused unless visible ASCII of a length in `lengths`.
pub fn check_text(variable: &'static str, text: &str, lengths: Range) -> Result<(), ConfigError> {
    if is_visible_text(text, lengths) {
        Ok(())
    } else {
        Err(ConfigError::new(
            variable,
            text,
            Problem::NotVisibleText(lengths),
        ))
    }
}

/// As [`check_text`], without repeating the secret in the error.
pub fn check_secret(variable: &'static str, text: &str, lengths: Range) -> Result<(), ConfigError> {
    check_text(variable, text, lengths).map_err(|error| ConfigError {
        value: format!("({} characters, not shown)", text.chars().count()),
        ..error
    })
}

fn is_visible_text(text: &str, lengths: Range) -> bool {
    let length = u64::try_from(text.len()).unwrap_or(u64::MAX);
    (lengths.min..=lengths.max).contains(&length) && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Refuses `text` of `variable` as not of the form `expected`.
pub fn malformed(variable: &'static str, text: &str, expected: &'static str) -> ConfigError {
    ConfigError::new(variable, text, Problem::Malformed { expected })
}
