//! The IMAP SEARCH keys for a typed [`Search`] (RFC 3501 §6.4.4, with Gmail's X-GM-* and
//! RFC 8474's EMAILID/THREADID where the server has them). Strings are quoted; non-ASCII text
//! makes the whole search `CHARSET UTF-8`.

use chrono::NaiveDate;

use emailengine_mail::{Search, SearchTerm};

use crate::command::quote;

/// What the server offers beyond RFC 3501, as far as searching goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchAbilities {
    /// `X-GM-EXT-1`: X-GM-RAW, X-GM-MSGID, X-GM-THRID.
    pub gmail: bool,
    /// `OBJECTID`: EMAILID and THREADID.
    pub object_id: bool,
}

fn day(d: &NaiveDate) -> String {
    d.format("%-d-%b-%Y").to_string()
}

fn flag(set: bool, yes: &str, no: &str) -> String {
    if set { yes } else { no }.to_string()
}

/// The search criteria text, `ALL` for an empty search; `None` when no message can match (an id
/// or a Gmail query on a server that has none of them).
pub fn criteria(search: &Search, can: SearchAbilities) -> Option<String> {
    let mut keys = Vec::new();
    for term in &search.terms {
        keys.push(match term {
            SearchTerm::Seq(set) => set.clone(),
            SearchTerm::Uid(set) => format!("UID {set}"),
            SearchTerm::Answered(b) => flag(*b, "ANSWERED", "UNANSWERED"),
            SearchTerm::Deleted(b) => flag(*b, "DELETED", "UNDELETED"),
            SearchTerm::Draft(b) => flag(*b, "DRAFT", "UNDRAFT"),
            SearchTerm::Flagged(b) => flag(*b, "FLAGGED", "UNFLAGGED"),
            SearchTerm::Seen(b) => flag(*b, "SEEN", "UNSEEN"),
            SearchTerm::From(s) => format!("FROM {}", quote(s)),
            SearchTerm::To(s) => format!("TO {}", quote(s)),
            SearchTerm::Cc(s) => format!("CC {}", quote(s)),
            SearchTerm::Bcc(s) => format!("BCC {}", quote(s)),
            SearchTerm::Subject(s) => format!("SUBJECT {}", quote(s)),
            SearchTerm::Body(s) => format!("BODY {}", quote(s)),
            SearchTerm::Text(s) => format!("TEXT {}", quote(s)),
            SearchTerm::Larger(n) => format!("LARGER {n}"),
            SearchTerm::Smaller(n) => format!("SMALLER {n}"),
            SearchTerm::Modseq(n) => format!("MODSEQ {n}"),
            SearchTerm::Before(d) => format!("BEFORE {}", day(d)),
            SearchTerm::Since(d) => format!("SINCE {}", day(d)),
            SearchTerm::SentBefore(d) => format!("SENTBEFORE {}", day(d)),
            SearchTerm::SentSince(d) => format!("SENTSINCE {}", day(d)),
            SearchTerm::EmailId(id) if can.object_id => format!("EMAILID {}", atom(id)?),
            SearchTerm::EmailId(id) if can.gmail => format!("X-GM-MSGID {}", number(id)?),
            SearchTerm::ThreadId(id) if can.object_id => format!("THREADID {}", atom(id)?),
            SearchTerm::ThreadId(id) if can.gmail => format!("X-GM-THRID {}", number(id)?),
            SearchTerm::GmailRaw(q) if can.gmail => format!("X-GM-RAW {}", quote(q)),
            SearchTerm::EmailId(_) | SearchTerm::ThreadId(_) | SearchTerm::GmailRaw(_) => {
                return None;
            }
            SearchTerm::Header(name, value) => format!(
                "HEADER {} {}",
                quote(name),
                quote(value.as_deref().unwrap_or(""))
            ),
            SearchTerm::Keyword(k) => format!("KEYWORD {k}"),
            SearchTerm::Unkeyword(k) => format!("UNKEYWORD {k}"),
        });
    }
    if keys.is_empty() {
        return Some("ALL".into());
    }
    let text = keys.join(" ");
    Some(if text.is_ascii() {
        text
    } else {
        format!("CHARSET UTF-8 {text}")
    })
}

/// An object id as RFC 8474 spells them; anything else names no message.
fn atom(id: &str) -> Option<String> {
    (!id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| id.to_string())
}

fn number(id: &str) -> Option<u64> {
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn byte_exact_criteria() {
        let s = Search {
            terms: vec![
                SearchTerm::Seen(false),
                SearchTerm::Flagged(true),
                SearchTerm::Subject("say \"hi\"".into()),
                SearchTerm::Since(d(2024, 10, 1)),
                SearchTerm::SentBefore(d(2024, 1, 9)),
                SearchTerm::Uid("1:5,9".into()),
                SearchTerm::Header("X-Tag".into(), None),
                SearchTerm::Larger(100),
            ],
        };
        assert_eq!(
            criteria(&s, SearchAbilities::default()).unwrap(),
            "UNSEEN FLAGGED SUBJECT \"say \\\"hi\\\"\" SINCE 1-Oct-2024 SENTBEFORE 9-Jan-2024 UID 1:5,9 HEADER \"X-Tag\" \"\" LARGER 100"
        );
        assert_eq!(
            criteria(&Search::default(), SearchAbilities::default()).unwrap(),
            "ALL"
        );
        let utf = Search {
            terms: vec![SearchTerm::Body("café".into())],
        };
        assert_eq!(
            criteria(&utf, SearchAbilities::default()).unwrap(),
            "CHARSET UTF-8 BODY \"café\""
        );
    }

    #[test]
    fn provider_keys_follow_capabilities() {
        let s = Search {
            terms: vec![
                SearchTerm::ThreadId("1234".into()),
                SearchTerm::GmailRaw("has:attachment".into()),
            ],
        };
        let gmail = SearchAbilities {
            gmail: true,
            object_id: false,
        };
        assert_eq!(
            criteria(&s, gmail).unwrap(),
            "X-GM-THRID 1234 X-GM-RAW \"has:attachment\""
        );
        assert_eq!(criteria(&s, SearchAbilities::default()), None);
        let objectid = SearchAbilities {
            gmail: false,
            object_id: true,
        };
        let t = Search {
            terms: vec![SearchTerm::EmailId("M6d9".into())],
        };
        assert_eq!(criteria(&t, objectid).unwrap(), "EMAILID M6d9");
    }
}
