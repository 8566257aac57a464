//! The crate's error for everything except token requests, which carry their own richer
//! [`crate::token::TokenError`]. Transient failures (network, 5xx) are told apart from
//! permanent ones because callers retry the first and report the second.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Token(#[from] Box<crate::token::TokenError>),
    /// A stored app record that is not a msgpack map or has no known provider.
    #[error("the stored OAuth2 app record is malformed")]
    MalformedRecord,
    /// A secret field could not be decrypted with the configured service secret.
    #[error(transparent)]
    Secret(#[from] emailengine_core::Error),
    #[error("Application-only OAuth providers do not support interactive authorization")]
    NotInteractive,
    /// An endpoint URL (from an app, an override or discovery) that does not parse.
    #[error("invalid {what} URL")]
    InvalidUrl { what: &'static str },
    /// A generic app without endpoints and without an issuer to discover them from.
    #[error("the OAuth2 app has no {what} endpoint")]
    MissingEndpoint { what: &'static str },
    /// An HTTP exchange other than a token request failed (discovery, introspection,
    /// revocation, the external token provider).
    #[error("{message}")]
    Http { message: String, transient: bool },
}

impl Error {
    /// True for failures worth retrying unchanged: network errors, timeouts and 5xx replies.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Token(t) => t.is_transient(),
            Error::Http { transient, .. } => *transient,
            _ => false,
        }
    }

    pub(crate) fn http(message: impl Into<String>, transient: bool) -> Self {
        Error::Http {
            message: message.into(),
            transient,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
