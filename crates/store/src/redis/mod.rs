//! The Redis backend: EmailEngine's own layout (every key is named in [`crate::keys`]), so this
//! server and EmailEngine can share one database. One multiplexed, auto-reconnecting connection
//! serves every caller; blocking stream reads get one of their own, replaced after any error.
//! The domains live in their own files: [`tokens`], [`accounts`] (accounts and the mailbox
//! index), [`events`], [`outbox`].

mod accounts;
mod events;
mod extras;
mod outbox;
mod tokens;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::keys::Keys;
use crate::{
    BackendInfo, Change, Result, ServerStore, SettingsStore, StatsStore, StoreDescription,
    StoreError, Transactions,
};

/// How long to wait for Redis before giving up on a connection attempt or a command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-minute stats hashes live for 8 days (7 reported + 1), as in EmailEngine.
const STATS_TTL_SECS: i64 = 8 * 24 * 3600;
/// Events kept in the stream before the oldest are trimmed (approximately).
const EVENT_STREAM_MAX: usize = 1_000_000;

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    keys: Keys,
    client: redis::Client,
    url: String,
    blocking: std::sync::Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

/// `redis://user:secret@host/8` → `redis://user:***@host/8`, for messages that name the URL.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@').map(|at| start + at) {
        Some(at) => match url[start..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[at..]),
            None => format!("{}***{}", &url[..start], &url[at..]),
        },
        None => url.to_string(),
    }
}

/// Appends bytes to a hash field (EmailEngine's `hPush`).
const APPEND_FIELD: &str = "local v = redis.call('HGET', KEYS[1], ARGV[1]) or ''\n\
    redis.call('HSET', KEYS[1], ARGV[1], v .. ARGV[2])\n\
    return 1";

impl RedisStore {
    /// Connects, failing within a few seconds when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Backend(format!("Invalid Redis URL {}: {e}", redact_url(url)))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT + Duration::from_secs(1),
            client.clone().get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StoreError::Backend("connection timed out".into()))??;
        Ok(Self {
            conn,
            keys: Keys::new(prefix),
            client,
            url: url.to_string(),
            blocking: Default::default(),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A dedicated connection for blocking commands, kept and reused until it fails.
    async fn blocking_conn(&self) -> Result<redis::aio::MultiplexedConnection> {
        let mut guard = self.blocking.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the blocking connection after an error, so the next read opens a new one (a
    /// multiplexed connection does not come back by itself once Redis has restarted).
    async fn drop_blocking_conn(&self) {
        *self.blocking.lock().await = None;
    }
}

#[async_trait]
impl Transactions for RedisStore {
    async fn commit(&self, changes: Vec<Change>) -> Result<Vec<String>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        // An outbox entry's hash is per account: look the accounts up before the transaction.
        let removed: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::RemoveOutbox { queue_id } => Some(queue_id.as_str()),
                _ => None,
            })
            .collect();
        let owners: Vec<Option<String>> = if removed.is_empty() {
            Vec::new()
        } else {
            redis::cmd("HMGET")
                .arg(self.keys.outbox_accounts())
                .arg(&removed)
                .query_async(&mut self.conn())
                .await?
        };
        let mut owners = owners.into_iter();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut events = 0;
        for change in &changes {
            match change {
                Change::AccountState {
                    account,
                    state,
                    run,
                    error,
                } => {
                    pipe.cmd("EVAL")
                        .arg(accounts::SET_STATE)
                        .arg(1)
                        .arg(self.keys.account(account))
                        .arg(state)
                        .arg(run)
                        .arg(error.as_deref().unwrap_or(""))
                        .ignore();
                }
                Change::Event {
                    account,
                    event,
                    payload,
                } => {
                    events += 1;
                    pipe.cmd("XADD")
                        .arg(self.keys.events())
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(EVENT_STREAM_MAX)
                        .arg("*")
                        .arg("account")
                        .arg(account)
                        .arg("event")
                        .arg(event)
                        .arg("payload")
                        .arg(payload);
                }
                Change::FolderEntries {
                    account,
                    path,
                    upsert,
                    remove,
                } => {
                    let key = self
                        .keys
                        .folder_index(account, &emailengine_core::ids::path_hash(path));
                    for uid in remove.iter().chain(upsert.iter().map(|(u, _)| u)) {
                        pipe.zrembyscore(&key, *uid, *uid).ignore();
                    }
                    for (uid, bytes) in upsert {
                        pipe.zadd(&key, bytes.as_slice(), *uid).ignore();
                    }
                }
                Change::FolderStatus {
                    account,
                    path,
                    fields,
                } => {
                    if !fields.is_empty() {
                        let hash = emailengine_core::ids::path_hash(path);
                        pipe.hset_multiple(self.keys.folder_status(account, &hash), fields)
                            .ignore();
                    }
                }
                Change::ResetFolder { account, path } => {
                    let hash = emailengine_core::ids::path_hash(path);
                    pipe.del(self.keys.folder_index(account, &hash))
                        .ignore()
                        .del(self.keys.folder_status(account, &hash))
                        .ignore();
                }
                Change::Listing { account, entries } => {
                    let key = self.keys.listing(account);
                    pipe.del(&key).ignore();
                    if !entries.is_empty() {
                        pipe.hset_multiple(&key, entries).ignore();
                    }
                }
                Change::PutOutbox {
                    account,
                    queue_id,
                    entry,
                    due,
                } => {
                    pipe.hset(self.keys.outbox(account), queue_id, entry.as_slice())
                        .ignore()
                        .hset(self.keys.outbox_accounts(), queue_id, account)
                        .ignore()
                        .zadd(self.keys.outbox_due(), queue_id, *due)
                        .ignore()
                        .hdel(self.keys.outbox_leases(), queue_id)
                        .ignore();
                }
                Change::AppendBounce {
                    account,
                    message_id,
                    record,
                } => {
                    pipe.cmd("EVAL")
                        .arg(APPEND_FIELD)
                        .arg(1)
                        .arg(self.keys.bounces(account))
                        .arg(message_id)
                        .arg(record)
                        .ignore();
                }
                Change::RemoveDeadEvent { id } => {
                    pipe.hdel(self.keys.dead_events(), id)
                        .ignore()
                        .zrem(self.keys.dead_events_index(), id)
                        .ignore();
                }
                Change::RemoveOutbox { queue_id } => {
                    if let Some(account) = owners.next().flatten() {
                        pipe.hdel(self.keys.outbox(&account), queue_id).ignore();
                    }
                    pipe.hdel(self.keys.outbox_accounts(), queue_id)
                        .ignore()
                        .zrem(self.keys.outbox_due(), queue_id)
                        .ignore()
                        .hdel(self.keys.outbox_leases(), queue_id)
                        .ignore();
                }
            }
        }
        if events == 0 {
            let _: () = pipe.query_async(&mut self.conn()).await?;
            return Ok(Vec::new());
        }
        Ok(pipe.query_async(&mut self.conn()).await?)
    }
}

#[async_trait]
impl SettingsStore for RedisStore {
    async fn raw_settings(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(redis::cmd("HMGET")
            .arg(self.keys.settings())
            .arg(keys)
            .query_async(&mut self.conn())
            .await?)
    }

    async fn put_raw_settings(&self, values: &[(String, String)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let _: () = self
            .conn()
            .hset_multiple(self.keys.settings(), values)
            .await?;
        Ok(())
    }

    async fn put_raw_setting_if_missing(&self, key: &str, value: &str) -> Result<bool> {
        Ok(self
            .conn()
            .hset_nx(self.keys.settings(), key, value)
            .await?)
    }

    async fn increment_setting(&self, key: &str) -> Result<i64> {
        Ok(self.conn().hincr(self.keys.settings(), key, 1).await?)
    }

    async fn all_raw_settings(&self) -> Result<Vec<(String, String)>> {
        let all: BTreeMap<String, String> = self.conn().hgetall(self.keys.settings()).await?;
        Ok(all.into_iter().collect())
    }
}

/// `YYYYMMDD` and `YYYYMMDDHHmm` in UTC for a time in ms.
fn stat_fields(ms: i64) -> Option<(String, String)> {
    let t = chrono::DateTime::from_timestamp_millis(ms)?;
    Some((
        t.format("%Y%m%d").to_string(),
        t.format("%Y%m%d%H%M").to_string(),
    ))
}

#[async_trait]
impl StatsStore for RedisStore {
    async fn add_counters(&self, deltas: &[(String, u64)], now_ms: i64) -> Result<()> {
        let Some((day, minute)) = stat_fields(now_ms) else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        for (counter, n) in deltas.iter().filter(|(_, n)| *n > 0) {
            let key = self.keys.stats_day(counter, &day);
            pipe.sadd(self.keys.stats_keys(), counter)
                .ignore()
                .hincr(&key, &minute, *n)
                .ignore()
                .expire(&key, STATS_TTL_SECS)
                .ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn counters(&self, window_secs: u64, now_ms: i64) -> Result<BTreeMap<String, u64>> {
        let names: Vec<String> = self.conn().smembers(self.keys.stats_keys()).await?;
        // Minute fields in the window, grouped by day.
        let mut days: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let minutes = window_secs.div_ceil(60).max(1) as i64;
        for m in 0..minutes {
            if let Some((day, minute)) = stat_fields(now_ms - m * 60_000) {
                days.entry(day).or_default().push(minute);
            }
        }
        let mut pipe = redis::pipe();
        let mut order = Vec::new();
        for name in &names {
            for (day, fields) in &days {
                pipe.cmd("HMGET")
                    .arg(self.keys.stats_day(name, day))
                    .arg(fields);
                order.push(name);
            }
        }
        let rows: Vec<Vec<Option<u64>>> = if order.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut self.conn()).await?
        };
        let mut out: BTreeMap<String, u64> = names.iter().map(|n| (n.clone(), 0)).collect();
        for (name, row) in order.into_iter().zip(rows) {
            let sum: u64 = row.into_iter().flatten().sum();
            if let Some(total) = out.get_mut(name) {
                *total += sum;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ServerStore for RedisStore {
    async fn health_check(&self) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let key = self.keys.health_probe(now);
        let (value,): (Option<String>,) = redis::pipe()
            .set_ex(&key, now.to_string(), 60)
            .ignore()
            .get(&key)
            .del(&key)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        if value.as_deref() == Some(now.to_string().as_str()) {
            Ok(())
        } else {
            Err(StoreError::Data("health probe value mismatch".into()))
        }
    }

    async fn backend_info(&self) -> Result<BackendInfo> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.conn())
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        let software = ["dragonfly_version", "keydb_version", "memurai_version"]
            .iter()
            .find_map(|f| field(f).map(|_| f.trim_end_matches("_version").to_string()));
        Ok(BackendInfo {
            version: field("redis_version").unwrap_or_default(),
            software,
            cluster: field("redis_mode").as_deref() == Some("cluster"),
        })
    }

    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(start.elapsed())
    }

    fn describe(&self) -> StoreDescription {
        StoreDescription {
            kind: "redis",
            location: redact_url(&self.url),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_field_format() {
        let (day, minute) = stat_fields(1_734_953_814_623).unwrap();
        assert_eq!(day, "20241223");
        assert_eq!(minute, "202412231136");
    }

    #[test]
    fn url_redaction() {
        assert_eq!(redact_url("redis://:pw@h:6379/8"), "redis://:***@h:6379/8");
        assert_eq!(redact_url("redis://h/8"), "redis://h/8");
        assert_eq!(redact_url("redis://pw@h/8"), "redis://***@h/8");
    }
}
