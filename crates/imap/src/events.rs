//! Events in EmailEngine's envelope (spec §9.2), appended to the durable event log for webhook
//! delivery, logged, and counted for `/v1/stats` and `/metrics`.

use std::sync::Arc;

use serde_json::{Map, Value};

use emailengine_store::{Settings, Store};

/// Where events go: the store's event log, with the settings needed for the envelope.
#[derive(Clone)]
pub struct EventSink {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
}

/// Counters that `/v1/stats` reports for these events.
const COUNTED: &[&str] = &["messageNew", "messageDeleted", "connectError"];

impl EventSink {
    /// Appends one event. `path`/`special_use` are given for mailbox events.
    pub async fn emit(
        &self,
        account: &str,
        event: &str,
        path: Option<&str>,
        special_use: Option<&str>,
        data: Value,
    ) {
        let service_url = self
            .settings
            .get_one("serviceUrl")
            .await
            .ok()
            .flatten()
            .unwrap_or(Value::Null);
        let mut envelope = Map::new();
        envelope.insert("serviceUrl".into(), service_url);
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
        let payload = Value::Object(envelope).to_string();
        match self.store.append_event(account, event, &payload).await {
            Ok(id) => tracing::info!(account, event, eventId = %id, path, "Event queued"),
            Err(e) => tracing::error!(account, event, err = %e, "Failed to queue event"),
        }
        metrics::counter!("events", "event" => event.to_string()).increment(1);
        if COUNTED.contains(&event) {
            let now = chrono::Utc::now().timestamp_millis();
            if let Err(e) = self
                .store
                .add_counters(&[(format!("events:{event}"), 1)], now)
                .await
            {
                tracing::warn!(err = %e, "Failed to count event");
            }
        }
    }
}
