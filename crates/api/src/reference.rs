//! `reference`: a message composed as a reply to or forward of a stored message (spec §17.2),
//! shared by submitting and uploading. The original is read through the mail backend; a
//! `messageId` given with the reference must be the original's Message-ID.

use serde_json::{Map, Value};

use emailengine_core::compose::{self, Compose, Mailbox};
use emailengine_mail::{MailBackend, MailError};

use crate::error::{ApiError, ApiResult};

fn missing() -> ApiError {
    ApiError::not_found("Referenced message was not found").with("code", "ReferenceNotFound")
}

/// Threads a reply or attaches a forwarded message; `Ok(false)` when the original is missing
/// and `ignoreMissing` was set.
pub async fn apply(
    mail: &dyn MailBackend,
    reference: &Map<String, Value>,
    c: &mut Compose,
) -> ApiResult<bool> {
    let id = reference
        .get("message")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::field("reference.message", "is required"))?;
    let action = reference
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("reply");
    if !["reply", "reply-all", "forward"].contains(&action) {
        return Err(ApiError::field(
            "reference.action",
            "must be one of [reply, reply-all, forward]",
        ));
    }
    let ignore_missing = reference
        .get("ignoreMissing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let source = match mail.stored(id).await {
        Ok(m) => m.source,
        Err(MailError::MessageNotFound) if ignore_missing => return Ok(false),
        Err(MailError::MessageNotFound) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let parsed = mail_parser::MessageParser::new()
        .parse_headers(&source)
        .ok_or_else(|| ApiError::field("reference.message", "could not be read"))?;
    let original_id = parsed.message_id().map(|m| format!("<{m}>"));
    if let Some(expected) = reference.get("messageId").and_then(Value::as_str) {
        let expected = format!("<{}>", expected.trim().trim_matches(['<', '>']));
        if original_id.as_deref() != Some(expected.as_str()) {
            return Err(ApiError::not_found("Referenced message was not found")
                .with("code", "MessageNotFound"));
        }
    }
    let subject = parsed.subject().unwrap_or_default().to_string();
    if action == "forward" {
        c.subject.get_or_insert_with(|| format!("Fwd: {subject}"));
        c.attachments.push(compose::Attachment {
            filename: Some("forwarded.eml".into()),
            content_type: "message/rfc822".into(),
            content: source.clone(),
            cid: None,
        });
        return Ok(true);
    }
    c.subject.get_or_insert_with(|| {
        if subject.to_lowercase().starts_with("re:") {
            subject.clone()
        } else {
            format!("Re: {subject}")
        }
    });
    if let Some(mid) = &original_id {
        c.in_reply_to = Some(mid.clone());
        let mut refs: Vec<String> = parsed
            .references()
            .as_text_list()
            .map(|l| l.iter().map(|r| format!("<{r}>")).collect())
            .unwrap_or_default();
        refs.push(mid.clone());
        c.references = refs;
    }
    if c.to.is_empty() {
        c.to = parsed
            .reply_to()
            .or(parsed.from())
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        Some(Mailbox {
                            name: x.name.as_deref().map(str::to_string),
                            address: x.address.as_deref()?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if action == "reply-all" {
            let own = c
                .from
                .as_ref()
                .map(|f| f.address.to_lowercase())
                .unwrap_or_default();
            for list in [parsed.to(), parsed.cc()].into_iter().flatten() {
                for x in list.iter() {
                    if let Some(a) = x.address.as_deref().filter(|a| a.to_lowercase() != own) {
                        c.cc.push(Mailbox {
                            name: x.name.as_deref().map(str::to_string),
                            address: a.to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(true)
}
