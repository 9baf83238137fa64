//! How the status page writes numbers, sizes, times and durations for a reader: short, with
//! their unit, in UTC.

use std::time::{Duration, SystemTime};

/// `value` with at most `decimals` decimals, trailing zeros dropped (`2.50` → `2.5`).
fn trimmed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Decimals that keep three significant digits of `value` (none from 100 on).
fn decimals(value: f64) -> usize {
    match value.abs() {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    }
}

/// Milliseconds: `0.42 ms`, `12.5 ms`, `1.25 s`.
pub fn millis(value: f64) -> String {
    if value >= 1000.0 {
        let seconds = value / 1000.0;
        return format!("{} s", trimmed(seconds, decimals(seconds)));
    }
    format!("{} ms", trimmed(value, decimals(value)))
}

/// Requests per second: `3.2 req/s`.
pub fn rate(value: f64) -> String {
    format!("{} req/s", trimmed(value, decimals(value)))
}

/// A share from 0 to 1 in percent: `93.5 %`.
pub fn percent(share: f64) -> String {
    format!("{} %", trimmed(share * 100.0, 1))
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `64 MiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{count} B");
    }
    format!("{} {}", trimmed(value, decimals(value)), UNITS[unit])
}

/// A duration to the second (the millisecond below one): `850 ms`, `42 s`, `3 min 5 s`,
/// `2 h 10 min`, `4 d 3 h`.
pub fn duration(span: Duration) -> String {
    let seconds = span.as_secs();
    match seconds {
        0 => format!("{} ms", span.as_millis()),
        1..=59 => format!("{seconds} s"),
        60..=3599 => with_rest(seconds / 60, "min", seconds % 60, "s"),
        3600..=86_399 => with_rest(seconds / 3600, "h", seconds % 3600 / 60, "min"),
        _ => with_rest(seconds / 86_400, "d", seconds % 86_400 / 3600, "h"),
    }
}

fn with_rest(major: u64, major_unit: &str, minor: u64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major} {major_unit}")
    } else {
        format!("{major} {major_unit} {minor} {minor_unit}")
    }
}

/// The time of day in UTC: `14:03:27`.
pub fn clock(at: SystemTime) -> String {
    let seconds = unix_seconds(at);
    let day = seconds % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// The date and time in UTC: `2026-05-10 14:03:27 UTC`.
pub fn date_time(at: SystemTime) -> String {
    let seconds = i64::try_from(unix_seconds(at)).unwrap_or(0);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(moment) => format!(
            "{:04}-{:02}-{:02} {} UTC",
            moment.year(),
            u8::from(moment.month()),
            moment.day(),
            clock(at)
        ),
        Err(_) => format!("{} UTC", clock(at)),
    }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_digits_and_their_unit() {
        assert_eq!(millis(0.4234), "0.42 ms");
        assert_eq!(millis(2.0), "2 ms");
        assert_eq!(millis(12.54), "12.5 ms");
        assert_eq!(millis(640.0), "640 ms");
        assert_eq!(millis(1250.0), "1.25 s");
        assert_eq!(rate(0.0), "0 req/s");
        assert_eq!(rate(153.26), "153 req/s");
        assert_eq!(percent(0.9345), "93.5 %");
        assert_eq!(percent(1.0), "100 %");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
    }

    #[test]
    fn durations_and_times_read_naturally() {
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(duration(Duration::from_secs(900)), "15 min");
        assert_eq!(duration(Duration::from_secs(7800)), "2 h 10 min");
        assert_eq!(duration(Duration::from_secs(97_200)), "1 d 3 h");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_778_421_807);
        assert_eq!(clock(at), "14:03:27");
        assert_eq!(date_time(at), "2026-05-10 14:03:27 UTC");
    }
}
