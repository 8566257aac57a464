//! Templates, suppression lists, SMTP gateways, OAuth2 apps, and short-lived keys and locks
//! (expired rows are ignored when read and pruned now and then).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, now_ms};
use crate::{
    AccountLog, BlocklistStore, GatewayStore, OAuthAppStore, Result, StoredWebhookRoute,
    TemplateStore, TokenAuditLog, TransientStore, WebhookRouteStore,
};

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

#[async_trait]
impl WebhookRouteStore for SqliteStore {
    async fn webhook_route_ids(&self) -> Result<Vec<String>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT id FROM webhook_routes")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
    }

    async fn webhook_route(&self, id: &str) -> Result<Option<StoredWebhookRoute>> {
        let id = id.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT meta, content, tcount FROM webhook_routes WHERE id = ?1",
                )?
                .query_row([id], |r| {
                    Ok(StoredWebhookRoute {
                        meta: r.get(0)?,
                        content: r.get(1)?,
                        tcount: r.get::<_, Option<i64>>(2)?.map(|n| n.max(0) as u64),
                    })
                })
                .optional()
            })
            .await
    }

    async fn put_webhook_route(&self, id: &str, route: &StoredWebhookRoute) -> Result<()> {
        let (id, route) = (id.to_string(), route.clone());
        self.pool
            .write(move |tx| {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO webhook_routes (id, meta, content, tcount) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    id,
                    route.meta,
                    route.content,
                    route.tcount.map(|n| n as i64)
                ])?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl TokenAuditLog for SqliteStore {
    async fn push_token_audit(
        &self,
        id: &str,
        entry: &[u8],
        max_entries: usize,
        max_age_secs: u64,
    ) -> Result<()> {
        let (id, entry) = (id.to_string(), entry.to_vec());
        self.pool
            .write(move |tx| {
                let now = now_ms();
                let expired: Option<i64> = tx
                    .prepare_cached("SELECT expires FROM token_log_expiry WHERE id = ?1")?
                    .query_row([&id], |r| r.get(0))
                    .optional()?;
                if expired.is_some_and(|e| e <= now) {
                    tx.prepare_cached("DELETE FROM token_log WHERE id = ?1")?
                        .execute([&id])?;
                }
                tx.prepare_cached("INSERT INTO token_log (id, entry) VALUES (?1, ?2)")?
                    .execute(params![id, entry])?;
                tx.prepare_cached(
                    "DELETE FROM token_log WHERE id = ?1 AND seq NOT IN \
                     (SELECT seq FROM token_log WHERE id = ?1 ORDER BY seq DESC LIMIT ?2)",
                )?
                .execute(params![id, max_entries as i64])?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO token_log_expiry (id, expires) VALUES (?1, ?2)",
                )?
                .execute(params![id, now + max_age_secs as i64 * 1000])?;
                Ok(())
            })
            .await
    }

    async fn token_audit(
        &self,
        id: &str,
        offset: usize,
        count: usize,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let id = id.to_string();
        self.pool
            .read(move |conn| {
                let live = conn
                    .prepare_cached("SELECT expires FROM token_log_expiry WHERE id = ?1")?
                    .query_row([&id], |r| r.get::<_, i64>(0))
                    .optional()?
                    .is_some_and(|e| e > now_ms());
                if !live {
                    return Ok((0, Vec::new()));
                }
                let total: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM token_log WHERE id = ?1")?
                    .query_row([&id], |r| r.get(0))?;
                let entries = conn
                    .prepare_cached(
                        "SELECT entry FROM token_log WHERE id = ?1 ORDER BY seq DESC LIMIT ?2 OFFSET ?3",
                    )?
                    .query_map(params![id, count as i64, offset as i64], |r| r.get(0))?
                    .collect::<std::result::Result<Vec<Vec<u8>>, _>>()?;
                Ok((total as u64, entries))
            })
            .await
    }

    async fn delete_token_audit(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.pool
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM token_log WHERE id = ?1")?
                    .execute([&id])?;
                tx.prepare_cached("DELETE FROM token_log_expiry WHERE id = ?1")?
                    .execute([&id])?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl AccountLog for SqliteStore {
    async fn push_account_log(
        &self,
        account: &str,
        entries: &[Vec<u8>],
        max_lines: usize,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let (account, entries) = (account.to_string(), entries.to_vec());
        self.pool
            .write(move |tx| {
                let mut insert =
                    tx.prepare_cached("INSERT INTO account_log (account, entry) VALUES (?1, ?2)")?;
                for e in &entries {
                    insert.execute(params![account, e])?;
                }
                tx.prepare_cached(
                    "DELETE FROM account_log WHERE account = ?1 AND seq <= \
                     (SELECT seq FROM account_log WHERE account = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                )?
                .execute(params![account, max_lines.max(1) as i64])?;
                Ok(())
            })
            .await
    }

    async fn account_log(&self, account: &str) -> Result<Vec<Vec<u8>>> {
        let account = account.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT entry FROM account_log WHERE account = ?1 ORDER BY seq",
                )?
                .query_map([account], |r| r.get(0))?
                .collect()
            })
            .await
    }
}
