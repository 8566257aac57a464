//! Messages as the API shows them (spec §6.4): list entries built from a message's headers and
//! IMAP attributes, full details from its source, and part lookup for text and attachment ids.
//! MIME work is mail-parser's; this module only shapes the JSON and numbers parts as IMAP does.

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
use serde_json::{Map, Value, json};

use emailengine_core::ids::{MessageId, encode_attachment_id, encode_text_id};
use emailengine_mail::DetailsOptions;
use emailengine_mail::html::{InlineImage, text_to_html, web_safe_html};

/// IMAP attributes of one message, fetched together with its header block.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub uid: u32,
    pub flags: Vec<String>,
    pub size: u32,
    /// INTERNALDATE as ms since the epoch.
    pub internal_date: Option<i64>,
    pub modseq: u64,
    pub header: Vec<u8>,
    /// X-GM-MSGID, where the server has it.
    pub email_id: Option<String>,
    /// X-GM-LABELS, where the server has them.
    pub labels: Option<Vec<String>>,
    /// The thread, on servers that thread by references (see [`reference_thread_id`]).
    pub thread_id: Option<String>,
}

fn first_id(value: &mail_parser::HeaderValue<'_>) -> Option<String> {
    let id = match value {
        mail_parser::HeaderValue::Text(t) => t.as_ref(),
        mail_parser::HeaderValue::TextList(list) => list.first()?.as_ref(),
        _ => return None,
    };
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    (!id.is_empty()).then(|| id.to_string())
}

/// The thread id of a message as RFC 5256's REFERENCES algorithm roots its thread: the first
/// Message-ID in References, else In-Reply-To, else the message's own Message-ID. The same in
/// every folder (a reply in Sent shares its thread with the message in INBOX): `T` and 16
/// hex digits of the root's FNV-1a hash, shaped like an RFC 8474 THREADID.
pub fn reference_thread_id(header: &[u8]) -> Option<String> {
    let msg = MessageParser::new().parse_headers(header)?;
    let root = first_id(msg.references())
        .or_else(|| first_id(msg.in_reply_to()))
        .or_else(|| msg.message_id().map(|id| id.trim().to_string()))
        .filter(|id| !id.is_empty())?;
    let hash = root.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    Some(format!("T{hash:016x}"))
}

/// Sets the thread id of fetched summaries from their headers.
pub fn assign_threads(fetched: &mut [Fetched]) {
    for f in fetched {
        f.thread_id = reference_thread_id(&f.header);
    }
}

/// Sets Gmail's thread ids (`X-GM-THRID`, in decimal as EmailEngine shows it).
pub fn assign_gmail_threads(fetched: &mut [Fetched], ids: &std::collections::HashMap<u32, u64>) {
    for f in fetched {
        f.thread_id = ids.get(&f.uid).map(u64::to_string);
    }
}

/// The folder a message is shown from.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The folder's id in the account's mailbox registry.
    pub mailbox: u32,
    pub path: &'a str,
    pub special_use: Option<&'a str>,
}

fn addr_json(a: &mail_parser::Addr<'_>) -> Value {
    let mut m = Map::new();
    if let Some(n) = a.name.as_deref().filter(|n| !n.is_empty()) {
        m.insert("name".into(), Value::from(n));
    }
    m.insert(
        "address".into(),
        Value::from(a.address.as_deref().unwrap_or_default()),
    );
    Value::Object(m)
}

fn addr_list(a: Option<&Address<'_>>) -> Option<Value> {
    let list: Vec<Value> = a?.iter().map(addr_json).collect();
    (!list.is_empty()).then_some(Value::Array(list))
}

fn iso(ms: i64) -> Option<String> {
    emailengine_core::units::iso_time(ms)
}

fn flag_fields(flags: &[String], out: &mut Map<String, Value>) {
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    out.insert("draft".into(), Value::Bool(has("\\Draft")));
    out.insert("unseen".into(), Value::Bool(!has("\\Seen")));
    out.insert("flagged".into(), Value::Bool(has("\\Flagged")));
    out.insert("answered".into(), Value::Bool(has("\\Answered")));
    out.insert(
        "flags".into(),
        Value::Array(flags.iter().map(|f| Value::from(f.as_str())).collect()),
    );
}

/// Header-derived fields shared by list entries and details.
fn header_fields(msg: &Message<'_>, out: &mut Map<String, Value>) {
    if let Some(s) = msg.subject() {
        out.insert("subject".into(), Value::from(s));
    }
    if let Some(from) = msg.from().and_then(|a| a.first()) {
        out.insert("from".into(), addr_json(from));
    }
    if let Some(sender) = msg.sender().and_then(|a| a.first()) {
        out.insert("sender".into(), addr_json(sender));
    }
    for (key, list) in [
        ("replyTo", addr_list(msg.reply_to())),
        ("to", addr_list(msg.to())),
        ("cc", addr_list(msg.cc())),
        ("bcc", addr_list(msg.bcc())),
    ] {
        if let Some(l) = list {
            out.insert(key.into(), l);
        }
    }
    if let Some(id) = msg.message_id() {
        out.insert("messageId".into(), Value::from(format!("<{id}>")));
    }
    if let Some(irt) = msg.in_reply_to().as_text() {
        out.insert("inReplyTo".into(), Value::from(format!("<{irt}>")));
    }
}

/// A message list entry (`GET /v1/account/{account}/messages`) and the `messageNew` payload.
pub fn list_entry(place: Place<'_>, f: &Fetched) -> Value {
    entry(place, f, &f.header)
}

/// A list entry whose header fields come from `header` (a header block or a whole source).
fn entry(place: Place<'_>, f: &Fetched, header: &[u8]) -> Value {
    let id = MessageId {
        mailbox: place.mailbox,
        uid: f.uid,
    };
    let mut out = Map::new();
    out.insert("id".into(), Value::from(id.encode()));
    out.insert("uid".into(), Value::from(f.uid));
    if let Some(e) = &f.email_id {
        out.insert("emailId".into(), Value::from(e.as_str()));
    }
    if let Some(t) = &f.thread_id {
        out.insert("threadId".into(), Value::from(t.as_str()));
    }
    out.insert("path".into(), Value::from(place.path));
    let parsed = MessageParser::new().parse_headers(header);
    let date = parsed
        .as_ref()
        .and_then(|m| m.date())
        .map(|d| d.to_timestamp() * 1000)
        .or(f.internal_date);
    if let Some(d) = date.and_then(iso) {
        out.insert("date".into(), Value::from(d));
    }
    flag_fields(&f.flags, &mut out);
    if let Some(labels) = &f.labels {
        out.insert(
            "labels".into(),
            Value::Array(labels.iter().map(|l| Value::from(l.as_str())).collect()),
        );
    }
    out.insert("size".into(), Value::from(f.size));
    if let Some(m) = &parsed {
        header_fields(m, &mut out);
    }
    if let Some(su) = place.special_use {
        out.insert("messageSpecialUse".into(), Value::from(su));
    }
    Value::Object(out)
}

/// IMAP body part numbers of a parsed message: `1`, `2`, `2.1`, … (a single-part message's
/// body is `1`).
fn part_numbers(msg: &Message<'_>) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    fn walk(msg: &Message<'_>, index: usize, number: &str, out: &mut Vec<(usize, String)>) {
        match msg.parts.get(index).map(|p| &p.body) {
            Some(PartType::Multipart(children)) => {
                for (i, child) in children.iter().enumerate() {
                    let n = if number.is_empty() {
                        (i + 1).to_string()
                    } else {
                        format!("{number}.{}", i + 1)
                    };
                    walk(msg, *child as usize, &n, out);
                }
            }
            Some(_) => out.push((
                index,
                if number.is_empty() {
                    "1".into()
                } else {
                    number.to_string()
                },
            )),
            None => {}
        }
    }
    walk(msg, 0, "", &mut out);
    out
}

/// Full message details (`GET /v1/account/{account}/message/{message}`).
pub fn details(place: Place<'_>, f: &Fetched, source: &[u8], options: &DetailsOptions) -> Value {
    let id = MessageId {
        mailbox: place.mailbox,
        uid: f.uid,
    };
    let Value::Object(mut out) = entry(place, f, source) else {
        return Value::Null;
    };
    let Some(msg) = MessageParser::new().parse(source) else {
        return Value::Object(out);
    };
    let numbers = part_numbers(&msg);
    let number_of = |idx: u32| {
        numbers
            .iter()
            .find(|(i, _)| *i == idx as usize)
            .map(|(_, n)| n.clone())
    };
    let text_ids: Vec<String> = msg
        .text_body
        .iter()
        .chain(msg.html_body.iter())
        .filter_map(|i| number_of(*i))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut text = Map::new();
    text.insert("id".into(), Value::from(encode_text_id(id, &text_ids)));
    let plain = plain_text(&msg);
    let html = html_text(&msg);
    text.insert(
        "encodedSize".into(),
        json!({"plain": plain.len(), "html": html.len()}),
    );
    let mut has_more = false;
    if options.text_type.plain() && !plain.is_empty() {
        let (cut, more) = truncate(&plain, options.max_bytes);
        has_more |= more;
        text.insert("plain".into(), Value::from(cut));
    }
    if options.text_type.html() {
        let shown = if options.web_safe_html {
            let base = if html.is_empty() {
                text_to_html(&plain)
            } else {
                html
            };
            web_safe_html(&base, &inline_images(&msg))
        } else {
            html
        };
        if !shown.is_empty() {
            let (cut, more) = truncate(&shown, options.max_bytes);
            has_more |= more;
            text.insert("html".into(), Value::from(cut));
        }
    }
    text.insert("hasMore".into(), Value::Bool(has_more));
    out.insert("text".into(), Value::Object(text));
    let attachments: Vec<Value> = msg
        .attachments
        .iter()
        .filter_map(|i| {
            let part = msg.parts.get(*i as usize)?;
            let number = number_of(*i)?;
            let mut a = Map::new();
            a.insert("id".into(), Value::from(encode_attachment_id(id, &number)));
            a.insert("contentType".into(), Value::from(content_type(part)));
            a.insert(
                "encodedSize".into(),
                Value::from(part.offset_end.saturating_sub(part.offset_body)),
            );
            if let Some(name) = part.attachment_name() {
                a.insert("filename".into(), Value::from(name));
            }
            if let Some(cid) = part.content_id() {
                a.insert("contentId".into(), Value::from(format!("<{cid}>")));
            }
            a.insert("embedded".into(), Value::Bool(part.content_id().is_some()));
            a.insert("inline".into(), Value::Bool(is_inline(part)));
            Some(Value::Object(a))
        })
        .collect();
    out.insert("attachments".into(), Value::Array(attachments));
    Value::Object(out)
}

/// Adds `content` (base64 of the decoded bytes) to every attachment of `details` output whose
/// decoded size is at most `max` bytes: `notifyAttachments` in `messageNew` (EmailEngine 2.51+).
pub fn attachment_contents(data: &mut Value, source: &[u8], max: usize) {
    use base64::Engine as _;
    let Some(msg) = MessageParser::new().parse(source) else {
        return;
    };
    let Some(Value::Array(shown)) = data.get_mut("attachments") else {
        return;
    };
    // The same attachments, in the same order, as `details` lists them.
    let numbers = part_numbers(&msg);
    let listed = msg.attachments.iter().filter_map(|i| {
        let part = msg.parts.get(*i as usize)?;
        numbers
            .iter()
            .any(|(n, _)| *n == *i as usize)
            .then_some(part)
    });
    for (a, part) in shown.iter_mut().zip(listed) {
        let bytes = part.contents();
        if bytes.len() <= max {
            a["content"] = Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
}

/// Inline parts: disposition `inline`, or no disposition but a Content-ID (images referenced
/// from the HTML of a `multipart/related`).
fn is_inline(part: &mail_parser::MessagePart<'_>) -> bool {
    match part.content_disposition() {
        Some(d) => d.is_inline(),
        None => part.content_id().is_some(),
    }
}

fn plain_text(msg: &Message<'_>) -> String {
    msg.text_bodies()
        .filter(|p| matches!(p.body, PartType::Text(_)))
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n")
}

fn html_text(msg: &Message<'_>) -> String {
    msg.html_bodies()
        .filter(|p| matches!(p.body, PartType::Html(_)))
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parts a `cid:` reference in the HTML can name.
fn inline_images<'a>(msg: &'a Message<'a>) -> Vec<InlineImage<'a>> {
    msg.parts
        .iter()
        .filter_map(|p| {
            let cid = p.content_id()?;
            let ct = p.content_type()?;
            if !ct.ctype().eq_ignore_ascii_case("image") {
                return None;
            }
            Some(InlineImage {
                content_id: cid,
                content_type: match ct.subtype() {
                    Some("jpeg" | "jpg") => "image/jpeg",
                    Some("gif") => "image/gif",
                    Some("webp") => "image/webp",
                    Some("svg+xml") => "image/svg+xml",
                    _ => "image/png",
                },
                content: p.contents(),
            })
        })
        .collect()
}

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
        .to_ascii_lowercase()
}

fn truncate(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_string(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

/// The text of the given parts, split by kind (`GET …/text/{text}`).
pub fn texts(source: &[u8], numbers: &[String], options: &DetailsOptions) -> Value {
    let Some(msg) = MessageParser::new().parse(source) else {
        return json!({"hasMore": false});
    };
    let mut plain = Vec::new();
    let mut html = Vec::new();
    for (idx, n) in part_numbers(&msg) {
        if !numbers.contains(&n) {
            continue;
        }
        match msg.parts.get(idx).map(|p| &p.body) {
            Some(PartType::Text(t)) => plain.push(t.to_string()),
            Some(PartType::Html(t)) => html.push(t.to_string()),
            _ => {}
        }
    }
    let mut out = Map::new();
    let mut has_more = false;
    if options.text_type.plain() {
        let (plain, more) = truncate(&plain.join("\n"), options.max_bytes);
        has_more |= more;
        out.insert("plain".into(), Value::from(plain));
    }
    if options.text_type.html() {
        let joined = html.join("\n");
        let shown = if options.web_safe_html {
            let base = if joined.is_empty() {
                text_to_html(&plain.join("\n"))
            } else {
                joined
            };
            web_safe_html(&base, &inline_images(&msg))
        } else {
            joined
        };
        let (html, more) = truncate(&shown, options.max_bytes);
        has_more |= more;
        out.insert("html".into(), Value::from(html));
    }
    out.insert("hasMore".into(), Value::Bool(has_more));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use emailengine_mail::TextType;

    const MIXED: &[u8] = b"From: Ann <ann@example.com>\r\nTo: bob@example.com, Cy <cy@example.com>\r\nSubject: =?UTF-8?Q?Caf=C3=A9?=\r\nMessage-ID: <m1@example.com>\r\nDate: Tue, 01 Oct 2024 10:00:00 +0000\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello there\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";

    #[test]
    fn threads_are_rooted_at_the_first_reference() {
        let id = |h: &str| reference_thread_id(h.as_bytes());
        let root = id("Message-ID: <root@x>\r\n\r\n").unwrap();
        assert_eq!(root.len(), 17);
        assert!(root.starts_with('T'));
        assert_eq!(
            id("Message-ID: <r@x>\r\nIn-Reply-To: <root@x>\r\n\r\n"),
            Some(root.clone())
        );
        assert_eq!(
            id(
                "Message-ID: <r2@x>\r\nIn-Reply-To: <r@x>\r\nReferences: <root@x>\r\n <r@x>\r\n\r\n"
            ),
            Some(root.clone())
        );
        assert_ne!(id("Message-ID: <other@x>\r\n\r\n"), Some(root));
        assert_eq!(id("Subject: no ids\r\n\r\n"), None);
        // Golden value: FNV-1a 64 of "root@x", computed independently.
        assert_eq!(
            id("Message-ID: <root@x>\r\n\r\n").as_deref(),
            Some("Tf71d44248648b765")
        );
    }

    #[test]
    fn list_entry_from_headers() {
        let f = Fetched {
            uid: 7,
            flags: vec!["\\Seen".into()],
            size: 100,
            header: MIXED.to_vec(),
            ..Default::default()
        };
        let e = list_entry(
            Place {
                mailbox: 3,
                path: "INBOX",
                special_use: Some("\\Inbox"),
            },
            &f,
        );
        assert_eq!(e["messageSpecialUse"], "\\Inbox");
        assert_eq!(e["id"], MessageId { mailbox: 3, uid: 7 }.encode());
        assert_eq!(e["subject"], "Café");
        assert_eq!(
            e["from"],
            json!({"name": "Ann", "address": "ann@example.com"})
        );
        assert_eq!(
            e["to"][1],
            json!({"name": "Cy", "address": "cy@example.com"})
        );
        assert_eq!(e["unseen"], false);
        assert_eq!(e["messageId"], "<m1@example.com>");
        assert_eq!(e["date"], "2024-10-01T10:00:00.000Z");
    }

    #[test]
    fn details_text_and_attachments() {
        let f = Fetched {
            uid: 7,
            ..Default::default()
        };
        let d = details(place(), &f, MIXED, &options(TextType::All, false));
        assert_eq!(d["text"]["plain"], "Hello there");
        assert_eq!(d["attachments"][0]["filename"], "a.pdf");
        assert_eq!(d["attachments"][0]["contentType"], "application/pdf");
        let att_id = d["attachments"][0]["id"].as_str().unwrap();
        let (mid, part) = emailengine_core::ids::decode_attachment_id(att_id).unwrap();
        assert_eq!((mid.uid, part.as_str()), (7, "2"));
        let (_, parts) =
            emailengine_core::ids::decode_text_id(d["text"]["id"].as_str().unwrap()).unwrap();
        assert_eq!(parts, vec!["1".to_string()]);
        let mut cut = options(TextType::All, false);
        cut.max_bytes = 5;
        assert_eq!(texts(MIXED, &parts, &cut)["plain"], "Hello");
        assert_eq!(d["attachments"][0]["inline"], false);
        assert_eq!(d["attachments"][0]["embedded"], false);

        let mut with = d.clone();
        attachment_contents(&mut with, MIXED, 5);
        assert_eq!(with["attachments"][0]["content"], "JVBERi0=");
        let mut without = d;
        attachment_contents(&mut without, MIXED, 4);
        assert!(without["attachments"][0].get("content").is_none());
    }

    fn place() -> Place<'static> {
        Place {
            mailbox: 3,
            path: "INBOX",
            special_use: None,
        }
    }

    fn options(text_type: TextType, web_safe_html: bool) -> DetailsOptions {
        DetailsOptions {
            max_bytes: 1000,
            text_type,
            web_safe_html,
            mark_as_seen: false,
        }
    }

    const RELATED: &[u8] = b"From: a@x\r\nSubject: pic\r\nContent-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nPlain words\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>Hi<script>alert(1)</script><img src=\"cid:logo@x\"></p>\r\n--a--\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\nUE5H\r\n--r--\r\n";

    #[test]
    fn web_safe_html_and_text_types() {
        let f = Fetched {
            uid: 1,
            ..Default::default()
        };
        let safe = details(place(), &f, RELATED, &options(TextType::All, true));
        assert_eq!(
            safe["text"]["html"],
            "<p>Hi<img src=\"data:image/png;base64,UE5H\"></p>"
        );
        assert_eq!(safe["attachments"][0]["inline"], true);
        let plain = details(place(), &f, RELATED, &options(TextType::Plain, false));
        assert_eq!(plain["text"]["plain"], "Plain words");
        assert!(plain["text"].get("html").is_none());
        let html = details(place(), &f, RELATED, &options(TextType::Html, false));
        assert!(html["text"].get("plain").is_none());
        let only_text = b"Subject: t\r\nContent-Type: text/plain\r\n\r\nLine <1>\r\n";
        let generated = details(place(), &f, only_text, &options(TextType::All, true));
        assert_eq!(generated["text"]["html"], "<p>Line &lt;1&gt;</p>");
    }
}

/// Raw header values by lower-case name, for the names asked for (`*` = all).
pub fn header_map(source: &[u8], names: &[String]) -> Value {
    let all = names.iter().any(|n| n == "*");
    let wanted: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let end = source
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(source.len());
    let head = String::from_utf8_lossy(&source[..end]);
    let mut out: Map<String, Value> = Map::new();
    let mut current: Option<(String, String)> = None;
    let flush = |cur: Option<(String, String)>, out: &mut Map<String, Value>| {
        if let Some((name, value)) = cur
            && (all || wanted.contains(&name))
        {
            let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(Value::from(value.trim().to_string()));
            }
        }
    };
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        flush(current.take(), &mut out);
        if let Some((name, value)) = line.split_once(':') {
            current = Some((name.trim().to_ascii_lowercase(), value.to_string()));
        }
    }
    flush(current, &mut out);
    Value::Object(out)
}

#[cfg(test)]
mod notify_tests {
    use super::*;

    #[test]
    fn headers_for_webhooks() {
        let raw = b"Subject: Hi\r\nX-Tag: a\r\nX-Tag: b\r\n continued\r\nContent-Type: text/plain\r\n\r\nHello world\r\n";
        let h = header_map(raw, &["X-Tag".into()]);
        assert_eq!(h, json!({"x-tag": ["a", "b continued"]}));
        assert_eq!(header_map(raw, &["*".into()])["subject"], json!(["Hi"]));
    }
}

/// Content type, file name and transfer encoding (lower case) from a part's MIME header block.
pub fn part_header(mime: &[u8]) -> (String, Option<String>, String) {
    let mut block = mime.to_vec();
    if !block.ends_with(b"\r\n\r\n") {
        block.extend_from_slice(b"\r\n");
    }
    let parsed = MessageParser::new().parse_headers(&block);
    let part = parsed.as_ref().and_then(|m| m.parts.first());
    let content_type = part
        .map(content_type)
        .unwrap_or_else(|| "application/octet-stream".into());
    let filename = part.and_then(|p| p.attachment_name()).map(str::to_string);
    let encoding = header_map(&block, &["content-transfer-encoding".into()])
        .get("content-transfer-encoding")
        .and_then(|v| v.get(0))
        .and_then(Value::as_str)
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    (content_type, filename, encoding)
}

/// Decodes a part body (quoted-printable, 7bit, 8bit, binary, base64) given its MIME header.
pub fn decode_part(mime: &[u8], body: &[u8]) -> Vec<u8> {
    let mut raw = mime.to_vec();
    if !raw.ends_with(b"\r\n\r\n") {
        raw.extend_from_slice(if raw.ends_with(b"\r\n") {
            b"\r\n"
        } else {
            b"\r\n\r\n"
        });
    }
    raw.extend_from_slice(body);
    MessageParser::new()
        .parse(&raw)
        .and_then(|m| m.parts.first().map(|p| p.contents().to_vec()))
        .unwrap_or_else(|| body.to_vec())
}

/// Incremental base64 decoding for streamed attachment bodies: line breaks and other
/// non-alphabet bytes are skipped, and bytes are decoded in whole 4-character groups.
#[derive(Default)]
pub struct Base64Stream {
    carry: Vec<u8>,
}

impl Base64Stream {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.carry.extend(
            chunk
                .iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')),
        );
        let whole = self.carry.len() / 4 * 4;
        let group: Vec<u8> = self.carry.drain(..whole).collect();
        decode_b64(&group)
    }

    /// Decodes whatever is left (an unpadded tail).
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.carry);
        decode_b64(&rest)
    }
}

fn decode_b64(data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let trimmed: Vec<u8> = data.iter().copied().filter(|b| *b != b'=').collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .unwrap_or_default()
}

#[cfg(test)]
mod part_tests {
    use super::*;

    #[test]
    fn base64_stream_matches_whole_decoding() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
        let wrapped: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
            .collect();
        let mut d = Base64Stream::default();
        let mut out = Vec::new();
        for chunk in wrapped.as_bytes().chunks(333) {
            out.extend(d.push(chunk));
        }
        out.extend(d.finish());
        assert_eq!(out, data);
    }

    #[test]
    fn part_headers_and_decoding() {
        let mime = b"Content-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment; filename=a.txt\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
        let (ct, name, enc) = part_header(mime);
        assert_eq!(
            (ct.as_str(), name.as_deref(), enc.as_str()),
            ("text/plain", Some("a.txt"), "quoted-printable")
        );
        assert_eq!(decode_part(mime, b"caf=C3=A9"), "café".as_bytes());
    }
}
