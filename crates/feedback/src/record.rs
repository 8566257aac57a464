//! The stored bounce list of §21.4: the `iar:b:<account>` hash field (original Message-ID) holds
//! msgpack records `{i, r, t, a, m?, s?}` appended one after another, and message listings show
//! them as `bounces: [{message, recipient, action, response?, date}]`.

use chrono::DateTime;
use rmpv::Value;
use serde::Serialize;

use crate::bounce::Bounce;
use crate::error::FeedbackError;

/// JavaScript's Date range: a `t` outside it could never have been written by EmailEngine.
const MAX_JS_TIME_MS: i64 = 8_640_000_000_000_000;

/// One stored bounce of an original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceRecord {
    /// `i`: our id of the bounce message.
    pub bounce_message: String,
    /// `r`
    pub recipient: String,
    /// `t`: when the bounce was seen, in ms since the epoch.
    pub time_ms: i64,
    /// `a`
    pub action: String,
    /// `m`: the remote answer.
    pub response_message: Option<String>,
    /// `s`: the enhanced status code.
    pub status: Option<String>,
}

impl BounceRecord {
    pub fn new(bounce: &Bounce, bounce_message: &str, time_ms: i64) -> Self {
        BounceRecord {
            bounce_message: bounce_message.to_string(),
            recipient: bounce.recipient.clone(),
            time_ms,
            action: bounce.action.clone(),
            response_message: bounce.response.message.clone(),
            status: bounce.response.status.clone(),
        }
    }

    /// One msgpack map, keys in the order `i, r, t, a, m, s`, ready to be appended to the field.
    pub fn encode(&self) -> Vec<u8> {
        let mut map = vec![
            (Value::from("i"), Value::from(self.bounce_message.as_str())),
            (Value::from("r"), Value::from(self.recipient.as_str())),
            (Value::from("t"), Value::from(self.time_ms)),
            (Value::from("a"), Value::from(self.action.as_str())),
        ];
        if let Some(m) = &self.response_message {
            map.push((Value::from("m"), Value::from(m.as_str())));
        }
        if let Some(s) = &self.status {
            map.push((Value::from("s"), Value::from(s.as_str())));
        }
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &Value::Map(map))
            .expect("writing msgpack into a Vec cannot fail");
        out
    }

    /// The entry of a message listing's `bounces` array.
    pub fn listing_entry(&self) -> BounceEntry {
        let response = (self.response_message.is_some() || self.status.is_some()).then(|| {
            BounceEntryResponse {
                message: self.response_message.clone(),
                status: self.status.clone(),
            }
        });
        BounceEntry {
            message: self.bounce_message.clone(),
            recipient: self.recipient.clone(),
            action: self.action.clone(),
            response,
            date: iso_millis(self.time_ms),
        }
    }
}

/// Reads every record of a stored bounce list (concatenated msgpack maps), oldest first.
pub fn decode_bounce_records(mut bytes: &[u8]) -> Result<Vec<BounceRecord>, FeedbackError> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let value = rmpv::decode::read_value(&mut bytes)?;
        let index = records.len();
        records.push(record_from(&value).ok_or(FeedbackError::InvalidRecord { index })?);
    }
    Ok(records)
}

/// The listing's `bounces` array for a stored bounce list.
pub fn bounce_listing(bytes: &[u8]) -> Result<Vec<BounceEntry>, FeedbackError> {
    Ok(decode_bounce_records(bytes)?
        .iter()
        .map(BounceRecord::listing_entry)
        .collect())
}

fn record_from(value: &Value) -> Option<BounceRecord> {
    let map = value.as_map()?;
    let get = |key: &str| {
        map.iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    };
    let text = |key: &str| get(key).and_then(Value::as_str).map(str::to_string);
    // JavaScript numbers above 2^32 may have been packed as float64.
    let time_ms = match get("t")? {
        Value::Integer(n) => n.as_i64()?,
        Value::F64(f) if f.is_finite() => f.round() as i64,
        Value::F32(f) if f.is_finite() => f.round() as i64,
        _ => return None,
    };
    if time_ms.abs() > MAX_JS_TIME_MS {
        return None;
    }
    Some(BounceRecord {
        bounce_message: text("i")?,
        recipient: text("r")?,
        time_ms,
        action: text("a")?,
        response_message: text("m"),
        status: text("s"),
    })
}

/// `toISOString()` of a millisecond time; `t` is range-checked when decoded.
fn iso_millis(time_ms: i64) -> String {
    DateTime::from_timestamp_millis(time_ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// One element of a listing's `bounces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BounceEntry {
    pub message: String,
    pub recipient: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<BounceEntryResponse>,
    pub date: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BounceEntryResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(m: Option<&str>, s: Option<&str>) -> BounceRecord {
        BounceRecord {
            bounce_message: "AAAAAQAAAeE".into(),
            recipient: "nobody@example.org".into(),
            time_ms: 1_700_000_000_123,
            action: "failed".into(),
            response_message: m.map(str::to_string),
            status: s.map(str::to_string),
        }
    }

    #[test]
    fn golden_encoding() {
        let bytes = record(Some("550 no"), Some("5.1.1")).encode();
        let mut expected = vec![0x86, 0xa1, b'i', 0xab];
        expected.extend_from_slice(b"AAAAAQAAAeE");
        expected.extend_from_slice(&[0xa1, b'r', 0xb2]);
        expected.extend_from_slice(b"nobody@example.org");
        expected.extend_from_slice(&[0xa1, b't', 0xcf]);
        expected.extend_from_slice(&1_700_000_000_123u64.to_be_bytes());
        expected.extend_from_slice(&[0xa1, b'a', 0xa6]);
        expected.extend_from_slice(b"failed");
        expected.extend_from_slice(&[0xa1, b'm', 0xa6]);
        expected.extend_from_slice(b"550 no");
        expected.extend_from_slice(&[0xa1, b's', 0xa5]);
        expected.extend_from_slice(b"5.1.1");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn appended_records_decode_in_order() {
        let mut stored = record(None, None).encode();
        stored.extend(record(Some("550 no"), Some("5.1.1")).encode());
        assert_eq!(
            decode_bounce_records(&stored).unwrap(),
            vec![record(None, None), record(Some("550 no"), Some("5.1.1"))]
        );
        assert_eq!(decode_bounce_records(&[]).unwrap(), vec![]);
    }

    #[test]
    fn float_time_from_javascript_is_accepted() {
        let value = Value::Map(vec![
            (Value::from("i"), Value::from("x")),
            (Value::from("r"), Value::from("a@b")),
            (Value::from("t"), Value::F64(1_700_000_000_123.0)),
            (Value::from("a"), Value::from("failed")),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &value).unwrap();
        assert_eq!(
            decode_bounce_records(&bytes).unwrap()[0].time_ms,
            1_700_000_000_123
        );
    }

    #[test]
    fn bad_lists_are_errors() {
        let mut stored = record(None, None).encode();
        stored.push(0x93);
        assert!(matches!(
            decode_bounce_records(&stored),
            Err(FeedbackError::Msgpack(_))
        ));
        let mut not_a_record = record(None, None).encode();
        rmpv::encode::write_value(&mut not_a_record, &Value::from(3)).unwrap();
        assert!(matches!(
            decode_bounce_records(&not_a_record),
            Err(FeedbackError::InvalidRecord { index: 1 })
        ));
    }

    #[test]
    fn listing_shape() {
        let mut stored = record(Some("550 no"), None).encode();
        stored.extend(record(None, None).encode());
        assert_eq!(
            serde_json::to_string(&bounce_listing(&stored).unwrap()).unwrap(),
            r#"[{"message":"AAAAAQAAAeE","recipient":"nobody@example.org","action":"failed","response":{"message":"550 no"},"date":"2023-11-14T22:13:20.123Z"},{"message":"AAAAAQAAAeE","recipient":"nobody@example.org","action":"failed","date":"2023-11-14T22:13:20.123Z"}]"#
        );
    }

    proptest! {
        #[test]
        fn records_round_trip(
            list in proptest::collection::vec(
                ("[a-zA-Z0-9_-]{0,20}", ".{0,40}", -MAX_JS_TIME_MS..=MAX_JS_TIME_MS, "[a-z.]{0,12}",
                 proptest::option::of(".{0,60}"), proptest::option::of("[245]\\.[0-9]\\.[0-9]")),
                0..5,
            )
        ) {
            let records: Vec<BounceRecord> = list
                .into_iter()
                .map(|(i, r, t, a, m, s)| BounceRecord {
                    bounce_message: i, recipient: r, time_ms: t, action: a,
                    response_message: m, status: s,
                })
                .collect();
            let stored: Vec<u8> = records.iter().flat_map(BounceRecord::encode).collect();
            prop_assert_eq!(decode_bounce_records(&stored).unwrap(), records);
        }
    }
}
