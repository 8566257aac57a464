//! A complete RFC 822 message given as `raw` (spec §17.3): its body is sent byte for byte; its
//! header block loses the `X-EE-*` control headers (read as options) and `Bcc`, takes the
//! payload's `from`/`to`/`cc`/`bcc` and `headers`, and gains `Message-ID`, `Date` and
//! `MIME-Version` when missing.

use base64::Engine;
use serde_json::{Map, Value};

use emailengine_core::compose::{self, Mailbox};
use emailengine_core::validation::FieldError;

use crate::error::{ApiError, ApiResult};

/// What a raw message carried in its control headers.
#[derive(Debug, Default, PartialEq)]
pub struct Controls {
    pub send_at: Option<i64>,
    pub attempts: Option<u32>,
    pub gateway: Option<String>,
    pub tracking: Option<bool>,
}

/// A raw message ready to queue.
#[derive(Debug)]
pub struct RawMessage {
    pub raw: Vec<u8>,
    pub message_id: String,
    pub subject: Option<String>,
    /// The From address, for the envelope.
    pub from: Option<String>,
    /// Unique To, Cc and Bcc addresses, for the envelope.
    pub recipients: Vec<String>,
    pub controls: Controls,
}

struct Line {
    /// Lower-cased field name.
    name: String,
    /// The whole field with its continuation lines and line ending.
    bytes: Vec<u8>,
}

fn not_a_message() -> ApiError {
    ApiError::invalid_input(vec![FieldError::about(
        "raw",
        "must be a valid RFC 822 message",
    )])
}

/// Decodes base64 with or without padding and line breaks.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let e = base64::engine::general_purpose::STANDARD;
    e.decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&compact))
        .ok()
}

/// Splits the header block into fields; `None` when it is not one.
fn header_lines(head: &[u8]) -> Option<Vec<Line>> {
    let mut lines: Vec<Line> = Vec::new();
    for line in head.split_inclusive(|b| *b == b'\n') {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            lines.last_mut()?.bytes.extend_from_slice(line);
            continue;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
            return None;
        }
        lines.push(Line {
            name: String::from_utf8_lossy(name).to_ascii_lowercase(),
            bytes: line.to_vec(),
        });
    }
    (!lines.is_empty()).then_some(lines)
}

fn value_of(line: &Line) -> String {
    let text = String::from_utf8_lossy(&line.bytes);
    let value = text.split_once(':').map_or("", |(_, v)| v);
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "y" | "on"
    )
}

/// Builds the message to send from `raw` (base64) and the payload's overrides. `default_from`
/// is the account's address, used only when the message has no From of its own.
pub fn prepare(
    payload: &Map<String, Value>,
    default_from: Option<&Mailbox>,
    host: &str,
    now_ms: i64,
) -> ApiResult<RawMessage> {
    let text = payload
        .get("raw")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let source = decode_base64(text).ok_or_else(|| {
        ApiError::invalid_input(vec![FieldError::about(
            "raw",
            "must be a base64 encoded string",
        )])
    })?;
    let (head, body) = split(&source);
    let mut lines = header_lines(head).ok_or_else(not_a_message)?;
    let crlf = head.windows(2).any(|w| w == b"\r\n") || head.is_empty();
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };

    let mut controls = Controls::default();
    lines.retain(|l| {
        let v = value_of(l);
        match l.name.as_str() {
            "x-ee-send-at" => {
                controls.send_at =
                    emailengine_core::units::parse_iso_time(&v).or_else(|| v.parse::<i64>().ok())
            }
            "x-ee-delivery-attempts" => controls.attempts = v.parse().ok(),
            "x-ee-gateway" => controls.gateway = Some(v).filter(|g| !g.is_empty()),
            "x-ee-tracking-enabled" => controls.tracking = Some(truthy(&v)),
            _ => return true,
        }
        false
    });

    // Payload addresses replace the message's own lines.
    let overrides = compose::parse(payload).map_err(ApiError::invalid_input)?;
    let replace = |lines: &mut Vec<Line>, name: &str, list: &[Mailbox]| {
        if list.is_empty() {
            return;
        }
        let lower = name.to_ascii_lowercase();
        lines.retain(|l| l.name != lower);
        lines.push(Line {
            name: lower,
            bytes: with_eol(compose::address_line(name, list), eol),
        });
    };
    if let Some(from) = &overrides.from {
        replace(&mut lines, "From", std::slice::from_ref(from));
    }
    replace(&mut lines, "To", &overrides.to);
    replace(&mut lines, "Cc", &overrides.cc);
    replace(&mut lines, "Bcc", &overrides.bcc);
    replace(&mut lines, "Reply-To", &overrides.reply_to);
    if !lines.iter().any(|l| l.name == "from")
        && let Some(from) = default_from
    {
        replace(&mut lines, "From", std::slice::from_ref(from));
    }
    for (name, value) in &overrides.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "in-reply-to" || lower == "references" {
            lines.retain(|l| l.name != lower);
        }
        lines.push(Line {
            name: lower,
            bytes: with_eol(format!("{name}: {value}").into_bytes(), eol),
        });
    }
    let message_id = match &overrides.message_id {
        Some(id) => {
            lines.retain(|l| l.name != "message-id");
            lines.push(Line {
                name: "message-id".into(),
                bytes: with_eol(format!("Message-ID: {id}").into_bytes(), eol),
            });
            id.clone()
        }
        None => match lines.iter().find(|l| l.name == "message-id") {
            Some(l) => value_of(l),
            None => {
                let mut r = [0u8; 12];
                rand::fill(&mut r);
                let id = format!("<{}@{host}>", hex::encode(r));
                lines.push(Line {
                    name: "message-id".into(),
                    bytes: with_eol(format!("Message-ID: {id}").into_bytes(), eol),
                });
                id
            }
        },
    };
    if !lines.iter().any(|l| l.name == "date") {
        let date = chrono::DateTime::from_timestamp_millis(now_ms)
            .unwrap_or_default()
            .to_rfc2822();
        lines.push(Line {
            name: "date".into(),
            bytes: with_eol(format!("Date: {date}").into_bytes(), eol),
        });
    }
    if !lines.iter().any(|l| l.name == "mime-version") {
        lines.push(Line {
            name: "mime-version".into(),
            bytes: with_eol(b"MIME-Version: 1.0".to_vec(), eol),
        });
    }

    // Envelope from the final headers; Bcc leaves the transmitted copy.
    let mut head_out = Vec::with_capacity(head.len() + 256);
    for l in &lines {
        head_out.extend_from_slice(&l.bytes);
    }
    let parsed = mail_parser::MessageParser::new().parse_headers(&head_out);
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| x.address.as_deref().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
    };
    let (from, subject, mut recipients) = match &parsed {
        Some(p) => (
            addresses(p.from()).into_iter().next(),
            p.subject().map(str::to_string),
            [addresses(p.to()), addresses(p.cc()), addresses(p.bcc())].concat(),
        ),
        None => (None, None, Vec::new()),
    };
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.to_ascii_lowercase()));

    let mut raw = Vec::with_capacity(source.len() + 256);
    for l in lines.iter().filter(|l| l.name != "bcc") {
        raw.extend_from_slice(&l.bytes);
    }
    raw.extend_from_slice(eol);
    raw.extend_from_slice(body);
    Ok(RawMessage {
        raw,
        message_id,
        subject,
        from,
        recipients,
        controls,
    })
}

/// The header block (without the blank line) and the body.
fn split(source: &[u8]) -> (&[u8], &[u8]) {
    let crlf = find(source, b"\r\n\r\n").map(|i| (i + 2, i + 4));
    let lf = find(source, b"\n\n").map(|i| (i + 1, i + 2));
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match end {
        Some((head_end, body_start)) => (&source[..head_end], &source[body_start..]),
        None => (source, &[]),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Ends a line built with CRLF in the message's own line ending.
fn with_eol(mut line: Vec<u8>, eol: &[u8]) -> Vec<u8> {
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    if eol == b"\n" {
        line = String::from_utf8_lossy(&line)
            .replace("\r\n", "\n")
            .into_bytes();
    }
    line.extend_from_slice(eol);
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn body_is_kept_and_controls_are_read() {
        let source = "From: a@example.com\r\nTo: b@example.com\r\nBcc: c@example.com\r\nX-EE-Send-At: 2030-01-01T00:00:00Z\r\nX-EE-Tracking-Enabled: yes\r\nSubject: hi\r\n\r\nbody line\r\n\r\n\r\n";
        let payload = json!({"raw": b64(source)});
        let m = prepare(payload.as_object().unwrap(), None, "example.com", 0).unwrap();
        let out = String::from_utf8(m.raw).unwrap();
        assert!(out.ends_with("\r\n\r\nbody line\r\n\r\n\r\n"), "{out}");
        assert!(!out.contains("Bcc") && !out.contains("X-EE-"), "{out}");
        assert!(out.contains("Message-ID: <") && out.contains("MIME-Version: 1.0"));
        assert_eq!(m.recipients, ["b@example.com", "c@example.com"]);
        assert_eq!(m.controls.tracking, Some(true));
        assert_eq!(m.controls.send_at, Some(1_893_456_000_000));
        assert_eq!(m.subject.as_deref(), Some("hi"));
    }

    #[test]
    fn payload_addresses_replace_lines() {
        let source = "From: a@example.com\nTo: b@example.com\nMessage-ID: <x@y>\n\nbody";
        let payload = json!({"raw": b64(source), "to": [{"address": "z@example.com"}],
            "headers": {"References": "<r@y>"}});
        let m = prepare(payload.as_object().unwrap(), None, "example.com", 0).unwrap();
        let out = String::from_utf8(m.raw).unwrap();
        assert!(
            out.contains("To: <z@example.com>\n") && !out.contains("b@example.com"),
            "{out}"
        );
        assert!(out.contains("References: <r@y>\n") && out.ends_with("\n\nbody"));
        assert_eq!(m.message_id, "<x@y>");
        assert_eq!(m.recipients, ["z@example.com"]);
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        for bad in ["not base64!", &b64("just some words"), &b64("")] {
            let payload = json!({"raw": bad});
            let e = prepare(payload.as_object().unwrap(), None, "x", 0).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }
}
