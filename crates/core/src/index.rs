//! One message in a mailbox's index (`iam:<account>:l:<pathHash>`, spec §7.3), in EmailEngine's
//! binary form: `[u32 LE UID][flag bitmap][u64 LE MODSEQ][msgpack [emailId|nil, [flags]|nil,
//! [labels]|nil]]`. Bits 0..7 are `\Seen \Answered \Flagged \Deleted \Draft $Forwarded $Junk
//! $NotJunk`; other flags go into the msgpack list.

use rmpv::Value;

use crate::msgpack;

const BIT_FLAGS: [&str; 8] = [
    "\\Seen",
    "\\Answered",
    "\\Flagged",
    "\\Deleted",
    "\\Draft",
    "$Forwarded",
    "$Junk",
    "$NotJunk",
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexEntry {
    pub uid: u32,
    pub modseq: u64,
    /// All flags, in a stable order (bit flags first).
    pub flags: Vec<String>,
    pub email_id: Option<String>,
    pub labels: Vec<String>,
}

impl IndexEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&self.uid.to_le_bytes());
        let mut bits = 0u8;
        let mut extra = Vec::new();
        for flag in &self.flags {
            match BIT_FLAGS.iter().position(|f| f.eq_ignore_ascii_case(flag)) {
                Some(i) => bits |= 1 << i,
                None => extra.push(Value::from(flag.as_str())),
            }
        }
        out.push(bits);
        out.extend_from_slice(&self.modseq.to_le_bytes());
        let list = |items: Vec<Value>| {
            if items.is_empty() {
                Value::Nil
            } else {
                Value::Array(items)
            }
        };
        let tail = Value::Array(vec![
            self.email_id.as_deref().map_or(Value::Nil, Value::from),
            list(extra),
            list(
                self.labels
                    .iter()
                    .map(|l| Value::from(l.as_str()))
                    .collect(),
            ),
        ]);
        out.extend(msgpack::encode(&tail));
        out
    }

    /// Reads an entry; `None` for the one-byte markers and anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 13 {
            return None;
        }
        let uid = u32::from_le_bytes(bytes[..4].try_into().ok()?);
        let bits = bytes[4];
        let modseq = u64::from_le_bytes(bytes[5..13].try_into().ok()?);
        let mut flags: Vec<String> = BIT_FLAGS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, f)| f.to_string())
            .collect();
        let mut email_id = None;
        let mut labels = Vec::new();
        if bytes.len() > 13
            && let Some(Value::Array(items)) = msgpack::decode(&bytes[13..])
        {
            email_id = items.first().and_then(|v| v.as_str()).map(str::to_string);
            let strings = |v: Option<&Value>| -> Vec<String> {
                v.and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            flags.extend(strings(items.get(1)));
            labels = strings(items.get(2));
        }
        Some(Self {
            uid,
            modseq,
            flags,
            email_id,
            labels,
        })
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        let e = IndexEntry {
            uid: 1838,
            modseq: 5,
            flags: vec!["\\Seen".into(), "\\Flagged".into(), "custom".into()],
            email_id: None,
            labels: vec![],
        };
        let bytes = e.encode();
        assert_eq!(&bytes[..4], &1838u32.to_le_bytes());
        assert_eq!(bytes[4], 0b101);
        assert_eq!(&bytes[5..13], &5u64.to_le_bytes());
        assert_eq!(
            &bytes[13..],
            &[
                0x93, 0xc0, 0x91, 0xa6, b'c', b'u', b's', b't', b'o', b'm', 0xc0
            ]
        );
        assert_eq!(IndexEntry::decode(&bytes), Some(e));
        assert_eq!(IndexEntry::decode(b"D"), None);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let _ = IndexEntry::decode(&bytes);
        }
    }
}
