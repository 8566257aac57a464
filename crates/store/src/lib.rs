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

/// An account's stored hash fields (`iad:<account>`), plain and JSON strings as EmailEngine
/// writes them.
pub type AccountFields = BTreeMap<String, String>;

/// Registered accounts (`ia:accounts`, `iad:<account>`).
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Number of registered accounts.
    async fn account_count(&self) -> Result<u64>;
    async fn account_exists(&self, account: &str) -> Result<bool>;
    /// Every account id.
    async fn account_ids(&self) -> Result<Vec<String>>;
    /// Writes fields and registers the account; true when it was not registered before.
    async fn put_account(&self, account: &str, fields: &AccountFields) -> Result<bool>;
    /// Updates fields of a registered account; false when there is no such account.
    async fn update_account(&self, account: &str, fields: &AccountFields) -> Result<bool>;
    /// All stored fields, or `None` for an unknown account.
    async fn account(&self, account: &str) -> Result<Option<AccountFields>>;
    /// One stored field of an account.
    async fn account_field(&self, account: &str, field: &str) -> Result<Option<String>>;
    /// Chosen fields of many accounts at once, in order.
    async fn account_summaries(
        &self,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>>;
    /// Removes the account, its indexes and its account-bound tokens; false when unknown.
    async fn delete_account(&self, account: &str) -> Result<bool>;
    /// Removes the account's mailbox and message indexes (they are rebuilt by the next sync).
    async fn flush_account_index(&self, account: &str) -> Result<()>;
    /// Records a connection state change (`state`, `state:count:<state>`, `runIndex`).
    async fn set_account_state(
        &self,
        account: &str,
        state: &str,
        run: i64,
        error: Option<&str>,
    ) -> Result<()>;
}

/// The per-account mailbox and message index the sync engine keeps (spec §7.2–§7.3).
#[async_trait]
pub trait MailboxIndex: Send + Sync {
    /// The numeric id of a mailbox generation, assigned on first use (`iah:<account>`).
    async fn mailbox_id(&self, account: &str, uid_validity: u64, path: &str) -> Result<u32>;
    /// The mailbox generation a numeric id stands for: `(uidValidity, path)`.
    async fn mailbox_by_id(&self, account: &str, id: u32) -> Result<Option<(u64, String)>>;
    /// Stores the folder listing: normalized path → msgpack entry (`ial:<account>`).
    async fn put_listing(&self, account: &str, entries: &[(String, Vec<u8>)]) -> Result<()>;
    async fn listing(&self, account: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Sync status of one folder (`iam:<account>:h:<hash>`).
    async fn folder_status(&self, account: &str, path: &str) -> Result<BTreeMap<String, String>>;
    async fn put_folder_status(
        &self,
        account: &str,
        path: &str,
        status: &[(String, String)],
    ) -> Result<()>;
    /// Every index entry of a folder, by UID.
    async fn folder_entries(&self, account: &str, path: &str) -> Result<Vec<Vec<u8>>>;
    /// Applies a sync result: entries to add or replace (uid, bytes) and UIDs to remove.
    async fn apply_folder_changes(
        &self,
        account: &str,
        path: &str,
        upsert: &[(u32, Vec<u8>)],
        remove: &[u32],
    ) -> Result<()>;
    /// Drops a folder's index and status (UIDVALIDITY changed or folder deleted).
    async fn reset_folder(&self, account: &str, path: &str) -> Result<()>;
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Stable id (the stream entry id), also the webhook event id.
    pub id: String,
    pub account: String,
    pub event: String,
    /// The JSON envelope, exactly as it will be posted.
    pub payload: String,
}

/// The durable event log that webhook delivery consumes. Consumers read through a consumer
/// group and acknowledge each event once it is delivered (or given up); unacknowledged events
/// are read again after a crash, so delivery is at-least-once.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event (its JSON envelope) and returns its stable id.
    async fn append_event(&self, account: &str, event: &str, payload: &str) -> Result<String>;
    /// Creates the consumer group if needed, starting from the first event ever logged.
    async fn ensure_event_group(&self, group: &str) -> Result<()>;
    /// Events delivered to this consumer before and never acknowledged (after a restart).
    async fn pending_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LoggedEvent>>;
    /// New events, waiting up to `block_ms` for one to arrive.
    async fn next_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<LoggedEvent>>;
    async fn ack_event(&self, group: &str, id: &str) -> Result<()>;
    /// Number of events logged but not yet acknowledged by the group.
    async fn events_pending_count(&self, group: &str) -> Result<u64>;
    /// Keeps an event whose delivery was given up, with the reason, for listing and re-sending.
    async fn put_dead_event(&self, event: &LoggedEvent, reason: &str) -> Result<()>;
    /// Dead events, newest first: `(event, reason)`.
    async fn dead_events(
        &self,
        offset: usize,
        count: usize,
    ) -> Result<(u64, Vec<(LoggedEvent, String)>)>;
    /// Removes a dead event and returns it.
    async fn take_dead_event(&self, id: &str) -> Result<Option<LoggedEvent>>;
}

/// One message waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub account: String,
    pub queue_id: String,
    /// The stored entry (msgpack), as the submit path wrote it.
    pub entry: Vec<u8>,
    /// When the next attempt is due (ms).
    pub due: i64,
}

/// The outbox (`iaq:<account>` entries and a schedule of due times). Claiming an entry leases
/// it: a worker that dies mid-send leaves it to be retried once the lease runs out.
#[async_trait]
pub trait Outbox: Send + Sync {
    async fn put_outbox(&self, account: &str, queue_id: &str, entry: &[u8], due: i64)
    -> Result<()>;
    /// Entries due by `now`, each leased to `owner` until `now + lease_ms`.
    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>>;
    /// Makes every entry leased to `owner` due now (its previous run died holding them).
    async fn release_leases(&self, owner: &str, now: i64) -> Result<u64>;
    async fn outbox_item(&self, queue_id: &str) -> Result<Option<OutboxItem>>;
    async fn remove_outbox(&self, queue_id: &str) -> Result<bool>;
    /// Entries by due time: (total, page).
    async fn list_outbox(&self, offset: usize, count: usize) -> Result<(u64, Vec<OutboxItem>)>;
    /// Records `value` under an idempotency key unless one is there; returns the stored value.
    async fn idempotent(
        &self,
        account: &str,
        key: &str,
        value: &str,
        ttl_secs: u64,
    ) -> Result<Option<String>>;
}

/// Every store the server needs, as one object that backends implement.
pub trait Store:
    TokenStore
    + SettingsStore
    + StatsStore
    + ServerStore
    + AccountStore
    + MailboxIndex
    + EventLog
    + Outbox
{
}
impl<T> Store for T where
    T: TokenStore
        + SettingsStore
        + StatsStore
        + ServerStore
        + AccountStore
        + MailboxIndex
        + EventLog
        + Outbox
{
}
