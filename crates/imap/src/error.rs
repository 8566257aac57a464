//! The one conversion from IMAP failures into the mail error vocabulary. The server's own
//! response text is recovered from async-imap's errors (which carry it inside a debug string),
//! so clients and `lastError.response` see what the server said.

use emailengine_mail::MailError;

use crate::connect::ConnectError;

/// A failed IMAP exchange.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The server answered NO or BAD.
    #[error("{text}")]
    Refused {
        /// `NO` or `BAD`.
        status: &'static str,
        /// The response code in brackets, when there was one (`NONEXISTENT`).
        code: Option<String>,
        text: String,
    },
    /// The connection broke or the server sent something unreadable.
    #[error("{0}")]
    Connection(String),
}

impl ImapError {
    /// True when the session it happened on can no longer be used.
    pub fn breaks_session(&self) -> bool {
        matches!(self, ImapError::Connection(_))
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ImapError::Refused { code, .. } => code.as_deref(),
            ImapError::Connection(_) => None,
        }
    }
}

/// Splits `[CODE args] text` into the code's name and the text.
pub fn split_code(text: &str) -> (Option<String>, String) {
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix('[')
        && let Some((code, tail)) = rest.split_once(']')
    {
        let name = code
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        return ((!name.is_empty()).then_some(name), tail.trim().to_string());
    }
    (None, trimmed.to_string())
}

/// The server's text out of async-imap's `code: …, info: Some("…")` rendering.
fn server_text(rendered: &str) -> String {
    let Some(start) = rendered.find("info: Some(\"") else {
        return rendered.to_string();
    };
    let quoted = &rendered[start + "info: Some(\"".len()..];
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

/// The known response code async-imap parsed, named as the server wrote it.
fn rendered_code(rendered: &str) -> Option<String> {
    let code = rendered.strip_prefix("code: Some(")?;
    let name: String = code
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!name.is_empty()).then(|| name.to_ascii_uppercase())
}

fn refused(status: &'static str, rendered: &str) -> ImapError {
    let (text, known) = if rendered.starts_with("code: ") {
        (server_text(rendered), rendered_code(rendered))
    } else {
        (rendered.to_string(), None)
    };
    let (bracketed, text) = split_code(&text);
    ImapError::Refused {
        status,
        code: known.or(bracketed),
        text,
    }
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        use async_imap::error::Error;
        match e {
            Error::No(r) => refused("NO", &r),
            Error::Bad(r) => refused("BAD", &r),
            Error::ConnectionLost => {
                ImapError::Connection("Connection to the mail server was lost".into())
            }
            other => ImapError::Connection(other.to_string()),
        }
    }
}

impl From<ImapError> for MailError {
    fn from(e: ImapError) -> Self {
        match e {
            ImapError::Refused { code, text, .. } => {
                if matches!(code.as_deref(), Some("NONEXISTENT" | "TRYCREATE")) {
                    MailError::MailboxNotFound
                } else {
                    MailError::Refused {
                        response: text,
                        code,
                    }
                }
            }
            ImapError::Connection(text) => MailError::Connection(text),
        }
    }
}

impl From<ConnectError> for MailError {
    fn from(e: ConnectError) -> Self {
        MailError::Connection(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_recovered() {
        let e = async_imap::error::Error::No(
            "code: None, info: Some(\"[NONEXISTENT] Mailbox doesn't exist: \\\"X\\\"\")".into(),
        );
        let ImapError::Refused { status, code, text } = ImapError::from(e) else {
            panic!("refused");
        };
        assert_eq!(
            (status, code.as_deref(), text.as_str()),
            ("NO", Some("NONEXISTENT"), "Mailbox doesn't exist: \"X\"")
        );
        let e = async_imap::error::Error::Bad(
            "code: Some(TryCreate), info: Some(\"Mailbox missing\")".into(),
        );
        let ImapError::Refused { code, text, .. } = ImapError::from(e) else {
            panic!("refused");
        };
        assert_eq!(
            (code.as_deref(), text.as_str()),
            (Some("TRYCREATE"), "Mailbox missing")
        );
        assert_eq!(
            split_code("[ALREADYEXISTS] Mailbox exists"),
            (Some("ALREADYEXISTS".into()), "Mailbox exists".into())
        );
    }
}
