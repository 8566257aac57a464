//! IMAP commands whose tagged answer matters beyond OK: MOVE/COPY report where messages landed
//! (COPYUID) and APPEND the new UID (APPENDUID), which async-imap's own calls discard. Also the
//! ID and ENABLE exchanges after login, and Gmail's thread ids. Responses are read here until
//! the command's tag.

use imap_proto::rfc4315::UidSetMember;
use imap_proto::{Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use crate::connect::Session;
use crate::error::{ImapError, split_code};

/// What a command's responses said about the messages it placed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Placed {
    /// COPYUID: the target's UIDVALIDITY and, in order, source and target UIDs.
    pub copied: Option<(u32, Vec<u32>, Vec<u32>)>,
    /// APPENDUID: the target's UIDVALIDITY and the new UID.
    pub appended: Option<(u32, u32)>,
}

fn uids(set: &[UidSetMember]) -> Vec<u32> {
    set.iter()
        .flat_map(|m| match m {
            UidSetMember::Uid(u) => *u..=*u,
            UidSetMember::UidRange(r) => r.clone(),
        })
        .collect()
}

fn note(code: Option<&ResponseCode<'_>>, placed: &mut Placed) {
    match code {
        Some(ResponseCode::CopyUid(validity, from, to)) => {
            placed.copied = Some((*validity, uids(from), uids(to)));
        }
        Some(ResponseCode::AppendUid(validity, set)) => {
            placed.appended = uids(set).first().map(|uid| (*validity, *uid));
        }
        _ => {}
    }
}

/// One folder of a LIST or LSUB answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// As sent (modified UTF-7).
    pub name: String,
    pub delimiter: Option<String>,
    /// Attributes in lower case: `\\noselect`, `\\sent`, `\\nonexistent`, …
    pub attributes: Vec<String>,
}

fn attribute(a: &imap_proto::NameAttribute<'_>) -> String {
    use imap_proto::NameAttribute as A;
    match a {
        A::NoInferiors => "\\noinferiors".into(),
        A::NoSelect => "\\noselect".into(),
        A::Marked => "\\marked".into(),
        A::Unmarked => "\\unmarked".into(),
        A::All => "\\all".into(),
        A::Archive => "\\archive".into(),
        A::Drafts => "\\drafts".into(),
        A::Flagged => "\\flagged".into(),
        A::Junk => "\\junk".into(),
        A::Sent => "\\sent".into(),
        A::Trash => "\\trash".into(),
        A::Extension(e) => e.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// What a folder's STATUS (or a LIST-STATUS answer) said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderStat {
    pub messages: u32,
    pub uid_next: Option<u32>,
    pub uid_validity: Option<u32>,
    pub highest_modseq: Option<u64>,
}

/// Runs a LIST that returns STATUS too (RFC 5819): the folders and, by name as sent, their
/// counters.
pub async fn list_status(
    session: &mut Session,
    command: &str,
) -> Result<(Vec<Listed>, Vec<(String, FolderStat)>), ImapError> {
    let tag = session.run_command(command).await?;
    let mut listed = Vec::new();
    let mut stats = Vec::new();
    finish_with(session, &tag, &mut |response| match response {
        Response::MailboxData(imap_proto::MailboxDatum::List(data)) => listed.push(Listed {
            name: data.name.to_string(),
            delimiter: data.delimiter.as_deref().map(str::to_string),
            attributes: data.name_attributes.iter().map(attribute).collect(),
        }),
        Response::MailboxData(imap_proto::MailboxDatum::Status { mailbox, status }) => {
            use imap_proto::StatusAttribute as S;
            let mut stat = FolderStat::default();
            for a in status {
                match a {
                    S::Messages(n) => stat.messages = *n,
                    S::UidNext(n) => stat.uid_next = Some(*n),
                    S::UidValidity(n) => stat.uid_validity = Some(*n),
                    S::HighestModSeq(n) => stat.highest_modseq = Some(*n),
                    _ => {}
                }
            }
            stats.push((mailbox.to_string(), stat));
        }
        _ => {}
    })
    .await?;
    Ok((listed, stats))
}

/// Runs LIST or LSUB; a NO or BAD answer is an error (async-imap's own calls end the listing
/// quietly on one, which would make a refused listing look like an empty account).
pub async fn list(session: &mut Session, command: &str) -> Result<Vec<Listed>, ImapError> {
    let tag = session.run_command(command).await?;
    let mut listed = Vec::new();
    finish_with(session, &tag, &mut |response| {
        if let Response::MailboxData(imap_proto::MailboxDatum::List(data)) = response {
            listed.push(Listed {
                name: data.name.to_string(),
                delimiter: data.delimiter.as_deref().map(str::to_string),
                attributes: data.name_attributes.iter().map(attribute).collect(),
            });
        }
    })
    .await?;
    Ok(listed)
}

/// Gmail's thread id (`X-GM-THRID`) of each message in a UID set: imap-proto parses it, but
/// async-imap's FETCH results do not expose it.
pub async fn gmail_thread_ids(
    session: &mut Session,
    uid_set: &str,
) -> Result<std::collections::HashMap<u32, u64>, ImapError> {
    let tag = session
        .run_command(format!("UID FETCH {uid_set} (UID X-GM-THRID)"))
        .await?;
    let mut ids = std::collections::HashMap::new();
    finish_with(session, &tag, &mut |response| {
        if let Response::Fetch(_, attributes) = response {
            let (mut uid, mut thread) = (None, None);
            for a in attributes {
                match a {
                    imap_proto::AttributeValue::Uid(u) => uid = Some(*u),
                    imap_proto::AttributeValue::GmailThrId(t) => thread = Some(*t),
                    _ => {}
                }
            }
            if let (Some(uid), Some(thread)) = (uid, thread) {
                ids.insert(uid, thread);
            }
        }
    })
    .await?;
    Ok(ids)
}

/// Reads responses up to the tagged answer of `tag`.
async fn finish(session: &mut Session, tag: &imap_proto::RequestId) -> Result<Placed, ImapError> {
    finish_with(session, tag, &mut |_| {}).await
}

/// Reads responses up to the tagged answer of `tag`, showing each untagged one to `seen`.
async fn finish_with(
    session: &mut Session,
    tag: &imap_proto::RequestId,
    seen: &mut (dyn FnMut(&Response<'_>) + Send),
) -> Result<Placed, ImapError> {
    let mut placed = Placed::default();
    loop {
        let response = session
            .read_response()
            .await
            .map_err(|e| ImapError::Connection(e.to_string()))?
            .ok_or_else(|| {
                ImapError::Connection("Connection to the mail server was lost".into())
            })?;
        match response.parsed() {
            Response::Done {
                tag: done,
                status,
                outcome,
            } if done == tag => {
                note(outcome.code.as_ref(), &mut placed);
                let text = outcome.information.as_deref().unwrap_or("").to_string();
                return match status {
                    Status::Ok => Ok(placed),
                    Status::No | Status::Bad => {
                        let (code, text) = split_code(&text);
                        Err(ImapError::Refused {
                            status: if *status == Status::No { "NO" } else { "BAD" },
                            code,
                            text,
                        })
                    }
                    _ => Err(ImapError::Connection(text)),
                };
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                let text = outcome
                    .information
                    .as_deref()
                    .unwrap_or("Server closed the connection");
                return Err(ImapError::Connection(text.to_string()));
            }
            Response::Data { outcome, .. } => note(outcome.code.as_ref(), &mut placed),
            other => seen(other),
        }
    }
}

/// Runs a command and reads its answer.
pub async fn run(session: &mut Session, command: &str) -> Result<Placed, ImapError> {
    let tag = session.run_command(command).await?;
    finish(session, &tag).await
}

/// APPENDs a message; the literal is sent once the server asks for it.
pub async fn append(
    session: &mut Session,
    mailbox: &str,
    flags: &[String],
    internal_date: Option<i64>,
    content: &[u8],
) -> Result<Placed, ImapError> {
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" ({})", flags.join(" "))
    };
    // RFC 3501 date-time, in UTC.
    let date = internal_date
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| format!(" \"{}\"", d.format("%d-%b-%Y %H:%M:%S +0000")))
        .unwrap_or_default();
    let tag = session
        .run_command(format!(
            "APPEND {}{flags}{date} {{{}}}",
            quote(mailbox),
            content.len()
        ))
        .await?;
    let response = session
        .read_response()
        .await
        .map_err(|e| ImapError::Connection(e.to_string()))?
        .ok_or_else(|| ImapError::Connection("Connection to the mail server was lost".into()))?;
    match response.parsed() {
        Response::Continue { .. } => {}
        Response::Done {
            status, outcome, ..
        } => {
            let (code, text) = split_code(outcome.information.as_deref().unwrap_or(""));
            return Err(ImapError::Refused {
                status: if *status == Status::Bad { "BAD" } else { "NO" },
                code,
                text,
            });
        }
        _ => return Err(ImapError::Connection("Unexpected answer to APPEND".into())),
    }
    let stream = session.get_mut();
    stream
        .write_all(content)
        .await
        .map_err(|e| ImapError::Connection(e.to_string()))?;
    stream
        .write_all(b"\r\n")
        .await
        .map_err(|e| ImapError::Connection(e.to_string()))?;
    stream
        .flush()
        .await
        .map_err(|e| ImapError::Connection(e.to_string()))?;
    finish(session, &tag).await
}

/// A quoted IMAP string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_uid_sets() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            uids(&[UidSetMember::Uid(3), UidSetMember::UidRange(5..=7)]),
            vec![3, 5, 6, 7]
        );
    }
}
