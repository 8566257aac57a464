//! Persistence for emailengine-rs behind traits named for domain operations. The API, the sync
//! engine, the workers and the CLI only see these traits ([`Store`]); [`open`] picks the backend
//! the configuration names: the embedded store ([`sqlite::SqliteStore`], the default, one data
//! directory shared by the server and the CLI) or Redis ([`redis::RedisStore`], EmailEngine's own
//! layout, see [`keys`], so both servers can share one database).
//!
//! Nothing here decides policy (who may do what); it stores and fetches. Writes that must land
//! together go through [`Transactions::commit`], which applies a list of [`Change`]s atomically
//! on either backend.

pub mod factory;
pub mod keys;
pub mod migrate;
pub mod redis;
pub mod settings;
pub mod sqlite;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use emailengine_core::token::{ImportedToken, TokenAccess, TokenRecord};

pub use factory::{Role, StoreConfig, open};
pub use settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or refused the command.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored value could not be read or written as expected.
    #[error("{0}")]
    Data(String),
    /// The store could not be opened; the text says which and why.
    #[error("{0}")]
    Open(String),
}

impl StoreError {
    /// The message without the variant's prefix.
    pub fn detail(&self) -> &str {
        match self {
            Self::Backend(m) | Self::Data(m) | Self::Open(m) => m,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored token with its last-use entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub id: String,
    pub record: TokenRecord,
    pub access: TokenAccess,
}

/// A token exactly as stored (msgpack bytes), for copying between backends without re-encoding
/// fields this server does not model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawToken {
    pub id: String,
    pub record: Vec<u8>,
    pub access: Option<Vec<u8>>,
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
    /// Every token as stored.
    async fn raw_tokens(&self) -> Result<Vec<RawToken>>;
    /// Writes a token as stored elsewhere, with its access entry and index membership.
    async fn put_raw_token(&self, token: &RawToken) -> Result<()>;

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
    /// Increments and returns a counter field of the settings (`run`: the server run index;
    /// `idcount`: the counter inside template and OAuth2 app ids).
    async fn increment_setting(&self, key: &str) -> Result<i64>;
    /// Increments and returns the server run counter (`settings.run`).
    async fn next_run(&self) -> Result<i64> {
        self.increment_setting("run").await
    }
    /// Every stored setting, raw (including counters such as `run`).
    async fn all_raw_settings(&self) -> Result<Vec<(String, String)>>;
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

/// Which backend a store is and where its data lives, for logs, `/health` and `/v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDescription {
    /// `embedded` or `redis`.
    pub kind: &'static str,
    /// The data directory, or the Redis URL without its password.
    pub location: String,
}

#[async_trait]
pub trait ServerStore: Send + Sync {
    /// A write-read-delete round trip, as EmailEngine's `/health` does.
    async fn health_check(&self) -> Result<()>;
    async fn backend_info(&self) -> Result<BackendInfo>;
    async fn ping(&self) -> Result<Duration>;
    fn describe(&self) -> StoreDescription;
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
}

/// One generation of a mailbox in the registry that message ids are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxGeneration {
    pub id: u32,
    pub uid_validity: u64,
    pub path: String,
}

/// The per-account mailbox and message index the sync engine keeps (spec §7.2–§7.3).
#[async_trait]
pub trait MailboxIndex: Transactions {
    /// The concatenated bounce records of each Message-ID (spec §21.4), in order.
    async fn bounce_records(
        &self,
        account: &str,
        message_ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>>;
    /// The numeric id of a mailbox generation, assigned on first use (`iah:<account>`); the
    /// counter is the account's `listRegistry` field.
    async fn mailbox_id(&self, account: &str, uid_validity: u64, path: &str) -> Result<u32>;
    /// The mailbox generation a numeric id stands for: `(uidValidity, path)`.
    async fn mailbox_by_id(&self, account: &str, id: u32) -> Result<Option<(u64, String)>>;
    /// Every registered mailbox generation of an account.
    async fn mailbox_registry(&self, account: &str) -> Result<Vec<MailboxGeneration>>;
    /// Registers mailbox generations with the ids they already have (copying an index).
    async fn put_mailbox_registry(
        &self,
        account: &str,
        entries: &[MailboxGeneration],
    ) -> Result<()>;
    /// Stores the folder listing: normalized path → msgpack entry (`ial:<account>`).
    async fn put_listing(&self, account: &str, entries: &[(String, Vec<u8>)]) -> Result<()> {
        self.commit(vec![Change::Listing {
            account: account.to_string(),
            entries: entries.to_vec(),
        }])
        .await
        .map(drop)
    }
    async fn listing(&self, account: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Sync status of one folder (`iam:<account>:h:<hash>`).
    async fn folder_status(&self, account: &str, path: &str) -> Result<BTreeMap<String, String>>;
    async fn put_folder_status(
        &self,
        account: &str,
        path: &str,
        status: &[(String, String)],
    ) -> Result<()> {
        self.commit(vec![Change::FolderStatus {
            account: account.to_string(),
            path: path.to_string(),
            fields: status.to_vec(),
        }])
        .await
        .map(drop)
    }
    /// Paths of the folders that have a stored sync status.
    async fn indexed_folders(&self, account: &str) -> Result<Vec<String>>;
    /// Every index entry of a folder, by UID.
    async fn folder_entries(&self, account: &str, path: &str) -> Result<Vec<Vec<u8>>>;
    /// Every index entry of a folder with its UID, ordered by UID.
    async fn folder_index(&self, account: &str, path: &str) -> Result<Vec<(u32, Vec<u8>)>>;
    /// Applies a sync result: entries to add or replace (uid, bytes) and UIDs to remove.
    async fn apply_folder_changes(
        &self,
        account: &str,
        path: &str,
        upsert: &[(u32, Vec<u8>)],
        remove: &[u32],
    ) -> Result<()> {
        if upsert.is_empty() && remove.is_empty() {
            return Ok(());
        }
        self.commit(vec![Change::FolderEntries {
            account: account.to_string(),
            path: path.to_string(),
            upsert: upsert.to_vec(),
            remove: remove.to_vec(),
        }])
        .await
        .map(drop)
    }
    /// Drops a folder's index and status (UIDVALIDITY changed or folder deleted).
    async fn reset_folder(&self, account: &str, path: &str) -> Result<()> {
        self.commit(vec![Change::ResetFolder {
            account: account.to_string(),
            path: path.to_string(),
        }])
        .await
        .map(drop)
    }
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Stable id, also the webhook event id. Opaque outside the backend that assigned it.
    pub id: String,
    pub account: String,
    pub event: String,
    /// The JSON envelope, exactly as it will be posted.
    pub payload: String,
    /// When the event was logged (ms).
    pub queued_at: i64,
}

/// A webhook delivery that was given up, kept for listing and re-sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEvent {
    pub event: LoggedEvent,
    pub reason: String,
    /// When it was given up (ms).
    pub at: i64,
}

/// The durable event log that webhook delivery consumes. Consumers read through a consumer
/// group and acknowledge each event once it is delivered (or given up); unacknowledged events
/// are read again after a crash, so delivery is at-least-once.
#[async_trait]
pub trait EventLog: Transactions {
    /// Appends an event (its JSON envelope) and returns its stable id.
    async fn append_event(&self, account: &str, event: &str, payload: &str) -> Result<String> {
        let ids = self
            .commit(vec![Change::Event {
                account: account.to_string(),
                event: event.to_string(),
                payload: payload.to_string(),
            }])
            .await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| StoreError::Data("no event id returned".into()))
    }
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
    /// Acknowledges events for the group (in one round trip); unknown ids are ignored.
    async fn ack_events(&self, group: &str, ids: &[String]) -> Result<()>;
    /// Number of events logged but not yet acknowledged by the group.
    async fn events_pending_count(&self, group: &str) -> Result<u64>;
    /// Every event the group has not acknowledged (read or not), oldest first; every event
    /// when the group does not exist.
    async fn undelivered_events(&self, group: &str) -> Result<Vec<LoggedEvent>>;
    /// Appends events logged elsewhere, keeping their ids and times where the backend can.
    async fn import_events(&self, events: &[LoggedEvent]) -> Result<()>;
    /// The newest events, newest first, optionally of one account (Redis looks back through
    /// the last 50,000 events only).
    async fn recent_events(&self, account: Option<&str>, count: usize) -> Result<Vec<LoggedEvent>>;
    /// Keeps an event whose delivery was given up, with the reason, for listing and re-sending.
    async fn put_dead_event(&self, dead: &DeadEvent) -> Result<()>;
    /// Dead events, newest first.
    async fn dead_events(&self, offset: usize, count: usize) -> Result<(u64, Vec<DeadEvent>)>;
    /// One dead event by id.
    async fn dead_event(&self, id: &str) -> Result<Option<LoggedEvent>>;
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
pub trait Outbox: Transactions {
    async fn put_outbox(
        &self,
        account: &str,
        queue_id: &str,
        entry: &[u8],
        due: i64,
    ) -> Result<()> {
        self.commit(vec![Change::PutOutbox {
            account: account.to_string(),
            queue_id: queue_id.to_string(),
            entry: entry.to_vec(),
            due,
        }])
        .await
        .map(drop)
    }
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
    /// Removes an entry; false when there was none.
    async fn remove_outbox(&self, queue_id: &str) -> Result<bool> {
        if self.outbox_item(queue_id).await?.is_none() {
            return Ok(false);
        }
        self.commit(vec![Change::RemoveOutbox {
            queue_id: queue_id.to_string(),
        }])
        .await?;
        Ok(true)
    }
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

/// One write of a set that must be applied together.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Records a connection state change of an existing account (`state`,
    /// `state:count:<state>`, the highest `runIndex`; with an error, `lastErrorState` and
    /// `lastError:errorCount`; `connected` without one clears them). Nothing for an unknown
    /// account.
    AccountState {
        account: String,
        state: String,
        run: i64,
        error: Option<String>,
    },
    /// Appends an event to the event log.
    Event {
        account: String,
        event: String,
        payload: String,
    },
    /// Adds or replaces index entries of a folder and removes others.
    FolderEntries {
        account: String,
        path: String,
        upsert: Vec<(u32, Vec<u8>)>,
        remove: Vec<u32>,
    },
    /// Sets fields of a folder's sync status.
    FolderStatus {
        account: String,
        path: String,
        fields: Vec<(String, String)>,
    },
    /// Drops a folder's index and status.
    ResetFolder { account: String, path: String },
    /// Replaces the folder listing of an account.
    Listing {
        account: String,
        entries: Vec<(String, Vec<u8>)>,
    },
    /// Queues (or requeues) an outbox entry; clears its lease.
    PutOutbox {
        account: String,
        queue_id: String,
        entry: Vec<u8>,
        due: i64,
    },
    /// Removes an outbox entry.
    RemoveOutbox { queue_id: String },
    /// Removes a given-up webhook delivery from the dead list.
    RemoveDeadEvent { id: String },
    /// Appends a bounce record to the list kept under the original's Message-ID
    /// (`iar:b:<account>`, records concatenated).
    AppendBounce {
        account: String,
        message_id: String,
        record: Vec<u8>,
    },
}

/// Atomic application of several changes: all of them or none.
#[async_trait]
pub trait Transactions: Send + Sync {
    /// Applies every change, or none of them when the backend fails; returns the ids of the
    /// appended events, in order.
    async fn commit(&self, changes: Vec<Change>) -> Result<Vec<String>>;
}

/// Stored message templates (`tpl:<account>:i`, `tpl:<account>:c`, spec §18.2): a meta and a
/// content record (msgpack) per template id. `None` is the public (account-less) set.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    async fn template_ids(&self, account: Option<&str>) -> Result<Vec<String>>;
    /// `(meta, content)` of one template.
    async fn template(&self, account: Option<&str>, id: &str)
    -> Result<Option<(Vec<u8>, Vec<u8>)>>;
    async fn put_template(
        &self,
        account: Option<&str>,
        id: &str,
        meta: &[u8],
        content: &[u8],
    ) -> Result<()>;
    async fn delete_template(&self, account: Option<&str>, id: &str) -> Result<bool>;
    /// Removes every template of an account; returns how many there were.
    async fn delete_account_templates(&self, account: &str) -> Result<u64>;
}

/// Suppression lists (`lists:unsub:lists`, `lists:unsub:entries:<listId>`, spec §20.1): per
/// list, lower-cased address → JSON record, and the number of entries.
#[async_trait]
pub trait BlocklistStore: Send + Sync {
    /// Every list with its entry count, by list id.
    async fn blocklists(&self) -> Result<Vec<(String, u64)>>;
    /// Every entry of a list, by address.
    async fn blocklist_entries(&self, list: &str) -> Result<Vec<(String, String)>>;
    async fn blocklist_entry(&self, list: &str, address: &str) -> Result<Option<String>>;
    /// Adds or replaces an entry; true when the address was not listed before.
    async fn put_blocklist_entry(&self, list: &str, address: &str, record: &str) -> Result<bool>;
    /// Removes an entry; false when it was not there.
    async fn remove_blocklist_entry(&self, list: &str, address: &str) -> Result<bool>;
}

/// SMTP gateways (`gateways`, `gateway:<id>`, spec §22): the hash fields as EmailEngine writes
/// them (`gateway` and `deliveries` plain, `pass` encrypted, the rest msgpack).
#[async_trait]
pub trait GatewayStore: Send + Sync {
    async fn gateway_ids(&self) -> Result<Vec<String>>;
    async fn gateway(&self, id: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>>;
    /// Sets fields (and registers the gateway); `remove` names fields to delete. True when new.
    async fn put_gateway(
        &self,
        id: &str,
        fields: &[(String, Vec<u8>)],
        remove: &[&str],
    ) -> Result<bool>;
    async fn delete_gateway(&self, id: &str) -> Result<bool>;
    /// Counts one delivery through a gateway (`deliveries`).
    async fn count_gateway_delivery(&self, id: &str) -> Result<()>;
}

/// OAuth2 applications (`oapp:*`, spec §14.5): the msgpack `data` and `meta` records, the
/// accounts using each app and their users (duplicate guard).
#[async_trait]
pub trait OAuthAppStore: Send + Sync {
    async fn app_ids(&self) -> Result<Vec<String>>;
    /// `(data, meta)` of an app.
    async fn app(&self, id: &str) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>>;
    /// Writes an app; `pubsub` apps are also listed in `oapp:sub`.
    async fn put_app(&self, id: &str, data: &[u8], meta: Option<&[u8]>, pubsub: bool)
    -> Result<()>;
    async fn put_app_meta(&self, id: &str, meta: &[u8]) -> Result<()>;
    /// Removes an app; returns the number of accounts that used it.
    async fn delete_app(&self, id: &str) -> Result<Option<u64>>;
    async fn app_account_count(&self, id: &str) -> Result<u64>;
    /// The accounts linked to an app with their (lower-cased) users; an account linked without
    /// a user has an empty one.
    async fn app_accounts(&self, id: &str) -> Result<Vec<(String, String)>>;
    /// Links an account to an app under its OAuth2 user (lower-cased). When another account
    /// already holds that user, nothing is written and that account is returned.
    async fn link_app_account(
        &self,
        app: &str,
        account: &str,
        user: &str,
    ) -> Result<Option<String>>;
    async fn unlink_app_account(&self, app: &str, account: &str, user: &str) -> Result<()>;
}

/// Short-lived keys with an expiry (hosted-form drafts and nonces, probe counters) and locks
/// that hold across processes (one OAuth2 token refresh per account).
#[async_trait]
pub trait TransientStore: Send + Sync {
    /// Stores a value for `ttl_secs`; with `only_new`, only when the key is not set (true
    /// when written).
    async fn put_transient(
        &self,
        key: &str,
        value: &str,
        ttl_secs: u64,
        only_new: bool,
    ) -> Result<bool>;
    async fn transient(&self, key: &str) -> Result<Option<String>>;
    /// Reads and removes a value at once.
    async fn take_transient(&self, key: &str) -> Result<Option<String>>;
    async fn remove_transient(&self, key: &str) -> Result<()>;
    /// Counts in a key that lives `ttl_secs` from its first count.
    async fn count_transient(&self, key: &str, ttl_secs: u64) -> Result<u64>;
    /// Takes a named lock for `owner` for `ttl_ms` (true when taken).
    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool>;
    /// Releases a lock this owner holds.
    async fn unlock(&self, name: &str, owner: &str) -> Result<()>;
}

/// One custom webhook route as EmailEngine stores it: msgpack `meta` (name, targetUrl,
/// enabled, …) and `content` (`fn`, `map`), and how often it fired.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredWebhookRoute {
    pub meta: Vec<u8>,
    pub content: Option<Vec<u8>>,
    pub tcount: Option<u64>,
}

/// Custom webhook routes (`wh:i`, `wh:c`). The API only reads them; routes are written by the
/// admin UI, by migration, or by EmailEngine itself on a shared store.
#[async_trait]
pub trait WebhookRouteStore: Send + Sync {
    async fn webhook_route_ids(&self) -> Result<Vec<String>>;
    async fn webhook_route(&self, id: &str) -> Result<Option<StoredWebhookRoute>>;
    async fn put_webhook_route(&self, id: &str, route: &StoredWebhookRoute) -> Result<()>;
}

/// Per-account protocol logs (`iam:<account>:g`, spec §25.1): entries appended in order, only
/// the newest `max_lines` kept. Removed with the account.
#[async_trait]
pub trait AccountLog: Send + Sync {
    async fn push_account_log(
        &self,
        account: &str,
        entries: &[Vec<u8>],
        max_lines: usize,
    ) -> Result<()>;
    /// Every kept entry, oldest first.
    async fn account_log(&self, account: &str) -> Result<Vec<Vec<u8>>>;
}

/// The per-token audit log (`tokens:log:<id>`, spec §3.12): newest entry first, at most
/// `max_entries` kept, the whole log expiring `max_age_secs` after its last entry.
#[async_trait]
pub trait TokenAuditLog: Send + Sync {
    async fn push_token_audit(
        &self,
        id: &str,
        entry: &[u8],
        max_entries: usize,
        max_age_secs: u64,
    ) -> Result<()>;
    /// `(total, entries)` from `offset`, newest first.
    async fn token_audit(
        &self,
        id: &str,
        offset: usize,
        count: usize,
    ) -> Result<(u64, Vec<Vec<u8>>)>;
    async fn delete_token_audit(&self, id: &str) -> Result<()>;
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
    + Transactions
    + TemplateStore
    + BlocklistStore
    + GatewayStore
    + OAuthAppStore
    + TransientStore
    + WebhookRouteStore
    + TokenAuditLog
    + AccountLog
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
        + Transactions
        + TemplateStore
        + BlocklistStore
        + GatewayStore
        + OAuthAppStore
        + TransientStore
        + WebhookRouteStore
        + TokenAuditLog
        + AccountLog
{
}
