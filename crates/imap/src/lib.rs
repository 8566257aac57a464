//! The IMAP side of emailengine-rs: one actor per account ([`engine`]) that connects
//! ([`connect`]), lists folders ([`folders`]), syncs them into the store ([`sync`]) and turns
//! changes into events ([`events`]); [`message`] shapes messages as the API shows them.
//! Knows nothing of HTTP.

pub mod connect;
pub mod engine;
pub mod events;
pub mod folders;
pub mod message;
pub mod sync;

pub use engine::{Engine, EngineConfig, OpError, PooledSession};
