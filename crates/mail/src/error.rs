//! The one error vocabulary of mail operations, whatever the backend: the API turns each
//! variant into EmailEngine's answer in exactly one place (`crates/api/src/error.rs`).

use emailengine_core::connection::ConnectionState;
use emailengine_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The account is not registered.
    #[error("Account record was not found for requested ID")]
    AccountNotFound,
    /// The account's connection is not in a state that serves operations (503).
    #[error("Requested account is not yet initialized")]
    NotConnected(ConnectionState),
    /// No connection became free within the caller's wait (504).
    #[error("Timeout waiting for command response")]
    Timeout,
    #[error("Requested message was not found")]
    MessageNotFound,
    #[error("Mailbox was not found")]
    MailboxNotFound,
    #[error("Requested attachment was not found")]
    AttachmentNotFound,
    /// The request cannot be carried out as asked (400), with EmailEngine's `code`.
    #[error("{message}")]
    Invalid { message: String, code: &'static str },
    /// The mail server refused the command; `response` is its own text.
    #[error("{response}")]
    Refused {
        response: String,
        /// The server's response code (`NONEXISTENT`, `ALREADYEXISTS`, …) when it sent one.
        code: Option<String>,
    },
    /// The connection to the mail server failed during the operation.
    #[error("{0}")]
    Connection(String),
    /// The operation does not exist for this kind of account.
    #[error("{0}")]
    Unsupported(&'static str),
    /// This server's own storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = MailError> = std::result::Result<T, E>;
