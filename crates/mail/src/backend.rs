//! The operations every mail backend offers, in the API's terms. Message ids are opaque strings
//! (IMAP packs mailbox and UID into them; the Gmail API and Graph use their own ids), folders
//! are paths, and answers carry EmailEngine's shapes (spec §6.4) so handlers pass them on.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::search::Search;

/// A body streamed to the client as the backend reads it.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Which page of a listing: `page` counts from 0, newest messages first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: usize,
    pub size: usize,
}

/// A page of message entries with EmailEngine's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub messages: Vec<Value>,
}

impl MessagePage {
    /// A page cut from `total` matches: EmailEngine counts no pages for an empty result.
    pub fn new(total: usize, page: Page, messages: Vec<Value>) -> Self {
        Self {
            total,
            page: page.page,
            pages: total.div_ceil(page.size.max(1)),
            messages,
        }
    }
}

/// Which text parts a message read returns (`textType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextType {
    Plain,
    Html,
    /// `*`: both.
    All,
}

impl TextType {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "plain" => Some(Self::Plain),
            "html" => Some(Self::Html),
            "*" => Some(Self::All),
            _ => None,
        }
    }

    pub fn plain(self) -> bool {
        matches!(self, Self::Plain | Self::All)
    }

    pub fn html(self) -> bool {
        matches!(self, Self::Html | Self::All)
    }
}

/// Options of a message read (`GET …/message/{message}`, `GET …/text/{text}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailsOptions {
    /// Longest text returned per kind, in bytes.
    pub max_bytes: usize,
    pub text_type: TextType,
    /// Sanitised HTML with inline images embedded, made from the text when there is no HTML.
    pub web_safe_html: bool,
    pub mark_as_seen: bool,
}

/// A folder named by its path or by its path segments (joined with the server's delimiter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderPath {
    Path(String),
    Segments(Vec<String>),
}

/// A folder change (`PUT …/mailbox`): a rename, a subscription change, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderUpdate {
    pub path: FolderPath,
    pub new_path: Option<FolderPath>,
    pub subscribed: Option<bool>,
}

/// Flags (or labels) to add, remove or set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagChanges {
    pub add: Option<Vec<String>>,
    pub delete: Option<Vec<String>>,
    pub set: Option<Vec<String>>,
}

impl FlagChanges {
    pub fn is_empty(&self) -> bool {
        self.add.is_none() && self.delete.is_none() && self.set.is_none()
    }

    /// EmailEngine's answer: `{add: true, delete: true, set: true}` for the parts asked for.
    pub fn answer(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, part) in [
            ("add", &self.add),
            ("delete", &self.delete),
            ("set", &self.set),
        ] {
            if part.is_some() {
                out.insert(key.into(), Value::Bool(true));
            }
        }
        out
    }
}

/// A message update (`PUT …/message/{message}`, bulk `PUT …/messages`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageUpdate {
    pub flags: FlagChanges,
    /// Gmail labels; refused by backends without labels.
    pub labels: FlagChanges,
}

impl MessageUpdate {
    pub fn answer(&self) -> Value {
        let mut out = Map::new();
        if !self.flags.is_empty() {
            out.insert("flags".into(), Value::Object(self.flags.answer()));
        }
        if !self.labels.is_empty() {
            out.insert("labels".into(), Value::Object(self.labels.answer()));
        }
        Value::Object(out)
    }
}

/// Where a moved message landed: the new id and UID when the server reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub path: String,
    pub id: Option<String>,
    pub uid: Option<u32>,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Removed for good.
    Expunged,
    /// Moved to this folder (Trash).
    MovedTo(String),
    /// Nothing matched (bulk).
    Nothing,
}

impl Deleted {
    pub fn answer(&self) -> Value {
        match self {
            Deleted::Expunged => serde_json::json!({"deleted": true}),
            Deleted::MovedTo(path) => {
                serde_json::json!({"deleted": false, "moved": {"destination": path}})
            }
            Deleted::Nothing => serde_json::json!({"deleted": false}),
        }
    }
}

/// A message to store in a folder (`POST …/message`, the Sent copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub path: String,
    pub raw: Vec<u8>,
    pub flags: Vec<String>,
    /// The date the server files the message under (ms since the epoch); `None` for now.
    pub internal_date: Option<i64>,
}

/// Where an uploaded message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub path: String,
    pub id: Option<String>,
    pub uid: Option<u32>,
    pub uid_validity: Option<u64>,
}

/// A download: its type, the file name to offer, and the body.
pub struct Download {
    pub content_type: String,
    pub filename: Option<String>,
    pub body: ByteStream,
}

/// A stored message read whole, for replies, forwards and sending drafts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub source: Vec<u8>,
    pub flags: Vec<String>,
    pub path: String,
}

impl StoredMessage {
    pub fn is_draft(&self) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Draft"))
    }
}

/// Every mailbox and message operation of one account.
#[async_trait]
pub trait MailBackend: Send + Sync {
    /// The folder list (spec §6.4), with `status: {messages, unseen}` when `counters`.
    async fn folders(&self, counters: bool) -> Result<Vec<Value>>;
    /// Creates a folder: `{path, mailboxId?, created}`.
    async fn create_folder(&self, path: &FolderPath) -> Result<Value>;
    /// Renames and/or (un)subscribes a folder: `{path, newPath?, renamed?, subscribed?}`.
    async fn update_folder(&self, update: &FolderUpdate) -> Result<Value>;
    /// Deletes a folder: `{path, deleted}`.
    async fn delete_folder(&self, path: &str) -> Result<Value>;

    /// Messages of a folder, newest first.
    async fn list(&self, path: &str, page: Page) -> Result<MessagePage>;
    /// Messages of a folder matching a search, newest first.
    async fn search(&self, path: &str, search: &Search, page: Page) -> Result<MessagePage>;

    /// Full message details.
    async fn message(&self, id: &str, options: &DetailsOptions) -> Result<Value>;
    /// The RFC 822 source.
    async fn source(&self, id: &str) -> Result<ByteStream>;
    /// Text parts by text id: `{plain?, html?, hasMore}`.
    async fn text(&self, text_id: &str, options: &DetailsOptions) -> Result<Value>;
    /// One attachment, decoded.
    async fn attachment(&self, attachment_id: &str) -> Result<Download>;
    /// The whole message with its flags and folder.
    async fn stored(&self, id: &str) -> Result<StoredMessage>;

    /// Changes flags and labels of one message.
    async fn update(&self, id: &str, update: &MessageUpdate) -> Result<Value>;
    async fn move_message(&self, id: &str, target: &str) -> Result<Moved>;
    /// Moves to Trash, or deletes for good when in Trash already or `force`.
    async fn delete(&self, id: &str, force: bool) -> Result<Deleted>;

    async fn bulk_update(
        &self,
        path: &str,
        search: &Search,
        update: &MessageUpdate,
    ) -> Result<Value>;
    async fn bulk_move(&self, path: &str, search: &Search, target: &str) -> Result<Value>;
    async fn bulk_delete(&self, path: &str, search: &Search, force: bool) -> Result<Deleted>;

    async fn upload(&self, upload: &Upload) -> Result<Uploaded>;
    /// Stores a copy of sent mail in `path`, else the account's Sent folder; false when there
    /// is no such folder.
    async fn copy_to_sent(&self, raw: &[u8], path: Option<&str>) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_results_have_no_pages() {
        let page = Page { page: 0, size: 20 };
        assert_eq!(MessagePage::new(0, page, Vec::new()).pages, 0);
        assert_eq!(MessagePage::new(20, page, Vec::new()).pages, 1);
        assert_eq!(MessagePage::new(21, page, Vec::new()).pages, 2);
    }

    #[test]
    fn answers() {
        let u = MessageUpdate {
            flags: FlagChanges {
                add: Some(vec!["\\Seen".into()]),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(u.answer(), serde_json::json!({"flags": {"add": true}}));
        assert_eq!(
            Deleted::MovedTo("Trash".into()).answer(),
            serde_json::json!({"deleted": false, "moved": {"destination": "Trash"}})
        );
    }
}
