//! Access tokens in EmailEngine's layout: `tokens`, `tokens:access`, `iat`, `iat:<account>`,
//! `rl:*` rate-limit windows (spec §3.2).

use std::collections::HashMap;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use emailengine_core::token::{TokenAccess, TokenRecord};

use super::RedisStore;
use crate::{RawToken, Result, StoredToken, TokenStore};

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

    async fn raw_tokens(&self) -> Result<Vec<RawToken>> {
        let records: HashMap<String, Vec<u8>> = self.conn().hgetall(self.keys.tokens()).await?;
        let mut access: HashMap<String, Vec<u8>> =
            self.conn().hgetall(self.keys.token_access()).await?;
        let mut out: Vec<RawToken> = records
            .into_iter()
            .map(|(id, record)| RawToken {
                access: access.remove(&id),
                id,
                record,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn put_raw_token(&self, token: &RawToken) -> Result<()> {
        let account = TokenRecord::decode_stored(&token.record).and_then(|r| r.account);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(self.keys.tokens(), &token.id, token.record.as_slice())
            .ignore();
        match &token.access {
            Some(a) => pipe.hset(self.keys.token_access(), &token.id, a.as_slice()),
            None => pipe.hdel(self.keys.token_access(), &token.id),
        }
        .ignore();
        pipe.sadd(self.keys.token_index(account.as_deref()), &token.id)
            .ignore();
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}
