//! The outbox: `iaq:<account>` entries (msgpack, EmailEngine's field), a schedule of due
//! times (`outbox:due`), lease holders (`outbox:lease`), the queue-id → account map
//! (`outbox:q`), and idempotency keys.

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::{Outbox, OutboxItem, Result};

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
