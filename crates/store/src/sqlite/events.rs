//! The event log as a table ordered by sequence number, with Redis-stream consumer-group
//! semantics: a group remembers the last event it read, reads are recorded as pending for the
//! consumer until acknowledged, and pending events are read again after a crash. Event ids look
//! like stream ids (`<ms>-<seq>`) but are opaque; imported events keep the ids they came with.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::{DeadEvent, EventLog, LoggedEvent, Result, StoreError};

/// Events kept before the oldest are trimmed (as the Redis stream's MAXLEN).
const KEEP_EVENTS: i64 = 1_000_000;
/// How often a waiting reader looks for events appended by other processes.
const POLL: Duration = Duration::from_millis(100);

const COLUMNS: &str = "e.id, e.account, e.event, e.payload, e.queued_at";

fn logged(r: &Row<'_>) -> rusqlite::Result<LoggedEvent> {
    Ok(LoggedEvent {
        id: r.get(0)?,
        account: r.get(1)?,
        event: r.get(2)?,
        payload: r.get(3)?,
        queued_at: r.get(4)?,
    })
}

fn next_seq(tx: &Connection) -> Result<i64> {
    let last: Option<i64> = tx
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'events'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(last.unwrap_or(0) + 1)
}

/// Appends one event inside a write transaction and returns its id.
pub(super) fn append(
    tx: &Connection,
    account: &str,
    event: &str,
    payload: &str,
    now: i64,
) -> Result<String> {
    let seq = next_seq(tx)?;
    let id = format!("{now}-{seq}");
    tx.prepare_cached(
        "INSERT INTO events (seq, id, account, event, payload, queued_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![seq, id, account, event, payload, now])?;
    Ok(id)
}

/// Drops the oldest events beyond [`KEEP_EVENTS`].
pub(super) fn trim(tx: &Connection) -> Result<()> {
    let cutoff = next_seq(tx)? - 1 - KEEP_EVENTS;
    if cutoff > 0 {
        tx.execute("DELETE FROM events WHERE seq <= ?1", [cutoff])?;
        tx.execute("DELETE FROM event_pending WHERE seq <= ?1", [cutoff])?;
    }
    Ok(())
}

fn group_seq(conn: &Connection, group: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT last_seq FROM event_groups WHERE name = ?1")?
        .query_row([group], |r| r.get(0))
        .optional()
}

fn no_group(group: &str) -> StoreError {
    StoreError::Backend(format!("NOGROUP no consumer group named {group}"))
}

impl SqliteStore {
    /// Reads up to `count` new events for the group and records them as pending for `consumer`.
    async fn claim_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LoggedEvent>> {
        let g = group.to_string();
        // A read first: most polls find nothing, and reads do not take the write lock.
        let waiting: Option<bool> = self
            .pool
            .read(move |conn| {
                let Some(last) = group_seq(conn, &g)? else {
                    return Ok(None);
                };
                Ok(Some(
                    conn.prepare_cached("SELECT 1 FROM events WHERE seq > ?1 LIMIT 1")?
                        .query_row([last], |_| Ok(()))
                        .optional()?
                        .is_some(),
                ))
            })
            .await?;
        match waiting {
            None => return Err(no_group(group)),
            Some(false) => return Ok(Vec::new()),
            Some(true) => {}
        }
        let (group, consumer) = (group.to_string(), consumer.to_string());
        self.pool
            .write(move |tx| {
                let last = group_seq(tx, &group)?.ok_or_else(|| no_group(&group))?;
                let rows: Vec<(i64, LoggedEvent)> = tx
                    .prepare_cached(&format!(
                        "SELECT e.seq, {COLUMNS} FROM events e WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"
                    ))?
                    .query_map(params![last, count as i64], |r| {
                        Ok((
                            r.get(0)?,
                            LoggedEvent {
                                id: r.get(1)?,
                                account: r.get(2)?,
                                event: r.get(3)?,
                                payload: r.get(4)?,
                                queued_at: r.get(5)?,
                            },
                        ))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                if let Some((seq, _)) = rows.last() {
                    let mut pending = tx.prepare_cached(
                        "INSERT OR REPLACE INTO event_pending (grp, seq, consumer) VALUES (?1, ?2, ?3)",
                    )?;
                    for (s, _) in &rows {
                        pending.execute(params![group, s, consumer])?;
                    }
                    tx.prepare_cached("UPDATE event_groups SET last_seq = ?2 WHERE name = ?1")?
                        .execute(params![group, seq])?;
                }
                Ok(rows.into_iter().map(|(_, e)| e).collect())
            })
            .await
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn ensure_event_group(&self, group: &str) -> Result<()> {
        let group = group.to_string();
        self.pool
            .write(move |tx| {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO event_groups (name, last_seq) VALUES (?1, 0)",
                )?
                .execute([group])?;
                Ok(())
            })
            .await
    }

    async fn pending_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LoggedEvent>> {
        let (group, consumer) = (group.to_string(), consumer.to_string());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM event_pending p JOIN events e ON e.seq = p.seq
                     WHERE p.grp = ?1 AND p.consumer = ?2 ORDER BY p.seq LIMIT ?3"
                ))?
                .query_map(params![group, consumer, count as i64], logged)?
                .collect()
            })
            .await
    }

    async fn next_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<LoggedEvent>> {
        let deadline = Instant::now() + Duration::from_millis(block_ms);
        loop {
            // Registered before looking, so an append between the look and the wait wakes it.
            let appended = self.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let events = self.claim_events(group, consumer, count).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !events.is_empty() || left.is_zero() {
                return Ok(events);
            }
            tokio::select! {
                _ = appended => {}
                _ = tokio::time::sleep(left.min(POLL)) => {}
            }
        }
    }

    async fn ack_events(&self, group: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let (group, ids) = (group.to_string(), ids.to_vec());
        self.pool
            .write(move |tx| {
                let mut delete = tx.prepare_cached(
                    "DELETE FROM event_pending WHERE grp = ?1 AND seq = (SELECT seq FROM events WHERE id = ?2)",
                )?;
                for id in &ids {
                    delete.execute(params![group, id])?;
                }
                Ok(())
            })
            .await
    }

    async fn events_pending_count(&self, group: &str) -> Result<u64> {
        let group = group.to_string();
        self.pool
            .read(move |conn| {
                let Some(last) = group_seq(conn, &group)? else {
                    return Ok(0);
                };
                let pending: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM event_pending WHERE grp = ?1")?
                    .query_row([&group], |r| r.get(0))?;
                let unread: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM events WHERE seq > ?1")?
                    .query_row([last], |r| r.get(0))?;
                Ok((pending + unread).max(0) as u64)
            })
            .await
    }

    async fn undelivered_events(&self, group: &str) -> Result<Vec<LoggedEvent>> {
        let group = group.to_string();
        self.pool
            .read(move |conn| {
                let last = group_seq(conn, &group)?.unwrap_or(0);
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events e
                     WHERE e.seq > ?2 OR e.seq IN (SELECT seq FROM event_pending WHERE grp = ?1)
                     ORDER BY e.seq"
                ))?
                .query_map(params![group, last], logged)?
                .collect()
            })
            .await
    }

    async fn import_events(&self, events: &[LoggedEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.pool
            .write(move |tx| {
                let mut put = tx.prepare_cached(
                    "INSERT OR IGNORE INTO events (seq, id, account, event, payload, queued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for e in &events {
                    let seq = next_seq(tx)?;
                    put.execute(params![
                        seq,
                        e.id,
                        e.account,
                        e.event,
                        e.payload,
                        e.queued_at
                    ])?;
                }
                Ok(())
            })
            .await?;
        self.appended.notify_waiters();
        Ok(())
    }

    async fn recent_events(&self, account: Option<&str>, count: usize) -> Result<Vec<LoggedEvent>> {
        let account = account.map(str::to_string);
        self.pool
            .read(move |conn| match account {
                Some(a) => conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM events e WHERE e.account = ?1 ORDER BY e.seq DESC LIMIT ?2"
                    ))?
                    .query_map(params![a, count as i64], logged)?
                    .collect(),
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM events e ORDER BY e.seq DESC LIMIT ?1"
                    ))?
                    .query_map([count as i64], logged)?
                    .collect(),
            })
            .await
    }

    async fn put_dead_event(&self, dead: &DeadEvent) -> Result<()> {
        let dead = dead.clone();
        self.pool
            .write(move |tx| {
                let e = &dead.event;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO dead_events (id, account, event, payload, queued_at, reason, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![e.id, e.account, e.event, e.payload, e.queued_at, dead.reason, dead.at])?;
                Ok(())
            })
            .await
    }

    async fn dead_events(&self, offset: usize, count: usize) -> Result<(u64, Vec<DeadEvent>)> {
        self.pool
            .read(move |conn| {
                let total: i64 =
                    conn.query_row("SELECT COUNT(*) FROM dead_events", [], |r| r.get(0))?;
                let rows = conn
                    .prepare_cached(
                        "SELECT id, account, event, payload, queued_at, reason, at FROM dead_events
                         ORDER BY at DESC, id DESC LIMIT ?1 OFFSET ?2",
                    )?
                    .query_map(params![count as i64, offset as i64], |r| {
                        Ok(DeadEvent {
                            event: logged(r)?,
                            reason: r.get(5)?,
                            at: r.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((total.max(0) as u64, rows))
            })
            .await
    }

    async fn dead_event(&self, id: &str) -> Result<Option<LoggedEvent>> {
        let id = id.to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT id, account, event, payload, queued_at FROM dead_events WHERE id = ?1",
                )?
                .query_row([id], logged)
                .optional()
            })
            .await
    }
}
