//! The one error type of the core crate: every way a value from outside can be wrong.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A token value that is not 64 hex characters.
    #[error("Invalid token format")]
    InvalidToken,
    /// An exported token string that cannot be decoded into a token record.
    #[error("Invalid token export: {0}")]
    InvalidExport(String),
    /// A scope name outside the vocabulary.
    #[error("Unknown scope: {0}")]
    UnknownScope(String),
    /// A `$wd01$` value that could not be decrypted with the configured secret.
    #[error("Failed to decrypt data. Check that the encryption secret is correct")]
    Decrypt,
    /// An admin password hash in a format we cannot use.
    #[error("Invalid password hash provided")]
    InvalidPasswordHash,
    /// A malformed size, duration or other configuration value.
    #[error("{0}")]
    InvalidValue(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
