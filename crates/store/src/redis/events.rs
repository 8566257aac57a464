//! The event log as a Redis stream (`events`) read through a consumer group, and the given-up
//! deliveries (`wh:dead`, `wh:dead:i`). Stream entry ids are the event ids; the time an event
//! was logged is the millisecond part of its id (or its `t` field, for imported events).

use std::collections::HashMap;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::streams::StreamId;

use super::{EVENT_STREAM_MAX, RedisStore};

/// How far back `recent_events` looks for one account's events.
const RECENT_SCAN: usize = 50_000;
use crate::{DeadEvent, EventLog, LoggedEvent, Result};

#[async_trait]
impl EventLog for RedisStore {
    async fn ensure_event_group(&self, group: &str) -> Result<()> {
        let created: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.events())
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn pending_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LoggedEvent>> {
        self.read_group(group, consumer, count, None, "0").await
    }

    async fn next_events(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<LoggedEvent>> {
        // BLOCK 0 would wait forever: a zero wait is a plain read.
        let block = (block_ms > 0).then_some(block_ms);
        self.read_group(group, consumer, count, block, ">").await
    }

    async fn ack_events(&self, group: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("XACK")
            .arg(self.keys.events())
            .arg(group)
            .arg(ids)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn events_pending_count(&self, group: &str) -> Result<u64> {
        Ok(self
            .group_info(group)
            .await?
            .map_or(0, |g| g.pending + g.lag))
    }

    async fn undelivered_events(&self, group: &str) -> Result<Vec<LoggedEvent>> {
        let key = self.keys.events();
        let Some(info) = self.group_info(group).await? else {
            return self.range("-", "+").await;
        };
        // Read but never acknowledged, then never read.
        let pending: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(&key)
            .arg(group)
            .arg("-")
            .arg("+")
            .arg(i64::MAX)
            .query_async(&mut self.conn())
            .await?;
        let ids: Vec<String> = pending
            .into_iter()
            .filter_map(|entry| {
                let (id, _, _, _): (String, String, u64, u64) =
                    redis::from_redis_value(entry).ok()?;
                Some(id)
            })
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.extend(self.range(id, id).await?);
        }
        out.extend(
            self.range(&format!("({}", info.last_delivered), "+")
                .await?,
        );
        Ok(out)
    }

    async fn import_events(&self, events: &[LoggedEvent]) -> Result<()> {
        let key = self.keys.events();
        for e in events {
            // Already there (a second run of the same copy): nothing to add.
            if is_stream_id(&e.id) && !self.range(&e.id, &e.id).await?.is_empty() {
                continue;
            }
            let fields = [
                ("account", e.account.as_str()),
                ("event", e.event.as_str()),
                ("payload", e.payload.as_str()),
            ];
            // The original id when it is a stream id later than the last one, else a new id
            // (then the original time is kept in `t`).
            let kept: redis::RedisResult<String> = if is_stream_id(&e.id) {
                redis::cmd("XADD")
                    .arg(&key)
                    .arg(&e.id)
                    .arg(&fields)
                    .query_async(&mut self.conn())
                    .await
            } else {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "not a stream id",
                )))
            };
            if kept.is_err() {
                let time = e.queued_at.to_string();
                let _: String = redis::cmd("XADD")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(EVENT_STREAM_MAX)
                    .arg("*")
                    .arg(&fields)
                    .arg("t")
                    .arg(&time)
                    .query_async(&mut self.conn())
                    .await?;
            }
        }
        Ok(())
    }

    async fn recent_events(&self, account: Option<&str>, count: usize) -> Result<Vec<LoggedEvent>> {
        // Without an index per account, scan back through the stream in pages, and only so far:
        // "recent" is the last RECENT_SCAN events.
        let mut out = Vec::new();
        let mut end = "+".to_string();
        for _ in 0..RECENT_SCAN / 1000 {
            let page: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(self.keys.events())
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn())
                .await?;
            let len = page.ids.len();
            let last = page.ids.last().map(|e| e.id.clone());
            for entry in &page.ids {
                let e = logged(entry);
                if account.is_none_or(|a| a == e.account) {
                    out.push(e);
                    if out.len() >= count {
                        return Ok(out);
                    }
                }
            }
            match last {
                Some(id) if len == 1000 => end = format!("({id}"),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    async fn put_dead_event(&self, dead: &DeadEvent) -> Result<()> {
        let event = &dead.event;
        let record = serde_json::json!({
            "id": event.id, "account": event.account, "event": event.event,
            "payload": event.payload, "queuedAt": event.queued_at, "reason": dead.reason,
        })
        .to_string();
        let _: () = redis::pipe()
            .atomic()
            .hset(self.keys.dead_events(), &event.id, record)
            .ignore()
            .zadd(self.keys.dead_events_index(), &event.id, dead.at)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn dead_events(&self, offset: usize, count: usize) -> Result<(u64, Vec<DeadEvent>)> {
        let total: u64 = self.conn().zcard(self.keys.dead_events_index()).await?;
        if count == 0 {
            return Ok((total, Vec::new()));
        }
        let ids: Vec<(String, f64)> = self
            .conn()
            .zrevrange_withscores(
                self.keys.dead_events_index(),
                offset as isize,
                (offset + count) as isize - 1,
            )
            .await?;
        if ids.is_empty() {
            return Ok((total, Vec::new()));
        }
        let names: Vec<&String> = ids.iter().map(|(id, _)| id).collect();
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.dead_events())
            .arg(&names)
            .query_async(&mut self.conn())
            .await?;
        Ok((
            total,
            ids.iter()
                .zip(raw)
                .filter_map(|((_, at), r)| {
                    let (event, reason) = dead_record(&r?)?;
                    Some(DeadEvent {
                        event,
                        reason,
                        at: *at as i64,
                    })
                })
                .collect(),
        ))
    }

    async fn dead_event(&self, id: &str) -> Result<Option<LoggedEvent>> {
        let raw: Option<String> = self.conn().hget(self.keys.dead_events(), id).await?;
        Ok(raw.and_then(|r| dead_record(&r)).map(|(e, _)| e))
    }
}

fn dead_record(raw: &str) -> Option<(LoggedEvent, String)> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let id = text("id");
    let queued_at = v
        .get("queuedAt")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(|| stream_id_time(&id));
    Some((
        LoggedEvent {
            id,
            account: text("account"),
            event: text("event"),
            payload: text("payload"),
            queued_at,
        },
        text("reason"),
    ))
}

/// `<ms>-<seq>`.
fn is_stream_id(id: &str) -> bool {
    id.split_once('-')
        .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok())
}

/// The millisecond time inside a stream entry id (`<ms>-<seq>`).
fn stream_id_time(id: &str) -> i64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

fn logged(entry: &StreamId) -> LoggedEvent {
    let field = |k: &str| -> String { entry.get(k).unwrap_or_default() };
    let queued_at = entry
        .get::<String>("t")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| stream_id_time(&entry.id));
    LoggedEvent {
        id: entry.id.clone(),
        account: field("account"),
        event: field("event"),
        payload: field("payload"),
        queued_at,
    }
}

/// What `XINFO GROUPS` says of one group.
struct GroupInfo {
    pending: u64,
    lag: u64,
    last_delivered: String,
}

impl RedisStore {
    async fn group_info(&self, group: &str) -> Result<Option<GroupInfo>> {
        let groups: redis::RedisResult<Vec<redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.keys.events())
            .query_async(&mut self.conn())
            .await;
        let groups = match groups {
            Ok(g) => g,
            // No stream yet: no group either.
            Err(e) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        for g in groups {
            let Ok(map) = redis::from_redis_value::<HashMap<String, redis::Value>>(g) else {
                continue;
            };
            let get = |k: &str| map.get(k).cloned();
            let name = get("name").and_then(|v| redis::from_redis_value::<String>(v).ok());
            if name.as_deref() != Some(group) {
                continue;
            }
            let num = |k: &str| {
                get(k)
                    .and_then(|v| redis::from_redis_value::<u64>(v).ok())
                    .unwrap_or(0)
            };
            return Ok(Some(GroupInfo {
                pending: num("pending"),
                lag: num("lag"),
                last_delivered: get("last-delivered-id")
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .unwrap_or_else(|| "0-0".into()),
            }));
        }
        Ok(None)
    }

    async fn range(&self, start: &str, end: &str) -> Result<Vec<LoggedEvent>> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.events())
            .arg(start)
            .arg(end)
            .query_async(&mut self.conn())
            .await?;
        Ok(reply.ids.iter().map(logged).collect())
    }

    async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: Option<u64>,
        from: &str,
    ) -> Result<Vec<LoggedEvent>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(self.keys.events()).arg(from);
        // Blocking reads get a connection of their own, so they never hold up other commands.
        let reply: Option<redis::streams::StreamReadReply> = match block_ms {
            Some(_) => {
                let mut conn = self.blocking_conn().await?;
                match cmd.query_async(&mut conn).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.drop_blocking_conn().await;
                        return Err(e.into());
                    }
                }
            }
            None => cmd.query_async(&mut self.conn()).await?,
        };
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|entry| logged(&entry))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids() {
        assert!(is_stream_id("1700000000000-3"));
        assert!(!is_stream_id("abc"));
        assert!(!is_stream_id("17-x"));
        assert_eq!(stream_id_time("1700000000000-3"), 1_700_000_000_000);
    }
}
