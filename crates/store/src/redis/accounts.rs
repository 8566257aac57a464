//! Accounts (`ia:accounts`, `iad:<account>`) and the mailbox index (`ial:`, `iah:`, `iam:`),
//! in EmailEngine's layout (spec §7.2, §7.3).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::{AccountFields, AccountStore, MailboxGeneration, MailboxIndex, Result, StoreError};

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
pub(super) const SET_STATE: &str = r"
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
    /// Every key matching a SCAN pattern.
    async fn matching_keys(&self, pattern: &str) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            out.extend(keys);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    async fn delete_matching(&self, pattern: &str) -> Result<()> {
        let keys = self.matching_keys(pattern).await?;
        for chunk in keys.chunks(1000) {
            let _: () = redis::cmd("DEL")
                .arg(chunk)
                .query_async(&mut self.conn())
                .await?;
        }
        Ok(())
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
            .ignore()
            .del(self.keys.bounces(account))
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
}

#[async_trait]
impl MailboxIndex for RedisStore {
    async fn bounce_records(
        &self,
        account: &str,
        message_ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(redis::cmd("HMGET")
            .arg(self.keys.bounces(account))
            .arg(message_ids)
            .query_async(&mut self.conn())
            .await?)
    }

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
        Ok(raw.and_then(|b| registry_value(&b)))
    }

    async fn mailbox_registry(&self, account: &str) -> Result<Vec<MailboxGeneration>> {
        let all: HashMap<Vec<u8>, Vec<u8>> = self
            .conn()
            .hgetall(self.keys.mailbox_registry(account))
            .await?;
        let mut out: Vec<MailboxGeneration> = all
            .iter()
            .filter_map(|(field, value)| {
                let id = std::str::from_utf8(field.strip_prefix(b"ix:")?)
                    .ok()?
                    .parse()
                    .ok()?;
                let (uid_validity, path) = registry_value(value)?;
                Some(MailboxGeneration {
                    id,
                    uid_validity,
                    path,
                })
            })
            .collect();
        out.sort_by_key(|g| g.id);
        Ok(out)
    }

    async fn put_mailbox_registry(
        &self,
        account: &str,
        entries: &[MailboxGeneration],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.keys.mailbox_registry(account);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for g in entries {
            let field = emailengine_core::ids::mailbox_registry_field(g.uid_validity, &g.path);
            pipe.hset(&key, field.as_slice(), g.id)
                .ignore()
                .hset(&key, format!("ix:{}", g.id), field.as_slice())
                .ignore();
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

    async fn indexed_folders(&self, account: &str) -> Result<Vec<String>> {
        let pattern = self.keys.folder_status(&glob_escape(account), "*");
        let keys = self.matching_keys(&pattern).await?;
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.hget(k, "path");
        }
        let paths: Vec<Option<String>> = if keys.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut self.conn()).await?
        };
        let mut out: Vec<String> = paths.into_iter().flatten().collect();
        out.sort();
        Ok(out)
    }

    async fn folder_entries(&self, account: &str, path: &str) -> Result<Vec<Vec<u8>>> {
        let hash = emailengine_core::ids::path_hash(path);
        Ok(self
            .conn()
            .zrange(self.keys.folder_index(account, &hash), 0, -1)
            .await?)
    }

    async fn folder_index(&self, account: &str, path: &str) -> Result<Vec<(u32, Vec<u8>)>> {
        let hash = emailengine_core::ids::path_hash(path);
        let pairs: Vec<(Vec<u8>, f64)> = self
            .conn()
            .zrange_withscores(self.keys.folder_index(account, &hash), 0, -1)
            .await?;
        Ok(pairs
            .into_iter()
            .map(|(bytes, score)| (score as u32, bytes))
            .collect())
    }
}

/// `[u64 BE uidValidity][path]`, the value of an `ix:<id>` registry field.
fn registry_value(b: &[u8]) -> Option<(u64, String)> {
    let validity = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let path = String::from_utf8(b.get(8..)?.to_vec()).ok()?;
    Some((validity, path))
}
