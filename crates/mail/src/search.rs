//! Message search as data: EmailEngine's search object (`{"search": {"unseen": true, …}}`)
//! read into typed terms, which each backend serialises into its own query language (IMAP
//! SEARCH keys, Gmail `q`, Graph `$filter`). Every key of EmailEngine's schema is a term here.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use emailengine_core::validation::FieldError;

/// One search condition; a [`Search`] matches messages meeting all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchTerm {
    /// Sequence numbers (`seq`), as a set such as `1:10,20`.
    Seq(String),
    /// UIDs (`uid`), as a set.
    Uid(String),
    Answered(bool),
    Deleted(bool),
    Draft(bool),
    Flagged(bool),
    /// `seen: true` and `unseen: false` both mean seen.
    Seen(bool),
    From(String),
    To(String),
    Cc(String),
    Bcc(String),
    Subject(String),
    Body(String),
    /// Header or body text (`text`).
    Text(String),
    /// Size in bytes.
    Larger(u64),
    Smaller(u64),
    /// Changed since this MODSEQ.
    Modseq(u64),
    /// Received (internal date) before/since, by calendar day.
    Before(NaiveDate),
    Since(NaiveDate),
    /// Sent (Date header) before/since.
    SentBefore(NaiveDate),
    SentSince(NaiveDate),
    EmailId(String),
    ThreadId(String),
    /// A header containing a value; `None` means the header is present.
    Header(String, Option<String>),
    /// A Gmail search expression (`gmraw`), only for Gmail.
    GmailRaw(String),
    Keyword(String),
    Unkeyword(String),
}

/// A conjunction of terms; no terms matches every message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub terms: Vec<SearchTerm>,
}

/// The keys of EmailEngine's search object, for schemas and error messages.
pub const KEYS: &[&str] = &[
    "seq",
    "answered",
    "deleted",
    "draft",
    "unseen",
    "flagged",
    "seen",
    "from",
    "to",
    "cc",
    "bcc",
    "body",
    "subject",
    "larger",
    "smaller",
    "uid",
    "modseq",
    "before",
    "since",
    "sentBefore",
    "sentSince",
    "emailId",
    "threadId",
    "header",
    "gmraw",
    "text",
    "keyword",
    "unKeyword",
];

/// Longest text a string term takes (EmailEngine: 256; `gmraw` 1024).
const MAX_TEXT: usize = 256;

fn is_set(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b':' | b',' | b'*'))
        && s.split(',').all(|r| {
            r.split(':').count() <= 2
                && r.split(':')
                    .all(|n| n == "*" || (n.len() <= 9 && n.parse::<u32>().is_ok()))
        })
}

fn is_atom(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

/// A whole non-negative number, however JSON spelled it (`250` or `250.0`).
fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 8e18)
            .map(|f| f as u64)
    })
}

/// A date as EmailEngine's schema takes it: an ISO 8601 string or ms since the epoch.
fn date(v: &Value) -> Option<NaiveDate> {
    let ms = match v {
        Value::Number(_) => whole(v)
            .filter(|n| *n <= 8_000_000_000_000_000)
            .and_then(|n| i64::try_from(n).ok()),
        Value::String(s) => emailengine_core::units::parse_iso_time(s).or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp_millis())
        }),
        _ => None,
    }?;
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.date_naive())
}

/// Booleans as Joi reads them with `truthy('Y', 'true', '1')` and `falsy('N', 'false', '0')`.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "Y" | "1" => Some(true),
            "false" | "N" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl Search {
    /// Reads EmailEngine's search object. `prefix` names the object in error keys
    /// (`search`), so messages read `"search.unseen" must be a boolean`.
    pub fn from_json(prefix: &str, object: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut terms = Vec::new();
        let mut errors = Vec::new();
        for (key, v) in object {
            let name = format!("{prefix}.{key}");
            let mut fail = |rest: &str| errors.push(FieldError::about(&name, rest));
            let text = |max: usize| -> Result<String, String> {
                match v {
                    Value::String(s) if s.chars().count() > max => Err(format!(
                        "length must be less than or equal to {max} characters long"
                    )),
                    Value::String(s) => Ok(s.clone()),
                    _ => Err("must be a string".into()),
                }
            };
            let flag = || boolean(v).ok_or_else(|| "must be a boolean".to_string());
            let size = || {
                whole(v)
                    .filter(|n| *n <= 1 << 30)
                    .ok_or_else(|| "must be a number between 0 and 1073741824".to_string())
            };
            let day = || date(v).ok_or_else(|| "must be a valid date".to_string());
            let term: Result<SearchTerm, String> = match key.as_str() {
                "seq" => text(MAX_TEXT)
                    .and_then(|s| {
                        if is_set(&s) {
                            Ok(s)
                        } else {
                            Err("must be a sequence set".into())
                        }
                    })
                    .map(SearchTerm::Seq),
                "uid" => text(MAX_TEXT)
                    .and_then(|s| {
                        if is_set(&s) {
                            Ok(s)
                        } else {
                            Err("must be a UID set".into())
                        }
                    })
                    .map(SearchTerm::Uid),
                "answered" => flag().map(SearchTerm::Answered),
                "deleted" => flag().map(SearchTerm::Deleted),
                "draft" => flag().map(SearchTerm::Draft),
                "flagged" => flag().map(SearchTerm::Flagged),
                "seen" => flag().map(SearchTerm::Seen),
                "unseen" => flag().map(|b| SearchTerm::Seen(!b)),
                "from" => text(MAX_TEXT).map(SearchTerm::From),
                "to" => text(MAX_TEXT).map(SearchTerm::To),
                "cc" => text(MAX_TEXT).map(SearchTerm::Cc),
                "bcc" => text(MAX_TEXT).map(SearchTerm::Bcc),
                "subject" => text(MAX_TEXT).map(SearchTerm::Subject),
                "body" => text(MAX_TEXT).map(SearchTerm::Body),
                "text" => text(MAX_TEXT).map(SearchTerm::Text),
                "larger" => size().map(SearchTerm::Larger),
                "smaller" => size().map(SearchTerm::Smaller),
                "modseq" => whole(v)
                    .ok_or_else(|| "must be a number".to_string())
                    .map(SearchTerm::Modseq),
                "before" => day().map(SearchTerm::Before),
                "since" => day().map(SearchTerm::Since),
                "sentBefore" => day().map(SearchTerm::SentBefore),
                "sentSince" => day().map(SearchTerm::SentSince),
                "emailId" => text(MAX_TEXT).map(SearchTerm::EmailId),
                "threadId" => text(MAX_TEXT).map(SearchTerm::ThreadId),
                "gmraw" => text(1024).map(SearchTerm::GmailRaw),
                "keyword" | "unKeyword" => text(MAX_TEXT)
                    .and_then(|s| {
                        if is_atom(&s) {
                            Ok(s)
                        } else {
                            Err("must be a valid keyword".into())
                        }
                    })
                    .map(|s| {
                        if key == "keyword" {
                            SearchTerm::Keyword(s)
                        } else {
                            SearchTerm::Unkeyword(s)
                        }
                    }),
                "header" => {
                    let Value::Object(headers) = v else {
                        fail("must be of type object");
                        continue;
                    };
                    for (header, value) in headers {
                        let hname = format!("{name}.{header}");
                        if header.is_empty()
                            || !header.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                        {
                            errors.push(FieldError::about(&hname, "is not a valid header name"));
                            continue;
                        }
                        match value {
                            Value::String(s) if s.chars().count() <= MAX_TEXT => {
                                terms.push(SearchTerm::Header(header.clone(), Some(s.clone())))
                            }
                            Value::Bool(true) => {
                                terms.push(SearchTerm::Header(header.clone(), None))
                            }
                            _ => errors.push(FieldError::about(&hname, "must be a string or true")),
                        }
                    }
                    continue;
                }
                _ => Err("is not allowed".into()),
            };
            match term {
                Ok(t) => terms.push(t),
                Err(rest) => fail(&rest),
            }
        }
        if errors.is_empty() {
            Ok(Search { terms })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Search, Vec<FieldError>> {
        Search::from_json("search", v.as_object().unwrap())
    }

    #[test]
    fn every_schema_key_is_read() {
        let s = read(json!({
            "seq": "1:5", "uid": "7,9:*", "answered": true, "deleted": false, "draft": "Y",
            "unseen": true, "flagged": "1", "seen": "false", "from": "ann", "to": "bob", "cc": "c",
            "bcc": "d", "body": "hello", "subject": "Hi", "larger": 10, "smaller": 2000,
            "modseq": 42, "before": "2024-10-02", "since": "2024-10-01T12:00:00Z",
            "sentBefore": 1727827200000i64, "sentSince": "2024-09-30", "emailId": "e1",
            "threadId": "t1", "header": {"X-Tag": "a", "List-Id": true}, "gmraw": "has:attachment",
            "text": "x", "keyword": "$Work", "unKeyword": "$Junk"
        }))
        .unwrap();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(
            s.terms,
            vec![
                SearchTerm::Seq("1:5".into()),
                SearchTerm::Uid("7,9:*".into()),
                SearchTerm::Answered(true),
                SearchTerm::Deleted(false),
                SearchTerm::Draft(true),
                SearchTerm::Seen(false),
                SearchTerm::Flagged(true),
                SearchTerm::Seen(false),
                SearchTerm::From("ann".into()),
                SearchTerm::To("bob".into()),
                SearchTerm::Cc("c".into()),
                SearchTerm::Bcc("d".into()),
                SearchTerm::Body("hello".into()),
                SearchTerm::Subject("Hi".into()),
                SearchTerm::Larger(10),
                SearchTerm::Smaller(2000),
                SearchTerm::Modseq(42),
                SearchTerm::Before(d(2024, 10, 2)),
                SearchTerm::Since(d(2024, 10, 1)),
                SearchTerm::SentBefore(d(2024, 10, 2)),
                SearchTerm::SentSince(d(2024, 9, 30)),
                SearchTerm::EmailId("e1".into()),
                SearchTerm::ThreadId("t1".into()),
                SearchTerm::Header("X-Tag".into(), Some("a".into())),
                SearchTerm::Header("List-Id".into(), None),
                SearchTerm::GmailRaw("has:attachment".into()),
                SearchTerm::Text("x".into()),
                SearchTerm::Keyword("$Work".into()),
                SearchTerm::Unkeyword("$Junk".into()),
            ]
        );
        // Every key of the schema appears above (`header` twice, as two terms).
        assert_eq!(s.terms.len(), KEYS.len() + 1);
    }

    #[test]
    fn wrong_values_are_joi_errors() {
        let errors =
            read(json!({"unseen": "maybe", "uid": "1:x", "bogus": 1, "header": {"a:b": "x"}}))
                .unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "\"search.unseen\" must be a boolean",
                "\"search.uid\" must be a UID set",
                "\"search.bogus\" is not allowed",
                "\"search.header.a:b\" is not a valid header name",
            ]
        );
    }
}
