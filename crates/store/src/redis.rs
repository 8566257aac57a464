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
    AccountStore, BackendInfo, Result, ServerStore, SettingsStore, StatsStore, StoreError,
    StoredToken, TokenStore,
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
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StoreError::Backend("connection timed out".into()))??;
        Ok(Self {
            conn,
            keys: Keys::new(prefix),
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

#[async_trait]
impl AccountStore for RedisStore {
    async fn account_count(&self) -> Result<u64> {
        Ok(self.conn().scard(self.keys.accounts()).await?)
    }

    async fn account_exists(&self, account: &str) -> Result<bool> {
        Ok(self.conn().sismember(self.keys.accounts(), account).await?)
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
