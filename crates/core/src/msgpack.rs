//! MessagePack helpers for the records EmailEngine writes with `@msgpack/msgpack`: JavaScript
//! Dates as the timestamp extension (type −1), and conversion of nested values to and from JSON.

use rmpv::Value;

/// The msgpack extension type that carries timestamps.
pub const TIMESTAMP_EXT: i8 = -1;

/// Encodes milliseconds since the epoch the way `@msgpack/msgpack` encodes a `Date`:
/// timestamp32 when there is no sub-second part, timestamp64 while seconds fit 34 bits,
/// timestamp96 otherwise (negative or far-future dates).
pub fn timestamp(ms: i64) -> Value {
    let sec = ms.div_euclid(1000);
    let nsec = (ms.rem_euclid(1000) * 1_000_000) as u64;
    let data = if (0..1 << 34).contains(&sec) {
        if nsec == 0 && sec <= u32::MAX as i64 {
            (sec as u32).to_be_bytes().to_vec()
        } else {
            ((nsec << 34) | sec as u64).to_be_bytes().to_vec()
        }
    } else {
        let mut data = (nsec as u32).to_be_bytes().to_vec();
        data.extend_from_slice(&sec.to_be_bytes());
        data
    };
    Value::Ext(TIMESTAMP_EXT, data)
}

/// Reads a date as milliseconds since the epoch from either a timestamp extension or a plain
/// number (older EmailEngine releases stored `Date.now()` numbers).
pub fn read_date(value: &Value) -> Option<i64> {
    match value {
        Value::Ext(TIMESTAMP_EXT, data) => {
            let (sec, nsec) = match data.len() {
                4 => (u32::from_be_bytes(data[..4].try_into().ok()?) as i64, 0u64),
                8 => {
                    let raw = u64::from_be_bytes(data[..8].try_into().ok()?);
                    ((raw & ((1 << 34) - 1)) as i64, raw >> 34)
                }
                12 => (
                    i64::from_be_bytes(data[4..12].try_into().ok()?),
                    u32::from_be_bytes(data[..4].try_into().ok()?) as u64,
                ),
                _ => return None,
            };
            if nsec >= 1_000_000_000 {
                return None;
            }
            sec.checked_mul(1000)?
                .checked_add((nsec / 1_000_000) as i64)
        }
        Value::Integer(n) => n.as_i64(),
        Value::F64(f) if f.is_finite() && f.abs() < 9.0e15 => Some(*f as i64),
        Value::F32(f) if f.is_finite() => Some(*f as i64),
        _ => None,
    }
}

/// Converts a msgpack value to JSON. Dates become ISO strings; binary becomes a byte array.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(n) => n
            .as_i64()
            .map(J::from)
            .or_else(|| n.as_u64().map(J::from))
            .unwrap_or(J::Null),
        Value::F32(f) => serde_json::Number::from_f64(*f as f64).map_or(J::Null, J::Number),
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Value::Binary(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (key_string(k), to_json(v)))
                .collect(),
        ),
        Value::Ext(TIMESTAMP_EXT, _) => read_date(value)
            .and_then(crate::units::iso_time)
            .map_or(J::Null, J::String),
        Value::Ext(..) => J::Null,
    }
}

/// Converts JSON to msgpack, keeping key order.
pub fn from_json(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        J::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), from_json(v)))
                .collect(),
        ),
    }
}

/// The text of a map key (msgpack keys written by JavaScript are always strings).
pub fn key_string(key: &Value) -> String {
    match key {
        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => other.to_string(),
    }
}

/// Encodes a value to bytes. Writing into a `Vec` cannot fail.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    // Writing to a Vec<u8> has no I/O error path.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

/// Decodes exactly one value that spans the whole input.
pub fn decode(bytes: &[u8]) -> Option<Value> {
    let mut cursor = bytes;
    let value = rmpv::decode::read_value_ref_with_max_depth(&mut cursor, 32)
        .ok()?
        .to_owned();
    cursor.is_empty().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp64_matches_emailengine_bytes() {
        // 2024-12-23T11:36:54.623Z, from EmailEngine's test token export.
        let v = timestamp(1_734_953_814_623);
        assert_eq!(
            encode(&v),
            hex_bytes("d7ff9488e70067694b56"),
            "timestamp64 wire form"
        );
        assert_eq!(read_date(&v), Some(1_734_953_814_623));
    }

    #[test]
    fn timestamp32_for_whole_seconds() {
        let v = timestamp(1_700_000_000_000);
        assert_eq!(encode(&v)[..2], [0xd6, 0xff]);
        assert_eq!(read_date(&v), Some(1_700_000_000_000));
    }

    #[test]
    fn timestamp96_round_trips_negative_dates() {
        let v = timestamp(-1_234);
        assert_eq!(read_date(&v), Some(-1_234));
    }

    #[test]
    fn decode_rejects_trailing_bytes_and_truncation() {
        assert!(decode(&[0x80, 0x00]).is_none());
        assert!(decode(&[0x81]).is_none());
        assert!(decode(&[]).is_none());
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn dates_round_trip(ms in -100_000_000_000_000i64..100_000_000_000_000i64) {
            proptest::prop_assert_eq!(read_date(&timestamp(ms)), Some(ms));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
