//! Bounces, delivery reports and complaints among new messages (spec §21): which new
//! messages are worth downloading (from their headers, in Inbox or Junk only), what each turns
//! out to be, and the events and stored bounce records that follow its `messageNew`.

use serde_json::{Value, json};

use emailengine_feedback::{BounceRecord, Feedback, PartFacts, Placement, candidates_from_headers};
use emailengine_mail::events::EventBatch;
use emailengine_store::Change;

/// Where a folder sits for feedback purposes; `None` for folders never searched.
pub fn placement(path: &str, special_use: Option<&str>) -> Option<Placement> {
    let special = if path.eq_ignore_ascii_case("INBOX") {
        Some("\\Inbox")
    } else {
        special_use
    };
    let p = Placement::from_special_use(special);
    (p.inbox || p.junk).then_some(p)
}

/// True when a new message's headers make it a feedback candidate.
pub fn is_candidate(header: &[u8], placement: Placement) -> bool {
    let c = candidates_from_headers(header, PartFacts::default(), placement);
    c.bounce || c.delivery_report || c.complaint
}

/// Classifies a downloaded candidate and marks its `messageNew` payload (`isBounce`,
/// `isComplaint`, `relatedMessageId`, `deliveryReport`).
pub fn classify(raw: &[u8], placement: Placement, data: &mut Value) -> Feedback {
    let feedback = emailengine_feedback::detect(raw, placement);
    match &feedback {
        Feedback::Bounce(_) => data["isBounce"] = json!(true),
        Feedback::Complaint(_) => data["isComplaint"] = json!(true),
        Feedback::DeliveryReport(report) => {
            data["deliveryReport"] = serde_json::to_value(report).unwrap_or(Value::Null);
        }
        Feedback::None => {}
    }
    if let Some(related) = feedback.related_message_id() {
        data["relatedMessageId"] = json!(related);
    }
    feedback
}

/// Adds what a bounce or complaint raises, after the message's own `messageNew`: the event,
/// and for a bounce its record under the original's Message-ID.
pub fn report(
    batch: &mut EventBatch,
    account: &str,
    path: &str,
    special_use: Option<&str>,
    message: &str,
    feedback: &Feedback,
    now_ms: i64,
) {
    match feedback {
        Feedback::Bounce(bounce) => {
            batch.event(
                account,
                "messageBounce",
                Some(path),
                special_use,
                bounce.webhook_data(message),
            );
            batch.change(Change::AppendBounce {
                account: account.to_string(),
                message_id: bounce.message_id.clone(),
                record: BounceRecord::new(bounce, message, now_ms).encode(),
            });
        }
        Feedback::Complaint(complaint) => batch.event(
            account,
            "messageComplaint",
            Some(path),
            special_use,
            complaint.webhook_data(message),
        ),
        Feedback::DeliveryReport(_) | Feedback::None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inbox_and_junk_are_searched() {
        assert!(placement("INBOX", None).is_some());
        assert!(placement("Spam", Some("\\Junk")).is_some());
        assert!(placement("Sent", Some("\\Sent")).is_none());
        assert!(placement("Archive", None).is_none());
    }

    #[test]
    fn bounce_headers_make_a_candidate() {
        let inbox = placement("INBOX", None).unwrap();
        let dsn = b"From: Mail Delivery System <MAILER-DAEMON@example.com>\r\nSubject: Undelivered Mail Returned to Sender\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n";
        assert!(is_candidate(dsn, inbox));
        assert!(!is_candidate(
            b"From: ann@example.com\r\nSubject: hello\r\n\r\n",
            inbox
        ));
    }
}
