//! Events in EmailEngine's envelope (spec §9.2), appended to the durable event log for webhook
//! delivery, logged, and counted for `/v1/stats` and `/metrics`. Events that belong to a store
//! change (a sync's index update, an outbox removal) are committed with it in one
//! [`EventBatch`], so a store failure loses neither and repeats neither.

use std::sync::Arc;

use serde_json::{Map, Value};

use emailengine_store::{Change, Settings, Store, StoreError};

/// Where events go: the store's event log, with the settings needed for the envelope.
#[derive(Clone)]
pub struct EventSink {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    /// The live change stream (connection states) the admin pages and `/v1/changes` read.
    pub changes: crate::changes::ChangeFeed,
    /// `serviceUrl` for the envelope, reused for [`SERVICE_URL_TTL`]: busy emitters (tracking
    /// links, sync) would otherwise read it once per event.
    service_url: Arc<std::sync::Mutex<Option<(std::time::Instant, Value)>>>,
}

/// How long a read of `serviceUrl` serves event envelopes.
const SERVICE_URL_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Counters that `/v1/stats` reports for these events.
const COUNTED: &[&str] = &["messageNew", "messageDeleted", "connectError"];

/// Events and store changes to commit together.
#[derive(Clone)]
pub struct EventBatch {
    service_url: Value,
    changes: Vec<Change>,
    /// `(account, event)` of each event, in order, for logs and counters after the commit.
    events: Vec<(String, String)>,
}

impl EventBatch {
    /// Adds an event. `path`/`special_use` are given for mailbox events.
    pub fn event(
        &mut self,
        account: &str,
        event: &str,
        path: Option<&str>,
        special_use: Option<&str>,
        data: Value,
    ) {
        let mut envelope = Map::new();
        envelope.insert("serviceUrl".into(), self.service_url.clone());
        envelope.insert("account".into(), Value::from(account));
        envelope.insert(
            "date".into(),
            Value::from(
                emailengine_core::units::iso_time(chrono::Utc::now().timestamp_millis())
                    .unwrap_or_default(),
            ),
        );
        if let Some(p) = path {
            envelope.insert("path".into(), Value::from(p));
        }
        if let Some(s) = special_use {
            envelope.insert("specialUse".into(), Value::from(s));
        }
        envelope.insert("event".into(), Value::from(event));
        envelope.insert("data".into(), data);
        self.changes.push(Change::Event {
            account: account.to_string(),
            event: event.to_string(),
            payload: Value::Object(envelope).to_string(),
        });
        self.events.push((account.to_string(), event.to_string()));
    }

    /// Adds a store change.
    pub fn change(&mut self, change: Change) {
        self.changes.push(change);
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Events added so far.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }
}

impl EventSink {
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        Self {
            store,
            settings,
            changes: Default::default(),
            service_url: Default::default(),
        }
    }

    /// Drops the cached `serviceUrl` (settings were just written by this process).
    pub fn forget_cached_settings(&self) {
        if let Ok(mut c) = self.service_url.lock() {
            *c = None;
        }
    }

    /// An empty batch; the envelope's `serviceUrl` is read once for all its events.
    pub async fn batch(&self) -> EventBatch {
        let cached = self
            .service_url
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|(at, _)| at.elapsed() < SERVICE_URL_TTL)
            .map(|(_, v)| v);
        let service_url = match cached {
            Some(v) => v,
            None => {
                let v = self
                    .settings
                    .get_one("serviceUrl")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(Value::Null);
                if let Ok(mut c) = self.service_url.lock() {
                    *c = Some((std::time::Instant::now(), v.clone()));
                }
                v
            }
        };
        EventBatch {
            service_url,
            changes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Commits a batch: every change and event lands, or none does.
    pub async fn commit(&self, batch: EventBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids = self.store.commit(batch.changes).await?;
        let mut counted: Vec<(String, u64)> = Vec::new();
        for ((account, event), id) in batch.events.iter().zip(&ids) {
            tracing::info!(account, event, eventId = %id, "Event queued");
            metrics::counter!("events", "event" => event.clone()).increment(1);
            if COUNTED.contains(&event.as_str()) {
                let name = format!("events:{event}");
                match counted.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, n)) => *n += 1,
                    None => counted.push((name, 1)),
                }
            }
        }
        if !counted.is_empty() {
            let now = chrono::Utc::now().timestamp_millis();
            if let Err(e) = self.store.add_counters(&counted, now).await {
                tracing::warn!(err = %e, "Failed to count events");
            }
        }
        Ok(())
    }

    /// Appends one event that no other store change depends on; a failure is logged.
    pub async fn emit(
        &self,
        account: &str,
        event: &str,
        path: Option<&str>,
        special_use: Option<&str>,
        data: Value,
    ) {
        let mut batch = self.batch().await;
        batch.event(account, event, path, special_use, data);
        if let Err(e) = self.commit(batch).await {
            tracing::error!(account, event, err = %e, "Failed to queue event");
        }
    }
}
