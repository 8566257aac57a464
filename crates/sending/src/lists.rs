//! Mailing-list messages (spec §20): when list handling applies, the `List-ID`,
//! `List-Unsubscribe` and `List-Unsubscribe-Post` header values with their signed unsubscribe
//! link, the checks of the public `/unsubscribe` routes, and the blocklist entry record.
//!
//! Reading and writing the `lists:unsub:*` hashes and sending webhooks are the caller's.

use emailengine_core::signed;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::tracking::{text_field, verify_act};
use crate::{Error, Result};

/// The value of `List-Unsubscribe-Post` (RFC 8058 one-click).
pub const LIST_UNSUBSCRIBE_POST: &str = "List-Unsubscribe=One-Click";

/// List handling applies only with a base URL, a `listId` and exactly one `to` address.
pub fn list_applies(has_base_url: bool, list_id: Option<&str>, to_count: usize) -> bool {
    has_base_url && list_id.is_some_and(|l| !l.is_empty()) && to_count == 1
}

/// The form blocklists are keyed by: trimmed and lower-cased.
pub fn normalize_address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Who unsubscribes from which list; the content of an unsubscribe link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscription {
    pub account: String,
    pub list_id: String,
    /// The address as the message was sent to it (not normalised).
    pub recipient: String,
    /// The Message-ID of the message that carried the link.
    pub message_id: Option<String>,
}

impl Unsubscription {
    /// `{"act":"unsub","acc","list","rcpt","msg"}` in that order; `msg` only when known.
    fn blob(&self) -> Value {
        let mut blob = Map::new();
        blob.insert("act".into(), Value::from("unsub"));
        blob.insert("acc".into(), Value::from(self.account.as_str()));
        blob.insert("list".into(), Value::from(self.list_id.as_str()));
        blob.insert("rcpt".into(), Value::from(self.recipient.as_str()));
        if let Some(m) = &self.message_id {
            blob.insert("msg".into(), Value::from(m.as_str()));
        }
        Value::Object(blob)
    }
}

/// The header values a list message carries, plus the bare link for templates
/// (`rcpt.unsubscribeUrl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListHeaders {
    /// `<listId.baseDomain>`.
    pub list_id: String,
    /// `<unsubscribe URL>`.
    pub list_unsubscribe: String,
    pub list_unsubscribe_post: &'static str,
    pub unsubscribe_url: String,
}

/// Builds the list headers. The domain of `List-ID` is the base URL's host, or
/// `fallback_host` (the OS hostname) when the URL has none; the unsubscribe path resolves
/// against the base as tracking paths do.
pub fn list_headers(
    secret: &[u8],
    base: &Url,
    fallback_host: &str,
    unsubscription: &Unsubscription,
) -> Result<ListHeaders> {
    let host = base
        .host_str()
        .filter(|h| !h.is_empty())
        .unwrap_or(fallback_host);
    let link = base
        .join("unsubscribe")
        .map_err(|_| Error::InvalidBaseUrl)?;
    let signed = signed::sign(secret, &unsubscription.blob());
    let unsubscribe_url = format!("{link}?{}", signed.query());
    Ok(ListHeaders {
        list_id: format!("<{}.{host}>", unsubscription.list_id),
        list_unsubscribe: format!("<{unsubscribe_url}>"),
        list_unsubscribe_post: LIST_UNSUBSCRIBE_POST,
        unsubscribe_url,
    })
}

/// Checks an unsubscribe link: [`Error::SignatureValidation`] for a bad signature (the
/// one-click route answers `data validation failed`), [`Error::InvalidQuery`] for a blob that
/// is not `unsub` or lacks `acc`, `list` or `rcpt` (it answers `not ok`).
pub fn verify_unsubscribe(secret: &[u8], data: &str, sig: &str) -> Result<Unsubscription> {
    let blob = verify_act(secret, data, sig, "unsub")?;
    let required = |key: &str| {
        text_field(&blob, key)
            .filter(|v| !v.is_empty())
            .ok_or(Error::InvalidQuery)
    };
    Ok(Unsubscription {
        account: required("acc")?,
        list_id: required("list")?,
        recipient: required("rcpt")?,
        message_id: text_field(&blob, "msg"),
    })
}

/// How an address came onto a blocklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlocklistSource {
    Api,
    OneClick,
    Form,
    Admin,
}

/// One blocklisted address: the JSON value of `lists:unsub:entries:<listId>` under the
/// normalised address (spec §20.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlocklistEntry {
    /// The address as given.
    pub recipient: String,
    /// Absent for entries added in the admin UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub source: BlocklistSource,
    /// `unsubscribe`, `block` or the API caller's own word.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// ISO time of the addition.
    pub created: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    // Computed with Python's `json`, `hmac` and `base64` modules.
    const UNSUB_DATA: &str = "eyJhY3QiOiJ1bnN1YiIsImFjYyI6ImV4YW1wbGUiLCJsaXN0IjoidGVzdC1saXN0IiwicmNwdCI6IkFuZHJpc0BFeGFtcGxlLmNvbSIsIm1zZyI6Ijx0ZXN0QGV4YW1wbGUuY29tPiJ9";
    const UNSUB_SIG: &str = "7cSEnXwFWGTpHfUruTLTWmQtU6OLSYUPFhpQNMmJimg";

    fn unsubscription() -> Unsubscription {
        Unsubscription {
            account: "example".into(),
            list_id: "test-list".into(),
            recipient: "Andris@Example.com".into(),
            message_id: Some("<test@example.com>".into()),
        }
    }

    #[test]
    fn headers_golden() {
        let base = Url::parse("https://ee.example.com").unwrap();
        let headers = list_headers(SECRET, &base, "host.local", &unsubscription()).unwrap();
        let url = format!("https://ee.example.com/unsubscribe?data={UNSUB_DATA}&sig={UNSUB_SIG}");
        assert_eq!(
            headers,
            ListHeaders {
                list_id: "<test-list.ee.example.com>".into(),
                list_unsubscribe: format!("<{url}>"),
                list_unsubscribe_post: "List-Unsubscribe=One-Click",
                unsubscribe_url: url,
            }
        );
    }

    #[test]
    fn list_id_falls_back_to_the_os_hostname() {
        let base = Url::parse("file:///srv/ee/").unwrap();
        let headers = list_headers(SECRET, &base, "host.local", &unsubscription()).unwrap();
        assert_eq!(headers.list_id, "<test-list.host.local>");
    }

    #[test]
    fn verify_round_trip_and_errors() {
        assert_eq!(
            verify_unsubscribe(SECRET, UNSUB_DATA, UNSUB_SIG),
            Ok(unsubscription())
        );
        assert_eq!(
            verify_unsubscribe(SECRET, UNSUB_DATA, &UNSUB_SIG[1..]),
            Err(Error::SignatureValidation)
        );
        for blob in [
            serde_json::json!({"act": "click", "acc": "a", "list": "l", "rcpt": "r"}),
            serde_json::json!({"act": "unsub", "list": "l", "rcpt": "r"}),
            serde_json::json!({"act": "unsub", "acc": "a", "list": "", "rcpt": "r"}),
            serde_json::json!({"act": "unsub", "acc": "a", "list": "l", "rcpt": 5}),
        ] {
            let s = signed::sign(SECRET, &blob);
            assert_eq!(
                verify_unsubscribe(SECRET, &s.data, &s.sig),
                Err(Error::InvalidQuery),
                "{blob}"
            );
        }
        let no_msg = Unsubscription {
            message_id: None,
            ..unsubscription()
        };
        let s = signed::sign(SECRET, &no_msg.blob());
        assert_eq!(verify_unsubscribe(SECRET, &s.data, &s.sig), Ok(no_msg));
    }

    #[test]
    fn applicability_and_normalisation() {
        assert!(list_applies(true, Some("l"), 1));
        assert!(!list_applies(false, Some("l"), 1));
        assert!(!list_applies(true, None, 1));
        assert!(!list_applies(true, Some(""), 1));
        assert!(!list_applies(true, Some("l"), 2));
        assert_eq!(
            normalize_address("  Andris@Example.COM \n"),
            "andris@example.com"
        );
    }

    #[test]
    fn blocklist_entry_json_shape() {
        let entry = BlocklistEntry {
            recipient: "Andris@Example.com".into(),
            account: Some("example".into()),
            source: BlocklistSource::OneClick,
            reason: "unsubscribe".into(),
            message_id: Some("<test@example.com>".into()),
            remote_address: Some("127.0.0.1".into()),
            user_agent: Some("curl/8".into()),
            created: "2024-01-02T03:04:05.678Z".into(),
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            json,
            r#"{"recipient":"Andris@Example.com","account":"example","source":"one-click","reason":"unsubscribe","messageId":"<test@example.com>","remoteAddress":"127.0.0.1","userAgent":"curl/8","created":"2024-01-02T03:04:05.678Z"}"#
        );
        assert_eq!(
            serde_json::from_str::<BlocklistEntry>(&json).unwrap(),
            entry
        );
        let admin: BlocklistEntry = serde_json::from_str(
            r#"{"recipient":"a@b.c","source":"admin","reason":"block","created":"2024-01-02T03:04:05.678Z"}"#,
        )
        .unwrap();
        assert_eq!(admin.account, None);
        assert_eq!(admin.source, BlocklistSource::Admin);
    }
}
