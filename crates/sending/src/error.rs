//! The one error type of the sending crate; each variant's text is the message EmailEngine's
//! routes answer with, so the API layer only picks the status code.

use thiserror::Error;

use crate::template::TemplateField;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A Handlebars template that does not compile or render (answered with 422).
    #[error("Failed rendering {field} template")]
    Render {
        field: TemplateField,
        reason: String,
    },
    /// A public link whose `data`/`sig` pair does not verify.
    #[error("Signature validation failed")]
    SignatureValidation,
    /// A correctly signed link that is not the kind the route serves, or lacks a field.
    #[error("Invalid query")]
    InvalidQuery,
    /// A base URL that relative link paths cannot be resolved against.
    #[error("Invalid base URL")]
    InvalidBaseUrl,
    /// A template id that does not decode to `[ms][counter][account]`.
    #[error("Invalid template id")]
    InvalidTemplateId,
    /// A stored template record that is not a msgpack map.
    #[error("Invalid template record")]
    InvalidTemplateRecord,
    /// A mail-merge payload without a usable `mailMerge` list.
    #[error("Invalid mail merge payload: {0}")]
    InvalidMailMerge(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
