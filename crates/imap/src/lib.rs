//! The IMAP side of emailengine-rs. Its rooms:
//! - [`registry`]: the [`Engine`], which owns every account's connection and is the
//!   [`emailengine_mail::MailRegistry`] the API asks for backends;
//! - [`account`]: one actor per account, connecting and reconnecting with backoff;
//! - [`idle`]: a connected account — the sync after login, then IDLE on the main folder;
//! - [`pool`]: the per-account connection cap and the command sessions lent to API calls;
//! - [`subconnections`]: extra folders watched on their own IDLE connections;
//! - [`mail`]: the IMAP implementation of [`emailengine_mail::MailBackend`];
//! - [`connect`], [`command`], [`error`]: opening sessions, commands whose answers matter, and
//!   the one conversion from IMAP failures into the mail error vocabulary;
//! - [`folders`], [`sync`], [`search`], [`message`]: listings, folder sync, SEARCH keys and the
//!   JSON shapes of messages.
//!
//! Knows nothing of HTTP.

pub mod account;
pub mod command;
pub mod connect;
pub mod error;
pub mod feedback;
pub mod folders;
pub mod idle;
pub mod mail;
pub mod message;
pub mod pool;
pub mod registry;
pub mod search;
pub mod subconnections;
pub mod sync;
pub mod wire_log;

pub use emailengine_mail::events;
pub use registry::{Engine, EngineConfig};
