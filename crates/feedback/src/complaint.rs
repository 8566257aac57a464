//! Complaint parsing: RFC 5965 ARF reports (`message/feedback-report`) and Hotmail's own
//! `staff@hotmail.com` reports, with the returned original's main headers. Builds the
//! `messageComplaint` data, minus the caller's id of the report message.

use chrono::DateTime;
use mail_parser::{Address, Message, MessageParser};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::candidate::is_hotmail_staff;
use crate::fields::{self, Field};
use crate::parts::ReportParts;

/// A detected complaint: the `data` of a `messageComplaint` webhook without `complaintMessage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Complaint {
    pub arf: ArfReport,
    pub headers: ComplainedHeaders,
}

/// The ARF fields EmailEngine reports, camelCased; values as written, except that addresses lose
/// their angle brackets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArfReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abuse_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_mail_from: Option<String>,
    pub original_rcpt_to: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_envelope_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_mta: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incidents: Option<String>,
}

/// The complained-about message's headers, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplainedHeaders {
    /// In `<...>` form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The first From address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// ISO 8601 in UTC with milliseconds, as JavaScript's `toISOString()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

impl Complaint {
    /// The `messageComplaint` webhook `data`, with `complaintMessage` (our id of the report).
    pub fn webhook_data(&self, complaint_message: &str) -> Value {
        let mut data = Map::new();
        data.insert("complaintMessage".into(), complaint_message.into());
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            data.extend(fields);
        }
        Value::Object(data)
    }
}

/// Parses a full raw message as a complaint. None unless it names at least one original
/// recipient (`Original-Rcpt-To`, or Hotmail's `X-HmXmrOriginalRecipient`).
pub fn parse_complaint(raw: &[u8]) -> Option<Complaint> {
    let message = MessageParser::new().parse(raw)?;
    let parts = ReportParts::of(&message);
    complaint_from(&message, &parts)
}

pub(crate) fn complaint_from(message: &Message<'_>, parts: &ReportParts<'_>) -> Option<Complaint> {
    let original = parts.original_headers.as_deref();
    let arf = match parts.feedback_report.as_deref() {
        Some(report) => arf_fields(&fields::parse_groups(report).concat()),
        None => {
            let from = message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address.as_deref())
                .unwrap_or_default();
            if !(is_hotmail_staff(from, message.subject().unwrap_or_default())
                && parts.embedded_message)
            {
                return None;
            }
            hotmail_report(original)
        }
    };
    if arf.original_rcpt_to.is_empty() {
        return None;
    }
    let headers = original.map(complained_headers).unwrap_or_default();
    Some(Complaint { arf, headers })
}

fn arf_fields(report: &[Field]) -> ArfReport {
    let text = |name: &str| fields::first(report, name).map(str::to_string);
    let address = |value: &str| fields::bare_address(value).unwrap_or_else(|| value.to_string());
    ArfReport {
        source: text("source"),
        feedback_type: text("feedback-type"),
        abuse_type: text("abuse-type"),
        original_mail_from: fields::first(report, "original-mail-from").map(address),
        original_rcpt_to: report
            .iter()
            .filter(|(name, value)| name == "original-rcpt-to" && !value.is_empty())
            .map(|(_, value)| address(value))
            .collect(),
        source_ip: text("source-ip"),
        arrival_date: text("arrival-date"),
        received_date: text("received-date"),
        user_agent: text("user-agent"),
        version: text("version"),
        original_envelope_id: text("original-envelope-id"),
        reporting_mta: text("reporting-mta"),
        subscription_link: text("subscription-link"),
        incidents: text("incidents"),
    }
}

/// Hotmail's reports have no ARF part: the defaults stand in, and the complaining recipient is
/// in the returned message's `X-HmXmrOriginalRecipient` header.
fn hotmail_report(original: Option<&str>) -> ArfReport {
    let header_fields = original.map(fields::parse_block).unwrap_or_default();
    ArfReport {
        source: Some("Hotmail".into()),
        feedback_type: Some("abuse".into()),
        abuse_type: Some("complaint".into()),
        original_rcpt_to: header_fields
            .iter()
            .filter(|(name, _)| name == "x-hmxmroriginalrecipient")
            .filter_map(|(_, value)| fields::bare_address(value))
            .collect(),
        ..ArfReport::default()
    }
}

fn complained_headers(section: &str) -> ComplainedHeaders {
    let Some(parsed) = MessageParser::new().parse_headers(section.as_bytes()) else {
        return ComplainedHeaders::default();
    };
    let addresses = |list: Option<&Address<'_>>| -> Vec<String> {
        list.map(|a| {
            a.iter()
                .filter_map(|a| a.address.as_deref().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
    };
    ComplainedHeaders {
        message_id: parsed.message_id().and_then(fields::normalize_message_id),
        from: parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address.as_deref())
            .map(str::to_string),
        to: addresses(parsed.to()),
        cc: addresses(parsed.cc()),
        bcc: addresses(parsed.bcc()),
        subject: parsed.subject().map(str::to_string),
        date: parsed
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arf(report: &str) -> Vec<u8> {
        format!(
            "From: fbl@isp.example\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nreport\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\n{report}\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: News <news@sender.example>\r\nTo: a@isp.example, B <b@isp.example>\r\nCc: c@isp.example\r\nMessage-ID: <n@sender.example>\r\nDate: Tue, 2 Jan 2024 10:00:00 +0100\r\n\r\n--b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn every_original_rcpt_to_is_listed() {
        let raw = arf(
            "Feedback-Type: abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: <a@isp.example>\r\nOriginal-Rcpt-To: b@isp.example\r\nIncidents: 3\r\nSource: Example ISP\r\nSubscription-Link: https://sender.example/u/1\r\n",
        );
        let complaint = parse_complaint(&raw).unwrap();
        assert_eq!(
            serde_json::to_value(&complaint).unwrap(),
            serde_json::json!({
                "arf": {
                    "source": "Example ISP",
                    "feedbackType": "abuse",
                    "originalRcptTo": ["a@isp.example", "b@isp.example"],
                    "version": "1",
                    "subscriptionLink": "https://sender.example/u/1",
                    "incidents": "3"
                },
                "headers": {
                    "messageId": "<n@sender.example>",
                    "from": "news@sender.example",
                    "to": ["a@isp.example", "b@isp.example"],
                    "cc": ["c@isp.example"],
                    "date": "2024-01-02T09:00:00.000Z"
                }
            })
        );
    }

    #[test]
    fn report_without_original_rcpt_to_is_not_a_complaint() {
        assert_eq!(
            parse_complaint(&arf("Feedback-Type: abuse\r\nVersion: 1\r\n")),
            None
        );
    }

    #[test]
    fn hotmail_report_without_recipient_header_is_not_a_complaint() {
        let raw = b"From: staff@hotmail.com\r\nSubject: complaint about message from 192.0.2.1\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nTo: x@hotmail.com\r\nMessage-ID: <m@x>\r\n\r\nhi\r\n--b--\r\n";
        assert_eq!(parse_complaint(raw), None);
    }
}
