//! Candidate selection: the cheap test, run on every new message during sync, of whether a
//! message might be a bounce, a delivery report or a complaint and so deserves a full download
//! and parse. Reads headers and, when the caller has them, facts from the body structure.

use std::sync::LazyLock;

use mail_parser::{Message, MessageParser, MimeHeaders};
use regex::Regex;

/// Where a message sits: only Inbox and Junk messages are ever looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    pub inbox: bool,
    pub junk: bool,
}

impl Placement {
    /// From the folder's special-use flag (`\Inbox`, `\Junk`, ...).
    pub fn from_special_use(special_use: Option<&str>) -> Self {
        Placement::from_labels(special_use)
    }

    /// From the flags and labels that apply to the message (a folder's special-use plus, on
    /// Gmail, the message's `X-GM-LABELS`, where spam is also spelled `\Spam`).
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Self {
        let mut placement = Placement::default();
        for label in labels {
            if label.eq_ignore_ascii_case("\\Inbox") {
                placement.inbox = true;
            } else if label.eq_ignore_ascii_case("\\Junk") || label.eq_ignore_ascii_case("\\Spam") {
                placement.junk = true;
            }
        }
        placement
    }
}

/// What the body structure (IMAP BODYSTRUCTURE, or a full parse) says about attachments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartFacts {
    /// A `message/delivery-status` (or `message/global-delivery-status`) part.
    pub delivery_status: bool,
    /// A `message/feedback-report` part.
    pub feedback_report: bool,
    /// An embedded `message/rfc822` (or `message/global`) part.
    pub embedded_message: bool,
}

impl PartFacts {
    /// From the `type/subtype` of every body part, in any case.
    pub fn from_content_types<'a>(content_types: impl IntoIterator<Item = &'a str>) -> Self {
        let mut facts = PartFacts::default();
        for ct in content_types {
            let ct = ct.trim();
            let is = |name: &str| ct.eq_ignore_ascii_case(name);
            if is("message/delivery-status") || is("message/global-delivery-status") {
                facts.delivery_status = true;
            } else if is("message/feedback-report") {
                facts.feedback_report = true;
            } else if is("message/rfc822") || is("message/global") {
                facts.embedded_message = true;
            }
        }
        facts
    }
}

/// Which full parses are worth running on a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Candidates {
    pub bounce: bool,
    /// A `multipart/report; report-type=delivery-status` in Inbox: delivered/delayed reports
    /// become a `deliveryReport` and are then not bounces.
    pub delivery_report: bool,
    pub complaint: bool,
}

impl Candidates {
    pub fn any(self) -> bool {
        self.bounce || self.delivery_report || self.complaint
    }
}

/// Candidate test over a header section (or a whole message; only its headers are read).
///
/// A top-level `multipart/report` counts as having the part its `report-type` names, so with
/// `PartFacts::default()` only the "`message/rfc822` attached and a failure-like subject" rule
/// needs body-structure facts to fire.
pub fn candidates_from_headers(
    headers: &[u8],
    parts: PartFacts,
    placement: Placement,
) -> Candidates {
    let Some(message) = MessageParser::new().parse_headers(headers) else {
        return Candidates::default();
    };
    let report = report_type(&message);
    let parts = PartFacts {
        delivery_status: parts.delivery_status || report == Some(ReportType::DeliveryStatus),
        feedback_report: parts.feedback_report || report == Some(ReportType::FeedbackReport),
        embedded_message: parts.embedded_message,
    };
    candidates_of(&message, parts, placement)
}

/// Candidate test over a whole raw message, with part facts from a full parse.
pub fn candidates(raw: &[u8], placement: Placement) -> Candidates {
    let Some(message) = MessageParser::new().parse(raw) else {
        return Candidates::default();
    };
    let parts = crate::parts::ReportParts::of(&message).facts();
    candidates_of(&message, parts, placement)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportType {
    DeliveryStatus,
    FeedbackReport,
}

fn report_type(message: &Message<'_>) -> Option<ReportType> {
    let ct = message.content_type()?;
    let is_report = ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"));
    if !is_report {
        return None;
    }
    let report_type = ct
        .attributes()?
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("report-type"))?
        .value
        .trim();
    if report_type.eq_ignore_ascii_case("delivery-status") {
        Some(ReportType::DeliveryStatus)
    } else if report_type.eq_ignore_ascii_case("feedback-report") {
        Some(ReportType::FeedbackReport)
    } else {
        None
    }
}

static FROM_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)Mail Delivery System|Mail Delivery Subsystem|Internet Mail Delivery|Mailer[- ]?Daemon|NDR Administrator")
        .expect("static regex")
});
static FROM_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)mailer-?daemon@|postmaster@|^mailer-?daemon$").expect("static regex")
});
static ATTACHED_FAILURE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)Undeliver|Failed|Returned|Failure|Error").expect("static regex")
});
static FAILURE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^Undeliverable Message$|Mail delivery failed|Delivery Status Notification|Returned mail|Failure Notice|error sending your mail")
        .expect("static regex")
});

pub(crate) fn candidates_of(
    message: &Message<'_>,
    parts: PartFacts,
    placement: Placement,
) -> Candidates {
    let from = message.from().and_then(|a| a.first());
    let from_name = from.and_then(|a| a.name.as_deref()).unwrap_or_default();
    let from_address = from.and_then(|a| a.address.as_deref()).unwrap_or_default();
    let subject = message.subject().unwrap_or_default().trim();
    let auto_submitted = message.header_raw("Auto-Submitted").is_some();

    let bounce = (placement.inbox || placement.junk)
        && (FROM_NAME.is_match(from_name)
            || FROM_ADDRESS.is_match(from_address)
            || (starts_with_ignore_case(subject, "Undeliverable:") && auto_submitted)
            || parts.delivery_status
            || (parts.embedded_message && ATTACHED_FAILURE_SUBJECT.is_match(subject))
            || FAILURE_SUBJECT.is_match(subject));
    let delivery_report =
        placement.inbox && report_type(message) == Some(ReportType::DeliveryStatus);
    let complaint = placement.inbox
        && (parts.feedback_report
            || (is_hotmail_staff(from_address, subject) && parts.embedded_message));
    Candidates {
        bounce,
        delivery_report,
        complaint,
    }
}

/// Hotmail's own complaint reports: from `staff@hotmail.com`, "complaint" in the subject.
pub(crate) fn is_hotmail_staff(from_address: &str, subject: &str) -> bool {
    from_address.eq_ignore_ascii_case("staff@hotmail.com")
        && subject.to_ascii_lowercase().contains("complaint")
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INBOX: Placement = Placement {
        inbox: true,
        junk: false,
    };
    const JUNK: Placement = Placement {
        inbox: false,
        junk: true,
    };

    fn headers(text: &str) -> Candidates {
        candidates_from_headers(text.as_bytes(), PartFacts::default(), INBOX)
    }

    #[test]
    fn placement_from_special_use_and_labels() {
        assert_eq!(Placement::from_special_use(Some("\\Inbox")), INBOX);
        assert_eq!(Placement::from_special_use(Some("\\Junk")), JUNK);
        assert_eq!(
            Placement::from_special_use(Some("\\Sent")),
            Placement::default()
        );
        assert_eq!(Placement::from_labels(["\\Important", "\\Inbox"]), INBOX);
        assert_eq!(Placement::from_labels(["\\Spam"]), JUNK);
    }

    #[test]
    fn from_name_and_address_rules() {
        assert!(headers("From: Mail Delivery Subsystem <x@example.com>\r\n\r\n").bounce);
        assert!(headers("From: NDR Administrator <x@example.com>\r\n\r\n").bounce);
        assert!(headers("From: <MAILER-DAEMON@example.com>\r\n\r\n").bounce);
        assert!(headers("From: postmaster@example.com\r\n\r\n").bounce);
        assert!(!headers("From: Alice <alice@example.com>\r\nSubject: lunch\r\n\r\n").bounce);
    }

    #[test]
    fn subject_rules() {
        assert!(headers("From: a@example.com\r\nSubject: Undeliverable: hi\r\nAuto-Submitted: auto-replied\r\n\r\n").bounce);
        assert!(!headers("From: a@example.com\r\nSubject: Undeliverable: hi\r\n\r\n").bounce);
        assert!(headers("From: a@example.com\r\nSubject: Undeliverable Message\r\n\r\n").bounce);
        assert!(
            !headers("From: a@example.com\r\nSubject: Undeliverable Message again\r\n\r\n").bounce
        );
        assert!(headers("From: a@example.com\r\nSubject: Failure Notice\r\n\r\n").bounce);
        assert!(
            headers("From: a@example.com\r\nSubject: Returned mail: see transcript\r\n\r\n").bounce
        );
        let attached = PartFacts {
            embedded_message: true,
            ..PartFacts::default()
        };
        let raw = b"From: a@example.com\r\nSubject: Message Error\r\n\r\n";
        assert!(candidates_from_headers(raw, attached, INBOX).bounce);
        assert!(!candidates_from_headers(raw, PartFacts::default(), INBOX).bounce);
    }

    #[test]
    fn report_type_counts_as_part_and_marks_delivery_reports() {
        let raw = "From: a@example.com\r\nContent-Type: multipart/report; Report-Type=\"delivery-status\"; boundary=x\r\n\r\n";
        assert_eq!(
            headers(raw),
            Candidates {
                bounce: true,
                delivery_report: true,
                complaint: false
            }
        );
        let in_junk = candidates_from_headers(raw.as_bytes(), PartFacts::default(), JUNK);
        assert_eq!(
            in_junk,
            Candidates {
                bounce: true,
                delivery_report: false,
                complaint: false
            }
        );
        let arf = "From: a@example.com\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n";
        assert!(headers(arf).complaint);
        assert!(!headers(arf).bounce);
    }

    #[test]
    fn other_folders_are_never_candidates() {
        let raw = b"From: MAILER-DAEMON@example.com\r\nSubject: Returned mail\r\n\r\n";
        assert!(!candidates_from_headers(raw, PartFacts::default(), Placement::default()).any());
    }

    #[test]
    fn hotmail_complaint_needs_embedded_message() {
        let raw =
            b"From: staff@hotmail.com\r\nSubject: complaint about message from 192.0.2.1\r\n\r\n";
        let attached = PartFacts {
            embedded_message: true,
            ..PartFacts::default()
        };
        assert!(candidates_from_headers(raw, attached, INBOX).complaint);
        assert!(!candidates_from_headers(raw, PartFacts::default(), INBOX).complaint);
        assert!(!candidates_from_headers(raw, attached, JUNK).complaint);
    }

    #[test]
    fn part_facts_from_body_structure_types() {
        assert_eq!(
            PartFacts::from_content_types([
                "text/plain",
                "Message/Delivery-Status",
                "message/rfc822"
            ]),
            PartFacts {
                delivery_status: true,
                feedback_report: false,
                embedded_message: true
            }
        );
    }
}
