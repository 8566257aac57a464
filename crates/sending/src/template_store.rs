//! Stored templates as EmailEngine keeps them (spec §18.2): the id that embeds its owner, and
//! the msgpack `<id>:meta` and `<id>:content` records of the `tpl:<account>:c` hash.
//!
//! Pure codecs; the Redis keys and commands belong to the store crate.

use base64::Engine as _;
use emailengine_core::msgpack::{self, key_string};
use rmpv::Value;
use serde_json::{Map, json};

use crate::template::{TemplateContent, TemplateFormat};
use crate::{Error, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What a template id is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateId {
    /// Creation time in ms since the epoch.
    pub created_ms: u64,
    /// The `settings.idcount` counter value taken for this id.
    pub counter: u32,
    /// The owning account; `None` for a public template (an empty account).
    pub account: Option<String>,
}

/// base64url of `[u64 BE ms][u32 BE counter][account UTF-8]`; `account` is `""` for public
/// templates.
pub fn encode_template_id(created_ms: u64, counter: u32, account: &str) -> String {
    let mut bytes = Vec::with_capacity(12 + account.len());
    bytes.extend_from_slice(&created_ms.to_be_bytes());
    bytes.extend_from_slice(&counter.to_be_bytes());
    bytes.extend_from_slice(account.as_bytes());
    B64.encode(bytes)
}

/// Reads a template id back; the account part decides who may use the template.
pub fn decode_template_id(id: &str) -> Result<TemplateId> {
    let bytes = B64
        .decode(id.trim_end_matches('='))
        .map_err(|_| Error::InvalidTemplateId)?;
    let (Some(ms), Some(counter), Some(account)) =
        (bytes.get(..8), bytes.get(8..12), bytes.get(12..))
    else {
        return Err(Error::InvalidTemplateId);
    };
    let account = std::str::from_utf8(account).map_err(|_| Error::InvalidTemplateId)?;
    Ok(TemplateId {
        created_ms: u64::from_be_bytes(ms.try_into().map_err(|_| Error::InvalidTemplateId)?),
        counter: u32::from_be_bytes(counter.try_into().map_err(|_| Error::InvalidTemplateId)?),
        account: (!account.is_empty()).then(|| account.to_string()),
    })
}

/// The `<id>:meta` record: `{id, name, description, format, created, updated}` with the dates
/// as msgpack timestamps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateMeta {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub format: TemplateFormat,
    /// ms since the epoch.
    pub created: i64,
    pub updated: Option<i64>,
}

impl TemplateMeta {
    pub fn encode(&self) -> Vec<u8> {
        let mut map = vec![
            (Value::from("id"), Value::from(self.id.as_str())),
            (Value::from("name"), Value::from(self.name.as_str())),
        ];
        if let Some(d) = &self.description {
            map.push((Value::from("description"), Value::from(d.as_str())));
        }
        map.push((Value::from("format"), Value::from(self.format.as_str())));
        map.push((Value::from("created"), msgpack::timestamp(self.created)));
        if let Some(u) = self.updated {
            map.push((Value::from("updated"), msgpack::timestamp(u)));
        }
        msgpack::encode(&Value::Map(map))
    }

    /// Reads a stored record leniently: an unreadable field keeps its default, an unknown
    /// format is HTML (the API's default).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let Some(Value::Map(entries)) = msgpack::decode(bytes) else {
            return Err(Error::InvalidTemplateRecord);
        };
        let mut meta = TemplateMeta::default();
        for (k, v) in entries {
            match key_string(&k).as_str() {
                "id" => meta.id = string(&v).unwrap_or_default(),
                "name" => meta.name = string(&v).unwrap_or_default(),
                "description" => meta.description = string(&v),
                "format" => {
                    meta.format = string(&v)
                        .and_then(|f| TemplateFormat::parse(&f))
                        .unwrap_or_default()
                }
                "created" => meta.created = msgpack::read_date(&v).unwrap_or(0),
                "updated" => meta.updated = msgpack::read_date(&v),
                _ => {}
            }
        }
        Ok(meta)
    }

    /// The listing entry of `GET /v1/templates`: `{id, name, description, format, created,
    /// updated?}` with ISO dates.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("name".into(), json!(self.name));
        out.insert("description".into(), json!(self.description));
        out.insert("format".into(), json!(self.format.as_str()));
        out.insert(
            "created".into(),
            json!(emailengine_core::units::iso_time(self.created)),
        );
        if let Some(u) = self.updated {
            out.insert(
                "updated".into(),
                json!(emailengine_core::units::iso_time(u)),
            );
        }
        serde_json::Value::Object(out)
    }
}

/// The `<id>:content` record: a map of the present fields among `subject`, `text`, `html`,
/// `previewText`.
pub fn encode_content(content: &TemplateContent) -> Vec<u8> {
    let fields = [
        ("subject", &content.subject),
        ("text", &content.text),
        ("html", &content.html),
        ("previewText", &content.preview_text),
    ];
    let map = fields
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (Value::from(k), Value::from(v))))
        .collect();
    msgpack::encode(&Value::Map(map))
}

/// Reads a content record; fields that are not strings are left out.
pub fn decode_content(bytes: &[u8]) -> Result<TemplateContent> {
    let Some(Value::Map(entries)) = msgpack::decode(bytes) else {
        return Err(Error::InvalidTemplateRecord);
    };
    let mut content = TemplateContent::default();
    for (k, v) in entries {
        let slot = match key_string(&k).as_str() {
            "subject" => &mut content.subject,
            "text" => &mut content.text,
            "html" => &mut content.html,
            "previewText" => &mut content.preview_text,
            _ => continue,
        };
        *slot = v.as_str().map(str::to_string);
    }
    Ok(content)
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_golden_vector() {
        // [00 00 01 8b cf e5 68 00][00 00 00 2a]"example" (computed with Python)
        let id = encode_template_id(1_700_000_000_000, 42, "example");
        assert_eq!(id, "AAABi8_laAAAAAAqZXhhbXBsZQ");
        assert_eq!(B64.decode(&id).unwrap().len(), 12 + "example".len());
        assert_eq!(
            decode_template_id(&id).unwrap(),
            TemplateId {
                created_ms: 1_700_000_000_000,
                counter: 42,
                account: Some("example".into())
            }
        );
    }

    #[test]
    fn public_template_ids_have_no_account() {
        let id = encode_template_id(1, 2, "");
        assert_eq!(id, "AAAAAAAAAAEAAAAC");
        assert_eq!(decode_template_id(&id).unwrap().account, None);
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "AAAA",
            "!!!!!!!!!!!!!!!!",
            &B64.encode([0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]),
        ] {
            assert_eq!(
                decode_template_id(bad),
                Err(Error::InvalidTemplateId),
                "{bad}"
            );
        }
    }

    #[test]
    fn meta_golden_bytes() {
        let meta = TemplateMeta {
            id: "AAAAAAAAAAEAAAAC".into(),
            name: "Welcome".into(),
            description: None,
            format: TemplateFormat::Markdown,
            created: 1_700_000_000_000,
            updated: None,
        };
        let bytes = meta.encode();
        // 84 a2"id" b0"AAAAAAAAAAEAAAAC" a4"name" a7"Welcome" a6"format" a8"markdown"
        // a7"created" d6 ff 6553f100
        let mut expected = vec![0x84, 0xa2, b'i', b'd', 0xb0];
        expected.extend_from_slice(b"AAAAAAAAAAEAAAAC");
        expected.extend_from_slice(&[0xa4]);
        expected.extend_from_slice(b"name");
        expected.extend_from_slice(&[0xa7]);
        expected.extend_from_slice(b"Welcome");
        expected.extend_from_slice(&[0xa6]);
        expected.extend_from_slice(b"format");
        expected.extend_from_slice(&[0xa8]);
        expected.extend_from_slice(b"markdown");
        expected.extend_from_slice(&[0xa7]);
        expected.extend_from_slice(b"created");
        expected.extend_from_slice(&[0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00]);
        assert_eq!(bytes, expected);
        assert_eq!(TemplateMeta::decode(&bytes).unwrap(), meta);
    }

    #[test]
    fn meta_round_trips_and_renders_json() {
        let meta = TemplateMeta {
            id: "x".into(),
            name: "n".into(),
            description: Some("d".into()),
            format: TemplateFormat::Html,
            created: 1_700_000_000_123,
            updated: Some(1_700_000_100_000),
        };
        assert_eq!(TemplateMeta::decode(&meta.encode()).unwrap(), meta);
        assert_eq!(
            meta.to_json().to_string(),
            r#"{"id":"x","name":"n","description":"d","format":"html","created":"2023-11-14T22:13:20.123Z","updated":"2023-11-14T22:15:00.000Z"}"#
        );
    }

    #[test]
    fn meta_reads_nil_and_numeric_dates() {
        let value = Value::Map(vec![
            (Value::from("id"), Value::from("x")),
            (Value::from("description"), Value::Nil),
            (Value::from("format"), Value::from("unknown")),
            (Value::from("created"), Value::from(1_600_000_000_000u64)),
            (Value::from("updated"), Value::Nil),
        ]);
        let meta = TemplateMeta::decode(&msgpack::encode(&value)).unwrap();
        assert_eq!(meta.description, None);
        assert_eq!(meta.format, TemplateFormat::Html);
        assert_eq!(meta.created, 1_600_000_000_000);
        assert_eq!(meta.updated, None);
        assert_eq!(
            TemplateMeta::decode(&[0xc0]),
            Err(Error::InvalidTemplateRecord)
        );
    }

    #[test]
    fn content_golden_bytes_and_round_trip() {
        let content = TemplateContent {
            subject: Some("Hi".into()),
            html: Some("<p>x</p>".into()),
            preview_text: Some("p".into()),
            ..Default::default()
        };
        let bytes = encode_content(&content);
        let mut expected = vec![0x83, 0xa7];
        expected.extend_from_slice(b"subject");
        expected.extend_from_slice(&[0xa2]);
        expected.extend_from_slice(b"Hi");
        expected.extend_from_slice(&[0xa4]);
        expected.extend_from_slice(b"html");
        expected.extend_from_slice(&[0xa8]);
        expected.extend_from_slice(b"<p>x</p>");
        expected.extend_from_slice(&[0xab]);
        expected.extend_from_slice(b"previewText");
        expected.extend_from_slice(&[0xa1, b'p']);
        assert_eq!(bytes, expected);
        assert_eq!(decode_content(&bytes).unwrap(), content);
    }

    proptest::proptest! {
        #[test]
        fn ids_round_trip(ms in proptest::num::u64::ANY, counter in proptest::num::u32::ANY, account in "\\PC{0,30}") {
            let id = decode_template_id(&encode_template_id(ms, counter, &account)).unwrap();
            proptest::prop_assert_eq!(id.created_ms, ms);
            proptest::prop_assert_eq!(id.counter, counter);
            proptest::prop_assert_eq!(id.account, (!account.is_empty()).then_some(account));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = TemplateMeta::decode(&bytes);
            let _ = decode_content(&bytes);
            let _ = decode_template_id(&B64.encode(&bytes));
        }
    }
}
