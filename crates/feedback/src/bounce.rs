//! Bounce parsing over a full message: the RFC 3464 report when there is one, the vendor wording
//! (`plain_text`) to fill what it lacks, `X-Failed-Recipients`, and the returned original's
//! headers for the original Message-ID. Builds the `messageBounce` data, minus the caller's ids.

use mail_parser::{Message, MessageParser};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::dsn::DeliveryStatus;
use crate::fields::{self, HeaderMap};
use crate::parts::ReportParts;
use crate::plain_text;

/// A detected bounce: the `data` of a `messageBounce` webhook without `bounceMessage` and `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounce {
    pub recipient: String,
    /// DSN action, lower-case (`failed`, `delayed`, ...); `failed` for plain-text bounces.
    pub action: String,
    pub response: BounceResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mta: Option<String>,
    /// The reporting MTA's queue id (`X-Postfix-Queue-ID`), not ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// The original's Message-ID, in `<...>` form.
    pub message_id: String,
    /// The original's headers when the bounce returned them; serialises as `null` otherwise.
    pub message_headers: Option<HeaderMap>,
}

/// What the remote side answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BounceResponse {
    /// The Diagnostic-Code type (`smtp`, `X-Postfix`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Enhanced status code (`5.1.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Bounce {
    /// The `messageBounce` webhook `data`, with `bounceMessage` (our id of the bounce message)
    /// first, as EmailEngine orders it.
    pub fn webhook_data(&self, bounce_message: &str) -> Value {
        let mut data = Map::new();
        data.insert("bounceMessage".into(), bounce_message.into());
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            data.extend(fields);
        }
        Value::Object(data)
    }
}

/// Parses a full raw message as a bounce. None unless recipient, action and the original
/// Message-ID were all found.
pub fn parse_bounce(raw: &[u8]) -> Option<Bounce> {
    let message = MessageParser::new().parse(raw)?;
    let parts = ReportParts::of(&message);
    bounce_from(&message, &parts)
}

pub(crate) fn bounce_from(message: &Message<'_>, parts: &ReportParts<'_>) -> Option<Bounce> {
    let status = parts.delivery_status.as_deref().map(DeliveryStatus::parse);
    let status = status.as_ref();
    let (report_text, copy) = plain_text::split_returned_copy(&parts.text);
    let finding = plain_text::read(report_text);

    let original_fields = parts
        .original_headers
        .as_deref()
        .or(copy.map(plain_text::copy_header_section))
        .map(fields::parse_block)
        .filter(|f| !f.is_empty());
    let message_id = original_fields
        .as_deref()
        .and_then(|f| fields::first(f, "message-id"))
        .or_else(|| status.and_then(|s| s.field("x-original-message-id")))
        .and_then(fields::normalize_message_id)?;

    let failed_recipients = message
        .header_raw("X-Failed-Recipients")
        .and_then(|v| v.split(',').find_map(fields::bare_address));
    let recipient = status
        .and_then(|s| {
            s.chosen_recipient().and_then(|g| {
                fields::first(g, "final-recipient")
                    .or_else(|| fields::first(g, "original-recipient"))
            })
        })
        .and_then(|v| fields::bare_address(fields::untyped(v)))
        .or(failed_recipients.clone())
        .or_else(|| finding.as_ref().and_then(|f| f.recipient.clone()))?;
    let action = status
        .and_then(DeliveryStatus::action)
        .or_else(|| finding.as_ref().map(|f| f.action.to_string()))
        .or_else(|| failed_recipients.map(|_| "failed".to_string()))?;

    // Wording about another recipient than the reported one must not leak into this bounce.
    let finding = finding.filter(|f| {
        f.recipient
            .as_deref()
            .is_none_or(|r| r.eq_ignore_ascii_case(&recipient))
    });
    let (source, diagnostic) = match status.and_then(|s| s.field("diagnostic-code")) {
        Some(code) => split_diagnostic(code),
        None => (None, None),
    };
    let response_message = diagnostic.or_else(|| finding.as_ref().and_then(|f| f.message.clone()));
    let response_status = status
        .and_then(|s| s.field("status"))
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_string)
        .or_else(|| finding.as_ref().and_then(|f| f.status.clone()))
        .or_else(|| {
            response_message
                .as_deref()
                .and_then(fields::find_enhanced_status)
        });
    let mta = status
        .and_then(|s| s.field("remote-mta").or_else(|| s.field("reporting-mta")))
        .map(|v| fields::untyped(v).to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| finding.as_ref().and_then(|f| f.mta.clone()));
    let queue_id = status
        .and_then(|s| s.field("x-postfix-queue-id"))
        .map(str::to_string);

    Some(Bounce {
        recipient,
        action,
        response: BounceResponse {
            source,
            message: response_message,
            status: response_status,
        },
        mta,
        queue_id,
        message_id,
        message_headers: original_fields.map(HeaderMap::from_fields),
    })
}

/// `smtp; 550 5.1.1 unknown` -> (`smtp`, `550 5.1.1 unknown`); a code without a type is all
/// message.
fn split_diagnostic(code: &str) -> (Option<String>, Option<String>) {
    let (source, message) = match code.split_once(';') {
        Some((kind, rest)) if !kind.trim().is_empty() && !kind.trim().contains(' ') => {
            (Some(kind.trim().to_string()), rest.trim())
        }
        _ => (None, code.trim()),
    };
    (source, Some(message.to_string()).filter(|m| !m.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn diagnostic_code_splits_at_type() {
        assert_eq!(
            split_diagnostic("smtp; 550 5.1.1 unknown; really"),
            (
                Some("smtp".into()),
                Some("550 5.1.1 unknown; really".into())
            )
        );
        assert_eq!(
            split_diagnostic("550 user unknown"),
            (None, Some("550 user unknown".into()))
        );
        assert_eq!(
            split_diagnostic("X-Postfix;"),
            (Some("X-Postfix".into()), None)
        );
    }

    #[test]
    fn exim_header_only_bounce_needs_message_id() {
        let raw = b"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\nX-Failed-Recipients: gone@example.org\r\nSubject: Mail delivery failed\r\n\r\nno details\r\n";
        assert_eq!(parse_bounce(raw), None);
    }

    fn report(delivery_status: &str, text: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n{delivery_status}\r\n--b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn original_message_id_field_alone_gives_null_headers() {
        let raw = report(
            "Reporting-MTA: dns; mx.example.net\r\nX-Original-Message-Id: orig.7@example.org\r\n\r\nOriginal-Recipient: rfc822; <a@example.org>\r\nAction: failed\r\nStatus: 5.0.0\r\n",
            "failed",
        );
        let bounce = parse_bounce(&raw).unwrap();
        assert_eq!(bounce.message_id, "<orig.7@example.org>");
        assert_eq!(bounce.recipient, "a@example.org");
        assert_eq!(bounce.mta.as_deref(), Some("mx.example.net"));
        assert_eq!(bounce.message_headers, None);
        assert_eq!(
            serde_json::to_value(&bounce).unwrap()["messageHeaders"],
            Value::Null
        );
    }

    #[test]
    fn wording_about_another_recipient_is_not_used() {
        let raw = report(
            "X-Original-Message-Id: <m@example.org>\r\n\r\nFinal-Recipient: rfc822; a@example.org\r\nAction: failed\r\n",
            "<b@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1 nope",
        );
        let bounce = parse_bounce(&raw).unwrap();
        assert_eq!(bounce.recipient, "a@example.org");
        assert_eq!(bounce.response, BounceResponse::default());
        assert_eq!(bounce.mta, None);
    }

    #[test]
    fn wording_fills_what_the_report_lacks() {
        let raw = report(
            "X-Original-Message-Id: <m@example.org>\r\n\r\nFinal-Recipient: rfc822; a@example.org\r\nAction: failed\r\n",
            "<a@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1 nope (in\r\n    reply to RCPT TO command)",
        );
        let bounce = parse_bounce(&raw).unwrap();
        assert_eq!(bounce.response.message.as_deref(), Some("550 5.1.1 nope"));
        assert_eq!(bounce.response.status.as_deref(), Some("5.1.1"));
        assert_eq!(bounce.mta.as_deref(), Some("mx.example.org"));
    }

    #[test]
    fn failed_recipients_header_makes_a_failed_bounce() {
        let raw = b"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\nX-Failed-Recipients: gone@example.org, other@example.org\r\nSubject: Mail delivery failed\r\n\r\nSomething went wrong.\r\n\r\n------ This is a copy of the message's headers. ------\r\n\r\nMessage-ID: <m@example.org>\r\n\r\n";
        let bounce = parse_bounce(raw).unwrap();
        assert_eq!(bounce.recipient, "gone@example.org");
        assert_eq!(bounce.action, "failed");
        assert_eq!(bounce.response, BounceResponse::default());
        assert_eq!(bounce.message_id, "<m@example.org>");
    }

    #[test]
    fn webhook_data_puts_bounce_message_first() {
        let bounce = Bounce {
            recipient: "a@example.org".into(),
            action: "failed".into(),
            response: BounceResponse {
                source: None,
                message: Some("550 no".into()),
                status: None,
            },
            mta: None,
            queue_id: None,
            message_id: "<m@x>".into(),
            message_headers: None,
        };
        assert_eq!(
            serde_json::to_string(&bounce.webhook_data("AAAAAQAAAAE")).unwrap(),
            r#"{"bounceMessage":"AAAAAQAAAAE","recipient":"a@example.org","action":"failed","response":{"message":"550 no"},"messageId":"<m@x>","messageHeaders":null}"#
        );
    }
}
