//! The backend-neutral mail interface of emailengine-rs. The API and the submit path speak the
//! operations of [`MailBackend`] (folders, listings, a typed [`Search`], message reads and
//! changes, uploads, the Sent copy) and find an account's backend through [`MailRegistry`];
//! each backend (IMAP today, the Gmail API and Microsoft Graph later) turns them into its own
//! protocol. Failures use one vocabulary, [`MailError`].
//!
//! Start with [`backend`] for the operations, [`search`] for the query model, [`events`] for how
//! changes become webhook events, [`changes`] for the live stream of connection states,
//! [`html`] for the web-safe rendering of message HTML, and [`oauth`] for the logins of OAuth2
//! accounts.

pub mod backend;
pub mod changes;
pub mod error;
pub mod events;
pub mod html;
pub mod network;
pub mod oauth;
pub mod registry;
pub mod search;

pub use backend::{
    ByteStream, Deleted, DetailsOptions, Download, FlagChanges, FolderPath, FolderUpdate,
    MailBackend, MessagePage, MessageUpdate, Moved, Page, StoredMessage, TextType, Upload,
    Uploaded,
};
pub use error::MailError;
pub use registry::{MailRegistry, Verified};
pub use search::{Search, SearchTerm};
