//! The IMAP implementation of [`MailBackend`]: every mailbox and message operation of the API,
//! run on a command session lent by the account's pool. Message ids pack the folder's registry
//! id and the UID (spec §13.4); this is the only place that builds IMAP commands for the API.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use emailengine_core::ids::{MessageId, decode_attachment_id, decode_text_id};
use emailengine_mail::{
    ByteStream, Deleted, DetailsOptions, Download, FolderPath, FolderUpdate, MailBackend,
    MailError, MessagePage, MessageUpdate, Moved, Page, Search, StoredMessage, Upload, Uploaded,
};

use crate::command::{self, quote};
use crate::error::ImapError;
use crate::folders::{Folder, encode_path};
use crate::message::{self, Fetched, Place};
use crate::pool::PooledSession;
use crate::registry::Engine;
use crate::search::{SearchAbilities, criteria};
use crate::sync::{fetch_summaries, flag_text, uid_set};

type Result<T, E = MailError> = std::result::Result<T, E>;

/// Bytes per IMAP partial fetch when streaming (EmailEngine's default chunk size).
const CHUNK: u64 = 1_000_000;

/// One account's mail, over IMAP.
pub struct ImapMail {
    engine: Engine,
    account: String,
    /// How long a call waits for a command session.
    wait: Duration,
}

/// A message id resolved to its folder.
struct Located {
    id: MessageId,
    path: String,
    uid_validity: u64,
}

/// An IMAP result on a pooled session, as a mail error; a session it broke is retired.
fn on<T>(s: &mut PooledSession, r: std::result::Result<T, async_imap::error::Error>) -> Result<T> {
    let r = r.map_err(ImapError::from);
    s.check(r).map_err(MailError::from)
}

fn checked<T>(s: &mut PooledSession, r: std::result::Result<T, ImapError>) -> Result<T> {
    s.check(r).map_err(MailError::from)
}

/// Flags as IMAP atoms, refusing anything that would break the command.
fn flag_atoms(flags: &[String]) -> Result<String> {
    for f in flags {
        if f.is_empty()
            || !f
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"]".contains(&b))
        {
            return Err(MailError::Invalid {
                message: format!("Invalid flag: {f}"),
                code: "InvalidFlag",
            });
        }
    }
    Ok(flags.join(" "))
}

impl ImapMail {
    pub fn new(engine: Engine, account: &str, wait: Duration) -> Self {
        Self {
            engine,
            account: account.to_string(),
            wait,
        }
    }

    async fn session(&self) -> Result<PooledSession> {
        self.engine.session(&self.account, self.wait).await
    }

    /// The stored folder listing, INBOX first, then by path.
    async fn listing(&self) -> Result<Vec<Folder>> {
        let mut list: Vec<Folder> = self
            .engine
            .store()
            .listing(&self.account)
            .await?
            .iter()
            .filter_map(|(_, b)| Folder::from_listing_entry(b))
            .collect();
        list.sort_by(|a, b| (a.path != "INBOX", &a.path).cmp(&(b.path != "INBOX", &b.path)));
        Ok(list)
    }

    async fn special_use(&self, path: &str) -> Result<Option<String>> {
        Ok(self
            .listing()
            .await?
            .into_iter()
            .find(|f| f.path == path)
            .and_then(|f| f.special_use))
    }

    async fn trash(&self) -> Result<Option<String>> {
        Ok(self
            .listing()
            .await?
            .into_iter()
            .find(|f| f.special_use.as_deref() == Some("\\Trash"))
            .map(|f| f.path))
    }

    async fn resolve(&self, path: &FolderPath) -> Result<String> {
        Ok(match path {
            FolderPath::Path(p) => p.clone(),
            FolderPath::Segments(parts) => {
                let delimiter = self
                    .listing()
                    .await?
                    .iter()
                    .find_map(|f| f.delimiter.clone())
                    .unwrap_or_else(|| "/".into());
                parts.join(&delimiter)
            }
        })
    }

    async fn mailbox_id(&self, uid_validity: u64, path: &str) -> Result<u32> {
        Ok(self
            .engine
            .store()
            .mailbox_id(&self.account, uid_validity, path)
            .await?)
    }

    async fn locate(&self, id: &str) -> Result<Located> {
        let id = MessageId::decode(id).ok_or(MailError::MessageNotFound)?;
        let (uid_validity, path) = self
            .engine
            .store()
            .mailbox_by_id(&self.account, id.mailbox)
            .await?
            .ok_or(MailError::MessageNotFound)?;
        Ok(Located {
            id,
            path,
            uid_validity,
        })
    }

    /// A session with the message's folder open, checking the folder is the same generation.
    async fn open(&self, at: &Located, write: bool) -> Result<PooledSession> {
        let mut s = self.session().await?;
        let r = s.open_folder(&at.path, write).await;
        let mailbox = checked(&mut s, r).map_err(|e| match e {
            MailError::Refused { .. } | MailError::MailboxNotFound => MailError::MessageNotFound,
            e => e,
        })?;
        if mailbox.uid_validity != at.uid_validity {
            return Err(MailError::MessageNotFound);
        }
        Ok(s)
    }

    /// A session with a folder open; a folder the server does not have is `MailboxNotFound`.
    async fn open_path(
        &self,
        path: &str,
        write: bool,
    ) -> Result<(PooledSession, crate::pool::Selected)> {
        let mut s = self.session().await?;
        let r = s.open_folder(path, write).await;
        let sel = checked(&mut s, r).map_err(|e| match e {
            MailError::Refused { .. } => MailError::MailboxNotFound,
            e => e,
        })?;
        Ok((s, sel))
    }

    async fn abilities(&self, s: &mut PooledSession) -> Result<crate::connect::Abilities> {
        match self.engine.abilities(&self.account) {
            Some(a) => Ok(a),
            None => {
                let r = crate::connect::Abilities::read(s.in_folder()).await;
                checked(s, r)
            }
        }
    }

    /// UIDs of the open folder matching a search, ascending.
    async fn matching(&self, s: &mut PooledSession, search: &Search) -> Result<Vec<u32>> {
        let a = self.abilities(s).await?;
        let can = SearchAbilities {
            gmail: a.gmail,
            object_id: a.object_id,
        };
        let Some(query) = criteria(search, can) else {
            return Ok(Vec::new());
        };
        let r = s.in_folder().uid_search(&query).await;
        let mut uids: Vec<u32> = on(s, r)?.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    async fn entries(
        &self,
        s: &mut PooledSession,
        path: &str,
        uid_validity: u64,
        set: &str,
        by_uid: bool,
    ) -> Result<Vec<Value>> {
        let abilities = self.abilities(s).await?;
        let r = fetch_summaries(s.in_folder(), set, by_uid, abilities.gmail).await;
        let mut fetched = on(s, r)?;
        let r = crate::sync::add_threads(s.in_folder(), &mut fetched, abilities).await;
        checked(s, r)?;
        fetched.sort_by_key(|f| std::cmp::Reverse(f.uid));
        let mailbox = self.mailbox_id(uid_validity, path).await?;
        let special_use = self.special_use(path).await?;
        let place = Place {
            mailbox,
            path,
            special_use: special_use.as_deref(),
        };
        Ok(fetched
            .iter()
            .map(|f| message::list_entry(place, f))
            .collect())
    }

    /// Fetches one message with its whole source.
    async fn fetch_full(&self, s: &mut PooledSession, uid: u32) -> Result<(Fetched, Vec<u8>)> {
        let abilities = self.abilities(s).await?;
        let items = if abilities.gmail {
            "(UID FLAGS RFC822.SIZE INTERNALDATE X-GM-MSGID X-GM-LABELS BODY.PEEK[])"
        } else {
            "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])"
        };
        let r = fetch_all(s, &uid.to_string(), items).await;
        let fetched = on(s, r)?;
        let f = fetched
            .iter()
            .find(|f| f.uid == Some(uid))
            .ok_or(MailError::MessageNotFound)?;
        let source = f.body().unwrap_or_default().to_vec();
        let mut out = Fetched {
            uid,
            flags: f.flags().filter_map(|x| flag_text(&x)).collect(),
            size: f.size.unwrap_or(source.len() as u32),
            internal_date: f.internal_date().map(|d| d.timestamp_millis()),
            modseq: f.modseq.unwrap_or(0),
            header: Vec::new(),
            email_id: f.gmail_msg_id().map(u64::to_string),
            labels: f
                .gmail_labels()
                .map(|l| l.iter().map(|x| x.to_string()).collect()),
            thread_id: None,
        };
        if abilities.gmail {
            let r = command::gmail_thread_ids(s.in_folder(), &uid.to_string()).await;
            out.thread_id = checked(s, r)?.get(&uid).map(u64::to_string);
        } else if abilities.thread_references {
            out.thread_id = message::reference_thread_id(&source);
        }
        Ok((out, source))
    }

    async fn store_flags(
        &self,
        s: &mut PooledSession,
        set: &str,
        update: &MessageUpdate,
    ) -> Result<()> {
        if set.is_empty() {
            return Ok(());
        }
        for (item, flags, labels) in [
            ("FLAGS", &update.flags.set, false),
            ("+FLAGS", &update.flags.add, false),
            ("-FLAGS", &update.flags.delete, false),
            ("X-GM-LABELS", &update.labels.set, true),
            ("+X-GM-LABELS", &update.labels.add, true),
            ("-X-GM-LABELS", &update.labels.delete, true),
        ] {
            let Some(list) = flags else { continue };
            // Servers without labels have nothing to change; the rest of the update stands.
            if labels && !self.abilities(s).await?.gmail {
                continue;
            }
            let text = if labels {
                list.iter().map(|l| quote(l)).collect::<Vec<_>>().join(" ")
            } else {
                flag_atoms(list)?
            };
            let r = command::run(
                s.in_folder(),
                &format!("UID STORE {set} {item}.SILENT ({text})"),
            )
            .await;
            checked(s, r)?;
        }
        Ok(())
    }

    /// UID MOVE, reporting where the messages landed.
    async fn move_uids(
        &self,
        s: &mut PooledSession,
        set: &str,
        target: &str,
    ) -> Result<command::Placed> {
        let r = command::run(
            s.get(),
            &format!("UID MOVE {set} {}", quote(&encode_path(target))),
        )
        .await;
        checked(s, r)
    }

    async fn trash_or_expunge(
        &self,
        s: &mut PooledSession,
        set: &str,
        trash: Option<String>,
    ) -> Result<Deleted> {
        match trash {
            Some(trash) => {
                self.move_uids(s, set, &trash).await?;
                Ok(Deleted::MovedTo(trash))
            }
            None => {
                let r = command::run(
                    s.in_folder(),
                    &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
                )
                .await;
                checked(s, r)?;
                let r = command::run(s.get(), &format!("UID EXPUNGE {set}")).await;
                checked(s, r)?;
                Ok(Deleted::Expunged)
            }
        }
    }

    /// Lists folders again on this session so the stored listing is current before answering.
    async fn relist(&self, s: &mut PooledSession) -> Result<()> {
        self.engine
            .refresh_folders(&self.account, s.get(), crate::folders::Counters::Plain)
            .await
            .map(drop)
            .map_err(|e| match e {
                crate::sync::SyncError::Imap(e) => {
                    if e.breaks_session() {
                        s.discard();
                    }
                    MailError::from(e)
                }
                crate::sync::SyncError::Store(e) => MailError::Store(e),
            })
    }
}

/// UID FETCH in the open folder, collected.
async fn fetch_all(
    s: &mut PooledSession,
    set: &str,
    query: &str,
) -> std::result::Result<Vec<async_imap::types::Fetch>, async_imap::error::Error> {
    s.in_folder()
        .uid_fetch(set, query)
        .await?
        .try_collect()
        .await
}

/// One body section of a message (`BODY.PEEK[…]` named by `item`); `None` when the server
/// returned no such message or part.
async fn fetch_section(
    s: &mut PooledSession,
    uid: u32,
    item: &str,
    path: &imap_proto::SectionPath,
) -> Result<Option<Vec<u8>>> {
    let r = fetch_all(s, &uid.to_string(), &format!("(UID {item})")).await;
    let fetched = on(s, r)?;
    Ok(fetched
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| f.section(path).map(<[u8]>::to_vec)))
}

fn section(numbers: &[u32], mime: bool) -> imap_proto::SectionPath {
    imap_proto::SectionPath::Part(
        numbers.to_vec(),
        mime.then_some(imap_proto::MessageSection::Mime),
    )
}

/// The same section path again (imap-proto's type is not `Clone`).
fn same(path: &imap_proto::SectionPath) -> imap_proto::SectionPath {
    match path {
        imap_proto::SectionPath::Part(n, m) => imap_proto::SectionPath::Part(
            n.clone(),
            m.as_ref().map(|_| imap_proto::MessageSection::Mime),
        ),
        imap_proto::SectionPath::Full(_) => {
            imap_proto::SectionPath::Full(imap_proto::MessageSection::Text)
        }
    }
}

/// Streams a body section in chunks as the client reads it, so a large message never sits in
/// memory whole; `decode` turns each chunk into output bytes (and `finish` the tail).
fn chunks(
    first: Vec<u8>,
    s: PooledSession,
    uid: u32,
    item: String,
    path: imap_proto::SectionPath,
    mut decoder: Option<message::Base64Stream>,
) -> ByteStream {
    let done = (first.len() as u64) < CHUNK;
    let mut head = match decoder.as_mut() {
        Some(d) => d.push(&first),
        None => first.clone(),
    };
    if done && let Some(d) = decoder.as_mut() {
        head.extend(d.finish());
    }
    let rest = futures_util::stream::unfold(
        (s, first.len() as u64, done, decoder),
        move |(mut s, offset, done, mut decoder)| {
            let (item, path) = (item.clone(), same(&path));
            async move {
                if done {
                    return None;
                }
                let query = format!("{item}<{offset}.{CHUNK}>");
                match fetch_section(&mut s, uid, &query, &path).await {
                    Ok(Some(bytes)) if !bytes.is_empty() => {
                        let last = (bytes.len() as u64) < CHUNK;
                        let mut out = match decoder.as_mut() {
                            Some(d) => d.push(&bytes),
                            None => bytes.clone(),
                        };
                        if last && let Some(d) = decoder.as_mut() {
                            out.extend(d.finish());
                        }
                        let next = offset + bytes.len() as u64;
                        Some((Ok(Bytes::from(out)), (s, next, last, decoder)))
                    }
                    Ok(_) => {
                        let tail = decoder.as_mut().map(|d| d.finish()).unwrap_or_default();
                        Some((Ok(Bytes::from(tail)), (s, offset, true, decoder)))
                    }
                    Err(e) => Some((
                        Err(std::io::Error::other(e.to_string())),
                        (s, offset, true, decoder),
                    )),
                }
            }
        },
    );
    Box::pin(futures_util::stream::once(async move { Ok(Bytes::from(head)) }).chain(rest))
}

#[async_trait]
impl MailBackend for ImapMail {
    async fn folders(&self, counters: bool) -> Result<Vec<Value>> {
        let folders = self.listing().await?;
        let mut session = if counters {
            Some(self.session().await?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(folders.len());
        for f in &folders {
            let mut v = f.to_json();
            let status = self
                .engine
                .store()
                .folder_status(&self.account, &f.path)
                .await?;
            if let Some(n) = status.get("messages").and_then(|m| m.parse::<u64>().ok()) {
                v["messages"] = json!(n);
            }
            if let Some(n) = status.get("uidNext").and_then(|m| m.parse::<u64>().ok()) {
                v["uidNext"] = json!(n);
            }
            if let Some(s) = session.as_mut().filter(|_| f.selectable()) {
                let r = s
                    .get()
                    .status(encode_path(&f.path), "(MESSAGES UNSEEN)")
                    .await;
                match on(s, r) {
                    Ok(mb) => {
                        v["status"] =
                            json!({"messages": mb.exists, "unseen": mb.unseen.unwrap_or(0)})
                    }
                    Err(MailError::Refused { .. } | MailError::MailboxNotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            out.push(v);
        }
        Ok(out)
    }

    async fn create_folder(&self, path: &FolderPath) -> Result<Value> {
        let path = self.resolve(path).await?;
        let mut s = self.session().await?;
        let r = s.get().create(encode_path(&path)).await;
        let created = match on(&mut s, r) {
            Ok(()) => true,
            Err(MailError::Refused { code: Some(c), .. }) if c == "ALREADYEXISTS" => false,
            Err(e) => return Err(e),
        };
        if created {
            let r = s.get().subscribe(encode_path(&path)).await;
            if let Err(e) = on(&mut s, r) {
                tracing::debug!(account = %self.account, err = %e, "SUBSCRIBE refused");
            }
        }
        self.relist(&mut s).await?;
        Ok(json!({"path": path, "created": created}))
    }

    async fn update_folder(&self, update: &FolderUpdate) -> Result<Value> {
        let path = self.resolve(&update.path).await?;
        let mut s = self.session().await?;
        let mut out = json!({"path": path});
        let mut current = path.clone();
        if let Some(new_path) = &update.new_path {
            let new_path = self.resolve(new_path).await?;
            let r = s
                .get()
                .rename(encode_path(&path), encode_path(&new_path))
                .await;
            on(&mut s, r)?;
            out["newPath"] = json!(new_path);
            out["renamed"] = json!(true);
            current = new_path;
        }
        if let Some(subscribe) = update.subscribed {
            let r = if subscribe {
                s.get().subscribe(encode_path(&current)).await
            } else {
                s.get().unsubscribe(encode_path(&current)).await
            };
            on(&mut s, r)?;
            out["subscribed"] = json!(subscribe);
        }
        self.relist(&mut s).await?;
        Ok(out)
    }

    async fn delete_folder(&self, path: &str) -> Result<Value> {
        let mut s = self.session().await?;
        let r = s.get().delete(encode_path(path)).await;
        on(&mut s, r).map_err(|e| match e {
            MailError::Refused { code: Some(c), .. } if c == "NONEXISTENT" => {
                MailError::MailboxNotFound
            }
            e => e,
        })?;
        self.relist(&mut s).await?;
        Ok(json!({"path": path, "deleted": true}))
    }

    async fn list(&self, path: &str, page: Page) -> Result<MessagePage> {
        let (mut s, mailbox) = self.open_path(path, false).await?;
        let total = mailbox.exists as usize;
        let seq_max = total.saturating_sub(page.page.saturating_mul(page.size));
        let mut messages = Vec::new();
        if seq_max >= 1 {
            let seq_min = seq_max.saturating_sub(page.size - 1).max(1);
            messages = self
                .entries(
                    &mut s,
                    path,
                    mailbox.uid_validity,
                    &format!("{seq_min}:{seq_max}"),
                    false,
                )
                .await?;
        }
        Ok(MessagePage::new(total, page, messages))
    }

    async fn search(&self, path: &str, search: &Search, page: Page) -> Result<MessagePage> {
        let (mut s, mailbox) = self.open_path(path, false).await?;
        let mut uids = self.matching(&mut s, search).await?;
        uids.reverse();
        let total = uids.len();
        let mut chunk: Vec<u32> = uids
            .into_iter()
            .skip(page.page.saturating_mul(page.size))
            .take(page.size)
            .collect();
        let mut messages = Vec::new();
        if !chunk.is_empty() {
            chunk.sort_unstable();
            messages = self
                .entries(&mut s, path, mailbox.uid_validity, &uid_set(&chunk), true)
                .await?;
        }
        Ok(MessagePage::new(total, page, messages))
    }

    async fn message(&self, id: &str, options: &DetailsOptions) -> Result<Value> {
        let at = self.locate(id).await?;
        let mut s = self.open(&at, options.mark_as_seen).await?;
        let (fetched, source) = self.fetch_full(&mut s, at.id.uid).await?;
        if options.mark_as_seen && !fetched.flags.iter().any(|f| f == "\\Seen") {
            let r = command::run(
                s.in_folder(),
                &format!("UID STORE {} +FLAGS.SILENT (\\Seen)", at.id.uid),
            )
            .await;
            checked(&mut s, r)?;
        }
        drop(s);
        let special_use = self.special_use(&at.path).await?;
        let place = Place {
            mailbox: at.id.mailbox,
            path: &at.path,
            special_use: special_use.as_deref(),
        };
        Ok(message::details(place, &fetched, &source, options))
    }

    async fn source(&self, id: &str) -> Result<ByteStream> {
        let at = self.locate(id).await?;
        let mut s = self.open(&at, false).await?;
        let uid = at.id.uid;
        // The first chunk is read before answering, so a missing message is still a 404.
        let r = fetch_all(
            &mut s,
            &uid.to_string(),
            &format!("(UID BODY.PEEK[]<0.{CHUNK}>)"),
        )
        .await;
        let first = on(&mut s, r)?
            .iter()
            .find(|f| f.uid == Some(uid))
            .map(|f| f.body().unwrap_or_default().to_vec())
            .ok_or(MailError::MessageNotFound)?;
        let done = (first.len() as u64) < CHUNK;
        let rest = futures_util::stream::unfold(
            (s, first.len() as u64, done),
            move |(mut s, offset, done)| async move {
                if done {
                    return None;
                }
                let r = fetch_all(
                    &mut s,
                    &uid.to_string(),
                    &format!("(UID BODY.PEEK[]<{offset}.{CHUNK}>)"),
                )
                .await;
                match on(&mut s, r) {
                    Ok(fetched) => {
                        let bytes = fetched
                            .iter()
                            .find_map(|f| f.body().map(<[u8]>::to_vec))
                            .unwrap_or_default();
                        if bytes.is_empty() {
                            return None;
                        }
                        let last = (bytes.len() as u64) < CHUNK;
                        let next = offset + bytes.len() as u64;
                        Some((Ok(Bytes::from(bytes)), (s, next, last)))
                    }
                    Err(e) => Some((Err(std::io::Error::other(e.to_string())), (s, offset, true))),
                }
            },
        );
        Ok(Box::pin(
            futures_util::stream::once(async move { Ok(Bytes::from(first)) }).chain(rest),
        ))
    }

    async fn text(&self, text_id: &str, options: &DetailsOptions) -> Result<Value> {
        let (id, parts) = decode_text_id(text_id).ok_or(MailError::MessageNotFound)?;
        let at = self.locate(&id.encode()).await?;
        let mut s = self.open(&at, false).await?;
        let (_, source) = self.fetch_full(&mut s, at.id.uid).await?;
        Ok(message::texts(&source, &parts, options))
    }

    async fn attachment(&self, attachment_id: &str) -> Result<Download> {
        let (id, part) =
            decode_attachment_id(attachment_id).ok_or(MailError::AttachmentNotFound)?;
        let at = self
            .locate(&id.encode())
            .await
            .map_err(|_| MailError::AttachmentNotFound)?;
        let mut s = self.open(&at, false).await.map_err(|e| match e {
            MailError::MessageNotFound => MailError::AttachmentNotFound,
            e => e,
        })?;
        let uid = at.id.uid;
        let numbers: Vec<u32> = part.split('.').filter_map(|n| n.parse().ok()).collect();
        // Only this part is read from the server: its MIME header first, then its body.
        let mime = fetch_section(
            &mut s,
            uid,
            &format!("BODY.PEEK[{part}.MIME]"),
            &section(&numbers, true),
        )
        .await?
        .filter(|m| !m.is_empty())
        .ok_or(MailError::AttachmentNotFound)?;
        let (content_type, filename, encoding) = message::part_header(&mime);
        let item = format!("BODY.PEEK[{part}]");
        let path = section(&numbers, false);
        let body = if encoding == "base64" {
            let first = fetch_section(&mut s, uid, &format!("{item}<0.{CHUNK}>"), &path)
                .await?
                .ok_or(MailError::AttachmentNotFound)?;
            chunks(
                first,
                s,
                uid,
                item,
                path,
                Some(message::Base64Stream::default()),
            )
        } else {
            let raw = fetch_section(&mut s, uid, &item, &path)
                .await?
                .ok_or(MailError::AttachmentNotFound)?;
            let decoded = message::decode_part(&mime, &raw);
            Box::pin(futures_util::stream::once(async move {
                Ok(Bytes::from(decoded))
            })) as ByteStream
        };
        Ok(Download {
            content_type,
            filename,
            body,
        })
    }

    async fn stored(&self, id: &str) -> Result<StoredMessage> {
        let at = self.locate(id).await?;
        let mut s = self.open(&at, false).await?;
        let (fetched, source) = self.fetch_full(&mut s, at.id.uid).await?;
        Ok(StoredMessage {
            source,
            flags: fetched.flags,
            path: at.path,
        })
    }

    async fn update(&self, id: &str, update: &MessageUpdate) -> Result<Value> {
        let at = self.locate(id).await?;
        let mut s = self.open(&at, true).await?;
        self.store_flags(&mut s, &at.id.uid.to_string(), update)
            .await?;
        Ok(update.answer())
    }

    async fn move_message(&self, id: &str, target: &str) -> Result<Moved> {
        let at = self.locate(id).await?;
        let mut s = self.open(&at, true).await?;
        let placed = self
            .move_uids(&mut s, &at.id.uid.to_string(), target)
            .await?;
        let mut moved = Moved {
            path: target.to_string(),
            id: None,
            uid: None,
        };
        if let Some((validity, _, to)) = placed.copied
            && let Some(uid) = to.first().copied()
        {
            let mailbox = self.mailbox_id(u64::from(validity), target).await?;
            moved.id = Some(MessageId { mailbox, uid }.encode());
            moved.uid = Some(uid);
        }
        Ok(moved)
    }

    async fn delete(&self, id: &str, force: bool) -> Result<Deleted> {
        let at = self.locate(id).await?;
        let trash = self.trash().await?.filter(|t| !force && *t != at.path);
        let mut s = self.open(&at, true).await?;
        self.trash_or_expunge(&mut s, &at.id.uid.to_string(), trash)
            .await
    }

    async fn bulk_update(
        &self,
        path: &str,
        search: &Search,
        update: &MessageUpdate,
    ) -> Result<Value> {
        let (mut s, _) = self.open_path(path, true).await?;
        let uids = self.matching(&mut s, search).await?;
        self.store_flags(&mut s, &uid_set(&uids), update).await?;
        Ok(update.answer())
    }

    async fn bulk_move(&self, path: &str, search: &Search, target: &str) -> Result<Value> {
        let (mut s, _) = self.open_path(path, true).await?;
        let uids = self.matching(&mut s, search).await?;
        let moved = !uids.is_empty();
        if moved {
            self.move_uids(&mut s, &uid_set(&uids), target).await?;
        }
        Ok(json!({"path": target, "moved": moved}))
    }

    async fn bulk_delete(&self, path: &str, search: &Search, force: bool) -> Result<Deleted> {
        let trash = self.trash().await?.filter(|t| !force && *t != path);
        let (mut s, _) = self.open_path(path, true).await?;
        let uids = self.matching(&mut s, search).await?;
        if uids.is_empty() {
            return Ok(Deleted::Nothing);
        }
        self.trash_or_expunge(&mut s, &uid_set(&uids), trash).await
    }

    async fn upload(&self, upload: &Upload) -> Result<Uploaded> {
        flag_atoms(&upload.flags)?;
        let mut s = self.session().await?;
        let r = command::append(
            s.get(),
            &encode_path(&upload.path),
            &upload.flags,
            upload.internal_date,
            &upload.raw,
        )
        .await;
        let placed = checked(&mut s, r).map_err(|e| match e {
            MailError::Refused { code: Some(c), .. } if c == "TRYCREATE" || c == "NONEXISTENT" => {
                MailError::MailboxNotFound
            }
            e => e,
        })?;
        let mut out = Uploaded {
            path: upload.path.clone(),
            id: None,
            uid: None,
            uid_validity: None,
        };
        if let Some((validity, uid)) = placed.appended {
            let mailbox = self.mailbox_id(u64::from(validity), &upload.path).await?;
            out.id = Some(MessageId { mailbox, uid }.encode());
            out.uid = Some(uid);
            out.uid_validity = Some(u64::from(validity));
        }
        Ok(out)
    }

    async fn copy_to_sent(&self, raw: &[u8], path: Option<&str>) -> Result<bool> {
        let sent = match path {
            Some(p) => Some(p.to_string()),
            None => self
                .listing()
                .await?
                .into_iter()
                .find(|f| f.special_use.as_deref() == Some("\\Sent"))
                .map(|f| f.path),
        };
        let Some(path) = sent else {
            return Ok(false);
        };
        self.upload(&Upload {
            path,
            raw: raw.to_vec(),
            flags: vec!["\\Seen".into()],
            internal_date: None,
        })
        .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_atoms() {
        assert_eq!(
            flag_atoms(&["\\Seen".into(), "$Work".into()]).unwrap(),
            "\\Seen $Work"
        );
        assert!(flag_atoms(&["bad flag(".into()]).is_err());
        assert!(flag_atoms(&["".into()]).is_err());
    }
}
