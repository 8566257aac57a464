//! Messages composed from EmailEngine's JSON fields (`from`, `to`, `cc`, `bcc`, `replyTo`,
//! `subject`, `text`, `html`, `attachments`, `headers`, `messageId`), as uploads and
//! submissions take them, validated and built into RFC 822 bytes with mail-builder.

use base64::Engine as _;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use serde_json::{Map, Value};

use crate::validation::FieldError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub content: Vec<u8>,
    /// Content-ID for inline images referenced from the HTML as `cid:…`.
    pub cid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compose {
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub headers: Vec<(String, String)>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// The keys [`parse`] reads.
pub const KEYS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "text",
    "html",
    "attachments",
    "headers",
    "messageId",
];

/// What [`is_email`] accepts, as an ECMA regular expression for the OpenAPI document: a local
/// part without `@`, a domain, no spaces, controls or angle brackets.
pub const EMAIL_PATTERN: &str = "^[^@\\s\\u0000-\\u0020\\u007f-\\u00a0<>\\ufeff]+@[^\\s\\u0000-\\u0020\\u007f-\\u00a0<>\\ufeff]+$";

/// An address with a local part and a domain, and nothing that would break a header.
pub fn is_email(address: &str) -> bool {
    let bad = |c: char| {
        c.is_whitespace()
            || c <= ' '
            || ('\u{7f}'..='\u{a0}').contains(&c)
            || c == '<'
            || c == '>'
            || c == '\u{feff}'
    };
    address
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !address.contains(bad)
}

fn mailbox(v: &Value, key: &str) -> Result<Mailbox, FieldError> {
    let (name, address) = match v {
        Value::String(s) => (None, s.clone()),
        Value::Object(o) => (
            o.get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            o.get("address")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        _ => return Err(FieldError::about(key, "must be an address object")),
    };
    if !is_email(&address) {
        return Err(FieldError::about(
            &format!("{key}.address"),
            "must be a valid email",
        ));
    }
    if name.as_deref().is_some_and(|n| n.contains(['\r', '\n'])) {
        return Err(FieldError::about(
            &format!("{key}.name"),
            "must not contain line breaks",
        ));
    }
    Ok(Mailbox { name, address })
}

fn mailboxes(body: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Vec<Mailbox> {
    match body.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                mailbox(v, &format!("{key}[{i}]"))
                    .map_err(|e| errors.push(e))
                    .ok()
            })
            .collect(),
        Some(single) => mailbox(single, key)
            .map_err(|e| errors.push(e))
            .ok()
            .into_iter()
            .collect(),
    }
}

fn text(body: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::about(key, "must be a string"));
            None
        }
    }
}

fn single_line(v: &str) -> bool {
    !v.contains(['\r', '\n'])
}

/// Reads the compose fields of a payload; other keys are the caller's business.
pub fn parse(body: &Map<String, Value>) -> Result<Compose, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut c = Compose {
        from: match body.get("from") {
            None | Some(Value::Null) => None,
            Some(v) => mailbox(v, "from").map_err(|e| errors.push(e)).ok(),
        },
        to: mailboxes(body, "to", &mut errors),
        cc: mailboxes(body, "cc", &mut errors),
        bcc: mailboxes(body, "bcc", &mut errors),
        reply_to: mailboxes(body, "replyTo", &mut errors),
        subject: text(body, "subject", &mut errors),
        text: text(body, "text", &mut errors),
        html: text(body, "html", &mut errors),
        message_id: text(body, "messageId", &mut errors),
        ..Default::default()
    };
    if c.subject.as_deref().is_some_and(|s| !single_line(s)) {
        errors.push(FieldError::about("subject", "must not contain line breaks"));
    }
    if let Some(id) = &c.message_id
        && (!single_line(id) || !id.starts_with('<') || !id.ends_with('>') || id.len() < 3)
    {
        errors.push(FieldError::about(
            "messageId",
            "must be in the <id@host> form",
        ));
    }
    if let Some(h) = body.get("headers") {
        match h {
            Value::Object(map) => {
                for (k, v) in map {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => {
                            errors.push(FieldError::about(
                                &format!("headers.{k}"),
                                "must be a string",
                            ));
                            continue;
                        }
                    };
                    let name_ok =
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic() && b != b':');
                    if !name_ok || !single_line(&value) {
                        errors.push(FieldError::about(
                            &format!("headers.{k}"),
                            "is not a valid header",
                        ));
                    } else {
                        c.headers.push((k.clone(), value));
                    }
                }
            }
            Value::Null => {}
            _ => errors.push(FieldError::about("headers", "must be of type object")),
        }
    }
    match body.get("attachments") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("attachments[{i}]");
                let Value::Object(a) = item else {
                    errors.push(FieldError::about(&at, "must be of type object"));
                    continue;
                };
                let raw = a.get("content").and_then(Value::as_str).unwrap_or_default();
                let encoding = a
                    .get("encoding")
                    .and_then(Value::as_str)
                    .unwrap_or("base64");
                let content = match encoding {
                    "base64" => base64::engine::general_purpose::STANDARD
                        .decode(raw.split_whitespace().collect::<String>())
                        .map_err(|_| FieldError::about(&format!("{at}.content"), "must be base64")),
                    "utf8" | "utf-8" => Ok(raw.as_bytes().to_vec()),
                    _ => Err(FieldError::about(
                        &format!("{at}.encoding"),
                        "must be one of [base64, utf8]",
                    )),
                };
                let filename = a
                    .get("filename")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let content_type = a
                    .get("contentType")
                    .and_then(Value::as_str)
                    .filter(|t| t.contains('/') && single_line(t))
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let cid = a
                    .get("cid")
                    .and_then(Value::as_str)
                    .map(|c| c.trim_matches(['<', '>']).to_string());
                match content {
                    Ok(content) => c.attachments.push(Attachment {
                        filename,
                        content_type,
                        content,
                        cid,
                    }),
                    Err(e) => errors.push(e),
                }
            }
        }
        Some(_) => errors.push(FieldError::about("attachments", "must be an array")),
    }
    if errors.is_empty() {
        Ok(c)
    } else {
        Err(errors)
    }
}

/// One address header line (`To: …\r\n`), encoded as built messages encode it.
pub fn address_line(name: &str, list: &[Mailbox]) -> Vec<u8> {
    use mail_builder::headers::Header;
    let mut out = format!("{name}: ").into_bytes();
    let written = out.len();
    address(list).write_header(&mut out, written);
    out
}

fn address<'x>(list: &'x [Mailbox]) -> Address<'x> {
    Address::new_list(
        list.iter()
            .map(|m| Address::new_address(m.name.as_deref(), m.address.as_str()))
            .collect(),
    )
}

impl Compose {
    /// The Message-ID this message will carry: given, or made from `host` and a random part.
    pub fn ensure_message_id(&mut self, host: &str) -> String {
        if self.message_id.is_none() {
            let mut r = [0u8; 12];
            rand::fill(&mut r);
            self.message_id = Some(format!("<{}@{host}>", hex::encode(r)));
        }
        self.message_id.clone().unwrap_or_default()
    }

    /// RFC 822 bytes. Bcc recipients are not written into the headers.
    pub fn build(&self, now_secs: i64) -> Vec<u8> {
        let mut b = MessageBuilder::new().date(now_secs);
        if let Some(f) = &self.from {
            b = b.from(Address::new_address(f.name.as_deref(), f.address.as_str()));
        }
        if !self.to.is_empty() {
            b = b.to(address(&self.to));
        }
        if !self.cc.is_empty() {
            b = b.cc(address(&self.cc));
        }
        if !self.reply_to.is_empty() {
            b = b.reply_to(address(&self.reply_to));
        }
        if let Some(s) = &self.subject {
            b = b.subject(s.as_str());
        }
        if let Some(id) = &self.message_id {
            b = b.message_id(id.trim_matches(['<', '>']));
        }
        if let Some(irt) = &self.in_reply_to {
            b = b.in_reply_to(irt.trim_matches(['<', '>']));
        }
        if !self.references.is_empty() {
            b = b.references(mail_builder::headers::message_id::MessageId::new_list(
                self.references.iter().map(|r| r.trim_matches(['<', '>'])),
            ));
        }
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), Raw::new(v.as_str()));
        }
        if let Some(t) = &self.text {
            b = b.text_body(t.as_str());
        }
        if let Some(h) = &self.html {
            b = b.html_body(h.as_str());
        }
        for a in &self.attachments {
            b = match &a.cid {
                Some(cid) => b.inline(a.content_type.as_str(), cid.as_str(), a.content.as_slice()),
                None => b.attachment(
                    a.content_type.as_str(),
                    a.filename.as_deref().unwrap_or("attachment"),
                    a.content.as_slice(),
                ),
            };
        }
        b.write_to_vec().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_a_parseable_message() {
        let mut c = parse(json!({
            "from": {"name": "Ann", "address": "ann@example.com"},
            "to": [{"address": "bob@example.com"}], "bcc": "hidden@example.com",
            "subject": "Hi", "text": "Hello", "html": "<p>Hello</p>",
            "headers": {"X-Test": "1"},
            "attachments": [{"filename": "a.txt", "content": "aGk=", "contentType": "text/plain"}]
        }).as_object().unwrap()).unwrap();
        let id = c.ensure_message_id("example.com");
        let raw = String::from_utf8(c.build(1_700_000_000)).unwrap();
        assert!(raw.contains("Subject: Hi"));
        assert!(raw.contains("X-Test: 1"));
        assert!(raw.contains(id.trim_matches(['<', '>'])));
        assert!(!raw.contains("hidden@example.com"), "bcc is not written");
        assert_eq!(c.bcc[0].address, "hidden@example.com");
    }

    #[test]
    fn address_lines_are_encoded() {
        let list = [Mailbox {
            name: Some("Jürgen".into()),
            address: "j@example.com".into(),
        }];
        assert_eq!(
            String::from_utf8(address_line("To", &list)).unwrap(),
            "To: =?utf-8?Q?J=C3=BCrgen?= <j@example.com>\r\n"
        );
    }

    #[test]
    fn rejects_bad_fields() {
        let errors = parse(json!({
            "to": [{"address": "nope"}], "subject": "a\r\nBcc: x@y", "headers": {"Bad Name": "x"},
            "attachments": [{"content": "***"}]
        }).as_object().unwrap()).unwrap_err();
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "to[0].address",
                "subject",
                "headers.Bad Name",
                "attachments[0].content"
            ]
        );
    }
}
