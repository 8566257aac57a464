//! One pass over a parsed message that picks out what feedback detection reads: the delivery-status
//! and feedback-report bodies, the returned original's header section, and the report's own text
//! (capped at 50 000 characters). The parts inside a returned original are never looked into.

use std::borrow::Cow;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use crate::candidate::PartFacts;

/// How much of a report's own text the plain-text readers see.
pub(crate) const TEXT_LIMIT_CHARS: usize = 50_000;

#[derive(Debug, Default)]
pub(crate) struct ReportParts<'x> {
    pub delivery_status: Option<Cow<'x, str>>,
    pub feedback_report: Option<Cow<'x, str>>,
    /// Header section of the returned original (`text/rfc822-headers` or `message/rfc822`).
    pub original_headers: Option<Cow<'x, str>>,
    pub embedded_message: bool,
    pub text: String,
}

enum Kind {
    DeliveryStatus,
    FeedbackReport,
    HeaderSection,
    Plain,
    Other,
}

fn kind_of(part: &MessagePart<'_>) -> Kind {
    let Some(ct) = part.content_type() else {
        return Kind::Plain;
    };
    let subtype = ct.subtype().unwrap_or_default();
    let is =
        |t: &str, s: &str| ct.ctype().eq_ignore_ascii_case(t) && subtype.eq_ignore_ascii_case(s);
    if is("message", "delivery-status") || is("message", "global-delivery-status") {
        Kind::DeliveryStatus
    } else if is("message", "feedback-report") {
        Kind::FeedbackReport
    } else if is("text", "rfc822-headers") || is("message", "global-headers") {
        Kind::HeaderSection
    } else if is("text", "plain") {
        Kind::Plain
    } else {
        Kind::Other
    }
}

fn body_text<'a>(part: &'a MessagePart<'_>) -> Option<Cow<'a, str>> {
    match &part.body {
        PartType::Text(text) | PartType::Html(text) => Some(Cow::Borrowed(text.as_ref())),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
            Some(String::from_utf8_lossy(bytes.as_ref()))
        }
        PartType::Message(_) | PartType::Multipart(_) => None,
    }
}

/// The header section of an embedded message. Its `raw_message` starts at its first header
/// line, while its part offsets may count from the outer message, so the section is found by
/// looking for the first empty line rather than through the offsets.
fn header_section<'a>(message: &'a Message<'_>) -> Option<Cow<'a, str>> {
    let raw = message.raw_message();
    let mut end = raw.len();
    let mut offset = 0;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        offset += line.len();
        if line == b"\n" || line == b"\r\n" {
            end = offset;
            break;
        }
    }
    let section = raw.get(..end)?;
    (!section.is_empty()).then(|| String::from_utf8_lossy(section))
}

impl<'x> ReportParts<'x> {
    pub fn of(message: &'x Message<'x>) -> Self {
        let mut found = ReportParts::default();
        let mut plain: Vec<&str> = Vec::new();
        let mut html: Vec<&str> = Vec::new();
        for part in &message.parts {
            if let PartType::Message(nested) = &part.body {
                found.embedded_message = true;
                if found.original_headers.is_none() {
                    found.original_headers = header_section(nested);
                }
                continue;
            }
            match kind_of(part) {
                Kind::DeliveryStatus if found.delivery_status.is_none() => {
                    found.delivery_status = body_text(part);
                }
                Kind::FeedbackReport if found.feedback_report.is_none() => {
                    found.feedback_report = body_text(part);
                }
                Kind::HeaderSection if found.original_headers.is_none() => {
                    found.original_headers = body_text(part);
                }
                Kind::Plain => {
                    if let PartType::Text(text) = &part.body {
                        plain.push(text);
                    }
                }
                _ => {
                    if let PartType::Html(text) = &part.body {
                        html.push(text);
                    }
                }
            }
        }
        found.text = if plain.is_empty() {
            let converted: Vec<String> = html
                .iter()
                .map(|h| mail_parser::decoders::html::html_to_text(h))
                .collect();
            capped(converted.iter().map(String::as_str))
        } else {
            capped(plain.into_iter())
        };
        found
    }

    pub fn facts(&self) -> PartFacts {
        PartFacts {
            delivery_status: self.delivery_status.is_some(),
            feedback_report: self.feedback_report.is_some(),
            embedded_message: self.embedded_message,
        }
    }
}

/// Joins text bodies with newlines and cuts the result at `TEXT_LIMIT_CHARS` characters.
fn capped<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for text in texts {
        if chars >= TEXT_LIMIT_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push('\n');
            chars += 1;
        }
        let room = TEXT_LIMIT_CHARS.saturating_sub(chars);
        match text.char_indices().nth(room) {
            Some((cut, _)) => {
                out.push_str(&text[..cut]);
                chars += room;
            }
            None => {
                out.push_str(text);
                chars += text.chars().count();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_capped_in_characters() {
        let long = "é".repeat(TEXT_LIMIT_CHARS + 10);
        let text = capped([long.as_str(), "tail"].into_iter());
        assert_eq!(text.chars().count(), TEXT_LIMIT_CHARS);
        assert_eq!(capped(["a", "b"].into_iter()), "a\nb");
    }

    #[test]
    fn nested_message_header_section_is_its_own() {
        let raw = b"From: MAILER-DAEMON@example.net\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <orig@example.org>\r\nSubject: hi\r\n\r\nbody\r\n--b--\r\n";
        let message = mail_parser::MessageParser::new().parse(&raw[..]).unwrap();
        let parts = ReportParts::of(&message);
        assert_eq!(
            parts.original_headers.as_deref(),
            Some("Message-ID: <orig@example.org>\r\nSubject: hi\r\n\r\n")
        );
        assert!(parts.embedded_message);
        assert_eq!(parts.text, "failed");
    }
}
