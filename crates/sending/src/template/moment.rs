//! Dates for the `formatDate` helper as moment.js reads and writes them: the inputs
//! `moment(x)` accepts, `utcOffset(x)`, and the common format tokens with English names.
//! Without an offset, times are shown in UTC (moment's local time on a UTC server).

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Timelike};
use regex::Regex;
use serde_json::Value;

/// moment's format when none is given.
pub(super) const MOMENT_DEFAULT_FORMAT: &str = "YYYY-MM-DDTHH:mm:ssZ";

/// What `moment(input)` accepts: epoch milliseconds, ISO 8601 strings (without a zone they
/// are local time, taken here as UTC) and, as `Date` would, RFC 2822 dates.
pub(super) fn parse_moment_input(value: &Value) -> Option<DateTime<FixedOffset>> {
    match value {
        Value::Number(n) => {
            let ms = n.as_f64()?;
            if !ms.is_finite() {
                return None;
            }
            DateTime::from_timestamp_millis(ms as i64).map(|t| t.fixed_offset())
        }
        Value::String(s) => parse_date_text(s.trim()),
        _ => None,
    }
}

fn parse_date_text(s: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let spaced = s.replacen(' ', "T", 1);
    for candidate in [s, spaced.as_str()] {
        for f in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
            if let Ok(t) = DateTime::parse_from_str(candidate, f) {
                return Some(t);
            }
        }
        if let Some(t) = candidate
            .strip_suffix('Z')
            .and_then(parse_naive)
            .or_else(|| parse_naive(candidate))
        {
            return Some(t.and_utc().fixed_offset());
        }
    }
    DateTime::parse_from_rfc2822(s).ok()
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// moment's `utcOffset(x)`: a number of minutes, or of hours when its magnitude is below 16;
/// or a string such as `+02:00`, `-0530`, `+03` or `Z`.
pub(super) fn utc_offset(value: &Value) -> Option<FixedOffset> {
    let minutes = match value {
        Value::Number(n) => {
            let n = n.as_f64()?;
            if n.abs() < 16.0 { n * 60.0 } else { n }
        }
        Value::String(s) => offset_from_string(s)?,
        _ => return None,
    };
    FixedOffset::east_opt((minutes.round() as i32).checked_mul(60)?)
}

static SHORT_OFFSET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)Z|([+-])(\d\d)(?::?(\d\d))?").expect("constant pattern"));

fn offset_from_string(s: &str) -> Option<f64> {
    let caps = SHORT_OFFSET.captures_iter(s).last()?;
    let Some(sign) = caps.get(1) else {
        return Some(0.0);
    };
    let hours: f64 = caps.get(2)?.as_str().parse().ok()?;
    let mins: f64 = caps.get(3).map_or(Some(0.0), |m| m.as_str().parse().ok())?;
    let total = hours * 60.0 + mins;
    Some(if sign.as_str() == "-" { -total } else { total })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The moment tokens this renderer knows, longest first where one is a prefix of another.
const MOMENT_TOKENS: &[&str] = &[
    "YYYY", "YY", "Y", "MMMM", "MMM", "MM", "M", "DDDD", "DDD", "Do", "DD", "D", "dddd", "ddd",
    "dd", "d", "HH", "H", "hh", "h", "mm", "m", "ss", "s", "SSS", "SS", "S", "A", "a", "ZZ", "Z",
    "X", "x",
];

/// Formats with moment's tokens (English names); `[...]` is literal text, as in moment.
pub(super) fn format_moment(t: &DateTime<FixedOffset>, format: &str) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '['
            && let Some(close) = rest[1..].find(']')
            && !rest[1..1 + close].contains('[')
        {
            out.push_str(&rest[1..1 + close]);
            rest = &rest[close + 2..];
            continue;
        }
        match MOMENT_TOKENS.iter().find(|tok| rest.starts_with(**tok)) {
            Some(tok) => {
                push_token(&mut out, t, tok);
                rest = &rest[tok.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

fn push_token(out: &mut String, t: &DateTime<FixedOffset>, token: &str) {
    use std::fmt::Write as _;
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let weekday = t.weekday().num_days_from_sunday() as usize;
    let month = t.month0() as usize;
    let offset = t.offset().local_minus_utc() / 60;
    let (sign, off_h, off_m) = (
        if offset < 0 { '-' } else { '+' },
        offset.abs() / 60,
        offset.abs() % 60,
    );
    // Writing into a String cannot fail.
    let _ = match token {
        "YYYY" => write!(out, "{:04}", t.year()),
        "YY" => write!(out, "{:02}", t.year().rem_euclid(100)),
        "Y" if t.year() > 9999 => write!(out, "+{}", t.year()),
        "Y" => write!(out, "{:04}", t.year()),
        "MMMM" => write!(out, "{}", MONTHS[month]),
        "MMM" => write!(out, "{}", &MONTHS[month][..3]),
        "MM" => write!(out, "{:02}", t.month()),
        "M" => write!(out, "{}", t.month()),
        "DDDD" => write!(out, "{:03}", t.ordinal()),
        "DDD" => write!(out, "{}", t.ordinal()),
        "Do" => write!(out, "{}{}", t.day(), ordinal_suffix(t.day())),
        "DD" => write!(out, "{:02}", t.day()),
        "D" => write!(out, "{}", t.day()),
        "dddd" => write!(out, "{}", WEEKDAYS[weekday]),
        "ddd" => write!(out, "{}", &WEEKDAYS[weekday][..3]),
        "dd" => write!(out, "{}", &WEEKDAYS[weekday][..2]),
        "d" => write!(out, "{weekday}"),
        "HH" => write!(out, "{:02}", t.hour()),
        "H" => write!(out, "{}", t.hour()),
        "hh" => write!(out, "{hour12:02}"),
        "h" => write!(out, "{hour12}"),
        "mm" => write!(out, "{:02}", t.minute()),
        "m" => write!(out, "{}", t.minute()),
        "ss" => write!(out, "{:02}", t.second()),
        "s" => write!(out, "{}", t.second()),
        "SSS" => write!(out, "{:03}", t.timestamp_subsec_millis()),
        "SS" => write!(out, "{:02}", t.timestamp_subsec_millis() / 10),
        "S" => write!(out, "{}", t.timestamp_subsec_millis() / 100),
        "A" => write!(out, "{}", if t.hour() < 12 { "AM" } else { "PM" }),
        "a" => write!(out, "{}", if t.hour() < 12 { "am" } else { "pm" }),
        "ZZ" => write!(out, "{sign}{off_h:02}{off_m:02}"),
        "Z" => write!(out, "{sign}{off_h:02}:{off_m:02}"),
        "X" => write!(out, "{}", t.timestamp()),
        "x" => write!(out, "{}", t.timestamp_millis()),
        other => write!(out, "{other}"),
    };
}

fn ordinal_suffix(day: u32) -> &'static str {
    match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moment_literals_and_unknown_letters() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(format_moment(&t, "[at] HH[h] q é"), "at 03h q é");
        assert_eq!(
            format_moment(&t, "[unclosed YYYY"),
            "[unclo5e2 2024",
            "an unclosed bracket is literal, the letters after it are tokens"
        );
        assert_eq!(format_moment(&t, "Do"), "2nd");
    }

    proptest::proptest! {
        #[test]
        fn moment_format_never_panics(format in "\\PC{0,40}") {
            let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z").unwrap();
            let _ = format_moment(&t, &format);
        }
    }
}
