//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms that
//! recipients must still accept.
//!
//! The grammar is followed exactly (field widths, single spaces, `GMT`), with two tolerances
//! that caches in the field share: day and month names and `GMT` in any case, and a day name
//! that does not match the date (the date wins). Anything else (`UTC`, a one-digit hour, a
//! two-digit year in IMF-fixdate, two dates in one value) is invalid, which for `Expires` means
//! already expired (RFC 9111 §5.3).

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LONG_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses an HTTP-date to Unix seconds.
pub fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    imf_fixdate(text)
        .or_else(|| rfc850(text))
        .or_else(|| asctime(text))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(text: &str) -> Option<u64> {
    let (day_name, rest) = text.split_once(", ")?;
    short_day(day_name)?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, zone] = parts.as_slice() else {
        return None;
    };
    gmt(zone)?;
    let date = Date {
        year: digits(year, 4)?,
        month: month_number(month)?,
        day: digits(day, 2)?,
    };
    date.at(time)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn rfc850(text: &str) -> Option<u64> {
    let (day_name, rest) = text.split_once(", ")?;
    LONG_DAYS
        .iter()
        .position(|d| d.eq_ignore_ascii_case(day_name))?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [date, time, zone] = parts.as_slice() else {
        return None;
    };
    gmt(zone)?;
    let fields: Vec<&str> = date.split('-').collect();
    let [day, month, year] = fields.as_slice() else {
        return None;
    };
    // Two-digit years: 70–99 are 19xx, 00–69 are 20xx.
    let year = digits(year, 2)?;
    let date = Date {
        year: if year >= 70 { 1900 + year } else { 2000 + year },
        month: month_number(month)?,
        day: digits(day, 2)?,
    };
    date.at(time)
}

/// `Sun Nov  6 08:49:37 1994`
fn asctime(text: &str) -> Option<u64> {
    let day_name = text.get(..3)?;
    short_day(day_name)?;
    let rest = text.get(3..)?.strip_prefix(' ')?;
    let month = rest.get(..3)?;
    let rest = rest.get(3..)?.strip_prefix(' ')?;
    // The day is two digits, or a space and one digit.
    let day = rest.get(..2)?;
    let day = match day.strip_prefix(' ') {
        Some(single) => digits(single, 1)?,
        None => digits(day, 2)?,
    };
    let rest = rest.get(2..)?.strip_prefix(' ')?;
    let (time, year) = rest.split_once(' ')?;
    let date = Date {
        year: digits(year, 4)?,
        month: month_number(month)?,
        day,
    };
    date.at(time)
}

fn short_day(name: &str) -> Option<usize> {
    DAYS.iter().position(|d| d.eq_ignore_ascii_case(name))
}

fn month_number(name: &str) -> Option<u64> {
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    Some(index as u64 + 1)
}

fn gmt(zone: &str) -> Option<()> {
    zone.eq_ignore_ascii_case("GMT").then_some(())
}

/// Exactly `width` ASCII digits.
fn digits(text: &str, width: usize) -> Option<u64> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// A calendar date in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy)]
struct Date {
    year: u64,
    month: u64,
    day: u64,
}

impl Date {
    /// Unix seconds at `hh:mm:ss` (GMT) on this date, if both are valid.
    fn at(self, time: &str) -> Option<u64> {
        let fields: Vec<&str> = time.split(':').collect();
        let [hour, minute, second] = fields.as_slice() else {
            return None;
        };
        let (hour, minute, second) = (digits(hour, 2)?, digits(minute, 2)?, digits(second, 2)?);
        // A leap second (60) is read as the last second of its minute.
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let days = self.days_since_epoch()?;
        Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59))
    }

    /// Days from 1970-01-01 (Howard Hinnant's days-from-civil); `None` before 1970 or for a day
    /// the month does not have.
    fn days_since_epoch(self) -> Option<u64> {
        let leap = self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let valid = (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= month_days[(self.month - 1) as usize];
        if !valid || self.year < 1970 {
            return None;
        }
        let (year, month) = if self.month <= 2 {
            (self.year - 1, self.month + 9)
        } else {
            (self.year, self.month - 3)
        };
        let era = year / 400;
        let year_of_era = year - era * 400;
        let day_of_year = (153 * month + 2) / 5 + self.day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        (era * 146_097 + day_of_era).checked_sub(719_468)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_6_1994: u64 = 784_111_777;

    #[test]
    fn the_three_forms() {
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(NOV_6_1994));
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), Some(NOV_6_1994));
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), Some(NOV_6_1994));
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse("Tue, 19 Jan 2038 03:14:08 GMT"), Some(1 << 31));
        assert_eq!(
            parse("Thursday, 18-Aug-50 02:01:18 GMT"),
            parse("Thu, 18 Aug 2050 02:01:18 GMT")
        );
        assert!(parse("Sun, 21 Nov 2286 04:46:39 GMT").is_some());
        assert_eq!(parse("Wed, 29 Feb 2012 12:00:00 GMT"), Some(1_330_516_800));
    }

    #[test]
    fn case_and_a_mismatched_day_name_are_tolerated() {
        assert_eq!(parse("SUN, 06 NOV 1994 08:49:37 gmt"), Some(NOV_6_1994));
        assert_eq!(parse("Thu Nov  6 08:49:37 1994"), Some(NOV_6_1994));
    }

    #[test]
    fn anything_else_is_invalid() {
        for invalid in [
            "",
            "0",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 AEST",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06  Nov  1994 08:49:37 GMT",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08.49.37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT, Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Funday, 06-Nov-94 08:49:37 GMT",
        ] {
            assert_eq!(parse(invalid), None, "{invalid:?}");
        }
    }
}
