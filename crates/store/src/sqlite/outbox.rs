//! The outbox: one row per queued message (the msgpack entry the submit path wrote), its due
//! time and the instance holding its lease; and the idempotency keys of submissions.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, now_ms};
use crate::{Outbox, OutboxItem, Result};

fn item(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        queue_id: r.get(0)?,
        account: r.get(1)?,
        entry: r.get(2)?,
        due: r.get(3)?,
    })
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        // Most polls find nothing due: look before taking the write lock.
        let any: bool = self
            .pool
            .read(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT 1 FROM outbox WHERE due <= ?1 LIMIT 1")?
                    .query_row([now], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        let owner = owner.to_string();
        self.pool
            .write(move |tx| {
                let mut items: Vec<OutboxItem> = tx
                    .prepare_cached(
                        "SELECT queue_id, account, entry, due FROM outbox WHERE due <= ?1
                         ORDER BY due LIMIT ?2",
                    )?
                    .query_map(params![now, limit as i64], item)?
                    .collect::<rusqlite::Result<_>>()?;
                let mut lease = tx.prepare_cached(
                    "UPDATE outbox SET due = ?2, lease_owner = ?3 WHERE queue_id = ?1",
                )?;
                for i in &mut items {
                    i.due = now + lease_ms;
                    lease.execute(params![i.queue_id, i.due, owner])?;
                }
                Ok(items)
            })
            .await
    }

    async fn release_leases(&self, owner: &str, now: i64) -> Result<u64> {
        let owner = owner.to_string();
        self.pool
            .write(move |tx| {
                Ok(tx
                    .prepare_cached(
                        "UPDATE outbox SET due = ?2, lease_owner = NULL WHERE lease_owner = ?1",
                    )?
                    .execute(params![owner, now])? as u64)
            })
            .await
    }

    async fn outbox_item(&self, queue_id: &str) -> Result<Option<OutboxItem>> {
        let queue_id = queue_id.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT queue_id, account, entry, due FROM outbox WHERE queue_id = ?1",
                )?
                .query_row([queue_id], item)
                .optional()
            })
            .await
    }

    async fn list_outbox(&self, offset: usize, count: usize) -> Result<(u64, Vec<OutboxItem>)> {
        self.pool
            .read(move |conn| {
                let total: i64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
                let items = if count == 0 {
                    Vec::new()
                } else {
                    conn.prepare_cached(
                        "SELECT queue_id, account, entry, due FROM outbox ORDER BY due, queue_id
                         LIMIT ?1 OFFSET ?2",
                    )?
                    .query_map(params![count as i64, offset as i64], item)?
                    .collect::<rusqlite::Result<_>>()?
                };
                Ok((total.max(0) as u64, items))
            })
            .await
    }

    async fn idempotent(
        &self,
        account: &str,
        key: &str,
        value: &str,
        ttl_secs: u64,
    ) -> Result<Option<String>> {
        let (account, key, value) = (account.to_string(), key.to_string(), value.to_string());
        let prune = self.prune_due();
        self.pool
            .write(move |tx| {
                let now = now_ms();
                if prune {
                    tx.execute("DELETE FROM idempotency WHERE expires <= ?1", [now])?;
                }
                let stored: Option<String> = tx
                    .prepare_cached(
                        "SELECT value FROM idempotency WHERE account = ?1 AND key = ?2 AND expires > ?3",
                    )?
                    .query_row(params![account, key, now], |r| r.get(0))
                    .optional()?;
                if stored.is_some() {
                    return Ok(stored);
                }
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO idempotency (account, key, value, expires) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![account, key, value, now + ttl_secs as i64 * 1000])?;
                Ok(None)
            })
            .await
    }
}
