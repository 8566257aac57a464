//! The Redis backend: EmailEngine's own layout, so this server and EmailEngine can share one
//! database. One multiplexed, auto-reconnecting connection serves every caller.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use emailengine_core::token::{TokenAccess, TokenRecord};

use crate::keys::Keys;
use crate::{
    AccountFields, AccountStore, BackendInfo, EventLog, LoggedEvent, MailboxIndex, Outbox,
    OutboxItem, Result, ServerStore, SettingsStore, StatsStore, StoreError, StoredToken,
    TokenStore,
};

/// How long to wait for Redis before giving up on a connection attempt or a command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-minute stats hashes live for 8 days (7 reported + 1), as in EmailEngine.
const STATS_TTL_SECS: i64 = 8 * 24 * 3600;

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
    blocking: std::sync::Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

/// `redis://user:secret@host/8` → `redis://user:***@host/8`, for messages that name the URL.
pub fn redact_url(url: &str) -> String {
    emailengine_core::settings::mask_url_credentials(url).replace("******", "***")
}

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
            blocking: Default::default(),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Writes an access entry only for tokens that still exist, so a late flush never resurrects
/// the access entry of a deleted token.
const RECORD_ACCESS: &str = r"
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return 1
";

#[async_trait]
impl TokenStore for RedisStore {
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let raw: Option<Vec<u8>> = self.conn().hget(self.keys.tokens(), id).await?;
        Ok(raw.and_then(|b| TokenRecord::decode_stored(&b)))
    }

    async fn tokens(&self, ids: &[String]) -> Result<Vec<StoredToken>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (records, access): (Vec<Option<Vec<u8>>>, Vec<Option<Vec<u8>>>) = redis::pipe()
            .cmd("HMGET")
            .arg(self.keys.tokens())
            .arg(ids)
            .cmd("HMGET")
            .arg(self.keys.token_access())
            .arg(ids)
            .query_async(&mut self.conn())
            .await?;
        Ok(ids
            .iter()
            .zip(records)
            .zip(access)
            .filter_map(|((id, rec), acc)| {
                let record = TokenRecord::decode_stored(&rec?)?;
                Some(StoredToken {
                    id: id.clone(),
                    record,
                    access: acc.map(|a| TokenAccess::decode(&a)).unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn put_token(&self, id: &str, record: &TokenRecord) -> Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .hset(self.keys.tokens(), id, record.encode())
            .ignore()
            .hset(
                self.keys.token_access(),
                id,
                TokenAccess::default().encode(),
            )
            .ignore()
            .sadd(self.keys.token_index(record.account.as_deref()), id)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn delete_token(&self, id: &str) -> Result<bool> {
        let raw: Option<Vec<u8>> = self.conn().hget(self.keys.tokens(), id).await?;
        let Some(raw) = raw else {
            return Ok(false);
        };
        let account = TokenRecord::decode_stored(&raw).and_then(|r| r.account);
        let (deleted,): (u64,) = redis::pipe()
            .atomic()
            .hdel(self.keys.tokens(), id)
            .hdel(self.keys.token_access(), id)
            .ignore()
            .del(self.keys.token_log(id))
            .ignore()
            .srem(self.keys.token_index(account.as_deref()), id)
            .ignore()
            .srem(self.keys.root_tokens(), id)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(deleted > 0)
    }

    async fn token_ids(&self, account: Option<&str>) -> Result<Vec<String>> {
        Ok(match account {
            None => self.conn().hkeys(self.keys.tokens()).await?,
            Some(a) => self.conn().smembers(self.keys.account_tokens(a)).await?,
        })
    }

    async fn record_access(&self, entries: &[(String, TokenAccess)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let script = Script::new(RECORD_ACCESS);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.keys.tokens())
            .key(self.keys.token_access());
        for (id, access) in entries {
            invocation.arg(id).arg(access.encode());
        }
        let _: i64 = invocation.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn count_request(&self, token_id: &str, window_secs: u64, bucket: i64) -> Result<u64> {
        let key = self.keys.rate_limit(window_secs, bucket, token_id);
        let (count,): (u64,) = redis::pipe()
            .incr(&key, 1)
            .expire(&key, window_secs as i64)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(count)
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

    async fn next_run(&self) -> Result<i64> {
        Ok(self.conn().hincr(self.keys.settings(), "run", 1).await?)
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
}

/// Assigns the next numeric id to a mailbox generation, once (EmailEngine's `zGetMailboxId`).
const MAILBOX_ID: &str = r"
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return tonumber(id) end
id = redis.call('HINCRBY', KEYS[2], 'listRegistry', 1)
redis.call('HSET', KEYS[1], ARGV[1], id)
redis.call('HSET', KEYS[1], 'ix:' .. id, ARGV[1])
return id
";

/// Records a state change only for an existing account; keeps the highest run index.
const SET_STATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'state:count:' .. ARGV[1], 1)
local run = tonumber(redis.call('HGET', KEYS[1], 'runIndex') or '0') or 0
if tonumber(ARGV[2]) > run then redis.call('HSET', KEYS[1], 'runIndex', ARGV[2]) end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'lastErrorState', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'lastError:errorCount', 1)
elseif ARGV[1] == 'connected' then
  redis.call('HDEL', KEYS[1], 'lastErrorState', 'lastError:errorCount')
end
return 1
";

/// Escapes glob characters so an account id can be used inside a SCAN pattern.
fn glob_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

impl RedisStore {
    async fn delete_matching(&self, pattern: &str) -> Result<()> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl AccountStore for RedisStore {
    async fn account_count(&self) -> Result<u64> {
        Ok(self.conn().scard(self.keys.accounts()).await?)
    }

    async fn account_exists(&self, account: &str) -> Result<bool> {
        Ok(self.conn().sismember(self.keys.accounts(), account).await?)
    }

    async fn account_ids(&self) -> Result<Vec<String>> {
        Ok(self.conn().smembers(self.keys.accounts()).await?)
    }

    async fn put_account(&self, account: &str, fields: &AccountFields) -> Result<bool> {
        let pairs: Vec<(&String, &String)> = fields.iter().collect();
        let (added,): (u64,) = redis::pipe()
            .atomic()
            .hset_multiple(self.keys.account(account), &pairs)
            .ignore()
            .sadd(self.keys.accounts(), account)
            .query_async(&mut self.conn())
            .await?;
        Ok(added > 0)
    }

    async fn update_account(&self, account: &str, fields: &AccountFields) -> Result<bool> {
        if !self.account_exists(account).await? {
            return Ok(false);
        }
        if !fields.is_empty() {
            let pairs: Vec<(&String, &String)> = fields.iter().collect();
            let _: () = self
                .conn()
                .hset_multiple(self.keys.account(account), &pairs)
                .await?;
        }
        Ok(true)
    }

    async fn account(&self, account: &str) -> Result<Option<AccountFields>> {
        let fields: AccountFields = self.conn().hgetall(self.keys.account(account)).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    async fn account_field(&self, account: &str, field: &str) -> Result<Option<String>> {
        Ok(self.conn().hget(self.keys.account(account), field).await?)
    }

    async fn account_summaries(
        &self,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET").arg(self.keys.account(id)).arg(fields);
        }
        Ok(pipe.query_async(&mut self.conn()).await?)
    }

    async fn delete_account(&self, account: &str) -> Result<bool> {
        let token_ids: Vec<String> = self
            .conn()
            .smembers(self.keys.account_tokens(account))
            .await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.srem(self.keys.accounts(), account);
        for id in &token_ids {
            pipe.hdel(self.keys.tokens(), id)
                .ignore()
                .hdel(self.keys.token_access(), id)
                .ignore()
                .del(self.keys.token_log(id))
                .ignore();
        }
        pipe.del(self.keys.account_tokens(account))
            .ignore()
            .del(self.keys.account(account))
            .ignore()
            .del(self.keys.listing(account))
            .ignore()
            .del(self.keys.mailbox_registry(account))
            .ignore();
        let (removed,): (u64,) = pipe.query_async(&mut self.conn()).await?;
        self.delete_matching(&self.keys.folder_keys_pattern(&glob_escape(account)))
            .await?;
        Ok(removed > 0)
    }

    async fn flush_account_index(&self, account: &str) -> Result<()> {
        let _: () = redis::pipe()
            .del(self.keys.listing(account))
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        self.delete_matching(&self.keys.folder_keys_pattern(&glob_escape(account)))
            .await
    }

    async fn set_account_state(
        &self,
        account: &str,
        state: &str,
        run: i64,
        error: Option<&str>,
    ) -> Result<()> {
        let _: i64 = Script::new(SET_STATE)
            .key(self.keys.account(account))
            .arg(state)
            .arg(run)
            .arg(error.unwrap_or(""))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl MailboxIndex for RedisStore {
    async fn mailbox_id(&self, account: &str, uid_validity: u64, path: &str) -> Result<u32> {
        let field = emailengine_core::ids::mailbox_registry_field(uid_validity, path);
        let id: i64 = Script::new(MAILBOX_ID)
            .key(self.keys.mailbox_registry(account))
            .key(self.keys.account(account))
            .arg(field)
            .invoke_async(&mut self.conn())
            .await?;
        u32::try_from(id).map_err(|_| StoreError::Data(format!("mailbox id {id} out of range")))
    }

    async fn mailbox_by_id(&self, account: &str, id: u32) -> Result<Option<(u64, String)>> {
        let raw: Option<Vec<u8>> = self
            .conn()
            .hget(self.keys.mailbox_registry(account), format!("ix:{id}"))
            .await?;
        Ok(raw.and_then(|b| {
            let validity = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
            let path = String::from_utf8(b.get(8..)?.to_vec()).ok()?;
            Some((validity, path))
        }))
    }

    async fn put_listing(&self, account: &str, entries: &[(String, Vec<u8>)]) -> Result<()> {
        let key = self.keys.listing(account);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        if !entries.is_empty() {
            pipe.hset_multiple(&key, entries).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn listing(&self, account: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.conn().hgetall(self.keys.listing(account)).await?)
    }

    async fn folder_status(&self, account: &str, path: &str) -> Result<BTreeMap<String, String>> {
        let hash = emailengine_core::ids::path_hash(path);
        Ok(self
            .conn()
            .hgetall(self.keys.folder_status(account, &hash))
            .await?)
    }

    async fn put_folder_status(
        &self,
        account: &str,
        path: &str,
        status: &[(String, String)],
    ) -> Result<()> {
        if status.is_empty() {
            return Ok(());
        }
        let hash = emailengine_core::ids::path_hash(path);
        let _: () = self
            .conn()
            .hset_multiple(self.keys.folder_status(account, &hash), status)
            .await?;
        Ok(())
    }

    async fn folder_entries(&self, account: &str, path: &str) -> Result<Vec<Vec<u8>>> {
        let hash = emailengine_core::ids::path_hash(path);
        Ok(self
            .conn()
            .zrange(self.keys.folder_index(account, &hash), 0, -1)
            .await?)
    }

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
        let key = self
            .keys
            .folder_index(account, &emailengine_core::ids::path_hash(path));
        let mut pipe = redis::pipe();
        pipe.atomic();
        for uid in remove.iter().chain(upsert.iter().map(|(u, _)| u)) {
            pipe.zrembyscore(&key, *uid, *uid).ignore();
        }
        for (uid, bytes) in upsert {
            pipe.zadd(&key, bytes.as_slice(), *uid).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn reset_folder(&self, account: &str, path: &str) -> Result<()> {
        let hash = emailengine_core::ids::path_hash(path);
        let _: () = redis::pipe()
            .del(self.keys.folder_index(account, &hash))
            .ignore()
            .del(self.keys.folder_status(account, &hash))
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

/// Events kept in the stream before the oldest are trimmed (approximately).
const EVENT_STREAM_MAX: usize = 1_000_000;

#[async_trait]
impl EventLog for RedisStore {
    async fn append_event(&self, account: &str, event: &str, payload: &str) -> Result<String> {
        Ok(redis::cmd("XADD")
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
            .arg(payload)
            .query_async(&mut self.conn())
            .await?)
    }

    async fn ensure_event_group(&self, group: &str) -> Result<()> {
        let created: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.events())
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn pending_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LoggedEvent>> {
        self.read_group(group, consumer, count, None, "0").await
    }

    async fn next_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<LoggedEvent>> {
        self.read_group(group, consumer, count, Some(block_ms), ">")
            .await
    }

    async fn ack_event(&self, group: &str, id: &str) -> Result<()> {
        let _: i64 = redis::cmd("XACK")
            .arg(self.keys.events())
            .arg(group)
            .arg(id)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn events_pending_count(&self, group: &str) -> Result<u64> {
        let groups: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.keys.events())
            .query_async(&mut self.conn())
            .await
            .unwrap_or_default();
        for g in groups {
            let Ok(map) =
                redis::from_redis_value::<std::collections::HashMap<String, redis::Value>>(g)
            else {
                continue;
            };
            let name = map
                .get("name")
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok());
            if name.as_deref() != Some(group) {
                continue;
            }
            let pending = map
                .get("pending")
                .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
                .unwrap_or(0);
            let lag = map
                .get("lag")
                .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
                .unwrap_or(0);
            return Ok(pending + lag);
        }
        Ok(0)
    }

    async fn put_dead_event(&self, event: &LoggedEvent, reason: &str) -> Result<()> {
        let record = serde_json::json!({
            "id": event.id, "account": event.account, "event": event.event,
            "payload": event.payload, "reason": reason,
        })
        .to_string();
        let now = chrono::Utc::now().timestamp_millis();
        let _: () = redis::pipe()
            .atomic()
            .hset(self.keys.dead_events(), &event.id, record)
            .ignore()
            .zadd(self.keys.dead_events_index(), &event.id, now)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn dead_events(
        &self,
        offset: usize,
        count: usize,
    ) -> Result<(u64, Vec<(LoggedEvent, String)>)> {
        let total: u64 = self.conn().zcard(self.keys.dead_events_index()).await?;
        if count == 0 {
            return Ok((total, Vec::new()));
        }
        let ids: Vec<String> = self
            .conn()
            .zrevrange(
                self.keys.dead_events_index(),
                offset as isize,
                (offset + count) as isize - 1,
            )
            .await?;
        if ids.is_empty() {
            return Ok((total, Vec::new()));
        }
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.dead_events())
            .arg(&ids)
            .query_async(&mut self.conn())
            .await?;
        Ok((
            total,
            raw.into_iter()
                .flatten()
                .filter_map(|r| dead_record(&r))
                .collect(),
        ))
    }

    async fn take_dead_event(&self, id: &str) -> Result<Option<LoggedEvent>> {
        let raw: Option<String> = self.conn().hget(self.keys.dead_events(), id).await?;
        let Some(raw) = raw else { return Ok(None) };
        let _: () = redis::pipe()
            .atomic()
            .hdel(self.keys.dead_events(), id)
            .ignore()
            .zrem(self.keys.dead_events_index(), id)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(dead_record(&raw).map(|(e, _)| e))
    }
}

fn dead_record(raw: &str) -> Option<(LoggedEvent, String)> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    Some((
        LoggedEvent {
            id: text("id"),
            account: text("account"),
            event: text("event"),
            payload: text("payload"),
        },
        text("reason"),
    ))
}

impl RedisStore {
    async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: Option<u64>,
        from: &str,
    ) -> Result<Vec<LoggedEvent>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(self.keys.events()).arg(from);
        // Blocking reads get a connection of their own, so they never hold up other commands.
        let reply: Option<redis::streams::StreamReadReply> = match block_ms {
            Some(_) => {
                let mut conn = self.blocking_conn().await?;
                cmd.query_async(&mut conn).await?
            }
            None => cmd.query_async(&mut self.conn()).await?,
        };
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|entry| {
                let field = |k: &str| -> String { entry.get(k).unwrap_or_default() };
                LoggedEvent {
                    id: entry.id.clone(),
                    account: field("account"),
                    event: field("event"),
                    payload: field("payload"),
                }
            })
            .collect())
    }

    /// A dedicated connection for blocking commands (kept and reused).
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
}

/// Takes due entries and pushes their due time past the lease, atomically, so two workers
/// never take the same entry; records who holds each lease.
const CLAIM_DUE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', KEYS[2], id, ARGV[4])
end
return ids
";

#[async_trait]
impl Outbox for RedisStore {
    async fn put_outbox(
        &self,
        account: &str,
        queue_id: &str,
        entry: &[u8],
        due: i64,
    ) -> Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .hset(self.keys.outbox(account), queue_id, entry)
            .ignore()
            .hset(self.keys.outbox_accounts(), queue_id, account)
            .ignore()
            .zadd(self.keys.outbox_due(), queue_id, due)
            .ignore()
            .hdel(self.keys.outbox_leases(), queue_id)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        let ids: Vec<String> = Script::new(CLAIM_DUE)
            .key(self.keys.outbox_due())
            .key(self.keys.outbox_leases())
            .arg(now)
            .arg(now + lease_ms)
            .arg(limit)
            .arg(owner)
            .invoke_async(&mut self.conn())
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(mut item) = self.outbox_item(&id).await? {
                item.due = now + lease_ms;
                out.push(item);
            } else {
                let _: () = self.conn().zrem(self.keys.outbox_due(), &id).await?;
            }
        }
        Ok(out)
    }

    async fn release_leases(&self, owner: &str, now: i64) -> Result<u64> {
        let leases: std::collections::HashMap<String, String> =
            self.conn().hgetall(self.keys.outbox_leases()).await?;
        let mine: Vec<&String> = leases
            .iter()
            .filter(|(_, o)| *o == owner)
            .map(|(id, _)| id)
            .collect();
        if mine.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for id in &mine {
            pipe.cmd("ZADD")
                .arg(self.keys.outbox_due())
                .arg("XX")
                .arg(now)
                .arg(id.as_str())
                .ignore();
            pipe.hdel(self.keys.outbox_leases(), id.as_str()).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(mine.len() as u64)
    }

    async fn outbox_item(&self, queue_id: &str) -> Result<Option<OutboxItem>> {
        let account: Option<String> = self
            .conn()
            .hget(self.keys.outbox_accounts(), queue_id)
            .await?;
        let Some(account) = account else {
            return Ok(None);
        };
        let (entry, due): (Option<Vec<u8>>, Option<f64>) = redis::pipe()
            .hget(self.keys.outbox(&account), queue_id)
            .zscore(self.keys.outbox_due(), queue_id)
            .query_async(&mut self.conn())
            .await?;
        Ok(entry.map(|entry| OutboxItem {
            account,
            queue_id: queue_id.to_string(),
            entry,
            due: due.unwrap_or(0.0) as i64,
        }))
    }

    async fn remove_outbox(&self, queue_id: &str) -> Result<bool> {
        let account: Option<String> = self
            .conn()
            .hget(self.keys.outbox_accounts(), queue_id)
            .await?;
        let Some(account) = account else {
            return Ok(false);
        };
        let (removed,): (u64,) = redis::pipe()
            .atomic()
            .hdel(self.keys.outbox(&account), queue_id)
            .hdel(self.keys.outbox_accounts(), queue_id)
            .ignore()
            .zrem(self.keys.outbox_due(), queue_id)
            .ignore()
            .hdel(self.keys.outbox_leases(), queue_id)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(removed > 0)
    }

    async fn list_outbox(&self, offset: usize, count: usize) -> Result<(u64, Vec<OutboxItem>)> {
        let total: u64 = self.conn().zcard(self.keys.outbox_due()).await?;
        if count == 0 {
            return Ok((total, Vec::new()));
        }
        let ids: Vec<String> = self
            .conn()
            .zrange(
                self.keys.outbox_due(),
                offset as isize,
                (offset + count) as isize - 1,
            )
            .await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(item) = self.outbox_item(&id).await? {
                out.push(item);
            }
        }
        Ok((total, out))
    }

    async fn idempotent(
        &self,
        account: &str,
        key: &str,
        value: &str,
        ttl_secs: u64,
    ) -> Result<Option<String>> {
        let k = self.keys.idempotency(account, key);
        let set: Option<String> = redis::cmd("SET")
            .arg(&k)
            .arg(value)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs)
            .query_async(&mut self.conn())
            .await?;
        if set.is_some() {
            return Ok(None);
        }
        Ok(self.conn().get(&k).await?)
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
    }
}
