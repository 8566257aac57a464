//! RFC 3464 `message/delivery-status` bodies: the per-message group, the per-recipient groups, the
//! recipient a report is about, and the `deliveryReport` object for delivered/delayed reports.
//! Knows nothing of plain-text bounce wording; `bounce` combines both.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::fields::{self, Field};

/// A parsed delivery-status body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryStatus {
    pub per_message: Vec<Field>,
    pub recipients: Vec<Vec<Field>>,
}

impl DeliveryStatus {
    pub fn parse(text: &str) -> Self {
        let mut groups = fields::parse_groups(text).into_iter();
        let mut per_message = Vec::new();
        let mut recipients = Vec::new();
        if let Some(group) = groups.next() {
            if is_recipient_group(&group) {
                recipients.push(group);
            } else {
                per_message = group;
            }
        }
        recipients.extend(groups.filter(|g| is_recipient_group(g)));
        DeliveryStatus {
            per_message,
            recipients,
        }
    }

    /// The recipient group a report is about: the first that failed, else the first one.
    pub fn chosen_recipient(&self) -> Option<&[Field]> {
        self.recipients
            .iter()
            .find(|g| action_of(g).is_some_and(|a| a.starts_with("failed")))
            .or_else(|| self.recipients.first())
            .map(Vec::as_slice)
    }

    /// The field of the chosen recipient group, else of the per-message group.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.chosen_recipient()
            .and_then(|g| fields::first(g, name))
            .or_else(|| fields::first(&self.per_message, name))
    }

    /// The chosen recipient's `Action`, lower-cased, without comments.
    pub fn action(&self) -> Option<String> {
        self.chosen_recipient().and_then(action_of)
    }
}

fn is_recipient_group(group: &[Field]) -> bool {
    group.iter().any(|(name, _)| {
        matches!(
            name.as_str(),
            "final-recipient" | "original-recipient" | "action"
        )
    })
}

fn action_of(group: &[Field]) -> Option<String> {
    let action = fields::first(group, "action")?;
    action
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .next()
        .filter(|a| !a.is_empty())
        .map(str::to_ascii_lowercase)
}

/// The `deliveryReport` of a `delivered`/`delayed` DSN: the DSN's fields with camelCased names,
/// per-message fields first, then those of the recipient the report is about; values as written
/// (unfolded). A name seen twice keeps its first value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport(Vec<(String, String)>);

impl DeliveryReport {
    pub(crate) fn from_status(status: &DeliveryStatus) -> Self {
        let recipient = status.chosen_recipient().unwrap_or_default();
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in status.per_message.iter().chain(recipient) {
            let key = fields::camel_case(name);
            if !out.iter().any(|(k, _)| *k == key) {
                out.push((key, value.clone()));
            }
        }
        DeliveryReport(out)
    }

    /// The value of a camelCased field (`action`, `finalRecipient`, `reportingMta`, ...).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Fields in report order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Serialize for DeliveryReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Whether the action means the message arrived or is still on its way (so no bounce).
pub(crate) fn is_report_action(action: &str) -> bool {
    action.starts_with("delivered") || action.starts_with("delayed")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; ok@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\nFinal-Recipient: rfc822; bad@example.org\r\nAction: Failed (no such user)\r\nStatus: 5.1.1\r\n";

    #[test]
    fn failed_recipient_is_chosen_over_earlier_ones() {
        let status = DeliveryStatus::parse(MULTI);
        assert_eq!(status.recipients.len(), 2);
        assert_eq!(status.action().as_deref(), Some("failed"));
        assert_eq!(
            status.field("final-recipient"),
            Some("rfc822; bad@example.org")
        );
        assert_eq!(status.field("reporting-mta"), Some("dns; mx.example.net"));
    }

    #[test]
    fn report_without_per_message_group() {
        let status = DeliveryStatus::parse("Final-Recipient: rfc822; a@b\nAction: delayed\n");
        assert!(status.per_message.is_empty());
        assert_eq!(status.action().as_deref(), Some("delayed"));
    }

    #[test]
    fn delivery_report_is_camel_cased_in_order() {
        let status = DeliveryStatus::parse(
            "Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n",
        );
        let report = DeliveryReport::from_status(&status);
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"reportingMta":"dns; mx.example.net","finalRecipient":"rfc822; ok@example.org","action":"delivered","status":"2.0.0"}"#
        );
    }
}
