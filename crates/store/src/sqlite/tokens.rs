//! Access tokens: one row per token holding the msgpack record EmailEngine writes and the
//! msgpack last-use entry; the bound account is kept beside them for the per-account index.
//! Rate-limit windows are counter rows with an expiry.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use emailengine_core::token::{TokenAccess, TokenRecord};

use super::{SqliteStore, now_ms};
use crate::{RawToken, Result, StoredToken, TokenStore};

#[async_trait]
impl TokenStore for SqliteStore {
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let id = id.to_string();
        let raw: Option<Vec<u8>> = self
            .pool
            .read(move |conn| {
                conn.prepare_cached("SELECT record FROM tokens WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .optional()
            })
            .await?;
        Ok(raw.and_then(|b| TokenRecord::decode_stored(&b)))
    }

    async fn tokens(&self, ids: &[String]) -> Result<Vec<StoredToken>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let rows: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = self
            .pool
            .read(move |conn| {
                let mut get =
                    conn.prepare_cached("SELECT record, access FROM tokens WHERE id = ?1")?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some((record, access)) = get
                        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?
                    {
                        out.push((id, record, access));
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, record, access)| {
                Some(StoredToken {
                    id,
                    record: TokenRecord::decode_stored(&record)?,
                    access: access.map(|a| TokenAccess::decode(&a)).unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn put_token(&self, id: &str, record: &TokenRecord) -> Result<()> {
        self.put_raw_token(&RawToken {
            id: id.to_string(),
            record: record.encode(),
            access: Some(TokenAccess::default().encode()),
        })
        .await
    }

    async fn delete_token(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.pool
            .write(move |tx| {
                Ok(tx
                    .prepare_cached("DELETE FROM tokens WHERE id = ?1")?
                    .execute([id])?
                    > 0)
            })
            .await
    }

    async fn token_ids(&self, account: Option<&str>) -> Result<Vec<String>> {
        let account = account.map(str::to_string);
        self.pool
            .read(move |conn| match account {
                None => conn
                    .prepare_cached("SELECT id FROM tokens")?
                    .query_map([], |r| r.get(0))?
                    .collect(),
                Some(a) => conn
                    .prepare_cached("SELECT id FROM tokens WHERE account = ?1")?
                    .query_map([a], |r| r.get(0))?
                    .collect(),
            })
            .await
    }

    async fn record_access(&self, entries: &[(String, TokenAccess)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(id, access)| (id.clone(), access.encode()))
            .collect();
        self.pool
            .write(move |tx| {
                // Only existing rows are updated, so a late flush never revives a deleted token.
                let mut put = tx.prepare_cached("UPDATE tokens SET access = ?2 WHERE id = ?1")?;
                for (id, access) in &entries {
                    put.execute(params![id, access])?;
                }
                Ok(())
            })
            .await
    }

    async fn count_request(&self, token_id: &str, window_secs: u64, bucket: i64) -> Result<u64> {
        let key = format!("{window_secs}:{bucket}:{token_id}");
        let prune = self.prune_due();
        self.pool
            .write(move |tx| {
                let now = now_ms();
                if prune {
                    tx.execute("DELETE FROM rate_limits WHERE expires < ?1", [now])?;
                }
                let count: i64 = tx
                    .prepare_cached(
                        "INSERT INTO rate_limits (key, count, expires) VALUES (?1, 1, ?2)
                         ON CONFLICT (key) DO UPDATE SET count = count + 1, expires = excluded.expires
                         RETURNING count",
                    )?
                    .query_row(params![key, now + window_secs as i64 * 1000], |r| r.get(0))?;
                Ok(count.max(0) as u64)
            })
            .await
    }

    async fn raw_tokens(&self) -> Result<Vec<RawToken>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached("SELECT id, record, access FROM tokens ORDER BY id")?
                    .query_map([], |r| {
                        Ok(RawToken {
                            id: r.get(0)?,
                            record: r.get(1)?,
                            access: r.get(2)?,
                        })
                    })?
                    .collect()
            })
            .await
    }

    async fn put_raw_token(&self, token: &RawToken) -> Result<()> {
        let account = TokenRecord::decode_stored(&token.record).and_then(|r| r.account);
        let token = token.clone();
        self.pool
            .write(move |tx| {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO tokens (id, record, access, account) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![token.id, token.record, token.access, account])?;
                Ok(())
            })
            .await
    }
}
