//! Persistence for emailengine-rs behind traits named for domain operations. The API and the
//! CLI only see these traits; [`redis::RedisStore`] is the first backend and keeps EmailEngine's
//! Redis layout (see [`keys`]) so both servers can share one database.
//!
//! Nothing here decides policy (who may do what); it stores and fetches.

pub mod keys;
pub mod redis;
pub mod settings;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use emailengine_core::token::{ImportedToken, TokenAccess, TokenRecord};

pub use settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or refused the command.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored value could not be read or written as expected.
    #[error("{0}")]
    Data(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored token with its last-use entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub id: String,
    pub record: TokenRecord,
    pub access: TokenAccess,
}

/// Access tokens: the `tokens` hash, `tokens:access`, and the `iat`/`iat:<account>` indexes.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The record for a token id, or `None` when there is none (or it cannot be decoded).
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>>;
    /// Records and access entries for many ids, in order; missing ids are left out.
    async fn tokens(&self, ids: &[String]) -> Result<Vec<StoredToken>>;
    /// Writes a record, resets its access entry and adds it to its index, all at once.
    async fn put_token(&self, id: &str, record: &TokenRecord) -> Result<()>;
    /// Removes a token, its access entry, audit log and index membership. False if absent.
    async fn delete_token(&self, id: &str) -> Result<bool>;
    /// All token ids, or those bound to one account.
    async fn token_ids(&self, account: Option<&str>) -> Result<Vec<String>>;
    /// Stores last-use entries, skipping tokens that no longer exist.
    async fn record_access(&self, entries: &[(String, TokenAccess)]) -> Result<()>;
    /// Counts one request in a fixed rate-limit window and returns the count so far.
    async fn count_request(&self, token_id: &str, window_secs: u64, bucket: i64) -> Result<u64>;

    /// Imports an exported token (spec §3.6): skipped when a live token with that id exists
    /// (true when written). `created` becomes `now_ms`, as in EmailEngine.
    async fn import_token(&self, imported: &ImportedToken, now_ms: i64) -> Result<bool> {
        if let Some(existing) = self.token(&imported.id).await?
            && !existing.is_expired(now_ms)
        {
            return Ok(false);
        }
        let mut record = imported.record.clone();
        record.created = now_ms;
        self.put_token(&imported.id, &record).await?;
        Ok(true)
    }
}

/// The `settings` hash: one JSON string per key (encryption is applied by [`Settings`]).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn raw_settings(&self, keys: &[&str]) -> Result<Vec<Option<String>>>;
    async fn put_raw_settings(&self, values: &[(String, String)]) -> Result<()>;
    /// Sets a key only when it is not set yet; true when written.
    async fn put_raw_setting_if_missing(&self, key: &str, value: &str) -> Result<bool>;
    /// Increments and returns the server run counter (`settings.run`).
    async fn next_run(&self) -> Result<i64>;
}

/// Per-minute counters kept for `/v1/stats` (`stats:keys`, `stats:<key>:<YYYYMMDD>`).
#[async_trait]
pub trait StatsStore: Send + Sync {
    async fn add_counters(&self, deltas: &[(String, u64)], now_ms: i64) -> Result<()>;
    /// Sums of every known counter over the last `window_secs` seconds.
    async fn counters(&self, window_secs: u64, now_ms: i64) -> Result<BTreeMap<String, u64>>;
}

/// What `/health` and `/v1/stats` report about the backend itself.
#[derive(Debug, Clone, Default)]
pub struct BackendInfo {
    /// `7.0.15` or an error text.
    pub version: String,
    pub software: Option<String>,
    pub cluster: bool,
}

#[async_trait]
pub trait ServerStore: Send + Sync {
    /// A write-read-delete round trip, as EmailEngine's `/health` does.
    async fn health_check(&self) -> Result<()>;
    async fn backend_info(&self) -> Result<BackendInfo>;
    async fn ping(&self) -> Result<Duration>;
}

/// Registered accounts (`ia:accounts`, `iad:<account>`); grows with the sync engine.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Number of registered accounts.
    async fn account_count(&self) -> Result<u64>;
    async fn account_exists(&self, account: &str) -> Result<bool>;
}

/// Every store the server needs, as one object that backends implement.
pub trait Store: TokenStore + SettingsStore + StatsStore + ServerStore + AccountStore {}
impl<T: TokenStore + SettingsStore + StatsStore + ServerStore + AccountStore> Store for T {}
