//! Folder listings: LIST/LSUB results turned into EmailEngine's listing entries (`ial:`), with
//! special-use detection and modified UTF-7 path decoding; [`refresh`] stores a new listing and
//! reports the folders that appeared or vanished.

use rmpv::Value;
use serde_json::json;

use emailengine_mail::events::EventSink;
use emailengine_store::Change;

use crate::command::{self, Listed};
use crate::connect::Session;
use crate::sync::SyncError;

/// One folder of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct Folder {
    /// Decoded (UTF-8) path.
    pub path: String,
    pub delimiter: Option<String>,
    pub name: String,
    pub special_use: Option<String>,
    /// `user` (server said so), `extension`, or `name` (guessed from the name).
    pub special_use_source: Option<&'static str>,
    pub subscribed: bool,
    pub no_select: bool,
    pub no_inferiors: bool,
}

impl Folder {
    /// Folders that can be opened (neither `\Noselect` nor `\NonExistent`).
    pub fn selectable(&self) -> bool {
        !self.no_select
    }

    /// The msgpack listing entry EmailEngine keeps in `ial:<account>`.
    pub fn listing_entry(&self) -> Vec<u8> {
        let s = |v: &Option<String>| v.as_deref().map_or(Value::Nil, Value::from);
        let map = Value::Map(vec![
            (Value::from("path"), Value::from(self.path.as_str())),
            (Value::from("specialUse"), s(&self.special_use)),
            (Value::from("name"), Value::from(self.name.as_str())),
            (Value::from("listed"), Value::Boolean(true)),
            (Value::from("subscribed"), Value::Boolean(self.subscribed)),
            (Value::from("delimiter"), s(&self.delimiter)),
            (
                Value::from("specialUseSource"),
                self.special_use_source.map_or(Value::Nil, Value::from),
            ),
            (
                Value::from("noInferiors"),
                Value::Boolean(self.no_inferiors),
            ),
        ]);
        emailengine_core::msgpack::encode(&map)
    }

    /// The API's view (`GET /v1/account/{account}/mailboxes`).
    pub fn to_json(&self) -> serde_json::Value {
        let parent = self
            .delimiter
            .as_deref()
            .and_then(|d| self.path.rsplit_once(d).map(|(p, _)| p.to_string()));
        let mut v = json!({
            "path": self.path,
            "delimiter": self.delimiter,
            "parentPath": parent.unwrap_or_default(),
            "name": self.name,
            "listed": true,
            "subscribed": self.subscribed,
        });
        if let Some(su) = &self.special_use {
            v["specialUse"] = json!(su);
            v["specialUseSource"] = json!(self.special_use_source);
        }
        if self.no_select {
            v["noSelect"] = json!(true);
        }
        if self.no_inferiors {
            v["noInferiors"] = json!(true);
        }
        v
    }

    /// Reads a stored listing entry back.
    pub fn from_listing_entry(bytes: &[u8]) -> Option<Self> {
        let Value::Map(entries) = emailengine_core::msgpack::decode(bytes)? else {
            return None;
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let text = |k: &str| get(k).and_then(Value::as_str).map(str::to_string);
        Some(Folder {
            path: text("path")?,
            delimiter: text("delimiter"),
            name: text("name").unwrap_or_default(),
            special_use: text("specialUse"),
            special_use_source: match get("specialUseSource").and_then(Value::as_str) {
                Some("user") => Some("user"),
                Some("extension") => Some("extension"),
                Some("name") => Some("name"),
                _ => None,
            },
            subscribed: get("subscribed").and_then(Value::as_bool).unwrap_or(false),
            no_select: false,
            no_inferiors: get("noInferiors").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// Encodes a UTF-8 path for IMAP commands (modified UTF-7).
pub fn encode_path(path: &str) -> String {
    utf7_imap::encode_utf7_imap(path.to_string())
}

fn decode_path(raw: &str) -> String {
    if raw.contains('&') {
        utf7_imap::decode_utf7_imap(raw.to_string())
    } else {
        raw.to_string()
    }
}

fn special_use_by_name(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    Some(match n.as_str() {
        "sent" | "sent items" | "sent messages" | "sent mail" => "\\Sent",
        "trash" | "deleted items" | "deleted messages" | "bin" => "\\Trash",
        "drafts" | "draft" => "\\Drafts",
        "junk" | "spam" | "junk e-mail" | "junk email" => "\\Junk",
        "archive" | "archives" => "\\Archive",
        _ => return None,
    })
}

fn folder_from_listed(n: &Listed, subscribed: &[String]) -> Folder {
    let path = decode_path(&n.name);
    let delimiter = n.delimiter.clone();
    let name = delimiter
        .as_deref()
        .and_then(|d| path.rsplit(d).next())
        .unwrap_or(&path)
        .to_string();
    let has = |a: &str| n.attributes.iter().any(|x| x == a);
    let no_select = has("\\noselect") || has("\\nonexistent");
    let no_inferiors = has("\\noinferiors");
    let special = [
        ("\\all", "\\All"),
        ("\\archive", "\\Archive"),
        ("\\drafts", "\\Drafts"),
        ("\\flagged", "\\Flagged"),
        ("\\junk", "\\Junk"),
        ("\\sent", "\\Sent"),
        ("\\trash", "\\Trash"),
    ]
    .into_iter()
    .rev()
    .filter(|(attr, _)| has(attr))
    .map(|(_, su)| su)
    .next();
    let (special_use, source) = if path.eq_ignore_ascii_case("INBOX") {
        (Some("\\Inbox"), Some("name"))
    } else if let Some(s) = special {
        (Some(s), Some("extension"))
    } else if let Some(s) = special_use_by_name(&name) {
        (Some(s), Some("name"))
    } else {
        (None, None)
    };
    Folder {
        subscribed: subscribed.contains(&path),
        path: if path.eq_ignore_ascii_case("INBOX") {
            "INBOX".into()
        } else {
            path
        },
        delimiter,
        name,
        special_use: special_use.map(str::to_string),
        special_use_source: source,
        no_select,
        no_inferiors,
    }
}

/// The folder list with, where the server answers LIST-STATUS, each folder's counters.
#[derive(Debug, Default)]
pub struct Listing {
    pub folders: Vec<Folder>,
    /// Counters by decoded path.
    pub stats: std::collections::HashMap<String, command::FolderStat>,
}

/// What a folder listing asks for beyond the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counters {
    /// LIST and LSUB: any server.
    Plain,
    /// One `LIST … RETURN (SUBSCRIBED)` (LIST-EXTENDED): names and subscriptions without
    /// opening any folder.
    Subscribed,
    /// One `LIST … RETURN (SUBSCRIBED STATUS (…))` (LIST-STATUS): every folder's counters too,
    /// with HIGHESTMODSEQ when `condstore`.
    Status { condstore: bool },
}

impl Counters {
    /// The one-round-trip form the server takes, with or without counters.
    pub fn for_server(abilities: &crate::connect::Abilities, counters: bool) -> Self {
        match (abilities.list_status, counters) {
            (false, _) => Counters::Plain,
            (true, false) => Counters::Subscribed,
            (true, true) => Counters::Status {
                condstore: abilities.condstore,
            },
        }
    }
}

/// The whole tree in one round trip where the server has LIST-EXTENDED (subscriptions, and
/// with [`Counters::Status`] the counters, come with it), else LIST and LSUB.
pub async fn list_with_status(
    session: &mut Session,
    counters: Counters,
) -> Result<Listing, crate::error::ImapError> {
    let returns = match counters {
        Counters::Plain => {
            return Ok(Listing {
                folders: list_folders(session).await?,
                stats: Default::default(),
            });
        }
        Counters::Subscribed => "SUBSCRIBED".to_string(),
        Counters::Status { condstore: true } => {
            "SUBSCRIBED STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)".to_string()
        }
        Counters::Status { condstore: false } => {
            "SUBSCRIBED STATUS (MESSAGES UIDNEXT UIDVALIDITY)".to_string()
        }
    };
    let (names, stats) =
        command::list_status(session, &format!("LIST \"\" \"*\" RETURN ({returns})")).await?;
    let subscribed: Vec<String> = names
        .iter()
        .filter(|n| n.attributes.iter().any(|a| a == "\\subscribed"))
        .map(|n| decode_path(&n.name))
        .collect();
    let mut folders: Vec<Folder> = names
        .iter()
        .map(|n| folder_from_listed(n, &subscribed))
        .collect();
    folders.sort_by(|a, b| (a.path != "INBOX", &a.path).cmp(&(b.path != "INBOX", &b.path)));
    let stats = stats
        .into_iter()
        .map(|(name, stat)| {
            let path = decode_path(&name);
            let path = if path.eq_ignore_ascii_case("INBOX") {
                "INBOX".into()
            } else {
                path
            };
            (path, stat)
        })
        .collect();
    Ok(Listing { folders, stats })
}

/// LIST and LSUB the whole tree. A refused listing is an error, never an empty account.
pub async fn list_folders(session: &mut Session) -> Result<Vec<Folder>, crate::error::ImapError> {
    let subscribed: Vec<String> = command::list(session, "LSUB \"\" \"*\"")
        .await?
        .iter()
        .map(|n| decode_path(&n.name))
        .collect();
    let names = command::list(session, "LIST \"\" \"*\"").await?;
    let mut folders: Vec<Folder> = names
        .iter()
        .map(|n| folder_from_listed(n, &subscribed))
        .collect();
    folders.sort_by(|a, b| (a.path != "INBOX", &a.path).cmp(&(b.path != "INBOX", &b.path)));
    Ok(folders)
}

/// Lists folders, stores the listing, and reports folders that appeared or vanished since the
/// stored listing: the events, the dropped indexes and the new listing land together.
pub async fn refresh(
    session: &mut Session,
    sink: &EventSink,
    account: &str,
    counters: Counters,
) -> Result<Listing, SyncError> {
    let listing = list_with_status(session, counters).await?;
    let folders = listing.folders;
    let previous: Vec<Folder> = sink
        .store
        .listing(account)
        .await?
        .iter()
        .filter_map(|(_, b)| Folder::from_listing_entry(b))
        .collect();
    let mut batch = sink.batch().await;
    if !previous.is_empty() {
        for f in folders
            .iter()
            .filter(|f| !previous.iter().any(|p| p.path == f.path))
        {
            batch.event(
                account,
                "mailboxNew",
                Some(&f.path),
                f.special_use.as_deref(),
                json!({"path": f.path, "name": f.name, "specialUse": f.special_use}),
            );
        }
        for p in previous
            .iter()
            .filter(|p| !folders.iter().any(|f| f.path == p.path))
        {
            batch.event(
                account,
                "mailboxDeleted",
                Some(&p.path),
                p.special_use.as_deref(),
                json!({"path": p.path, "name": p.name, "specialUse": p.special_use}),
            );
            batch.change(Change::ResetFolder {
                account: account.to_string(),
                path: p.path.clone(),
            });
        }
    }
    batch.change(Change::Listing {
        account: account.to_string(),
        entries: folders
            .iter()
            .map(|f| {
                (
                    emailengine_core::ids::normalize_path(&f.path),
                    f.listing_entry(),
                )
            })
            .collect(),
    });
    sink.commit(batch).await?;
    Ok(Listing {
        folders,
        stats: listing.stats,
    })
}
