//! Value formats from EmailEngine's configuration: byte sizes (`5M`), durations (`10s`) and ISO
//! timestamps as JavaScript's `Date#toISOString` writes them.

use crate::{Error, Result};

/// `2024-12-23T11:36:54.623Z` for milliseconds since the epoch.
pub fn iso_time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Parses an ISO 8601 / RFC 3339 date into milliseconds since the epoch.
pub fn parse_iso_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Byte sizes with binary multiples: `5M`, `25MB`, `1024`, `1.5k`.
pub fn parse_byte_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::InvalidValue(format!("Invalid byte size \"{text}\"")))?;
    let unit = unit
        .trim()
        .trim_end_matches(['B', 'b'])
        .to_ascii_lowercase();
    let power = match unit.as_str() {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(Error::InvalidValue(format!("Invalid byte size \"{text}\""))),
    };
    Ok((n * 1024f64.powi(power)) as u64)
}

/// Durations: a number with `ms`, `s`, `m`, `h`, `d`; a bare number is milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::InvalidValue(format!("Invalid duration \"{text}\"")))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "s" | "sec" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        _ => return Err(Error::InvalidValue(format!("Invalid duration \"{text}\""))),
    };
    Ok((n * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_byte_size("5M").unwrap(), 5 * 1024 * 1024);
        assert_eq!(parse_byte_size("25MB").unwrap(), 25 * 1024 * 1024);
        assert_eq!(parse_byte_size("100").unwrap(), 100);
        assert_eq!(parse_byte_size("1k").unwrap(), 1024);
        assert!(parse_byte_size("five").is_err());
        assert!(parse_byte_size("5X").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("10s").unwrap(), 10_000);
        assert_eq!(parse_duration_ms("250").unwrap(), 250);
        assert_eq!(parse_duration_ms("2m").unwrap(), 120_000);
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn iso() {
        assert_eq!(
            iso_time(1_734_953_814_623).unwrap(),
            "2024-12-23T11:36:54.623Z"
        );
        assert_eq!(
            parse_iso_time("2024-12-23T11:36:54.623Z"),
            Some(1_734_953_814_623)
        );
    }
}
