//! The vocabulary of emailengine-rs: token records and their export codec, scopes, permissions
//! and the authorization decisions, the `$wd01$` secret codec, admin password hashes, the settings
//! schema and the value formats EmailEngine uses.
//!
//! Everything here is pure: no I/O, no clocks except where a caller passes `now`, no globals.
//! Start with [`token`] for the access-token model and [`auth`] for how a request is judged.

pub mod account;
pub mod auth;
pub mod compose;
pub mod connection;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod index;
pub mod license;
pub mod msgpack;
pub mod network;
pub mod password;
pub mod permissions;
pub mod protocol_log;
pub mod secret;
pub mod settings;
pub mod signed;
pub mod token;
pub mod units;
pub mod validation;

pub use error::{Error, Result};

/// The EmailEngine version this server is compatible with; reported in `/v1/stats`.
pub const COMPAT_VERSION: &str = "2.79.2";
/// This implementation's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
