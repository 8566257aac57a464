//! Folder synchronisation (spec §12.3): compare what the server holds (UIDs and flags) with the
//! stored index and turn the difference into events and index updates. The first sync of a
//! folder only builds the index; later ones report each new, deleted and changed message once.
//! Index changes and the events they produce are committed together (see [`EventBatch`]), so
//! a store outage or a crash neither loses an event nor reports a message twice.
//!
//! [`EventBatch`]: crate::events::EventBatch

use std::collections::{BTreeMap, HashMap};

use async_imap::types::Flag;
use futures_util::TryStreamExt;
use serde_json::{Value, json};

use emailengine_core::ids::MessageId;
use emailengine_core::index::IndexEntry;
use emailengine_store::Change;

use emailengine_mail::events::EventSink;

use crate::connect::Session;
use crate::error::ImapError;
use crate::folders::{Folder, encode_path};
use crate::message::{Fetched, list_entry};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The server refused a command or the connection failed; the text is the server's.
    #[error("{0}")]
    Imap(#[from] ImapError),
    #[error("store: {0}")]
    Store(#[from] emailengine_store::StoreError),
}

impl From<async_imap::error::Error> for SyncError {
    fn from(e: async_imap::error::Error) -> Self {
        SyncError::Imap(e.into())
    }
}

impl SyncError {
    /// The server's response code (or `NO`/`BAD`) for a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            SyncError::Imap(ImapError::Refused { code, status, .. }) => {
                Some(code.as_deref().unwrap_or(status))
            }
            _ => None,
        }
    }
}

/// IMAP flag → its text form.
pub fn flag_text(f: &Flag<'_>) -> Option<String> {
    Some(match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Custom(c) => c.to_string(),
        Flag::Recent | Flag::MayCreate => return None,
    })
}

/// Fetch items for message list entries and `messageNew` payloads.
pub const SUMMARY_ITEMS: &str = "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER])";
/// The same with Gmail's message id and labels.
const GMAIL_SUMMARY_ITEMS: &str =
    "(UID FLAGS RFC822.SIZE INTERNALDATE X-GM-MSGID X-GM-LABELS BODY.PEEK[HEADER])";

/// Fetches summaries for a UID set (or a sequence set with `by_uid = false`); `gmail` adds
/// Gmail's message ids and labels.
pub async fn fetch_summaries(
    session: &mut Session,
    set: &str,
    by_uid: bool,
    gmail: bool,
) -> async_imap::error::Result<Vec<Fetched>> {
    let items = if gmail {
        GMAIL_SUMMARY_ITEMS
    } else {
        SUMMARY_ITEMS
    };
    let fetched: Vec<_> = if by_uid {
        session.uid_fetch(set, items).await?.try_collect().await?
    } else {
        session.fetch(set, items).await?.try_collect().await?
    };
    Ok(fetched
        .iter()
        .filter_map(|f| {
            Some(Fetched {
                uid: f.uid?,
                flags: f.flags().filter_map(|x| flag_text(&x)).collect(),
                size: f.size.unwrap_or(0),
                internal_date: f.internal_date().map(|d| d.timestamp_millis()),
                modseq: f.modseq.unwrap_or(0),
                header: f.header().unwrap_or_default().to_vec(),
                email_id: f.gmail_msg_id().map(u64::to_string),
                labels: f
                    .gmail_labels()
                    .map(|l| l.iter().map(|x| x.to_string()).collect()),
                thread_id: None,
            })
        })
        .collect())
}

/// Gives fetched summaries their thread ids where the server has them: Gmail's `X-GM-THRID`
/// (one more FETCH), or the references root on servers that thread by references.
pub async fn add_threads(
    session: &mut Session,
    fetched: &mut [Fetched],
    abilities: crate::connect::Abilities,
) -> Result<(), crate::error::ImapError> {
    if abilities.gmail {
        let mut uids: Vec<u32> = fetched.iter().map(|f| f.uid).collect();
        if uids.is_empty() {
            return Ok(());
        }
        uids.sort_unstable();
        let ids = crate::command::gmail_thread_ids(session, &uid_set(&uids)).await?;
        crate::message::assign_gmail_threads(fetched, &ids);
    } else if abilities.thread_references {
        crate::message::assign_threads(fetched);
    }
    Ok(())
}

/// Largest attachment put into `messageNew` with `notifyAttachments` when
/// `notifyAttachmentSize` is not set (EmailEngine's default, 2 MiB).
const DEFAULT_ATTACHMENT_SIZE: usize = 2 * 1024 * 1024;

/// Whether a new message looks like new mail to its owner: not read, not a draft, and not in
/// a folder where the owner's own or discarded mail lands.
fn seems_like_new(special_use: Option<&str>, flags: &[String]) -> bool {
    let own_folder = matches!(
        special_use,
        Some("\\Sent" | "\\Drafts" | "\\Trash" | "\\Junk")
    );
    let flagged = |name: &str| flags.iter().any(|f| f.eq_ignore_ascii_case(name));
    !own_folder && !flagged("\\Seen") && !flagged("\\Draft")
}

/// What `messageNew` reports: the settings `notifyText`, `notifyTextSize` (default 64 KiB) and
/// `notifyHeaders`, and the account's `notifyFrom`.
struct NotifyOptions {
    text: bool,
    text_size: usize,
    /// `notifyWebSafeHtml`: the HTML sanitised, inline images embedded.
    web_safe_html: bool,
    /// `notifyAttachments` with `notifyAttachmentSize`: attachments up to this size carry
    /// their content.
    attachments: Option<usize>,
    headers: Vec<String>,
    /// The account's `notifyFrom` (ms).
    from: Option<i64>,
}

impl NotifyOptions {
    async fn load(sink: &EventSink, account: &str) -> Self {
        let from = sink
            .store
            .account_field(account, emailengine_core::account::field::NOTIFY_FROM)
            .await
            .ok()
            .flatten()
            .and_then(|v| emailengine_core::units::parse_iso_time(&v));
        let values = sink
            .settings
            .get(&[
                "notifyText",
                "notifyTextSize",
                "notifyHeaders",
                "notifyWebSafeHtml",
                "notifyAttachments",
                "notifyAttachmentSize",
            ])
            .await
            .unwrap_or_default();
        let get = |i: usize| values.get(i).cloned().flatten();
        Self {
            text: get(0).and_then(|v| v.as_bool()).unwrap_or(false),
            text_size: get(1)
                .and_then(|v| v.as_u64())
                .map_or(65_536, |n| n as usize),
            headers: get(2)
                .and_then(|v| v.as_array().cloned())
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            web_safe_html: get(3).and_then(|v| v.as_bool()).unwrap_or(false),
            attachments: get(4).and_then(|v| v.as_bool()).unwrap_or(false).then(|| {
                get(5)
                    .and_then(|v| v.as_u64())
                    .map_or(DEFAULT_ATTACHMENT_SIZE, |n| n as usize)
            }),
            from,
        }
    }

    /// The `messageNew` data of a new message: its list entry with `text` (`id`,
    /// `encodedSize`, and `plain`/`html`/`hasMore` when `notifyText` is on) and `attachments`,
    /// plus `headers` when `notifyHeaders` names any.
    fn payload(&self, place: crate::message::Place<'_>, f: &Fetched, source: &[u8]) -> Value {
        let options = emailengine_mail::DetailsOptions {
            max_bytes: self.text_size,
            text_type: emailengine_mail::TextType::All,
            web_safe_html: self.web_safe_html,
            mark_as_seen: false,
        };
        let mut data = crate::message::details(place, f, source, &options);
        if let Some(max) = self.attachments {
            crate::message::attachment_contents(&mut data, source, max);
        }
        data["seemsLikeNew"] = Value::Bool(seems_like_new(place.special_use, &f.flags));
        if !self.text
            && let Some(Value::Object(text)) = data.get_mut("text")
        {
            text.retain(|k, _| k == "id" || k == "encodedSize");
        }
        if !self.headers.is_empty() {
            data["headers"] = crate::message::header_map(source, &self.headers);
        }
        data
    }
}

/// Whole sources of the messages in a UID set.
async fn fetch_sources(
    session: &mut Session,
    set: &str,
) -> async_imap::error::Result<HashMap<u32, Vec<u8>>> {
    let fetched: Vec<_> = session
        .uid_fetch(set, "(UID BODY.PEEK[])")
        .await?
        .try_collect()
        .await?;
    Ok(fetched
        .iter()
        .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
        .collect())
}

/// Compresses sorted UIDs into an IMAP set: `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// What a sync found, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub new: usize,
    pub deleted: usize,
    pub updated: usize,
}

/// Synchronises one folder. The first sync of a folder (or a rebuild) only builds the index,
/// except that with `report_since` (ms) a first sync reports the messages the server dated at
/// or after it: the first sync of a folder indexed after its account reported `connected`
/// still tells of the mail that arrived meanwhile. With `condstore`, later syncs fetch only
/// what changed since the stored HIGHESTMODSEQ.
pub async fn sync_folder(
    session: &mut Session,
    sink: &EventSink,
    account: &str,
    folder: &Folder,
    abilities: crate::connect::Abilities,
    report_since: Option<i64>,
) -> Result<SyncReport, SyncError> {
    let condstore = abilities.condstore;
    let store = &sink.store;
    let mailbox = if condstore {
        session.select_condstore(encode_path(&folder.path)).await?
    } else {
        session.select(encode_path(&folder.path)).await?
    };
    let uid_validity = mailbox.uid_validity.unwrap_or(0) as u64;
    // In one round trip (the generation id does not depend on a reset below); an empty
    // folder's index is small or stale, so it is read along with them.
    let status = store.folder_status(account, &folder.path);
    let generation = store.mailbox_id(account, uid_validity, &folder.path);
    let (status, mailbox_id, mut entries) = if mailbox.exists == 0 {
        let index = store.folder_entries(account, &folder.path);
        let (s, m, e) = tokio::try_join!(status, generation, index)?;
        (s, m, Some(e))
    } else {
        let (s, m) = tokio::try_join!(status, generation)?;
        (s, m, None)
    };
    let mut silent = status.is_empty();
    // Only a first sync reports by date; after a UIDVALIDITY reset every message is old news.
    let report_since = report_since.filter(|_| silent);
    if let Some(stored) = status
        .get("uidValidity")
        .and_then(|v| v.parse::<u64>().ok())
        && stored != uid_validity
    {
        let mut batch = sink.batch().await;
        batch.event(
            account,
            "mailboxReset",
            Some(&folder.path),
            folder.special_use.as_deref(),
            json!({
                "path": folder.path, "name": folder.name, "specialUse": folder.special_use,
                "uidValidity": uid_validity.to_string(), "prevUidValidity": stored.to_string(),
            }),
        );
        batch.change(Change::ResetFolder {
            account: account.to_string(),
            path: folder.path.clone(),
        });
        sink.commit(batch).await?;
        silent = true;
        entries = Some(Vec::new());
    }

    let stored_num = |k: &str| status.get(k).and_then(|v| v.parse::<u64>().ok());
    // With CONDSTORE, an unchanged HIGHESTMODSEQ, UIDNEXT and message count mean nothing
    // changed: skip the folder without fetching anything.
    let incremental = (!silent && condstore)
        .then(|| stored_num("highestModseq").zip(mailbox.highest_modseq))
        .flatten();
    if let Some((old, new)) = incremental
        && old == new
        && stored_num("uidNext") == mailbox.uid_next.map(u64::from)
        && stored_num("messages") == Some(mailbox.exists as u64)
    {
        return Ok(SyncReport::default());
    }

    let entries = match entries {
        Some(e) => e,
        None => store.folder_entries(account, &folder.path).await?,
    };
    let stored: HashMap<u32, IndexEntry> = entries
        .iter()
        .filter_map(|b| IndexEntry::decode(b))
        .map(|e| (e.uid, e))
        .collect();
    let mut server: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    // On a first sync with `report_since`: the messages dated at or after it.
    let mut arrived: std::collections::HashSet<u32> = Default::default();
    if mailbox.exists > 0 {
        match incremental {
            Some((old, _)) => {
                // Start from the index, apply what changed since the stored MODSEQ (new
                // messages included), and list UIDs only when some messages must have gone.
                server.extend(stored.iter().map(|(uid, e)| (*uid, e.flags.clone())));
                let fetched: Vec<_> = session
                    .uid_fetch("1:*", format!("(UID FLAGS) (CHANGEDSINCE {old})"))
                    .await?
                    .try_collect()
                    .await?;
                for f in &fetched {
                    if let Some(uid) = f.uid {
                        server.insert(uid, f.flags().filter_map(|x| flag_text(&x)).collect());
                    }
                }
                if server.len() != mailbox.exists as usize {
                    // UID FETCH rather than UID SEARCH: the answer has the same form whether
                    // or not IMAP4rev2 is enabled on this connection.
                    let present: std::collections::HashSet<u32> = session
                        .uid_fetch("1:*", "(UID)")
                        .await?
                        .try_collect::<Vec<_>>()
                        .await?
                        .iter()
                        .filter_map(|f| f.uid)
                        .collect();
                    server.retain(|uid, _| present.contains(uid));
                }
            }
            None => {
                let items = if report_since.is_some() {
                    "(UID FLAGS INTERNALDATE)"
                } else {
                    "(UID FLAGS)"
                };
                let fetched: Vec<_> = session.fetch("1:*", items).await?.try_collect().await?;
                for f in &fetched {
                    if let Some(uid) = f.uid {
                        server.insert(uid, f.flags().filter_map(|x| flag_text(&x)).collect());
                        if let Some(since) = report_since
                            && f.internal_date()
                                .is_some_and(|d| d.timestamp_millis() >= since)
                        {
                            arrived.insert(uid);
                        }
                    }
                }
            }
        }
    }

    // New messages: those only indexed (a first sync) and those reported.
    let (quiet_uids, new_uids): (Vec<u32>, Vec<u32>) = server
        .keys()
        .filter(|u| !stored.contains_key(u))
        .copied()
        .partition(|u| silent && !arrived.contains(u));
    let mut removed: Vec<u32> = stored
        .keys()
        .filter(|u| !server.contains_key(u))
        .copied()
        .collect();
    removed.sort_unstable();
    let mut report = SyncReport::default();
    let special = folder.special_use.as_deref();
    let entries =
        |account: &str, upsert: Vec<(u32, Vec<u8>)>, remove: Vec<u32>| Change::FolderEntries {
            account: account.to_string(),
            path: folder.path.clone(),
            upsert,
            remove,
        };
    let new_entry = |uid: u32| {
        IndexEntry {
            uid,
            flags: server[&uid].clone(),
            ..Default::default()
        }
        .encode()
    };

    // New messages, a chunk at a time: each chunk's index entries and `messageNew` events are
    // committed together, so after a store failure or a crash the next sync finds exactly the
    // uncommitted ones new again and reports each message once.
    for chunk in quiet_uids.chunks(5_000) {
        let mut batch = sink.batch().await;
        let upsert = chunk.iter().map(|uid| (*uid, new_entry(*uid))).collect();
        batch.change(entries(account, upsert, Vec::new()));
        sink.commit(batch).await?;
    }
    if !new_uids.is_empty() {
        let notify = NotifyOptions::load(sink, account).await;
        for chunk in new_uids.chunks(500) {
            let set = uid_set(chunk);
            let mut summaries = fetch_summaries(session, &set, true, abilities.gmail).await?;
            summaries.sort_by_key(|f| f.uid);
            add_threads(session, &mut summaries, abilities).await?;
            // The whole source: the text id, text sizes and attachment ids receivers fetch
            // content with come from the MIME structure, and the text from the parts; bounces
            // and complaints are told by their content too.
            let sources = fetch_sources(session, &set).await?;
            let placement = crate::feedback::placement(&folder.path, special);
            let now = chrono::Utc::now().timestamp_millis();
            let mut batch = sink.batch().await;
            for f in summaries {
                // Messages older than the account's `notifyFrom` are indexed but not reported.
                if notify
                    .from
                    .is_some_and(|from| f.internal_date.is_some_and(|d| d < from))
                {
                    continue;
                }
                let place = crate::message::Place {
                    mailbox: mailbox_id,
                    path: &folder.path,
                    special_use: folder.special_use.as_deref(),
                };
                let mut data = match sources.get(&f.uid) {
                    Some(source) => notify.payload(place, &f, source),
                    None => list_entry(place, &f),
                };
                let feedback = match (placement, sources.get(&f.uid)) {
                    (Some(p), Some(source)) if crate::feedback::is_candidate(&f.header, p) => {
                        Some(crate::feedback::classify(source, p, &mut data))
                    }
                    _ => None,
                };
                let message = data["id"].as_str().unwrap_or_default().to_string();
                batch.event(account, "messageNew", Some(&folder.path), special, data);
                if let Some(feedback) = &feedback {
                    crate::feedback::report(
                        &mut batch,
                        account,
                        &folder.path,
                        special,
                        &message,
                        feedback,
                        now,
                    );
                }
                report.new += 1;
            }
            let upsert = chunk.iter().map(|uid| (*uid, new_entry(*uid))).collect();
            batch.change(entries(account, upsert, Vec::new()));
            sink.commit(batch).await?;
        }
    }

    // Deletions, flag changes and the folder's new status last, in one commit: the stored
    // HIGHESTMODSEQ never runs ahead of the index.
    let mut batch = sink.batch().await;
    for uid in &removed {
        if !silent {
            let id = MessageId {
                mailbox: mailbox_id,
                uid: *uid,
            }
            .encode();
            batch.event(
                account,
                "messageDeleted",
                Some(&folder.path),
                special,
                json!({"id": id, "uid": uid}),
            );
            report.deleted += 1;
        }
    }
    let mut upsert: Vec<(u32, Vec<u8>)> = Vec::new();
    for (uid, flags) in &server {
        let Some(old) = stored.get(uid) else { continue };
        let same = old.flags.len() == flags.len() && flags.iter().all(|f| old.has_flag(f));
        if same {
            continue;
        }
        if !silent {
            let added: Vec<&String> = flags.iter().filter(|f| !old.has_flag(f)).collect();
            let deleted: Vec<&String> = old
                .flags
                .iter()
                .filter(|f| !flags.iter().any(|n| n.eq_ignore_ascii_case(f)))
                .collect();
            let id = MessageId {
                mailbox: mailbox_id,
                uid: *uid,
            }
            .encode();
            batch.event(
                account,
                "messageUpdated",
                Some(&folder.path),
                special,
                json!({
                    "id": id, "uid": uid,
                    "changes": {"flags": {"added": added, "deleted": deleted, "value": flags}}
                }),
            );
            report.updated += 1;
        }
        let entry = IndexEntry {
            uid: *uid,
            flags: flags.clone(),
            ..old.clone()
        };
        upsert.push((*uid, entry.encode()));
    }
    if !upsert.is_empty() || !removed.is_empty() {
        batch.change(entries(account, upsert, removed));
    }
    let now = emailengine_core::units::iso_time(chrono::Utc::now().timestamp_millis())
        .unwrap_or_default();
    let mut fields = vec![
        ("path".to_string(), folder.path.clone()),
        ("uidValidity".to_string(), uid_validity.to_string()),
        ("messages".to_string(), mailbox.exists.to_string()),
        ("lastFullSync".to_string(), now),
    ];
    if let Some(next) = mailbox.uid_next {
        fields.push(("uidNext".into(), next.to_string()));
        if silent {
            fields.push(("initialUidNext".into(), next.to_string()));
        }
    }
    if let Some(m) = mailbox.highest_modseq {
        fields.push(("highestModseq".into(), m.to_string()));
    }
    batch.change(Change::FolderStatus {
        account: account.to_string(),
        path: folder.path.clone(),
        fields,
    });
    sink.commit(batch).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn new_looking_mail() {
        assert!(seems_like_new(Some("\\Inbox"), &[]));
        assert!(seems_like_new(None, &["$Label".into()]));
        assert!(!seems_like_new(None, &["\\seen".into()]));
        assert!(!seems_like_new(None, &["\\Draft".into()]));
        assert!(!seems_like_new(Some("\\Sent"), &[]));
        assert!(!seems_like_new(Some("\\Junk"), &[]));
    }
}
