//! Accounts (the registered set and each account's fields, as EmailEngine's `iad:` strings) and
//! the mailbox index: folder listings, the mailbox-id registry, per-folder sync status and the
//! binary message index entries.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, drop_folder};
use crate::{AccountFields, AccountStore, MailboxGeneration, MailboxIndex, Result, StoreError};

fn registered(tx: &Connection, account: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM accounts WHERE account = ?1")?
        .query_row([account], |_| Ok(()))
        .optional()?
        .is_some())
}

fn put_fields(tx: &Connection, account: &str, fields: &AccountFields) -> Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO account_fields (account, field, value) VALUES (?1, ?2, ?3)",
    )?;
    for (field, value) in fields {
        put.execute(params![account, field, value])?;
    }
    Ok(())
}

fn field(tx: &Connection, account: &str, name: &str) -> Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT value FROM account_fields WHERE account = ?1 AND field = ?2")?
        .query_row(params![account, name], |r| r.get(0))
        .optional()?)
}

fn set_field(tx: &Connection, account: &str, name: &str, value: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO account_fields (account, field, value) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![account, name, value])?;
    Ok(())
}

/// [`crate::Change::AccountState`] inside a write transaction.
pub(super) fn write_state(
    tx: &Connection,
    account: &str,
    state: &str,
    run: i64,
    error: Option<&str>,
) -> Result<()> {
    if !registered(tx, account)? {
        return Ok(());
    }
    set_field(tx, account, "state", state)?;
    increment_field(tx, account, &format!("state:count:{state}"))?;
    let stored_run = field(tx, account, "runIndex")?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    if run > stored_run {
        set_field(tx, account, "runIndex", &run.to_string())?;
    }
    match error {
        Some(e) => {
            set_field(tx, account, "lastErrorState", e)?;
            increment_field(tx, account, "lastError:errorCount")?;
        }
        None if state == "connected" => {
            tx.prepare_cached(
                "DELETE FROM account_fields WHERE account = ?1
                 AND field IN ('lastErrorState', 'lastError:errorCount')",
            )?
            .execute([account])?;
        }
        None => {}
    }
    Ok(())
}

/// `HINCRBY` on an account field.
fn increment_field(tx: &Connection, account: &str, name: &str) -> Result<i64> {
    let next = field(tx, account, name)?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
        + 1;
    set_field(tx, account, name, &next.to_string())?;
    Ok(next)
}

/// Removes the account's listing and folder indexes (not the mailbox-id registry, so message
/// ids stay stable across a flush).
fn drop_index(tx: &Connection, account: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM listings WHERE account = ?1")?
        .execute([account])?;
    let fids: Vec<i64> = tx
        .prepare_cached("SELECT fid FROM folders WHERE account = ?1")?
        .query_map([account], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for fid in fids {
        drop_folder(tx, fid)?;
    }
    Ok(())
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn account_count(&self) -> Result<u64> {
        self.pool
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get::<_, i64>(0))
            })
            .await
            .map(|n| n.max(0) as u64)
    }

    async fn account_exists(&self, account: &str) -> Result<bool> {
        let account = account.to_string();
        self.pool
            .read(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT 1 FROM accounts WHERE account = ?1")?
                    .query_row([account], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .await
    }

    async fn account_ids(&self) -> Result<Vec<String>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached("SELECT account FROM accounts")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
    }

    async fn put_account(&self, account: &str, fields: &AccountFields) -> Result<bool> {
        let (account, fields) = (account.to_string(), fields.clone());
        self.pool
            .write(move |tx| {
                put_fields(tx, &account, &fields)?;
                Ok(tx
                    .prepare_cached("INSERT OR IGNORE INTO accounts (account) VALUES (?1)")?
                    .execute([&account])?
                    > 0)
            })
            .await
    }

    async fn update_account(&self, account: &str, fields: &AccountFields) -> Result<bool> {
        let (account, fields) = (account.to_string(), fields.clone());
        self.pool
            .write(move |tx| {
                if !registered(tx, &account)? {
                    return Ok(false);
                }
                put_fields(tx, &account, &fields)?;
                Ok(true)
            })
            .await
    }

    async fn account(&self, account: &str) -> Result<Option<AccountFields>> {
        let account = account.to_string();
        let fields: AccountFields = self
            .pool
            .read(move |conn| {
                conn.prepare_cached("SELECT field, value FROM account_fields WHERE account = ?1")?
                    .query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    async fn account_field(&self, account: &str, field: &str) -> Result<Option<String>> {
        let (account, field) = (account.to_string(), field.to_string());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT value FROM account_fields WHERE account = ?1 AND field = ?2",
                )?
                .query_row(params![account, field], |r| r.get(0))
                .optional()
            })
            .await
    }

    async fn account_summaries(
        &self,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>> {
        let ids = ids.to_vec();
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        self.pool
            .read(move |conn| {
                let mut get = conn.prepare_cached(
                    "SELECT value FROM account_fields WHERE account = ?1 AND field = ?2",
                )?;
                ids.iter()
                    .map(|id| {
                        fields
                            .iter()
                            .map(|f| get.query_row(params![id, f], |r| r.get(0)).optional())
                            .collect()
                    })
                    .collect()
            })
            .await
    }

    async fn delete_account(&self, account: &str) -> Result<bool> {
        let account = account.to_string();
        self.pool
            .write(move |tx| {
                let removed = tx
                    .prepare_cached("DELETE FROM accounts WHERE account = ?1")?
                    .execute([&account])?
                    > 0;
                for sql in [
                    "DELETE FROM tokens WHERE account = ?1",
                    "DELETE FROM account_fields WHERE account = ?1",
                    "DELETE FROM mailbox_ids WHERE account = ?1",
                    "DELETE FROM bounces WHERE account = ?1",
                    "DELETE FROM account_log WHERE account = ?1",
                ] {
                    tx.prepare_cached(sql)?.execute([&account])?;
                }
                drop_index(tx, &account)?;
                Ok(removed)
            })
            .await
    }

    async fn flush_account_index(&self, account: &str) -> Result<()> {
        let account = account.to_string();
        self.pool.write(move |tx| drop_index(tx, &account)).await
    }
}

#[async_trait]
impl MailboxIndex for SqliteStore {
    async fn bounce_records(
        &self,
        account: &str,
        message_ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let (account, ids) = (account.to_string(), message_ids.to_vec());
        self.pool
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT records FROM bounces WHERE account = ?1 AND message_id = ?2",
                )?;
                ids.iter()
                    .map(|id| {
                        stmt.query_row(params![account, id], |r| r.get(0))
                            .optional()
                    })
                    .collect()
            })
            .await
    }

    async fn mailbox_id(&self, account: &str, uid_validity: u64, path: &str) -> Result<u32> {
        let (account, path) = (account.to_string(), path.to_string());
        let validity = uid_validity as i64;
        let known: Option<i64> = {
            let (account, path) = (account.clone(), path.clone());
            self.pool
                .read(move |conn| {
                    conn.prepare_cached(
                        "SELECT id FROM mailbox_ids WHERE account = ?1 AND uid_validity = ?2 AND path = ?3",
                    )?
                    .query_row(params![account, validity, path], |r| r.get(0))
                    .optional()
                })
                .await?
        };
        let id = match known {
            Some(id) => id,
            None => {
                self.pool
                    .write(move |tx| {
                        let found: Option<i64> = tx
                            .prepare_cached(
                                "SELECT id FROM mailbox_ids WHERE account = ?1 AND uid_validity = ?2 AND path = ?3",
                            )?
                            .query_row(params![account, validity, path], |r| r.get(0))
                            .optional()?;
                        if let Some(id) = found {
                            return Ok(id);
                        }
                        // The counter is the account's `listRegistry` field, as in EmailEngine,
                        // so ids stay unique when the data moves to Redis and back.
                        let id = increment_field(tx, &account, "listRegistry")?;
                        tx.prepare_cached(
                            "INSERT INTO mailbox_ids (account, id, uid_validity, path) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![account, id, validity, path])?;
                        Ok(id)
                    })
                    .await?
            }
        };
        u32::try_from(id).map_err(|_| StoreError::Data(format!("mailbox id {id} out of range")))
    }

    async fn mailbox_by_id(&self, account: &str, id: u32) -> Result<Option<(u64, String)>> {
        let account = account.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT uid_validity, path FROM mailbox_ids WHERE account = ?1 AND id = ?2",
                )?
                .query_row(params![account, id], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
                })
                .optional()
            })
            .await
    }

    async fn mailbox_registry(&self, account: &str) -> Result<Vec<MailboxGeneration>> {
        let account = account.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT id, uid_validity, path FROM mailbox_ids WHERE account = ?1 ORDER BY id",
                )?
                .query_map([account], |r| {
                    Ok(MailboxGeneration {
                        id: r.get(0)?,
                        uid_validity: r.get::<_, i64>(1)? as u64,
                        path: r.get(2)?,
                    })
                })?
                .collect()
            })
            .await
    }

    async fn put_mailbox_registry(
        &self,
        account: &str,
        entries: &[MailboxGeneration],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let (account, entries) = (account.to_string(), entries.to_vec());
        self.pool
            .write(move |tx| {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO mailbox_ids (account, id, uid_validity, path) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for g in &entries {
                    put.execute(params![account, g.id, g.uid_validity as i64, g.path])?;
                }
                Ok(())
            })
            .await
    }

    async fn listing(&self, account: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let account = account.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT path, entry FROM listings WHERE account = ?1")?
                    .query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .await
    }

    async fn folder_status(&self, account: &str, path: &str) -> Result<BTreeMap<String, String>> {
        let account = account.to_string();
        let path = emailengine_core::ids::normalize_path(path);
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT s.field, s.value FROM folder_status s JOIN folders f ON f.fid = s.fid
                     WHERE f.account = ?1 AND f.path = ?2",
                )?
                .query_map(params![account, path], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
            })
            .await
    }

    async fn indexed_folders(&self, account: &str) -> Result<Vec<String>> {
        let account = account.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT s.value FROM folder_status s JOIN folders f ON f.fid = s.fid
                     WHERE f.account = ?1 AND s.field = 'path' ORDER BY s.value",
                )?
                .query_map([account], |r| r.get(0))?
                .collect()
            })
            .await
    }

    async fn folder_entries(&self, account: &str, path: &str) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .folder_index(account, path)
            .await?
            .into_iter()
            .map(|(_, entry)| entry)
            .collect())
    }

    async fn folder_index(&self, account: &str, path: &str) -> Result<Vec<(u32, Vec<u8>)>> {
        let account = account.to_string();
        let path = emailengine_core::ids::normalize_path(path);
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT m.uid, m.entry FROM messages m JOIN folders f ON f.fid = m.fid
                     WHERE f.account = ?1 AND f.path = ?2 ORDER BY m.uid",
                )?
                .query_map(params![account, path], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
            })
            .await
    }
}
