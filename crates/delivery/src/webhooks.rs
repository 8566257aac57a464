//! Webhook delivery from the durable event log. Events are read through a consumer group;
//! each account's events go through their own queue, one at a time and in order, so a dead
//! endpoint holds back only the accounts that post to it. Failed posts are retried with
//! exponential backoff and jitter for a configurable window (24 h by default); an event is
//! acknowledged only once it is delivered, skipped by the settings, or given up (then kept in the
//! dead-event list for listing and re-sending). After a crash, unacknowledged events are read
//! again: delivery is at-least-once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use emailengine_store::{Change, DeadEvent, LoggedEvent, Settings, Store};

use crate::signature;

const GROUP: &str = "webhooks";
/// How long the reader waits after skipping a batch while webhooks are switched off.
const SKIP_GATHER: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Posts in flight at once, across accounts.
    pub concurrency: usize,
    /// How long an event is retried before it is given up.
    pub retry_window: Duration,
    /// First retry delay; doubles with each attempt up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// This instance's consumer name in the group.
    pub consumer: String,
    /// Which target addresses are refused (`EENGINE_WEBHOOK_EGRESS_POLICY`).
    pub egress: EgressPolicy,
}

pub use emailengine_core::network::EgressPolicy;

/// Resolves webhook hosts and drops the addresses the policy refuses, so a name that resolves
/// to a forbidden address cannot be used to reach it (the check and the connection use the
/// same answer).
struct PolicyResolver(EgressPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("EGRESSPOLICY: no allowed address".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A failed attempt: retried unless permanent.
struct Failure {
    reason: String,
    permanent: bool,
}

impl Failure {
    fn retry(reason: String) -> Self {
        Self {
            reason,
            permanent: false,
        }
    }
    fn permanent(reason: String) -> Self {
        Self {
            reason,
            permanent: true,
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            retry_window: Duration::from_secs(24 * 3600),
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(30),
            consumer: "emailengine".into(),
            egress: EgressPolicy::default(),
        }
    }
}

/// Events read but not yet settled; reading pauses above this many.
const MAX_IN_FLIGHT: usize = 100_000;

#[derive(Clone)]
pub struct Webhooks {
    store: Arc<dyn Store>,
    settings: Settings,
    http: reqwest::Client,
    config: Arc<WebhookConfig>,
    permits: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
}

/// What the settings say about one event.
enum Route {
    Skip(&'static str),
    Post {
        url: String,
        headers: Vec<(String, String)>,
        secret: String,
    },
}

impl Webhooks {
    pub fn new(store: Arc<dyn Store>, settings: Settings, config: WebhookConfig) -> Self {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver(config.egress)))
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!(
                "emailengine-rs/{} (EmailEngine {} compatible)",
                emailengine_core::VERSION,
                emailengine_core::COMPAT_VERSION
            ))
            .build()
            .unwrap_or_default();
        Self {
            store,
            settings,
            http,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config: Arc::new(config),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs the delivery loop until the task is aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let mut queues: HashMap<String, mpsc::UnboundedSender<LoggedEvent>> = HashMap::new();
        let mut ready = false;
        let mut resumed = false;
        let mut last_gauge = Instant::now() - Duration::from_secs(60);
        loop {
            if !ready {
                match self.store.ensure_event_group(GROUP).await {
                    Ok(()) => ready = true,
                    Err(e) => {
                        tracing::warn!(err = %e, "Webhook consumer group is not ready");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            if !resumed {
                // Events this consumer read before a restart and never settled. Read once: later
                // on, pending events are the ones this process is still working on.
                match self
                    .store
                    .pending_events(GROUP, &self.config.consumer, 100_000)
                    .await
                {
                    Ok(events) => {
                        if !events.is_empty() {
                            tracing::info!(
                                events = events.len(),
                                "Resuming unsettled webhook deliveries"
                            );
                        }
                        for e in events {
                            self.enqueue(&mut queues, e);
                        }
                        resumed = true;
                    }
                    Err(e) => {
                        tracing::warn!(err = %e, "Failed to read unsettled webhook deliveries");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            if last_gauge.elapsed() >= Duration::from_secs(5) {
                if let Ok(n) = self.store.events_pending_count(GROUP).await {
                    metrics::gauge!("queue_size", "queue" => "notify", "state" => "waiting")
                        .set(n as f64);
                }
                last_gauge = Instant::now();
            }
            if self.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            match self
                .store
                .next_events(GROUP, &self.config.consumer, 200, 1000)
                .await
            {
                Ok(events) => {
                    let read = events.len();
                    let left = self.skip_while_disabled(events).await;
                    if read > 0 && left.is_empty() {
                        // Switched off: let a burst gather, to skip it in one acknowledgement.
                        tokio::time::sleep(SKIP_GATHER).await;
                    }
                    for e in left {
                        self.enqueue(&mut queues, e);
                    }
                }
                Err(e) => {
                    tracing::warn!(err = %e, "Failed to read events for webhooks");
                    ready = false;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// With webhooks switched off and the queue running, every event read is settled as skipped
    /// in one acknowledgement instead of one settings read and one acknowledgement each (a
    /// burst of new accounts logs three events apiece). Returns the events that still need a
    /// worker: all of them when webhooks are on, the queue is paused, or the store fails.
    async fn skip_while_disabled(&self, events: Vec<LoggedEvent>) -> Vec<LoggedEvent> {
        if events.is_empty() {
            return events;
        }
        let paused = emailengine_core::settings::queue_paused_key("notify");
        let Ok(values) = self.settings.get(&[&paused, "webhooksEnabled"]).await else {
            return events;
        };
        let on = |i: usize| values.get(i).cloned().flatten() == Some(Value::Bool(true));
        if on(0) || on(1) {
            return events;
        }
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        match self.store.ack_events(GROUP, &ids).await {
            Ok(()) => {
                tracing::trace!(events = ids.len(), "Webhooks disabled; events skipped");
                Vec::new()
            }
            Err(_) => events,
        }
    }

    fn enqueue(
        &self,
        queues: &mut HashMap<String, mpsc::UnboundedSender<LoggedEvent>>,
        event: LoggedEvent,
    ) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let account = event.account.clone();
        match queues.get(&account) {
            Some(tx) => {
                if let Err(mpsc::error::SendError(event)) = tx.send(event) {
                    queues.remove(&account);
                    self.enqueue_new(queues, account, event);
                }
            }
            None => self.enqueue_new(queues, account, event),
        }
    }

    fn enqueue_new(
        &self,
        queues: &mut HashMap<String, mpsc::UnboundedSender<LoggedEvent>>,
        account: String,
        event: LoggedEvent,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _ = tx.send(event);
        queues.insert(account, tx);
        let this = self.clone();
        // One worker per account for the life of the process (an idle task costs a few hundred
        // bytes), so an account's events are never handled by two workers at once.
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                this.settle(&event).await;
                this.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    /// Delivers one event, retrying until it succeeds, is skipped, or the window closes.
    async fn settle(&self, event: &LoggedEvent) {
        let queued_at = event.queued_at;
        let mut attempt: u32 = 0;
        loop {
            crate::hold_while_paused(self.store.as_ref(), "notify").await;
            attempt += 1;
            let result = match self.route(event).await {
                Ok(Route::Skip(why)) => {
                    tracing::trace!(eventId = %event.id, event = %event.event, why, "Webhook skipped");
                    break;
                }
                Ok(Route::Post {
                    url,
                    headers,
                    secret,
                }) => {
                    self.post(event, &url, &headers, &secret, attempt, queued_at)
                        .await
                }
                Err(e) => Err(Failure::retry(format!("settings unavailable: {e}"))),
            };
            match result {
                Ok(()) => break,
                Err(Failure { reason, permanent }) => {
                    let now = chrono::Utc::now().timestamp_millis();
                    let delay = retry_delay(&self.config, attempt);
                    if permanent
                        || now + delay.as_millis() as i64 - queued_at
                            > self.config.retry_window.as_millis() as i64
                    {
                        tracing::error!(eventId = %event.id, account = %event.account, event = %event.event, attempts = attempt, err = %reason, "Webhook delivery given up");
                        let dead = DeadEvent {
                            event: event.clone(),
                            reason: reason.clone(),
                            at: now,
                        };
                        if let Err(e) = self.store.put_dead_event(&dead).await {
                            tracing::error!(err = %e, "Failed to keep a given-up webhook");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                        break;
                    }
                    tracing::warn!(eventId = %event.id, account = %event.account, event = %event.event, attempt, retryInMs = delay.as_millis() as u64, err = %reason, "Webhook delivery failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        // Until the store takes the acknowledgement, the event stays pending and would be
        // delivered again after a restart; keep trying (this account's later events wait).
        let id = [event.id.clone()];
        while let Err(e) = self.store.ack_events(GROUP, &id).await {
            tracing::warn!(eventId = %event.id, err = %e, "Failed to acknowledge a webhook; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn route(&self, event: &LoggedEvent) -> Result<Route, emailengine_store::StoreError> {
        const KEYS: [&str; 6] = [
            "webhooksEnabled",
            "webhooks",
            "webhookEvents",
            "webhooksCustomHeaders",
            "inboxNewOnly",
            "serviceSecret",
        ];
        let values = self.settings.get(&KEYS).await?;
        let get = |i: usize| values.get(i).cloned().flatten().unwrap_or(Value::Null);
        if get(0) != Value::Bool(true) {
            return Ok(Route::Skip("webhooks disabled"));
        }
        let account_url = self
            .store
            .account_field(&event.account, emailengine_core::account::field::WEBHOOKS)
            .await?
            .filter(|u| !u.is_empty());
        let Some(url) = account_url
            .or_else(|| get(1).as_str().map(str::to_string))
            .filter(|u| !u.is_empty())
        else {
            return Ok(Route::Skip("no webhook URL"));
        };
        if let Value::Array(allowed) = get(2)
            && !allowed
                .iter()
                .any(|e| e == "*" || e.as_str() == Some(event.event.as_str()))
        {
            return Ok(Route::Skip("event not selected"));
        }
        if get(4) == Value::Bool(true) && event.event == "messageNew" {
            let payload: Value = serde_json::from_str(&event.payload).unwrap_or_default();
            if payload.get("specialUse").and_then(Value::as_str) != Some("\\Inbox") {
                return Ok(Route::Skip("inboxNewOnly"));
            }
        }
        let headers = match get(3) {
            Value::Array(items) => items
                .iter()
                .filter_map(|h| {
                    Some((
                        h.get("key")?.as_str()?.to_string(),
                        h.get("value")?.as_str()?.to_string(),
                    ))
                })
                .collect(),
            _ => Vec::new(),
        };
        let secret = get(5).as_str().unwrap_or_default().to_string();
        Ok(Route::Post {
            url,
            headers,
            secret,
        })
    }

    async fn post(
        &self,
        event: &LoggedEvent,
        url: &str,
        custom: &[(String, String)],
        secret: &str,
        attempt: u32,
        queued_at: i64,
    ) -> Result<(), Failure> {
        if let Some(ip) = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
            .and_then(|h| h.parse::<IpAddr>().ok())
            && !self.config.egress.allows(ip)
        {
            return Err(Failure::permanent(format!(
                "EGRESSPOLICY: {ip} is not an allowed webhook target"
            )));
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Failure::retry(e.to_string()))?;
        let body = event.payload.as_bytes();
        let now = chrono::Utc::now();
        let mut req = self
            .http
            .post(url)
            .header("Content-Type", "application/json");
        let (user, pass) = userinfo(url);
        if let Some(user) = user {
            req = req.basic_auth(user, pass);
        }
        for (k, v) in custom {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .header("X-EE-Wh-Id", &event.id)
            .header("X-EE-Wh-Event-Id", &event.id)
            .header("X-EE-Wh-Attempts-Made", attempt.to_string())
            .header(
                "X-EE-Wh-Queued-Time",
                format!("{}s", ((now.timestamp_millis() - queued_at).max(0)) / 1000),
            )
            .header("X-EE-Wh-Signature", signature::emailengine(secret, body))
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", now.timestamp().to_string())
            .header(
                "webhook-signature",
                signature::standard(secret, &event.id, now.timestamp(), body),
            )
            .body(event.payload.clone());
        let start = Instant::now();
        let result = req.send().await;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        metrics::histogram!("webhook_req").record(ms);
        let outcome = match result {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
                Ok(())
            }
            Ok(resp) if resp.status().is_redirection() => Err(Failure::permanent(format!(
                "EREDIRECTNOTFOLLOWED: HTTP {}",
                resp.status().as_u16()
            ))),
            Ok(resp) => Err(Failure::retry(format!("HTTP {}", resp.status().as_u16()))),
            Err(e) if e.is_timeout() => Err(Failure::retry("ETIMEDOUT".to_string())),
            Err(e) if format!("{e:?}").contains("EGRESSPOLICY") => Err(Failure::permanent(
                "EGRESSPOLICY: the webhook host resolves only to addresses the egress policy blocks".into(),
            )),
            Err(e) => Err(Failure::retry(e.to_string())),
        };
        let status = if outcome.is_ok() { "success" } else { "fail" };
        metrics::counter!("webhooks", "status" => status, "event" => event.event.clone())
            .increment(1);
        let _ = self
            .store
            .add_counters(&[(format!("webhooks:{status}"), 1)], now.timestamp_millis())
            .await;
        if outcome.is_ok() {
            tracing::debug!(eventId = %event.id, event = %event.event, account = %event.account, attempt, ms, "Webhook delivered");
        }
        outcome
    }

    /// Re-queues a given-up event as a new event with the same payload (taken from the dead
    /// list and appended in one commit, so it is neither lost nor doubled).
    pub async fn resend_dead(
        store: &dyn Store,
        id: &str,
    ) -> Result<Option<String>, emailengine_store::StoreError> {
        let Some(event) = store.dead_event(id).await? else {
            return Ok(None);
        };
        let ids = store
            .commit(vec![
                Change::Event {
                    account: event.account,
                    event: event.event,
                    payload: event.payload,
                },
                Change::RemoveDeadEvent { id: id.to_string() },
            ])
            .await?;
        Ok(ids.into_iter().next())
    }
}

/// `https://user:pass@host/` → (`user`, `pass`), percent-decoded.
fn userinfo(url: &str) -> (Option<String>, Option<String>) {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return (None, None);
    };
    if parsed.username().is_empty() {
        return (None, None);
    }
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
            {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    (
        Some(decode(parsed.username())),
        parsed.password().map(decode),
    )
}

/// Exponential backoff with ±20 % jitter.
fn retry_delay(config: &WebhookConfig, attempt: u32) -> Duration {
    let base =
        config.base_delay.as_millis() as f64 * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let capped = base.min(config.max_delay.as_millis() as f64);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    Duration::from_millis((capped * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let c = WebhookConfig::default();
        let d1 = retry_delay(&c, 1);
        assert!(d1 >= Duration::from_secs(4) && d1 <= Duration::from_secs(6));
        let d20 = retry_delay(&c, 20);
        assert!(d20 <= Duration::from_secs(4320));
    }

    #[test]
    fn userinfo_is_decoded() {
        assert_eq!(
            userinfo("https://u%40x:p%3Aw@h/"),
            (Some("u@x".into()), Some("p:w".into()))
        );
        assert_eq!(userinfo("https://h/"), (None, None));
    }

    #[test]
    fn egress_policies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!EgressPolicy::LinkLocal.allows(ip("169.254.169.254")));
        assert!(!EgressPolicy::LinkLocal.allows(ip("fe80::1")));
        assert!(!EgressPolicy::LinkLocal.allows(ip("::ffff:169.254.1.1")));
        assert!(EgressPolicy::LinkLocal.allows(ip("127.0.0.1")));
        assert!(!EgressPolicy::Private.allows(ip("127.0.0.1")));
        assert!(!EgressPolicy::Private.allows(ip("10.1.2.3")));
        assert!(!EgressPolicy::Private.allows(ip("fd00::1")));
        assert!(EgressPolicy::Private.allows(ip("93.184.216.34")));
        assert!(EgressPolicy::Off.allows(ip("169.254.169.254")));
    }
}
