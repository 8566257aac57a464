//! The embedded store: one SQLite database in WAL mode inside a data directory, shared safely
//! by the server and the CLI processes (each process opens it; SQLite serialises writers and
//! never blocks readers). Every write is one transaction, so a crash at any moment leaves the
//! last committed state. The domains live in their own files: [`tokens`], [`accounts`]
//! (accounts and the mailbox index), [`events`], [`outbox`]; [`pool`] owns the connections.

mod accounts;
mod events;
mod extras;
mod outbox;
mod pool;
mod schema;
mod tokens;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;

use crate::{
    BackendInfo, Change, Result, ServerStore, SettingsStore, StatsStore, StoreDescription,
    StoreError, Transactions,
};
use pool::Pool;

/// The database file inside the data directory.
pub const DB_FILE: &str = "emailengine.db";
/// The file a running server holds locked, so a second server refuses the same directory.
pub const LOCK_FILE: &str = "server.lock";
/// Per-minute stats rows are kept this long (7 days reported + 1), as in EmailEngine.
const STATS_KEEP_MS: i64 = 8 * 24 * 3600 * 1000;

pub struct SqliteStore {
    pool: Pool,
    dir: PathBuf,
    /// Woken when this process appends events, so waiting readers need not poll.
    appended: Arc<Notify>,
    /// Counts writes that may leave expired rows behind; every few thousand, they are pruned.
    churn: AtomicU64,
    /// The server lock, held for the life of the process once taken.
    lock: std::sync::Mutex<Option<File>>,
}

impl SqliteStore {
    /// Opens (creating when needed) the store in `dir`, with `readers` reader threads (0 for a
    /// short-lived tool).
    pub fn open(dir: &Path, readers: usize) -> Result<Self> {
        prepare_dir(dir)?;
        let db = dir.join(DB_FILE);
        create_private_file(&db)?;
        let unreadable = |e: StoreError| {
            StoreError::Data(format!(
                "The embedded store {} cannot be used: {e}",
                db.display()
            ))
        };
        let mut writer = pool::connect(&db)
            .map_err(StoreError::from)
            .map_err(unreadable)?;
        schema::prepare(&mut writer).map_err(unreadable)?;
        // A long-lived process (the server, with reader threads) checkpoints in the background;
        // a short-lived tool uses its one connection in place and skips the checkpoint SQLite
        // makes on close (an fsync on its way out), but checkpoints once the WAL holds 100
        // pages, so that the next process to open a database no server holds reads a short WAL.
        let pool = if readers == 0 {
            writer
                .pragma_update(None, "wal_autocheckpoint", 100)
                .map_err(StoreError::from)
                .map_err(unreadable)?;
            writer
                .set_db_config(
                    rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                    true,
                )
                .map_err(StoreError::from)
                .map_err(unreadable)?;
            Pool::inline(writer)
        } else {
            Pool::start(&db, writer, readers).map_err(unreadable)?
        };
        Ok(Self {
            pool,
            dir: dir.to_path_buf(),
            appended: Arc::new(Notify::new()),
            churn: AtomicU64::new(0),
            lock: std::sync::Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the data directory for this process's server; fails when another server holds it.
    pub fn lock_for_server(&self) -> Result<()> {
        use std::io::Write;
        let path = self.dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(StoreError::Backend(format!(
                    "another emailengine server{} is already using the data directory {}; each account must have one owner, so run one server per data directory (or share a Redis)",
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    },
                    self.dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Backend(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        if let Ok(mut held) = self.lock.lock() {
            *held = Some(file);
        }
        Ok(())
    }

    /// True every few thousand calls: time to prune expired rows.
    fn prune_due(&self) -> bool {
        self.churn
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
    }
}

/// Creates the data directory with mode 0700, or checks that an existing path is a directory.
fn prepare_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::Data(format!(
            "The data directory {} is not a directory",
            dir.display()
        ))),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                StoreError::Data(format!(
                    "Cannot create the data directory {}: {e}",
                    dir.display()
                ))
            }),
    }
}

/// Creates the database file readable by its owner only, before SQLite opens it.
fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| {
                StoreError::Data(format!(
                    "Cannot open the embedded store {}: {e}",
                    path.display()
                ))
            });
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| {
            StoreError::Data(format!(
                "Cannot create the embedded store {}: {e}",
                path.display()
            ))
        })
}

/// The row id of a folder of an account, created when `create` is set.
fn folder_id(tx: &Connection, account: &str, path: &str, create: bool) -> Result<Option<i64>> {
    let path = emailengine_core::ids::normalize_path(path);
    let found: Option<i64> = tx
        .prepare_cached("SELECT fid FROM folders WHERE account = ?1 AND path = ?2")?
        .query_row(params![account, path], |r| r.get(0))
        .optional()?;
    if found.is_some() || !create {
        return Ok(found);
    }
    tx.prepare_cached("INSERT INTO folders (account, path) VALUES (?1, ?2)")?
        .execute(params![account, path])?;
    Ok(Some(tx.last_insert_rowid()))
}

/// Removes a folder's index, status and row.
fn drop_folder(tx: &Connection, fid: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM messages WHERE fid = ?1")?
        .execute([fid])?;
    tx.prepare_cached("DELETE FROM folder_status WHERE fid = ?1")?
        .execute([fid])?;
    tx.prepare_cached("DELETE FROM folders WHERE fid = ?1")?
        .execute([fid])?;
    Ok(())
}

/// Applies one change inside a transaction; appended event ids are pushed to `ids`.
fn apply(tx: &Connection, change: &Change, now: i64, ids: &mut Vec<String>) -> Result<()> {
    match change {
        Change::AccountState {
            account,
            state,
            run,
            error,
        } => accounts::write_state(tx, account, state, *run, error.as_deref())?,
        Change::Event {
            account,
            event,
            payload,
        } => ids.push(events::append(tx, account, event, payload, now)?),
        Change::FolderEntries {
            account,
            path,
            upsert,
            remove,
        } => {
            if upsert.is_empty() && remove.is_empty() {
                return Ok(());
            }
            let Some(fid) = folder_id(tx, account, path, true)? else {
                return Ok(());
            };
            let mut delete =
                tx.prepare_cached("DELETE FROM messages WHERE fid = ?1 AND uid = ?2")?;
            for uid in remove {
                delete.execute(params![fid, uid])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (fid, uid, entry) VALUES (?1, ?2, ?3)",
            )?;
            for (uid, entry) in upsert {
                insert.execute(params![fid, uid, entry])?;
            }
        }
        Change::FolderStatus {
            account,
            path,
            fields,
        } => {
            if fields.is_empty() {
                return Ok(());
            }
            let Some(fid) = folder_id(tx, account, path, true)? else {
                return Ok(());
            };
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO folder_status (fid, field, value) VALUES (?1, ?2, ?3)",
            )?;
            for (field, value) in fields {
                put.execute(params![fid, field, value])?;
            }
        }
        Change::ResetFolder { account, path } => {
            if let Some(fid) = folder_id(tx, account, path, false)? {
                drop_folder(tx, fid)?;
            }
        }
        Change::Listing { account, entries } => {
            tx.prepare_cached("DELETE FROM listings WHERE account = ?1")?
                .execute([account])?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO listings (account, path, entry) VALUES (?1, ?2, ?3)",
            )?;
            for (path, entry) in entries {
                put.execute(params![account, path, entry])?;
            }
        }
        Change::PutOutbox {
            account,
            queue_id,
            entry,
            due,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO outbox (queue_id, account, entry, due, lease_owner)
                 VALUES (?1, ?2, ?3, ?4, NULL)",
            )?
            .execute(params![queue_id, account, entry, due])?;
        }
        Change::AppendBounce {
            account,
            message_id,
            record,
        } => {
            // Concatenated in Rust: SQL's `||` would turn the bytes into text.
            let mut records: Vec<u8> = tx
                .prepare_cached(
                    "SELECT records FROM bounces WHERE account = ?1 AND message_id = ?2",
                )?
                .query_row(params![account, message_id], |r| r.get(0))
                .optional()?
                .unwrap_or_default();
            records.extend_from_slice(record);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO bounces (account, message_id, records) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![account, message_id, records])?;
        }
        Change::RemoveDeadEvent { id } => {
            tx.prepare_cached("DELETE FROM dead_events WHERE id = ?1")?
                .execute([id])?;
        }
        Change::RemoveOutbox { queue_id } => {
            tx.prepare_cached("DELETE FROM outbox WHERE queue_id = ?1")?
                .execute([queue_id])?;
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[async_trait]
impl Transactions for SqliteStore {
    async fn commit(&self, changes: Vec<Change>) -> Result<Vec<String>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let trim = self.prune_due();
        let ids = self
            .pool
            .write(move |tx| {
                let now = now_ms();
                let mut ids = Vec::new();
                for change in &changes {
                    apply(tx, change, now, &mut ids)?;
                }
                if trim && !ids.is_empty() {
                    events::trim(tx)?;
                }
                Ok(ids)
            })
            .await?;
        if !ids.is_empty() {
            self.appended.notify_waiters();
        }
        Ok(ids)
    }
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn raw_settings(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.pool
            .read(move |conn| {
                let mut get = conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?;
                keys.iter()
                    .map(|k| get.query_row([k], |r| r.get(0)).optional())
                    .collect()
            })
            .await
    }

    async fn put_raw_settings(&self, values: &[(String, String)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let values = values.to_vec();
        self.pool
            .write(move |tx| {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                )?;
                for (k, v) in &values {
                    put.execute(params![k, v])?;
                }
                Ok(())
            })
            .await
    }

    async fn put_raw_setting_if_missing(&self, key: &str, value: &str) -> Result<bool> {
        let (key, value) = (key.to_string(), value.to_string());
        self.pool
            .write(move |tx| {
                Ok(tx
                    .prepare_cached("INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)")?
                    .execute(params![key, value])?
                    > 0)
            })
            .await
    }

    async fn increment_setting(&self, key: &str) -> Result<i64> {
        let key = key.to_string();
        self.pool
            .write(move |tx| {
                let value: String = tx
                    .prepare_cached(
                        "INSERT INTO settings (key, value) VALUES (?1, '1')
                         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
                         RETURNING value",
                    )?
                    .query_row([&key], |r| r.get(0))?;
                value
                    .parse()
                    .map_err(|_| StoreError::Data(format!("settings.{key} is not a number: {value}")))
            })
            .await
    }

    async fn all_raw_settings(&self) -> Result<Vec<(String, String)>> {
        self.pool
            .read(|conn| {
                let mut all =
                    conn.prepare_cached("SELECT key, value FROM settings ORDER BY key")?;
                let rows = all.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await
    }
}

#[async_trait]
impl StatsStore for SqliteStore {
    async fn add_counters(&self, deltas: &[(String, u64)], now_ms: i64) -> Result<()> {
        let deltas: Vec<(String, u64)> = deltas.iter().filter(|(_, n)| *n > 0).cloned().collect();
        if deltas.is_empty() {
            return Ok(());
        }
        let prune = self.prune_due();
        self.pool
            .write(move |tx| {
                let minute = now_ms.div_euclid(60_000);
                let mut name =
                    tx.prepare_cached("INSERT OR IGNORE INTO stat_names (name) VALUES (?1)")?;
                let mut add = tx.prepare_cached(
                    "INSERT INTO stats (name, minute, count) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name, minute) DO UPDATE SET count = count + excluded.count",
                )?;
                for (counter, n) in &deltas {
                    name.execute([counter])?;
                    add.execute(params![counter, minute, *n as i64])?;
                }
                if prune {
                    tx.execute(
                        "DELETE FROM stats WHERE minute < ?1",
                        [(now_ms - STATS_KEEP_MS).div_euclid(60_000)],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn counters(&self, window_secs: u64, now_ms: i64) -> Result<BTreeMap<String, u64>> {
        self.pool
            .read(move |conn| {
                let now_minute = now_ms.div_euclid(60_000);
                let minutes = window_secs.div_ceil(60).max(1) as i64;
                let mut out: BTreeMap<String, u64> = BTreeMap::new();
                let mut names = conn.prepare_cached("SELECT name FROM stat_names")?;
                for name in names.query_map([], |r| r.get::<_, String>(0))? {
                    out.insert(name?, 0);
                }
                let mut sums = conn.prepare_cached(
                    "SELECT name, SUM(count) FROM stats WHERE minute > ?1 AND minute <= ?2 GROUP BY name",
                )?;
                let rows = sums.query_map(params![now_minute - minutes, now_minute], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?;
                for row in rows {
                    let (name, sum) = row?;
                    out.insert(name, sum.max(0) as u64);
                }
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl ServerStore for SqliteStore {
    async fn health_check(&self) -> Result<()> {
        let now = now_ms().to_string();
        self.pool
            .write(move |tx| {
                let key = format!("test:{now}");
                tx.execute(
                    "INSERT OR REPLACE INTO probe (key, value) VALUES (?1, ?2)",
                    params![key, now],
                )?;
                let value: String =
                    tx.query_row("SELECT value FROM probe WHERE key = ?1", [&key], |r| {
                        r.get(0)
                    })?;
                tx.execute("DELETE FROM probe WHERE key = ?1", [&key])?;
                if value == now {
                    Ok(())
                } else {
                    Err(StoreError::Data("health probe value mismatch".into()))
                }
            })
            .await
    }

    async fn backend_info(&self) -> Result<BackendInfo> {
        Ok(BackendInfo {
            version: rusqlite::version().to_string(),
            software: Some("sqlite".into()),
            cluster: false,
        })
    }

    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        self.pool
            .read(|conn| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await?;
        Ok(start.elapsed())
    }

    fn describe(&self) -> StoreDescription {
        StoreDescription {
            kind: "embedded",
            location: self.dir.display().to_string(),
        }
    }
}
