//! OAuth2 for emailengine-rs (spec §14–§15): the OAuth2 app record and its storage codecs, the
//! providers' endpoints, scopes and authorize URLs, token requests against real authorization
//! servers, the SASL strings that log in with a token, the refresh decision, and the external
//! token provider (`authServer`).
//!
//! Pure parts ([`app`], [`provider`], [`sasl`], [`refresh`]) do no I/O; [`token`] and
//! [`auth_server`] are thin HTTP clients around them. Nothing here logs, and every type that
//! holds a token or a secret prints it redacted. Start with [`app::OAuthApp`] and
//! [`token::TokenClient`].

pub mod app;
pub mod auth_server;
pub mod error;
pub mod provider;
pub mod refresh;
pub mod sasl;
pub mod token;

pub use error::{Error, Result};
