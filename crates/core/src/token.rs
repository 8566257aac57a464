//! Access tokens as EmailEngine stores them (spec §3): the 32-byte value and its SHA-256 id, the
//! msgpack record in the `tokens` hash, and the base64url export string used by
//! `tokens export`/`tokens import` and `EENGINE_PREPARED_TOKEN`.
//!
//! Records read from Redis are decoded leniently (EmailEngine writes anything, and an odd field
//! must narrow a token, never widen it); records arriving from outside — an import string or an
//! API payload — are validated strictly.

use base64::Engine as _;
use rmpv::Value;
use sha2::{Digest, Sha256};

use crate::msgpack::{self, key_string};
use crate::permissions::Permissions;
use crate::{Error, Result};

/// A token as presented by a client: 32 random bytes, shown as 64 lowercase hex characters.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenValue([u8; 32]);

impl TokenValue {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self(bytes)
    }

    /// Parses 64 hex characters (either case).
    pub fn parse(text: &str) -> Result<Self> {
        let mut bytes = [0u8; 32];
        if text.len() != 64 || hex::decode_to_slice(text, &mut bytes).is_err() {
            return Err(Error::InvalidToken);
        }
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The token id: SHA-256 over the raw bytes (not over the hex text), as lowercase hex.
    pub fn id(&self) -> String {
        hex::encode(Sha256::digest(self.0))
    }
}

impl std::fmt::Debug for TokenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenValue(<redacted>)")
    }
}

/// True for a 64-character hex string: the shape of both a token value and a token id.
pub fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Token scopes (spec §3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Api,
    Metrics,
    Smtp,
    ImapProxy,
    Mcp,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::All,
        Scope::Api,
        Scope::Metrics,
        Scope::Smtp,
        Scope::ImapProxy,
        Scope::Mcp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "*",
            Scope::Api => "api",
            Scope::Metrics => "metrics",
            Scope::Smtp => "smtp",
            Scope::ImapProxy => "imap-proxy",
            Scope::Mcp => "mcp",
        }
    }

    /// Parses a scope name, case-insensitively as the CLI does.
    pub fn parse(text: &str) -> Result<Self> {
        let folded = text.trim().to_ascii_lowercase();
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == folded)
            .ok_or_else(|| Error::UnknownScope(text.to_string()))
    }

    /// `"*", "api", "metrics", ...` as the CLI prints it.
    pub fn allowed_list() -> String {
        Scope::ALL
            .iter()
            .map(|s| format!("\"{}\"", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One stored access token (spec §3.3). Optional fields are absent from the msgpack map when
/// `None`. Keys this implementation does not know are kept in `extra` and written back as read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenRecord {
    /// Milliseconds since the epoch.
    pub created: i64,
    pub expires: Option<i64>,
    pub account: Option<String>,
    pub ip: Option<String>,
    pub remote_address: Option<String>,
    /// `None` marks a legacy token without scopes, which EmailEngine treats as unrestricted.
    pub scopes: Option<Vec<String>>,
    pub description: Option<String>,
    pub restrictions: Option<serde_json::Value>,
    pub permissions: Option<serde_json::Value>,
    pub metadata: Option<String>,
    pub extra: Vec<(String, Value)>,
}

impl TokenRecord {
    /// True once `now` (ms) has reached the expiry time.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires.is_some_and(|e| now_ms >= e)
    }

    /// The msgpack map in EmailEngine's key order, `created`/`expires` as timestamp extensions.
    pub fn to_msgpack(&self) -> Value {
        self.to_msgpack_with_id(None)
    }

    fn to_msgpack_with_id(&self, id: Option<&str>) -> Value {
        let mut map: Vec<(Value, Value)> = Vec::with_capacity(12);
        let mut put = |k: &str, v: Value| map.push((Value::from(k), v));
        if let Some(id) = id {
            put("id", Value::from(id));
        }
        put("created", msgpack::timestamp(self.created));
        if let Some(e) = self.expires {
            put("expires", msgpack::timestamp(e));
        }
        if let Some(a) = &self.account {
            put("account", Value::from(a.as_str()));
        }
        if let Some(ip) = &self.ip {
            put("ip", Value::from(ip.as_str()));
        }
        if let Some(r) = &self.remote_address {
            put("remoteAddress", Value::from(r.as_str()));
        }
        if let Some(scopes) = &self.scopes {
            put(
                "scopes",
                Value::Array(scopes.iter().map(|s| Value::from(s.as_str())).collect()),
            );
        }
        if let Some(d) = &self.description {
            put("description", Value::from(d.as_str()));
        }
        if let Some(r) = &self.restrictions {
            put("restrictions", msgpack::from_json(r));
        }
        if let Some(p) = &self.permissions {
            put("permissions", msgpack::from_json(p));
        }
        if let Some(m) = &self.metadata {
            put("metadata", Value::from(m.as_str()));
        }
        for (k, v) in &self.extra {
            put(k, v.clone());
        }
        Value::Map(map)
    }

    pub fn encode(&self) -> Vec<u8> {
        msgpack::encode(&self.to_msgpack())
    }

    /// Decodes a record stored in Redis. Never fails on odd field types: a field that cannot be
    /// read narrows the token (unreadable scopes grant nothing, an unreadable expiry has passed).
    pub fn decode_stored(bytes: &[u8]) -> Option<Self> {
        let Value::Map(entries) = msgpack::decode(bytes)? else {
            return None;
        };
        let mut record = TokenRecord::default();
        for (k, v) in entries {
            let key = key_string(&k);
            match key.as_str() {
                "created" => record.created = msgpack::read_date(&v).unwrap_or(0),
                "expires" => {
                    record.expires = match v {
                        Value::Nil => None,
                        _ => Some(msgpack::read_date(&v).unwrap_or(0)),
                    }
                }
                "account" => record.account = lenient_string(&v),
                "ip" => record.ip = lenient_string(&v),
                "remoteAddress" => record.remote_address = lenient_string(&v),
                "description" => record.description = lenient_string(&v),
                "metadata" => record.metadata = lenient_string(&v),
                "scopes" => {
                    record.scopes = match &v {
                        Value::Nil => None,
                        Value::Array(items) => Some(
                            items
                                .iter()
                                .filter_map(|i| i.as_str().map(str::to_string))
                                .collect(),
                        ),
                        Value::String(s) => s.as_str().map(|s| vec![s.to_string()]),
                        _ => Some(Vec::new()),
                    }
                }
                "restrictions" => record.restrictions = non_nil(&v).map(msgpack::to_json),
                "permissions" => record.permissions = non_nil(&v).map(msgpack::to_json),
                _ => record.extra.push((key, v)),
            }
        }
        Some(record)
    }

    /// Validates a record that arrives from outside (an import string). The `id` key, if
    /// present, is returned separately; `created` is kept as given.
    pub fn from_untrusted(value: Value) -> Result<(Option<String>, Self), String> {
        let Value::Map(entries) = value else {
            return Err("token data is not a map".into());
        };
        let mut record = TokenRecord::default();
        let mut id = None;
        let mut seen = std::collections::HashSet::new();
        for (k, v) in entries {
            let key = match &k {
                Value::String(s) => s.as_str().ok_or("a key is not valid UTF-8")?.to_string(),
                _ => return Err("a key is not a string".into()),
            };
            if !seen.insert(key.clone()) {
                return Err(format!("duplicate key \"{key}\""));
            }
            if v.is_nil() && key != "id" {
                continue;
            }
            match key.as_str() {
                "id" => {
                    let text = strict_string(&v, "id")?;
                    if !is_hex64(&text) {
                        return Err("\"id\" is not a 64-character hex token id".into());
                    }
                    id = Some(text.to_ascii_lowercase());
                }
                "created" => {
                    record.created = msgpack::read_date(&v).ok_or("\"created\" is not a date")?;
                }
                "expires" => {
                    record.expires =
                        Some(msgpack::read_date(&v).ok_or("\"expires\" is not a date")?);
                }
                "account" => {
                    let account = strict_string(&v, "account")?;
                    if account.is_empty() {
                        return Err("\"account\" is empty".into());
                    }
                    record.account = Some(account);
                }
                "ip" => record.ip = Some(strict_string(&v, "ip")?),
                "remoteAddress" => {
                    record.remote_address = Some(strict_string(&v, "remoteAddress")?)
                }
                "description" => record.description = Some(strict_string(&v, "description")?),
                "metadata" => record.metadata = Some(strict_string(&v, "metadata")?),
                "scopes" => {
                    let Value::Array(items) = &v else {
                        return Err("\"scopes\" is not an array".into());
                    };
                    let mut scopes = Vec::with_capacity(items.len());
                    for item in items {
                        let s = item.as_str().ok_or("\"scopes\" holds a non-string")?;
                        let scope = Scope::parse(s).map_err(|e| e.to_string())?;
                        scopes.push(scope.as_str().to_string());
                    }
                    record.scopes = Some(scopes);
                }
                "restrictions" => {
                    let json = msgpack::to_json(&v);
                    crate::auth::Restrictions::parse(&json)?;
                    record.restrictions = Some(json);
                }
                "permissions" => {
                    let json = msgpack::to_json(&v);
                    Permissions::parse(&json).map_err(|e| format!("\"permissions\" {e}"))?;
                    record.permissions = Some(json);
                }
                _ => record.extra.push((key, v)),
            }
        }
        Ok((id, record))
    }
}

fn non_nil(v: &Value) -> Option<&Value> {
    (!v.is_nil()).then_some(v)
}

fn lenient_string(v: &Value) -> Option<String> {
    match v {
        Value::Nil => None,
        Value::String(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Value::Integer(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

fn strict_string(v: &Value, key: &str) -> Result<String, String> {
    match v {
        Value::String(s) => s
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("\"{key}\" is not valid UTF-8")),
        _ => Err(format!("\"{key}\" must be a string")),
    }
}

/// The export string: base64url without padding of msgpack `{id, ...record}` (spec §3.6).
pub fn export_token(id: &str, record: &TokenRecord) -> String {
    let bytes = msgpack::encode(&record.to_msgpack_with_id(Some(id)));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An export string decoded and validated: the token id and the record to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedToken {
    pub id: String,
    pub record: TokenRecord,
}

/// Decodes an export string. Accepts the URL-safe and the standard base64 alphabets, with or
/// without padding, and ignores surrounding whitespace (Node's decoder is as lenient).
pub fn decode_export(text: &str) -> Result<ImportedToken> {
    let bad = |why: &str| Error::InvalidExport(why.to_string());
    let cleaned: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    if cleaned.is_empty() {
        return Err(bad("the string is empty"));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cleaned.as_bytes())
        .map_err(|_| bad("not a base64url string"))?;
    let value = msgpack::decode(&bytes).ok_or_else(|| bad("not a msgpack value"))?;
    let (id, record) = TokenRecord::from_untrusted(value).map_err(|e| bad(&e))?;
    let id = id.ok_or_else(|| bad("\"id\" is missing"))?;
    Ok(ImportedToken { id, record })
}

/// The last use of a token as kept in `tokens:access`: `{time, ip}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenAccess {
    pub time: Option<i64>,
    pub ip: Option<String>,
}

impl TokenAccess {
    pub fn encode(&self) -> Vec<u8> {
        let mut map = Vec::new();
        if let Some(t) = self.time {
            map.push((Value::from("time"), Value::from(t)));
            map.push((
                Value::from("ip"),
                self.ip.as_deref().map_or(Value::Nil, Value::from),
            ));
        }
        msgpack::encode(&Value::Map(map))
    }

    pub fn decode(bytes: &[u8]) -> Self {
        let mut access = TokenAccess::default();
        if let Some(Value::Map(entries)) = msgpack::decode(bytes) {
            for (k, v) in entries {
                match key_string(&k).as_str() {
                    "time" => access.time = msgpack::read_date(&v),
                    "ip" => access.ip = v.as_str().map(str::to_string),
                    _ => {}
                }
            }
        }
        access
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_TOKEN: &str = "2aa97ad0456d6624a55d30780aa2ff61bfb7edc6fa00935b40814b271e718660";
    const TEST_ID: &str = "ea3873f9234fb3b8b700043373138c730c56fd2f7fa27dbcdc61d4c9c2b2df8d";
    const TEST_EXPORT: &str = "hKJpZNlAZWEzODczZjkyMzRmYjNiOGI3MDAwNDMzNzMxMzhjNzMwYzU2ZmQyZjdmYTI3ZGJjZGM2MWQ0YzljMmIyZGY4ZKdjcmVhdGVk1_-UiOcAZ2lLVqZzY29wZXORoSqrZGVzY3JpcHRpb26qdGVzdCB0b2tlbg";

    fn test_record() -> TokenRecord {
        TokenRecord {
            created: 1_734_953_814_623,
            scopes: Some(vec!["*".into()]),
            description: Some("test token".into()),
            ..Default::default()
        }
    }

    #[test]
    fn token_id_is_sha256_of_raw_bytes() {
        assert_eq!(TokenValue::parse(TEST_TOKEN).unwrap().id(), TEST_ID);
        assert_eq!(
            TokenValue::parse(&TEST_TOKEN.to_uppercase()).unwrap().id(),
            TEST_ID
        );
    }

    #[test]
    fn malformed_token_values_are_rejected() {
        for bad in [
            "",
            "abc",
            &TEST_TOKEN[..63],
            &format!("{TEST_TOKEN}0"),
            &TEST_TOKEN.replace('a', "g"),
        ] {
            assert_eq!(TokenValue::parse(bad), Err(Error::InvalidToken), "{bad}");
        }
    }

    #[test]
    fn export_matches_emailengine_test_vector() {
        assert_eq!(export_token(TEST_ID, &test_record()), TEST_EXPORT);
    }

    #[test]
    fn import_of_emailengine_test_vector() {
        let imported = decode_export(TEST_EXPORT).unwrap();
        assert_eq!(imported.id, TEST_ID);
        assert_eq!(imported.record, test_record());
    }

    #[test]
    fn import_accepts_standard_alphabet_and_padding() {
        let std = TEST_EXPORT.replace('-', "+").replace('_', "/");
        assert_eq!(decode_export(&format!(" {std}==\n")).unwrap().id, TEST_ID);
    }

    #[test]
    fn import_rejects_malformed_records() {
        let cases = [
            ("", "empty"),
            ("!!!!", "not base64"),
            ("wg", "msgpack false"),
            ("gA", "empty map has no id"),
        ];
        for (input, why) in cases {
            assert!(decode_export(input).is_err(), "{why}");
        }
        let with = |extra: Vec<(Value, Value)>| {
            let mut map = vec![(Value::from("id"), Value::from(TEST_ID))];
            map.extend(extra);
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(msgpack::encode(&Value::Map(map)))
        };
        let bad_scope = with(vec![(
            Value::from("scopes"),
            Value::Array(vec![Value::from("root")]),
        )]);
        assert!(
            decode_export(&bad_scope)
                .unwrap_err()
                .to_string()
                .contains("Unknown scope")
        );
        let bad_perm = with(vec![(Value::from("permissions"), Value::Map(vec![]))]);
        assert!(decode_export(&bad_perm).is_err());
        let bad_addr = with(vec![(
            Value::from("restrictions"),
            Value::Map(vec![(
                Value::from("addresses"),
                Value::Array(vec![Value::from("300.1.1.1")]),
            )]),
        )]);
        assert!(decode_export(&bad_addr).is_err());
        let short_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(msgpack::encode(
            &Value::Map(vec![(Value::from("id"), Value::from("abc"))]),
        ));
        assert!(decode_export(&short_id).is_err());
    }

    #[test]
    fn stored_record_round_trips_with_all_fields() {
        let record = TokenRecord {
            created: 1_700_000_000_123,
            expires: Some(1_800_000_000_000),
            account: Some("example".into()),
            ip: Some("127.0.0.1".into()),
            remote_address: Some("::1".into()),
            scopes: Some(vec!["api".into(), "smtp".into()]),
            description: Some("x".into()),
            restrictions: Some(serde_json::json!({"addresses": ["127.0.0.1/32"], "referrers": []})),
            permissions: Some(serde_json::json!({"actions": ["read"]})),
            metadata: Some("{\"a\":1}".into()),
            extra: vec![("future".into(), Value::from(7))],
        };
        assert_eq!(TokenRecord::decode_stored(&record.encode()), Some(record));
    }

    #[test]
    fn legacy_numeric_created_and_odd_types_are_read_leniently() {
        let value = Value::Map(vec![
            (Value::from("created"), Value::from(1_600_000_000_000u64)),
            (Value::from("scopes"), Value::from(5)),
            (Value::from("expires"), Value::from("soon")),
        ]);
        let record = TokenRecord::decode_stored(&msgpack::encode(&value)).unwrap();
        assert_eq!(record.created, 1_600_000_000_000);
        assert_eq!(
            record.scopes,
            Some(vec![]),
            "unreadable scopes grant nothing"
        );
        assert!(record.is_expired(1), "unreadable expiry counts as passed");
    }

    #[test]
    fn access_entry_round_trips() {
        assert_eq!(TokenAccess::default().encode(), vec![0x80]);
        let a = TokenAccess {
            time: Some(5),
            ip: Some("1.2.3.4".into()),
        };
        assert_eq!(TokenAccess::decode(&a.encode()), a);
    }

    proptest::proptest! {
        #[test]
        fn export_parser_never_panics(s in "\\PC{0,200}") {
            let _ = decode_export(&s);
        }

        #[test]
        fn export_parser_never_panics_on_base64_of_random_bytes(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)
        ) {
            let _ = decode_export(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        }

        #[test]
        fn token_parser_never_panics(s in "\\PC{0,80}") {
            let _ = TokenValue::parse(&s);
        }

        #[test]
        fn export_round_trips(
            created in 0i64..4_000_000_000_000,
            desc in "\\PC{0,40}",
            account in proptest::option::of("[a-z0-9]{1,12}"),
        ) {
            let record = TokenRecord {
                created,
                account,
                scopes: Some(vec!["api".into()]),
                description: Some(desc),
                ..Default::default()
            };
            let id = TokenValue::generate().id();
            let back = decode_export(&export_token(&id, &record)).unwrap();
            proptest::prop_assert_eq!(back.id, id);
            proptest::prop_assert_eq!(back.record, record);
        }
    }
}
