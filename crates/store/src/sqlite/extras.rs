//! Templates, suppression lists, SMTP gateways, OAuth2 apps, and short-lived keys and locks
//! (expired rows are ignored when read and pruned now and then).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, now_ms};
use crate::{BlocklistStore, GatewayStore, OAuthAppStore, Result, TemplateStore, TransientStore};

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn template_ids(&self, account: Option<&str>) -> Result<Vec<String>> {
        let account = account.unwrap_or("").to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT id FROM templates WHERE account = ?1")?
                    .query_map([account], |r| r.get(0))?
                    .collect()
            })
            .await
    }

    async fn template(
        &self,
        account: Option<&str>,
        id: &str,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let (account, id) = (account.unwrap_or("").to_string(), id.to_string());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT meta, content FROM templates WHERE account = ?1 AND id = ?2",
                )?
                .query_row(params![account, id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
            })
            .await
    }

    async fn put_template(
        &self,
        account: Option<&str>,
        id: &str,
        meta: &[u8],
        content: &[u8],
    ) -> Result<()> {
        let (account, id) = (account.unwrap_or("").to_string(), id.to_string());
        let (meta, content) = (meta.to_vec(), content.to_vec());
        self.pool
            .write(move |tx| {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO templates (account, id, meta, content) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![account, id, meta, content])?;
                Ok(())
            })
            .await
    }

    async fn delete_template(&self, account: Option<&str>, id: &str) -> Result<bool> {
        let (account, id) = (account.unwrap_or("").to_string(), id.to_string());
        self.pool
            .write(move |tx| {
                Ok(tx
                    .prepare_cached("DELETE FROM templates WHERE account = ?1 AND id = ?2")?
                    .execute(params![account, id])?
                    > 0)
            })
            .await
    }

    async fn delete_account_templates(&self, account: &str) -> Result<u64> {
        let account = account.to_string();
        self.pool
            .write(move |tx| {
                Ok(tx
                    .prepare_cached("DELETE FROM templates WHERE account = ?1")?
                    .execute([account])? as u64)
            })
            .await
    }
}

#[async_trait]
impl BlocklistStore for SqliteStore {
    async fn blocklists(&self) -> Result<Vec<(String, u64)>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached(
                    "SELECT list, COUNT(*) FROM blocklist GROUP BY list ORDER BY list",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect()
            })
            .await
    }

    async fn blocklist_entries(&self, list: &str) -> Result<Vec<(String, String)>> {
        let list = list.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT address, record FROM blocklist WHERE list = ?1 ORDER BY address",
                )?
                .query_map([list], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
            })
            .await
    }

    async fn blocklist_entry(&self, list: &str, address: &str) -> Result<Option<String>> {
        let (list, address) = (list.to_string(), address.to_string());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT record FROM blocklist WHERE list = ?1 AND address = ?2",
                )?
                .query_row(params![list, address], |r| r.get(0))
                .optional()
            })
            .await
    }

    async fn put_blocklist_entry(&self, list: &str, address: &str, record: &str) -> Result<bool> {
        let (list, address, record) = (list.to_string(), address.to_string(), record.to_string());
        self.pool
            .write(move |tx| {
                let known = tx
                    .prepare_cached("SELECT 1 FROM blocklist WHERE list = ?1 AND address = ?2")?
                    .query_row(params![list, address], |_| Ok(()))
                    .optional()?
                    .is_some();
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO blocklist (list, address, record) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![list, address, record])?;
                Ok(!known)
            })
            .await
    }

    async fn remove_blocklist_entry(&self, list: &str, address: &str) -> Result<bool> {
        let (list, address) = (list.to_string(), address.to_string());
        self.pool
            .write(move |tx| {
                Ok(tx
                    .prepare_cached("DELETE FROM blocklist WHERE list = ?1 AND address = ?2")?
                    .execute(params![list, address])?
                    > 0)
            })
            .await
    }
}

#[async_trait]
impl GatewayStore for SqliteStore {
    async fn gateway_ids(&self) -> Result<Vec<String>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached("SELECT id FROM gateway_ids")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
    }

    async fn gateway(&self, id: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let id = id.to_string();
        let fields: BTreeMap<String, Vec<u8>> = self
            .pool
            .read(move |conn| {
                conn.prepare_cached("SELECT field, value FROM gateways WHERE id = ?1")?
                    .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    async fn put_gateway(
        &self,
        id: &str,
        fields: &[(String, Vec<u8>)],
        remove: &[&str],
    ) -> Result<bool> {
        let id = id.to_string();
        let fields = fields.to_vec();
        let remove: Vec<String> = remove.iter().map(|f| f.to_string()).collect();
        self.pool
            .write(move |tx| {
                let added = tx
                    .prepare_cached("INSERT OR IGNORE INTO gateway_ids (id) VALUES (?1)")?
                    .execute([&id])?
                    > 0;
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO gateways (id, field, value) VALUES (?1, ?2, ?3)",
                )?;
                for (field, value) in &fields {
                    put.execute(params![id, field, value])?;
                }
                let mut drop =
                    tx.prepare_cached("DELETE FROM gateways WHERE id = ?1 AND field = ?2")?;
                for field in &remove {
                    drop.execute(params![id, field])?;
                }
                Ok(added)
            })
            .await
    }

    async fn delete_gateway(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.pool
            .write(move |tx| {
                let removed = tx
                    .prepare_cached("DELETE FROM gateway_ids WHERE id = ?1")?
                    .execute([&id])?
                    > 0;
                tx.prepare_cached("DELETE FROM gateways WHERE id = ?1")?
                    .execute([&id])?;
                Ok(removed)
            })
            .await
    }

    async fn count_gateway_delivery(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.pool
            .write(move |tx| {
                let n: i64 = tx
                    .prepare_cached("SELECT value FROM gateways WHERE id = ?1 AND field = 'deliveries'")?
                    .query_row([&id], |r| r.get::<_, Vec<u8>>(0))
                    .optional()?
                    .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0);
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO gateways (id, field, value) VALUES (?1, 'deliveries', ?2)",
                )?
                .execute(params![id, (n + 1).to_string().into_bytes()])?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl OAuthAppStore for SqliteStore {
    async fn app_ids(&self) -> Result<Vec<String>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached("SELECT id FROM apps")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
    }

    async fn app(&self, id: &str) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>> {
        let id = id.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT data, meta FROM apps WHERE id = ?1")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .await
    }

    async fn put_app(
        &self,
        id: &str,
        data: &[u8],
        meta: Option<&[u8]>,
        pubsub: bool,
    ) -> Result<()> {
        let (id, data, meta) = (id.to_string(), data.to_vec(), meta.map(<[u8]>::to_vec));
        self.pool
            .write(move |tx| {
                tx.prepare_cached(
                    "INSERT INTO apps (id, data, meta, pubsub) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data,
                       meta = COALESCE(excluded.meta, apps.meta), pubsub = excluded.pubsub",
                )?
                .execute(params![id, data, meta, pubsub])?;
                Ok(())
            })
            .await
    }

    async fn put_app_meta(&self, id: &str, meta: &[u8]) -> Result<()> {
        let (id, meta) = (id.to_string(), meta.to_vec());
        self.pool
            .write(move |tx| {
                tx.prepare_cached("UPDATE apps SET meta = ?2 WHERE id = ?1")?
                    .execute(params![id, meta])?;
                Ok(())
            })
            .await
    }

    async fn delete_app(&self, id: &str) -> Result<Option<u64>> {
        let id = id.to_string();
        self.pool
            .write(move |tx| {
                if tx
                    .prepare_cached("DELETE FROM apps WHERE id = ?1")?
                    .execute([&id])?
                    == 0
                {
                    return Ok(None);
                }
                let n = tx
                    .prepare_cached("DELETE FROM app_accounts WHERE app = ?1")?
                    .execute([&id])?;
                Ok(Some(n as u64))
            })
            .await
    }

    async fn app_account_count(&self, id: &str) -> Result<u64> {
        let id = id.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT COUNT(*) FROM app_accounts WHERE app = ?1")?
                    .query_row([id], |r| r.get::<_, i64>(0))
            })
            .await
            .map(|n| n.max(0) as u64)
    }

    async fn app_accounts(&self, id: &str) -> Result<Vec<(String, String)>> {
        let id = id.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT account, user FROM app_accounts WHERE app = ?1 ORDER BY account",
                )?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
            })
            .await
    }

    async fn link_app_account(
        &self,
        app: &str,
        account: &str,
        user: &str,
    ) -> Result<Option<String>> {
        let (app, account, user) = (
            app.to_string(),
            account.to_string(),
            user.trim().to_lowercase(),
        );
        self.pool
            .write(move |tx| {
                let holder: Option<String> = tx
                    .prepare_cached(
                        "SELECT account FROM app_accounts WHERE app = ?1 AND user = ?2",
                    )?
                    .query_row(params![app, user], |r| r.get(0))
                    .optional()?;
                if let Some(holder) = holder.filter(|h| *h != account) {
                    return Ok(Some(holder));
                }
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO app_accounts (app, account, user) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![app, account, user])?;
                Ok(None)
            })
            .await
    }

    async fn unlink_app_account(&self, app: &str, account: &str, _user: &str) -> Result<()> {
        let (app, account) = (app.to_string(), account.to_string());
        self.pool
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM app_accounts WHERE app = ?1 AND account = ?2")?
                    .execute(params![app, account])?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl TransientStore for SqliteStore {
    async fn put_transient(
        &self,
        key: &str,
        value: &str,
        ttl_secs: u64,
        only_new: bool,
    ) -> Result<bool> {
        let (key, value) = (key.to_string(), value.to_string());
        let prune = self.prune_due();
        self.pool
            .write(move |tx| {
                let now = now_ms();
                if prune {
                    tx.execute("DELETE FROM transient WHERE expires <= ?1", [now])?;
                }
                if only_new
                    && tx
                        .prepare_cached("SELECT 1 FROM transient WHERE key = ?1 AND expires > ?2")?
                        .query_row(params![key, now], |_| Ok(()))
                        .optional()?
                        .is_some()
                {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO transient (key, value, expires) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    key,
                    value,
                    now + ttl_secs.max(1) as i64 * 1000
                ])?;
                Ok(true)
            })
            .await
    }

    async fn transient(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT value FROM transient WHERE key = ?1 AND expires > ?2")?
                    .query_row(params![key, now_ms()], |r| r.get(0))
                    .optional()
            })
            .await
    }

    async fn take_transient(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.pool
            .write(move |tx| {
                let value: Option<String> = tx
                    .prepare_cached("SELECT value FROM transient WHERE key = ?1 AND expires > ?2")?
                    .query_row(params![key, now_ms()], |r| r.get(0))
                    .optional()?;
                tx.prepare_cached("DELETE FROM transient WHERE key = ?1")?
                    .execute([&key])?;
                Ok(value)
            })
            .await
    }

    async fn remove_transient(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        self.pool
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM transient WHERE key = ?1")?
                    .execute([key])?;
                Ok(())
            })
            .await
    }

    async fn count_transient(&self, key: &str, ttl_secs: u64) -> Result<u64> {
        let key = key.to_string();
        self.pool
            .write(move |tx| {
                let now = now_ms();
                let current: Option<(String, i64)> = tx
                    .prepare_cached(
                        "SELECT value, expires FROM transient WHERE key = ?1 AND expires > ?2",
                    )?
                    .query_row(params![key, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let (n, expires) = match current {
                    Some((v, e)) => (v.parse::<u64>().unwrap_or(0) + 1, e),
                    None => (1, now + ttl_secs.max(1) as i64 * 1000),
                };
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO transient (key, value, expires) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key, n.to_string(), expires])?;
                Ok(n)
            })
            .await
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.pool
            .write(move |tx| {
                let now = now_ms();
                let held = tx
                    .prepare_cached("SELECT 1 FROM locks WHERE name = ?1 AND expires > ?2")?
                    .query_row(params![name, now], |_| Ok(()))
                    .optional()?
                    .is_some();
                if held {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO locks (name, owner, expires) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![name, owner, now + ttl_ms.max(1) as i64])?;
                Ok(true)
            })
            .await
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.pool
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM locks WHERE name = ?1 AND owner = ?2")?
                    .execute(params![name, owner])?;
                Ok(())
            })
            .await
    }
}
