//! Templates, suppression lists, SMTP gateways, OAuth2 apps and short-lived keys and locks, in
//! EmailEngine's Redis layout (spec §14.5, §18.2, §20.1, §22).

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::{
    AccountLog, BlocklistStore, GatewayStore, OAuthAppStore, Result, StoredWebhookRoute,
    TemplateStore, TokenAuditLog, TransientStore, WebhookRouteStore,
};

/// Adds or replaces a list entry, counting new addresses (EmailEngine's `eeListAdd`).
const LIST_ADD: &str = r"
local added = redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if added == 1 then redis.call('HINCRBY', KEYS[2], ARGV[1], 1) end
return added
";

/// Removes a list entry and its count; drops the list's count at zero (`eeListRemove`).
const LIST_REMOVE: &str = r"
local removed = redis.call('HDEL', KEYS[1], ARGV[2])
if removed == 1 then
  local left = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
  if left <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
end
return removed
";

/// Links an account to an app unless another account holds the same user.
const LINK_APP: &str = r"
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then return holder end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[1], ARGV[1])
return false
";

/// Removes an app's records and indexes; returns its account count, or -1 when unknown.
const DELETE_APP: &str = r"
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('HDEL', KEYS[2], ARGV[1] .. ':data', ARGV[1] .. ':meta')
redis.call('SREM', KEYS[3], ARGV[1])
local n = redis.call('SCARD', KEYS[4])
redis.call('DEL', KEYS[4], KEYS[5])
return n
";

/// Releases a lock only for its owner.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

#[async_trait]
impl TemplateStore for RedisStore {
    async fn template_ids(&self, account: Option<&str>) -> Result<Vec<String>> {
        Ok(self
            .conn()
            .smembers(self.keys.template_ids(account))
            .await?)
    }

    async fn template(
        &self,
        account: Option<&str>,
        id: &str,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let (meta, content): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.keys.templates(account))
            .arg(format!("{id}:meta"))
            .arg(format!("{id}:content"))
            .query_async(&mut self.conn())
            .await?;
        Ok(meta.zip(content))
    }

    async fn put_template(
        &self,
        account: Option<&str>,
        id: &str,
        meta: &[u8],
        content: &[u8],
    ) -> Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .sadd(self.keys.template_ids(account), id)
            .ignore()
            .hset(self.keys.templates(account), format!("{id}:meta"), meta)
            .ignore()
            .hset(
                self.keys.templates(account),
                format!("{id}:content"),
                content,
            )
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn delete_template(&self, account: Option<&str>, id: &str) -> Result<bool> {
        let (removed,): (u64,) = redis::pipe()
            .atomic()
            .srem(self.keys.template_ids(account), id)
            .hdel(
                self.keys.templates(account),
                &[format!("{id}:meta"), format!("{id}:content")],
            )
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(removed > 0)
    }

    async fn delete_account_templates(&self, account: &str) -> Result<u64> {
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .scard(self.keys.template_ids(Some(account)))
            .del(self.keys.template_ids(Some(account)))
            .ignore()
            .del(self.keys.templates(Some(account)))
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(count)
    }
}

#[async_trait]
impl BlocklistStore for RedisStore {
    async fn blocklists(&self) -> Result<Vec<(String, u64)>> {
        let all: BTreeMap<String, i64> = self.conn().hgetall(self.keys.blocklists()).await?;
        Ok(all
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k, n as u64))
            .collect())
    }

    async fn blocklist_entries(&self, list: &str) -> Result<Vec<(String, String)>> {
        let all: BTreeMap<String, String> = self.conn().hgetall(self.keys.blocklist(list)).await?;
        Ok(all.into_iter().collect())
    }

    async fn blocklist_entry(&self, list: &str, address: &str) -> Result<Option<String>> {
        Ok(self.conn().hget(self.keys.blocklist(list), address).await?)
    }

    async fn put_blocklist_entry(&self, list: &str, address: &str, record: &str) -> Result<bool> {
        let added: i64 = Script::new(LIST_ADD)
            .key(self.keys.blocklist(list))
            .key(self.keys.blocklists())
            .arg(list)
            .arg(address)
            .arg(record)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(added == 1)
    }

    async fn remove_blocklist_entry(&self, list: &str, address: &str) -> Result<bool> {
        let removed: i64 = Script::new(LIST_REMOVE)
            .key(self.keys.blocklist(list))
            .key(self.keys.blocklists())
            .arg(list)
            .arg(address)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(removed == 1)
    }
}

#[async_trait]
impl GatewayStore for RedisStore {
    async fn gateway_ids(&self) -> Result<Vec<String>> {
        Ok(self.conn().smembers(self.keys.gateways()).await?)
    }

    async fn gateway(&self, id: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let fields: BTreeMap<String, Vec<u8>> = self.conn().hgetall(self.keys.gateway(id)).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    async fn put_gateway(
        &self,
        id: &str,
        fields: &[(String, Vec<u8>)],
        remove: &[&str],
    ) -> Result<bool> {
        let mut pipe = redis::pipe();
        pipe.atomic().sadd(self.keys.gateways(), id);
        if !fields.is_empty() {
            pipe.hset_multiple(self.keys.gateway(id), fields).ignore();
        }
        if !remove.is_empty() {
            pipe.hdel(self.keys.gateway(id), remove).ignore();
        }
        let (added,): (u64,) = pipe.query_async(&mut self.conn()).await?;
        Ok(added > 0)
    }

    async fn delete_gateway(&self, id: &str) -> Result<bool> {
        let (removed,): (u64,) = redis::pipe()
            .atomic()
            .srem(self.keys.gateways(), id)
            .del(self.keys.gateway(id))
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(removed > 0)
    }

    async fn count_gateway_delivery(&self, id: &str) -> Result<()> {
        let _: i64 = self
            .conn()
            .hincr(self.keys.gateway(id), "deliveries", 1)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl OAuthAppStore for RedisStore {
    async fn app_ids(&self) -> Result<Vec<String>> {
        Ok(self.conn().smembers(self.keys.apps()).await?)
    }

    async fn app(&self, id: &str) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>> {
        let (data, meta): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.keys.app_records())
            .arg(format!("{id}:data"))
            .arg(format!("{id}:meta"))
            .query_async(&mut self.conn())
            .await?;
        Ok(data.map(|d| (d, meta)))
    }

    async fn put_app(
        &self,
        id: &str,
        data: &[u8],
        meta: Option<&[u8]>,
        pubsub: bool,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(self.keys.apps(), id)
            .ignore()
            .hset(self.keys.app_records(), format!("{id}:data"), data)
            .ignore();
        if let Some(meta) = meta {
            pipe.hset(self.keys.app_records(), format!("{id}:meta"), meta)
                .ignore();
        }
        if pubsub {
            pipe.sadd(self.keys.pubsub_apps(), id).ignore();
        } else {
            pipe.srem(self.keys.pubsub_apps(), id).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn put_app_meta(&self, id: &str, meta: &[u8]) -> Result<()> {
        let _: () = self
            .conn()
            .hset(self.keys.app_records(), format!("{id}:meta"), meta)
            .await?;
        Ok(())
    }

    async fn delete_app(&self, id: &str) -> Result<Option<u64>> {
        let n: i64 = Script::new(DELETE_APP)
            .key(self.keys.apps())
            .key(self.keys.app_records())
            .key(self.keys.pubsub_apps())
            .key(self.keys.app_accounts(id))
            .key(self.keys.app_users(id))
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((n >= 0).then_some(n as u64))
    }

    async fn app_account_count(&self, id: &str) -> Result<u64> {
        Ok(self.conn().scard(self.keys.app_accounts(id)).await?)
    }

    async fn app_accounts(&self, id: &str) -> Result<Vec<(String, String)>> {
        let accounts: Vec<String> = self.conn().smembers(self.keys.app_accounts(id)).await?;
        let users: BTreeMap<String, String> = self.conn().hgetall(self.keys.app_users(id)).await?;
        let mut out: Vec<(String, String)> = accounts
            .into_iter()
            .map(|account| {
                let user = users
                    .iter()
                    .find(|(_, a)| **a == account)
                    .map(|(u, _)| u.clone())
                    .unwrap_or_default();
                (account, user)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn link_app_account(
        &self,
        app: &str,
        account: &str,
        user: &str,
    ) -> Result<Option<String>> {
        Ok(Script::new(LINK_APP)
            .key(self.keys.app_accounts(app))
            .key(self.keys.app_users(app))
            .arg(account)
            .arg(user.trim().to_lowercase())
            .invoke_async(&mut self.conn())
            .await?)
    }

    async fn unlink_app_account(&self, app: &str, account: &str, user: &str) -> Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .srem(self.keys.app_accounts(app), account)
            .ignore()
            .hdel(self.keys.app_users(app), user.trim().to_lowercase())
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl TransientStore for RedisStore {
    async fn put_transient(
        &self,
        key: &str,
        value: &str,
        ttl_secs: u64,
        only_new: bool,
    ) -> Result<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.keys.transient(key))
            .arg(value)
            .arg("EX")
            .arg(ttl_secs.max(1));
        if only_new {
            cmd.arg("NX");
        }
        let set: Option<String> = cmd.query_async(&mut self.conn()).await?;
        Ok(set.is_some())
    }

    async fn transient(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn().get(self.keys.transient(key)).await?)
    }

    async fn take_transient(&self, key: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GETDEL")
            .arg(self.keys.transient(key))
            .query_async(&mut self.conn())
            .await?)
    }

    async fn remove_transient(&self, key: &str) -> Result<()> {
        let _: () = self.conn().del(self.keys.transient(key)).await?;
        Ok(())
    }

    async fn count_transient(&self, key: &str, ttl_secs: u64) -> Result<u64> {
        let k = self.keys.transient(key);
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .incr(&k, 1)
            .cmd("EXPIRE")
            .arg(&k)
            .arg(ttl_secs.max(1))
            .arg("NX")
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(n)
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.lock(name))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut self.conn())
            .await?;
        Ok(set.is_some())
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        let _: i64 = Script::new(UNLOCK)
            .key(self.keys.lock(name))
            .arg(owner)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl WebhookRouteStore for RedisStore {
    async fn webhook_route_ids(&self) -> Result<Vec<String>> {
        Ok(self.conn().smembers(self.keys.webhook_route_ids()).await?)
    }

    async fn webhook_route(&self, id: &str) -> Result<Option<StoredWebhookRoute>> {
        let (meta, content, tcount): (Option<Vec<u8>>, Option<Vec<u8>>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(self.keys.webhook_routes())
                .arg(format!("{id}:meta"))
                .arg(format!("{id}:content"))
                .arg(format!("{id}:tcount"))
                .query_async(&mut self.conn())
                .await?;
        Ok(meta.map(|meta| StoredWebhookRoute {
            meta,
            content,
            tcount,
        }))
    }

    async fn put_webhook_route(&self, id: &str, route: &StoredWebhookRoute) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(self.keys.webhook_route_ids(), id)
            .ignore()
            .hset(
                self.keys.webhook_routes(),
                format!("{id}:meta"),
                &route.meta,
            )
            .ignore();
        if let Some(content) = &route.content {
            pipe.hset(self.keys.webhook_routes(), format!("{id}:content"), content)
                .ignore();
        }
        if let Some(n) = route.tcount {
            pipe.hset(self.keys.webhook_routes(), format!("{id}:tcount"), n)
                .ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}

#[async_trait]
impl TokenAuditLog for RedisStore {
    async fn push_token_audit(
        &self,
        id: &str,
        entry: &[u8],
        max_entries: usize,
        max_age_secs: u64,
    ) -> Result<()> {
        let key = self.keys.token_log(id);
        let _: () = redis::pipe()
            .atomic()
            .lpush(&key, entry)
            .ignore()
            .ltrim(&key, 0, max_entries.saturating_sub(1) as isize)
            .ignore()
            .expire(&key, max_age_secs as i64)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn token_audit(
        &self,
        id: &str,
        offset: usize,
        count: usize,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let key = self.keys.token_log(id);
        if count == 0 {
            let total: u64 = self.conn().llen(&key).await?;
            return Ok((total, Vec::new()));
        }
        let (total, entries): (u64, Vec<Vec<u8>>) = redis::pipe()
            .llen(&key)
            .lrange(&key, offset as isize, (offset + count - 1) as isize)
            .query_async(&mut self.conn())
            .await?;
        Ok((total, entries))
    }

    async fn delete_token_audit(&self, id: &str) -> Result<()> {
        let _: () = self.conn().del(self.keys.token_log(id)).await?;
        Ok(())
    }
}

#[async_trait]
impl AccountLog for RedisStore {
    async fn push_account_log(
        &self,
        account: &str,
        entries: &[Vec<u8>],
        max_lines: usize,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.keys.account_log(account);
        let _: () = redis::pipe()
            .atomic()
            .rpush(&key, entries)
            .ignore()
            .ltrim(&key, -(max_lines.max(1) as isize), -1)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn account_log(&self, account: &str) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .conn()
            .lrange(self.keys.account_log(account), 0, -1)
            .await?)
    }
}
