//! The human-readable wording of bounces from MTAs and providers that do not (or not only) send
//! RFC 3464 reports: Gmail, Exchange/Office 365, qmail and Yahoo, Zoho, Exim, Amazon SES/WorkMail,
//! Postfix, and bare `5xx x.y.z` lines. Works on decoded text only; MIME is `bounce`'s job.

use std::sync::LazyLock;

use regex::Regex;

use crate::fields::{bare_address, find_address, find_enhanced_status};

/// What the wording of a bounce says about the failed recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextFinding {
    pub recipient: Option<String>,
    pub action: &'static str,
    pub message: Option<String>,
    pub status: Option<String>,
    pub mta: Option<String>,
}

impl TextFinding {
    fn failed(recipient: Option<String>, message: Option<String>, mta: Option<String>) -> Self {
        TextFinding {
            recipient,
            action: "failed",
            status: message.as_deref().and_then(find_enhanced_status),
            message,
            mta,
        }
    }
}

/// Markers after which a bounce quotes the original message (or its headers) inline.
const COPY_MARKERS: &[&str] = &[
    "------ This is a copy of the message",
    "--- Below this line is a copy of the message",
    "--- Enclosed are the original headers of the message",
    "----- Original message -----",
    "----- Message header follows -----",
    "Original message headers:",
];

/// Splits a bounce text into the report and the quoted copy of the original, if any. Without a
/// marker, a `Received:`/`Return-Path:` line after a blank line starts the copy (Zoho's layout).
pub(crate) fn split_returned_copy(text: &str) -> (&str, Option<&str>) {
    let mut offset = 0;
    let mut previous_blank = false;
    let mut header_start = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if COPY_MARKERS.iter().any(|m| trimmed.starts_with(m)) {
            return (&text[..offset], Some(&text[offset + line.len()..]));
        }
        if header_start.is_none()
            && previous_blank
            && (line.starts_with("Received: ") || line.starts_with("Return-Path: "))
        {
            header_start = Some(offset);
        }
        previous_blank = trimmed.is_empty();
        offset += line.len();
    }
    match header_start {
        Some(at) => (&text[..at], Some(&text[at..])),
        None => (text, None),
    }
}

/// The header section of an inline copy: skips blank lines and the Exim size notes before it.
pub(crate) fn copy_header_section(copy: &str) -> &str {
    let mut offset = 0;
    for line in copy.split_inclusive('\n') {
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with("------") {
            break;
        }
        offset += line.len();
    }
    &copy[offset..]
}

/// Reads the first vendor wording that matches `report` (the text before any quoted copy).
pub(crate) fn read(report: &str) -> Option<TextFinding> {
    let lines: Vec<&str> = report.lines().collect();
    gmail(&lines)
        .or_else(|| exchange(&lines))
        .or_else(|| qmail(&lines))
        .or_else(|| zoho(&lines))
        .or_else(|| exim(&lines))
        .or_else(|| amazon(&lines, report))
        .or_else(|| postfix(&lines))
        .or_else(|| generic(&lines))
}

/// Non-blank lines of the paragraph that starts at or after `from`.
fn paragraph_after<'a>(lines: &[&'a str], from: usize) -> Vec<&'a str> {
    lines
        .iter()
        .skip(from)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim())
        .collect()
}

fn joined(parts: &[&str]) -> Option<String> {
    let text = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty()).then_some(text)
}

fn position(lines: &[&str], needle: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(needle))
}

/// Gmail's older template: "Delivery to the following recipient failed permanently:" (or "has
/// been delayed:"), the address indented on its own line, then the remote server's answer.
fn gmail(lines: &[&str]) -> Option<TextFinding> {
    static MTA: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\bby ([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\.? \[").expect("static regex")
    });
    let start = position(lines, "Delivery to the following recipient")?;
    let delayed = lines[start].contains("delayed");
    let recipient = paragraph_after(lines, start + 1)
        .first()
        .and_then(|l| find_address(l));
    let message = match position(lines, "The error that the other server returned was:") {
        Some(at) => {
            let same_line = lines[at]
                .split_once("returned was:")
                .map(|(_, rest)| rest.trim())
                .unwrap_or_default();
            if same_line.is_empty() {
                joined(&paragraph_after(lines, at + 1))
            } else {
                Some(same_line.to_string())
            }
        }
        None => lines
            .iter()
            .position(|l| l.contains("Technical details of"))
            .and_then(|at| joined(&paragraph_after(lines, at + 1))),
    };
    let mta = lines
        .iter()
        .find_map(|l| MTA.captures(l).map(|c| c[1].to_string()));
    let mut finding = TextFinding::failed(recipient, message, mta);
    if delayed {
        finding.action = "delayed";
    }
    Some(finding)
}

/// Exchange and Office 365 NDRs: "Delivery has failed to these recipients or groups:" or "Your
/// message to X couldn't be delivered.", then "Diagnostic information for administrators:" with
/// the generating/receiving server, the recipient and the remote answer.
fn exchange(lines: &[&str]) -> Option<TextFinding> {
    static YOUR_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"Your message to (\S+) couldn't be delivered").expect("static regex")
    });
    static REMOTE_RETURNED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)Remote server returned '(.*)'").expect("static regex"));
    let failed_to = position(lines, "Delivery has failed to these recipients or");
    let your_message = lines
        .iter()
        .find_map(|l| YOUR_MESSAGE.captures(l).and_then(|c| bare_address(&c[1])));
    let diagnostics = position(lines, "Diagnostic information for administrators:");
    if failed_to.is_none() && your_message.is_none() && diagnostics.is_none() {
        return None;
    }
    let mut recipient = your_message.or_else(|| {
        failed_to.and_then(|at| {
            paragraph_after(lines, at + 1)
                .first()
                .and_then(|l| find_address(l))
        })
    });
    let (mut generating, mut receiving, mut message) = (None, None, None);
    if let Some(at) = diagnostics {
        let mut diagnostic_recipient = None;
        for line in lines.iter().skip(at + 1).map(|l| l.trim()) {
            if line.is_empty() {
                continue;
            }
            if let Some(host) = line.strip_prefix("Generating server:") {
                generating = host.split_whitespace().next().map(str::to_string);
            } else if let Some(host) = line.strip_prefix("Receiving server:") {
                receiving = host.split_whitespace().next().map(str::to_string);
            } else if diagnostic_recipient.is_none() {
                diagnostic_recipient = bare_address(line);
            } else {
                let answer = match REMOTE_RETURNED.captures(line) {
                    Some(c) => c[1].to_string(),
                    None => line
                        .trim_start_matches('#')
                        .trim_end_matches("#SMTP#")
                        .trim_end()
                        .trim_end_matches('#')
                        .trim()
                        .to_string(),
                };
                message = Some(answer).filter(|m| !m.is_empty());
                break;
            }
        }
        if diagnostic_recipient.is_some() {
            recipient = diagnostic_recipient;
        }
    }
    Some(TextFinding::failed(
        recipient,
        message,
        receiving.or(generating),
    ))
}

/// qmail-send ("Hi. This is the qmail-send program at ...") and Yahoo, which kept its wording:
/// a `<address>:` line followed by what the remote host said.
fn qmail(lines: &[&str]) -> Option<TextFinding> {
    static RECIPIENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\s*<([^<>\s]+@[^<>\s]+)>:\s*$").expect("static regex"));
    static GIVING_UP: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^Giving up on (\S+?)\.?$").expect("static regex"));
    static REMOTE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:Connected to )?(\S+?)(?: but| does not like| failed after)")
            .expect("static regex")
    });
    let start = lines.iter().position(|l| {
        l.contains("This is the qmail-send program")
            || l.contains("wasn't able to deliver your message to the following addresses")
            || l.contains("unable to deliver your message to the following address")
    })?;
    let (at, recipient) = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find_map(|(i, l)| RECIPIENT.captures(l).map(|c| (i, c[1].to_string())))?;
    let block: Vec<&str> = lines
        .iter()
        .skip(at + 1)
        .map(|l| l.trim())
        .take_while(|l| !l.is_empty() && !l.starts_with('<'))
        .collect();
    let mut mta = None;
    let mut message_lines = Vec::new();
    let mut said = false;
    for line in &block {
        if let Some(c) = GIVING_UP.captures(line) {
            mta = Some(c[1].to_string());
            continue;
        }
        if let Some(rest) = line.split_once("Remote host said:").map(|(_, r)| r) {
            said = true;
            message_lines.clear();
            message_lines.push(rest);
            continue;
        }
        if !said && let Some(c) = REMOTE.captures(line) {
            mta.get_or_insert_with(|| c[1].to_string());
        }
        message_lines.push(line);
    }
    Some(TextFinding::failed(
        Some(recipient),
        joined(&message_lines),
        mta,
    ))
}

/// Zoho Mail: Exim's opening sentence, then `<address> <reason>, ERROR_CODE :550, ERROR_CODE
/// :<answer>` (or a `[Status: Error, Address: <...>, ResponseCode 421, , <answer>]` line).
fn zoho(lines: &[&str]) -> Option<TextFinding> {
    static STATUS_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\[Status: \w+, Address: <([^<>]+)>, ResponseCode (\d{3}),[ ,]*(.*?)\]")
            .expect("static regex")
    });
    position(
        lines,
        "This message was created automatically by mail delivery software",
    )?;
    for line in lines {
        if let Some((head, _)) = line.split_once("ERROR_CODE") {
            let message = line
                .split("ERROR_CODE")
                .skip(1)
                .map(|part| {
                    part.trim()
                        .trim_start_matches(':')
                        .trim()
                        .trim_end_matches(',')
                })
                .collect::<Vec<_>>();
            return Some(TextFinding::failed(
                find_address(head),
                joined(&message),
                None,
            ));
        }
        if let Some(c) = STATUS_LINE.captures(line) {
            let message = format!("{} {}", &c[2], &c[3]);
            return Some(TextFinding::failed(
                bare_address(&c[1]),
                Some(message.trim().to_string()),
                None,
            ));
        }
    }
    None
}

/// Exim: "The following address(es) failed:", then the indented address and its details (the
/// host, "SMTP error from remote mail server after ...:", the answer).
fn exim(lines: &[&str]) -> Option<TextFinding> {
    static HOST: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^host (\S+) \[[^\]]*\]:?\s*(.*)$").expect("static regex"));
    let start = lines.iter().position(|l| {
        l.contains("following address(es) failed") || l.contains("following addresses failed")
    })?;
    let block = paragraph_after(lines, start + 1);
    let (first, details) = block.split_first()?;
    let recipient = find_address(first);
    let mut mta = None;
    let mut message_lines: Vec<&str> = Vec::new();
    for line in details {
        if let Some(c) = HOST.captures(line) {
            mta = Some(c[1].to_string());
            if let Some(rest) = c.get(2).map(|m| m.as_str()).filter(|r| !r.is_empty()) {
                message_lines.push(rest);
            }
        } else if line.starts_with("SMTP error from remote mail") {
            message_lines.clear();
            if let Some((_, rest)) = line.split_once(">:") {
                message_lines.push(rest);
            }
        } else {
            message_lines.push(line);
        }
    }
    Some(TextFinding::failed(recipient, joined(&message_lines), mta))
}

/// Amazon SES (and WorkMail, which sends through it): "An error occurred while trying to deliver
/// the mail to the following recipients:" and the addresses; the answer, if any, is a 5xx line.
fn amazon(lines: &[&str], report: &str) -> Option<TextFinding> {
    let start = position(
        lines,
        "An error occurred while trying to deliver the mail to the following recipients",
    )?;
    let recipient = paragraph_after(lines, start + 1)
        .first()
        .and_then(|l| find_address(l));
    let message = generic(&report.lines().collect::<Vec<_>>()).and_then(|f| f.message);
    Some(TextFinding::failed(recipient, message, None))
}

/// Postfix bounce(8): "<address>: host mx.example[192.0.2.1] said: 550 ... (in reply to RCPT TO
/// command)", continued on indented lines.
fn postfix(lines: &[&str]) -> Option<TextFinding> {
    static RECIPIENT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*<([^<>\s]+@[^<>\s]+)>(?: \(expanded from <[^<>]*>\))?:\s+(\S.*)$")
            .expect("static regex")
    });
    static SAID: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^host (\S+?)(?:\[[^\]]*\])? said:\s*(.*)$").expect("static regex")
    });
    static IN_REPLY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\s*\(in reply to [^()]*\)\s*$").expect("static regex"));
    let (at, recipient, first) = lines.iter().enumerate().find_map(|(i, l)| {
        RECIPIENT
            .captures(l)
            .map(|c| (i, c[1].to_string(), c[2].to_string()))
    })?;
    let mut parts = vec![first.as_str()];
    parts.extend(
        lines
            .iter()
            .skip(at + 1)
            .take_while(|l| l.starts_with([' ', '\t']) && !l.trim().is_empty()),
    );
    let full = joined(&parts).unwrap_or_default();
    let (mta, message) = match SAID.captures(&full) {
        Some(c) => (Some(c[1].to_string()), c[2].to_string()),
        None => (None, full.clone()),
    };
    let message = IN_REPLY.replace(&message, "").into_owned();
    Some(TextFinding::failed(
        Some(recipient),
        Some(message).filter(|m| !m.is_empty()),
        mta,
    ))
}

/// Any line with a permanent SMTP reply and enhanced code, e.g. "550 5.1.1 <a@b>: unknown".
fn generic(lines: &[&str]) -> Option<TextFinding> {
    static REPLY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b5\d\d[ -]#?5\.\d{1,3}\.\d{1,3}\b").expect("static regex"));
    lines.iter().find_map(|line| {
        let m = REPLY.find(line)?;
        let message = line[m.start()..].trim().to_string();
        Some(TextFinding::failed(find_address(line), Some(message), None))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_is_split_at_marker() {
        let text = "report\n\n--- Below this line is a copy of the message.\n\nMessage-ID: <a@b>\n";
        let (report, copy) = split_returned_copy(text);
        assert_eq!(report, "report\n\n");
        assert_eq!(copy, Some("\nMessage-ID: <a@b>\n"));
        assert_eq!(copy_header_section(copy.unwrap()), "Message-ID: <a@b>\n");
    }

    #[test]
    fn copy_starts_at_received_without_marker() {
        let (report, copy) = split_returned_copy("a\n\nReceived: from x\nMessage-ID: <m@x>\n");
        assert_eq!(report, "a\n\n");
        assert_eq!(copy, Some("Received: from x\nMessage-ID: <m@x>\n"));
    }

    #[test]
    fn postfix_local_reason_without_host() {
        let finding = read("<nobody@example.org>: unknown user: \"nobody\"\n").unwrap();
        assert_eq!(finding.recipient.as_deref(), Some("nobody@example.org"));
        assert_eq!(finding.message.as_deref(), Some("unknown user: \"nobody\""));
        assert_eq!(finding.mta, None);
    }

    #[test]
    fn qmail_local_mailbox() {
        let text = "Hi. This is the qmail-send program at mx.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n";
        let finding = read(text).unwrap();
        assert_eq!(finding.recipient.as_deref(), Some("nobody@example.org"));
        assert_eq!(
            finding.message.as_deref(),
            Some("Sorry, no mailbox here by that name. (#5.1.1)")
        );
        assert_eq!(finding.status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn zoho_status_line() {
        let text = "This message was created automatically by mail delivery software.\n\n[Status: Error, Address: <a@example.org>, ResponseCode 421, , Host not reachable.]\n";
        let finding = read(text).unwrap();
        assert_eq!(finding.recipient.as_deref(), Some("a@example.org"));
        assert_eq!(finding.message.as_deref(), Some("421 Host not reachable."));
    }

    #[test]
    fn amazon_text_without_report() {
        let text = "An error occurred while trying to deliver the mail to the following recipients:\r\nnobody@example.com\r\n";
        let finding = read(text).unwrap();
        assert_eq!(finding.recipient.as_deref(), Some("nobody@example.com"));
        assert_eq!(finding.message, None);
    }

    #[test]
    fn generic_line_needs_permanent_code() {
        assert_eq!(read("450 4.2.0 try later <a@b.example>\n"), None);
        let finding = read("Reason: 550 5.7.1 <a@b.example> blocked\n").unwrap();
        assert_eq!(finding.recipient.as_deref(), Some("a@b.example"));
        assert_eq!(
            finding.message.as_deref(),
            Some("550 5.7.1 <a@b.example> blocked")
        );
        assert_eq!(finding.status.as_deref(), Some("5.7.1"));
    }

    #[test]
    fn prose_is_not_a_bounce() {
        assert_eq!(read("I am out of the office until Monday.\n"), None);
    }
}
