//! Bounces, delivery reports and complaints in incoming messages (EmailEngine's §21), as pure
//! functions over message bytes: no I/O, no webhooks, no storage access.
//!
//! Start at [`detect`]: given a new message's raw bytes and where it sits, it says what kind of
//! feedback the message is. During sync, [`candidates_from_headers`] tells from the headers alone
//! (plus body-structure facts when known) whether the full message is worth downloading.
//! [`BounceRecord`] is the stored per-original bounce list and its listing shape.

mod bounce;
mod candidate;
mod complaint;
mod dsn;
mod error;
mod fields;
mod parts;
mod plain_text;
mod record;

use mail_parser::MessageParser;

pub use bounce::{Bounce, BounceResponse, parse_bounce};
pub use candidate::{Candidates, PartFacts, Placement, candidates, candidates_from_headers};
pub use complaint::{ArfReport, ComplainedHeaders, Complaint, parse_complaint};
pub use dsn::DeliveryReport;
pub use error::FeedbackError;
pub use fields::HeaderMap;
pub use record::{
    BounceEntry, BounceEntryResponse, BounceRecord, bounce_listing, decode_bounce_records,
};

use dsn::DeliveryStatus;
use parts::ReportParts;

/// What an incoming message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Send `messageBounce`; store a [`BounceRecord`] under the original's Message-ID.
    Bounce(Bounce),
    /// A delivered/delayed DSN in Inbox: becomes the message's `deliveryReport`, not a bounce.
    DeliveryReport(DeliveryReport),
    /// Send `messageComplaint`.
    Complaint(Box<Complaint>),
    None,
}

impl Feedback {
    /// The original's Message-ID this feedback is about (the `relatedMessageId` of the
    /// feedback message's `messageNew`), when known.
    pub fn related_message_id(&self) -> Option<&str> {
        match self {
            Feedback::Bounce(bounce) => Some(&bounce.message_id),
            Feedback::Complaint(complaint) => complaint.headers.message_id.as_deref(),
            Feedback::DeliveryReport(_) | Feedback::None => None,
        }
    }
}

/// Classifies a full raw message found in a folder with the given placement, applying the
/// candidate rules first (§21.1): a delivery report wins over a bounce, a bounce over a complaint.
pub fn detect(raw: &[u8], placement: Placement) -> Feedback {
    let Some(message) = MessageParser::new().parse(raw) else {
        return Feedback::None;
    };
    let parts = ReportParts::of(&message);
    let wanted = candidate::candidates_of(&message, parts.facts(), placement);
    if wanted.delivery_report
        && let Some(report) = delivery_report_from(&parts)
    {
        return Feedback::DeliveryReport(report);
    }
    if wanted.bounce
        && let Some(bounce) = bounce::bounce_from(&message, &parts)
    {
        return Feedback::Bounce(bounce);
    }
    if wanted.complaint
        && let Some(complaint) = complaint::complaint_from(&message, &parts)
    {
        return Feedback::Complaint(Box::new(complaint));
    }
    Feedback::None
}

/// The `deliveryReport` of a full raw message whose DSN says delivered or delayed.
pub fn parse_delivery_report(raw: &[u8]) -> Option<DeliveryReport> {
    let message = MessageParser::new().parse(raw)?;
    delivery_report_from(&ReportParts::of(&message))
}

fn delivery_report_from(parts: &ReportParts<'_>) -> Option<DeliveryReport> {
    let status = DeliveryStatus::parse(parts.delivery_status.as_deref()?);
    status
        .action()
        .filter(|a| dsn::is_report_action(a))
        .map(|_| DeliveryReport::from_status(&status))
}
