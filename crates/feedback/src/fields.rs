//! Field blocks in the RFC 5322 shape ("Name: value" lines with folded continuations), as found in
//! DSN reports, ARF reports and returned header sections, plus the value normalisers they share.
//! Values are unfolded and trimmed, never MIME-decoded, so they stay what the sender wrote.

use std::sync::LazyLock;

use regex::Regex;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// One field: lower-case name and unfolded, trimmed value.
pub(crate) type Field = (String, String);

/// Reads fields from the first line of `text` up to the first blank line or the first line that
/// is neither a field nor a continuation.
pub(crate) fn parse_block(text: &str) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            match fields.last_mut() {
                Some((_, value)) => {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(line.trim());
                }
                None => break,
            }
            continue;
        }
        match split_field(line) {
            Some(field) => fields.push(field),
            None => break,
        }
    }
    fields
}

/// Splits `text` into its blank-line separated groups of fields (a DSN body has one group per
/// message and one per recipient); groups that hold no field are dropped.
pub(crate) fn parse_groups(text: &str) -> Vec<Vec<Field>> {
    let mut groups = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(['\r', '\n', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let end = blank_line_end(rest).unwrap_or(rest.len());
        let group = parse_block(&rest[..end]);
        if !group.is_empty() {
            groups.push(group);
        }
        rest = &rest[end..];
    }
    groups
}

/// Byte offset just past the first blank line in `text` (or None when there is none).
fn blank_line_end(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        if line.trim().is_empty() {
            return Some(offset);
        }
    }
    None
}

fn split_field(line: &str) -> Option<Field> {
    let (name, value) = line.split_once(':')?;
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    valid.then(|| (name.to_ascii_lowercase(), value.trim().to_string()))
}

/// First value of the named (lower-case) field.
pub(crate) fn first<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// `reporting-mta` -> `reportingMta`, `x-postfix-queue-id` -> `xPostfixQueueId`.
pub(crate) fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '-' || c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The part of a typed DSN value after its type: `rfc822; a@b` -> `a@b`, `dns; mx.host` ->
/// `mx.host`. Values without a type come back trimmed.
pub(crate) fn untyped(value: &str) -> &str {
    match value.split_once(';') {
        Some((_, rest)) => rest.trim(),
        None => value.trim(),
    }
}

/// An address without its angle brackets and `mailto:` prefix, or None when it has no `@`.
pub(crate) fn bare_address(value: &str) -> Option<String> {
    let trimmed = value
        .trim()
        .trim_matches(|c: char| matches!(c, '<' | '>' | '"' | '\'' | '(' | ')' | ',' | ';' | ':'));
    let trimmed = trimmed.strip_prefix("mailto:").unwrap_or(trimmed);
    (trimmed.contains('@') && !trimmed.contains(char::is_whitespace)).then(|| trimmed.to_string())
}

static ANGLE_ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<(?:mailto:)?([^<>\s@]+@[^<>\s@]+)>").expect("static regex"));
static LOOSE_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
        .expect("static regex")
});

/// The first e-mail address in free text, preferring one written in angle brackets.
pub(crate) fn find_address(text: &str) -> Option<String> {
    if let Some(c) = ANGLE_ADDRESS.captures(text) {
        return Some(c[1].to_string());
    }
    LOOSE_ADDRESS
        .find(text)
        .map(|m| m.as_str().trim_end_matches('.').to_string())
}

/// A Message-ID in its bracketed form (`<id@host>`), taken from the first token of `value`.
pub(crate) fn normalize_message_id(value: &str) -> Option<String> {
    let value = value.trim();
    if let Some(start) = value.find('<')
        && let Some(len) = value[start..].find('>')
    {
        let inner = value[start + 1..start + len].trim();
        return (!inner.is_empty()).then(|| format!("<{inner}>"));
    }
    let token = value.split_whitespace().next()?;
    Some(format!("<{token}>"))
}

/// The first RFC 3463 enhanced status code (`5.1.1`) in `text` that is not part of a longer
/// dotted number such as an IP address.
pub(crate) fn find_enhanced_status(text: &str) -> Option<String> {
    static STATUS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[245]\.\d{1,3}\.\d{1,3}").expect("static regex"));
    let bytes = text.as_bytes();
    STATUS
        .find_iter(text)
        .find(|m| {
            let before_ok = m.start() == 0 || {
                let b = bytes[m.start() - 1];
                !(b.is_ascii_alphanumeric() || b == b'.')
            };
            let after = &bytes[m.end()..];
            let after_ok = match after {
                [] => true,
                [b'.', next, ..] => !next.is_ascii_digit(),
                [b, ..] => !b.is_ascii_alphanumeric(),
            };
            before_ok && after_ok
        })
        .map(|m| m.as_str().to_string())
}

/// Header fields in their original order, repeated names grouped: serialises as
/// `{<lower-case name>: [values]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap(Vec<(String, Vec<String>)>);

impl HeaderMap {
    pub(crate) fn from_fields(fields: Vec<Field>) -> Self {
        let mut map: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in fields {
            match map.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => map.push((name, vec![value])),
            }
        }
        HeaderMap(map)
    }

    /// Values of the named header (the name is matched case-insensitively).
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Header names and their values, in first-seen order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for HeaderMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, values) in &self.0 {
            map.serialize_entry(name, values)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_unfolds_and_stops_at_blank_line() {
        let text = "Final-Recipient: rfc822; a@b.example\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n    user unknown\r\n\r\nAction: failed\r\n";
        assert_eq!(
            parse_block(text),
            vec![
                ("final-recipient".into(), "rfc822; a@b.example".into()),
                (
                    "diagnostic-code".into(),
                    "smtp; 550 5.1.1 user unknown".into()
                ),
            ]
        );
    }

    #[test]
    fn block_stops_at_prose() {
        assert_eq!(
            parse_block("Subject: x\nRemote host said: 550 no\n"),
            vec![("subject".into(), "x".into())]
        );
    }

    #[test]
    fn groups_split_on_blank_lines() {
        let groups = parse_groups("\r\nA: 1\r\n\r\n\r\nB: 2\r\nC: 3\r\n\r\n");
        assert_eq!(
            groups,
            vec![
                vec![("a".into(), "1".into())],
                vec![("b".into(), "2".into()), ("c".into(), "3".into())]
            ]
        );
    }

    #[test]
    fn camel_cases_dsn_names() {
        assert_eq!(camel_case("reporting-mta"), "reportingMta");
        assert_eq!(camel_case("x-postfix-queue-id"), "xPostfixQueueId");
        assert_eq!(camel_case("Action"), "action");
    }

    #[test]
    fn message_ids_get_brackets() {
        assert_eq!(normalize_message_id(" <a@b> (c)").as_deref(), Some("<a@b>"));
        assert_eq!(normalize_message_id("a@b").as_deref(), Some("<a@b>"));
        assert_eq!(normalize_message_id("  ").as_deref(), None);
        assert_eq!(normalize_message_id("<>").as_deref(), None);
    }

    #[test]
    fn enhanced_status_skips_ip_addresses() {
        assert_eq!(find_enhanced_status("host 192.0.2.1 said 550"), None);
        assert_eq!(
            find_enhanced_status("[4.2.2.1] 550 5.1.1 <a@b>").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            find_enhanced_status("no mailbox (#5.1.1)").as_deref(),
            Some("5.1.1")
        );
    }

    #[test]
    fn addresses_in_prose() {
        assert_eq!(
            find_address("Neko<mailto:mike@example.co.jp>").as_deref(),
            Some("mike@example.co.jp")
        );
        assert_eq!(
            find_address("to user@example.com. Done").as_deref(),
            Some("user@example.com")
        );
        assert_eq!(
            bare_address(" <a@b.example> ").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(bare_address("nobody"), None);
    }

    #[test]
    fn header_map_groups_repeats_in_order() {
        let map = HeaderMap::from_fields(vec![
            ("received".into(), "a".into()),
            ("subject".into(), "s".into()),
            ("received".into(), "b".into()),
        ]);
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            r#"{"received":["a","b"],"subject":["s"]}"#
        );
        assert_eq!(map.get("Subject"), Some(&["s".to_string()][..]));
    }
}
