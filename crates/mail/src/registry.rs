//! Finding the backend of an account, and the connection life cycle the API can ask for
//! (start, stop, reconnect, resync, state). One registry serves every kind of account; an
//! account's kind decides which backend it gets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use emailengine_core::account::ServerSettings;
use emailengine_core::connection::ConnectionState;

use crate::backend::MailBackend;
use crate::error::Result;

/// The outcome of trying a server's settings (`POST /v1/verifyAccount`).
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Success {
        /// The folder list, when it was asked for.
        mailboxes: Option<Vec<Value>>,
    },
    Failed {
        error: String,
        code: &'static str,
    },
}

#[async_trait]
pub trait MailRegistry: Send + Sync {
    /// The backend that serves an account's mail operations. Calls that need a connection wait
    /// up to `wait` for one before they fail with [`crate::MailError::Timeout`].
    async fn backend(&self, account: &str, wait: Duration) -> Result<Arc<dyn MailBackend>>;
    /// Starts (or restarts) an account's connection.
    fn start(&self, account: &str);
    /// Stops an account's connection and closes its sessions.
    async fn stop(&self, account: &str);
    /// Asks a running connection to reconnect; false when none runs.
    fn reconnect(&self, account: &str) -> bool;
    /// Asks a running connection to resync every folder; false when none runs.
    fn sync(&self, account: &str) -> bool;
    /// The live connection state, when a connection runs.
    fn state(&self, account: &str) -> Option<ConnectionState>;
    /// Running connections by state.
    fn state_counts(&self) -> BTreeMap<ConnectionState, u64>;
    /// Logs in with the given settings (and lists folders when `mailboxes`), then leaves.
    async fn verify(&self, settings: &ServerSettings, mailboxes: bool) -> Verified;
}
