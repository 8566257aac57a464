//! Sending mail from the outbox: entries queued by the submit route are claimed when due, sent
//! through the account's SMTP server, and settled as EmailEngine reports them — `messageSent`
//! with the server's reply, `messageDeliveryError` for each failed attempt (4xx and network
//! errors are retried with backoff), `messageFailed` when a 5xx answer or the attempt limit ends
//! it. A copy goes to the account's Sent folder unless the submission said `copy: false`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use serde_json::json;

use emailengine_core::account::{AccountRecord, ServerSettings, TokenLogin, TokenMechanism};
use emailengine_core::gateway::Gateway;
use emailengine_core::msgpack;
use emailengine_core::secret::FieldCipher;
use emailengine_mail::MailRegistry;
use emailengine_mail::events::{EventBatch, EventSink};
use emailengine_mail::network::{Protocol, local_address};
use emailengine_mail::oauth::{OAuthLogins, Protocol as LoginProtocol};
use emailengine_store::{Change, OutboxItem, Store};

/// How long a claimed entry is reserved for one attempt before another worker may retry it.
const LEASE_MS: i64 = 2 * 60 * 1000;
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// One queued message (stored msgpack in `iaq:<account>`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub queue_id: String,
    pub message_id: String,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub subject: Option<String>,
    pub raw: Vec<u8>,
    pub created: i64,
    pub send_at: i64,
    pub attempts_made: u32,
    pub max_attempts: u32,
    pub copy: bool,
    pub last_error: Option<String>,
    /// Send through this SMTP gateway instead of the account's server (spec §22).
    pub gateway: Option<String>,
    /// Delivery status notification parameters for the SMTP envelope.
    pub dsn: Option<Dsn>,
    /// Preferred source address of the SMTP connection (spec §23).
    pub local_address: Option<String>,
    /// Proxy URL for this message's SMTP connection (the submission's `proxy`).
    pub proxy: Option<String>,
    /// The Sent folder copy goes here instead of the account's Sent folder.
    pub sent_mail_path: Option<String>,
    /// Transient key that receives `{success, error?}` once the attempt settles.
    pub feedback_key: Option<String>,
}

/// SMTP DSN parameters (RFC 3461): `RET`/`ENVID` on `MAIL FROM`, `NOTIFY`/`ORCPT` on `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dsn {
    pub id: Option<String>,
    /// `headers` or `full`.
    pub ret: String,
    /// Any of `never`, `success`, `failure`, `delay`.
    pub notify: Vec<String>,
    pub recipient: Option<String>,
}

impl Dsn {
    fn to_msgpack(&self) -> Value {
        let s = |v: &str| Value::from(v);
        let opt = |v: &Option<String>| v.as_deref().map_or(Value::Nil, s);
        Value::Map(vec![
            (s("id"), opt(&self.id)),
            (s("return"), s(&self.ret)),
            (
                s("notify"),
                Value::Array(self.notify.iter().map(|n| s(n)).collect()),
            ),
            (s("recipient"), opt(&self.recipient)),
        ])
    }

    fn from_msgpack(v: &Value) -> Option<Self> {
        let map = v.as_map()?;
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let text = |k: &str| get(k).and_then(Value::as_str).map(str::to_string);
        Some(Self {
            id: text("id"),
            ret: text("return")?,
            notify: get("notify")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            recipient: text("recipient"),
        })
    }

    /// `MAIL FROM` parameters.
    fn mail_parameters(&self) -> mail_send::smtp::message::Parameters<'static> {
        let mut p = mail_send::smtp::message::Parameters::new();
        p.add(("RET".to_string(), self.ret.to_ascii_uppercase()));
        if let Some(id) = &self.id {
            p.add(("ENVID".to_string(), xtext(id)));
        }
        p
    }

    /// `RCPT TO` parameters.
    fn rcpt_parameters(&self) -> mail_send::smtp::message::Parameters<'static> {
        let mut p = mail_send::smtp::message::Parameters::new();
        if !self.notify.is_empty() {
            p.add((
                "NOTIFY".to_string(),
                self.notify.join(",").to_ascii_uppercase(),
            ));
        }
        if let Some(r) = &self.recipient {
            p.add(("ORCPT".to_string(), format!("rfc822;{}", xtext(r))));
        }
        p
    }
}

/// RFC 3461 xtext: `+`, `=`, controls and non-ASCII as `+XX`.
fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

impl OutboxEntry {
    pub fn encode(&self) -> Vec<u8> {
        let s = |v: &str| Value::from(v);
        let opt = |v: &Option<String>| v.as_deref().map_or(Value::Nil, s);
        let map = Value::Map(vec![
            (s("queueId"), s(&self.queue_id)),
            (s("messageId"), s(&self.message_id)),
            (
                s("envelope"),
                Value::Map(vec![
                    (s("from"), s(&self.envelope_from)),
                    (
                        s("to"),
                        Value::Array(self.envelope_to.iter().map(|t| s(t)).collect()),
                    ),
                ]),
            ),
            (s("subject"), self.subject.as_deref().map_or(Value::Nil, s)),
            (s("raw"), Value::Binary(self.raw.clone())),
            (s("created"), msgpack::timestamp(self.created)),
            (s("sendAt"), msgpack::timestamp(self.send_at)),
            (s("attemptsMade"), Value::from(self.attempts_made)),
            (s("attempts"), Value::from(self.max_attempts)),
            (s("copy"), Value::Boolean(self.copy)),
            (
                s("lastError"),
                self.last_error.as_deref().map_or(Value::Nil, s),
            ),
            (s("gateway"), opt(&self.gateway)),
            (
                s("dsn"),
                self.dsn.as_ref().map_or(Value::Nil, Dsn::to_msgpack),
            ),
            (s("localAddress"), opt(&self.local_address)),
            (s("proxy"), opt(&self.proxy)),
            (s("sentMailPath"), opt(&self.sent_mail_path)),
            (s("feedbackKey"), opt(&self.feedback_key)),
        ]);
        msgpack::encode(&map)
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let Value::Map(entries) = msgpack::decode(bytes)? else {
            return None;
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let text = |k: &str| get(k).and_then(Value::as_str).map(str::to_string);
        let envelope = get("envelope");
        let env_get = |k: &str| {
            envelope.and_then(|e| e.as_map()).and_then(|m| {
                m.iter()
                    .find(|(key, _)| key.as_str() == Some(k))
                    .map(|(_, v)| v.clone())
            })
        };
        Some(Self {
            queue_id: text("queueId")?,
            message_id: text("messageId").unwrap_or_default(),
            envelope_from: env_get("from")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            envelope_to: env_get("to")
                .and_then(|v| {
                    v.as_array().map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                })
                .unwrap_or_default(),
            subject: text("subject"),
            raw: match get("raw") {
                Some(Value::Binary(b)) => b.clone(),
                _ => return None,
            },
            created: get("created").and_then(msgpack::read_date).unwrap_or(0),
            send_at: get("sendAt").and_then(msgpack::read_date).unwrap_or(0),
            attempts_made: get("attemptsMade").and_then(Value::as_u64).unwrap_or(0) as u32,
            max_attempts: get("attempts").and_then(Value::as_u64).unwrap_or(10) as u32,
            copy: get("copy").and_then(Value::as_bool).unwrap_or(true),
            last_error: text("lastError"),
            gateway: text("gateway"),
            dsn: get("dsn").and_then(Dsn::from_msgpack),
            local_address: text("localAddress"),
            proxy: text("proxy"),
            sent_mail_path: text("sentMailPath"),
            feedback_key: text("feedbackKey"),
        })
    }

    /// The outbox entry as the API lists it (spec §6.4).
    pub fn to_json(&self, account: &str, next_attempt: i64) -> serde_json::Value {
        let iso = |ms: i64| emailengine_core::units::iso_time(ms);
        json!({
            "queueId": self.queue_id, "account": account, "source": "api", "messageId": self.message_id,
            "envelope": {"from": self.envelope_from, "to": self.envelope_to}, "subject": self.subject,
            "created": iso(self.created), "scheduled": iso(self.send_at), "nextAttempt": iso(next_attempt),
            "attemptsMade": self.attempts_made, "attempts": self.max_attempts,
            "progress": match &self.last_error {
                Some(e) => json!({"status": "error", "error": {"message": e}}),
                None => json!({"status": "queued"}),
            },
        })
    }
}

/// EmailEngine's queue id: hex of the low 6 bytes of the send time and 4 random bytes, less the
/// first character (19 hex characters).
pub fn new_queue_id(now_ms: i64) -> String {
    let mut bytes = (now_ms as u64).to_be_bytes()[2..].to_vec();
    let mut r = [0u8; 4];
    rand::fill(&mut r);
    bytes.extend_from_slice(&r);
    hex::encode(bytes)[1..].to_string()
}

/// Why an attempt failed, and whether to try again.
struct Failure {
    message: String,
    code: Option<u16>,
    permanent: bool,
}

#[derive(Clone)]
pub struct Submitter {
    store: Arc<dyn Store>,
    mail: Arc<dyn MailRegistry>,
    events: EventSink,
    cipher: Option<Arc<FieldCipher>>,
    oauth: Arc<OAuthLogins>,
    base_delay: Duration,
    /// Names this instance's leases; a restarted instance takes back what its last run held.
    owner: String,
    pool: Arc<SmtpPool>,
    /// Queue ids whose outcome is known but not yet stored.
    unrecorded: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Submitter {
    pub fn new(
        store: Arc<dyn Store>,
        mail: Arc<dyn MailRegistry>,
        events: EventSink,
        cipher: Option<Arc<FieldCipher>>,
        oauth: Arc<OAuthLogins>,
        base_delay: Duration,
        owner: String,
    ) -> Self {
        Self {
            store,
            mail,
            events,
            cipher,
            oauth,
            base_delay,
            owner,
            pool: Arc::new(SmtpPool::default()),
            unrecorded: Default::default(),
        }
    }

    /// Polls the outbox until the task is aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let now = chrono::Utc::now().timestamp_millis();
            match self.store.release_leases(&self.owner, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    messages = n,
                    "Resuming deliveries interrupted by the last shutdown"
                ),
                Err(e) => tracing::warn!(err = %e, "Failed to take back interrupted deliveries"),
            }
            loop {
                crate::hold_while_paused(self.store.as_ref(), "submit").await;
                let now = chrono::Utc::now().timestamp_millis();
                match self.store.claim_due(&self.owner, now, LEASE_MS, 50).await {
                    Ok(items) if !items.is_empty() => {
                        let mut tasks = Vec::new();
                        for item in items
                            .into_iter()
                            .filter(|i| !self.is_unrecorded(&i.queue_id))
                        {
                            let this = self.clone();
                            tasks.push(tokio::spawn(async move { this.attempt(item).await }));
                        }
                        for t in tasks {
                            let _ = t.await;
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(err = %e, "Failed to read the outbox"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    /// The account's SMTP settings (`None`: the account was deleted).
    async fn smtp_settings(
        &self,
        record: Option<&AccountRecord>,
    ) -> Result<ServerSettings, Failure> {
        let fail = |m: &str| Failure {
            message: m.to_string(),
            code: None,
            permanent: true,
        };
        let record = record.ok_or_else(|| fail("Account was deleted"))?;
        if record.oauth2().is_some() {
            return match self
                .oauth
                .server_settings(record, LoginProtocol::Smtp)
                .await
            {
                Ok(Some(settings)) => Ok(settings),
                Ok(None) => Err(fail("Account has no SMTP settings")),
                Err(e) => Err(Failure {
                    message: e.to_string(),
                    code: None,
                    permanent: false,
                }),
            };
        }
        if !record.has_smtp() {
            return Err(fail("Account has no SMTP settings"));
        }
        record
            .smtp(self.cipher.as_deref())
            .map_err(|e| fail(&e.to_string()))?
            .ok_or_else(|| fail("Invalid SMTP settings"))
    }

    /// The server, credentials and source address for one entry: its gateway when it names
    /// one that exists (an unknown gateway falls back to the account's server, as in
    /// EmailEngine), else the account's SMTP settings.
    async fn route(&self, account: &str, entry: &OutboxEntry) -> Result<Route, Failure> {
        let hint = entry
            .local_address
            .as_deref()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok());
        let local_ip = local_address(self.store.as_ref(), account, Protocol::Smtp, hint)
            .await
            .address;
        // Read once: the account's proxy and (without a gateway) its SMTP settings.
        let record = self
            .store
            .account(account)
            .await
            .map_err(|e| Failure {
                message: e.to_string(),
                code: None,
                permanent: false,
            })?
            .map(|fields| AccountRecord::from_fields(account, fields));
        let proxy = entry
            .proxy
            .clone()
            .or_else(|| record.as_ref().and_then(|r| r.proxy().map(str::to_string)));
        let proxy = match proxy {
            Some(p) => Some(p),
            None => self.proxy_setting().await,
        };
        if let Some(id) = &entry.gateway {
            match self.store.gateway(id).await {
                Ok(Some(fields)) => {
                    let g =
                        Gateway::from_fields(id, &fields, self.cipher.as_deref()).map_err(|e| {
                            Failure {
                                message: e.to_string(),
                                code: None,
                                permanent: true,
                            }
                        })?;
                    return Ok(Route {
                        settings: ServerSettings {
                            host: g.host,
                            port: g.port,
                            secure: g.secure,
                            starttls: None,
                            user: g.user.unwrap_or_default(),
                            pass: g.pass.unwrap_or_default(),
                            accept_invalid_certs: false,
                            disabled: false,
                            disable_imap4rev2: false,
                            local_address: None,
                            token: None,
                        },
                        local_ip,
                        proxy,
                        gateway: Some(id.clone()),
                    });
                }
                Ok(None) => {
                    tracing::warn!(account, gateway = %id, "Gateway not found; sending through the account's server")
                }
                Err(e) => {
                    return Err(Failure {
                        message: e.to_string(),
                        code: None,
                        permanent: false,
                    });
                }
            }
        }
        Ok(Route {
            settings: self.smtp_settings(record.as_ref()).await?,
            local_ip,
            proxy,
            gateway: None,
        })
    }

    /// The `proxyUrl` setting when `proxyEnabled` is on.
    async fn proxy_setting(&self) -> Option<String> {
        let raw = self
            .store
            .raw_settings(&["proxyEnabled", "proxyUrl"])
            .await
            .ok()?;
        let json = |i: usize| {
            raw.get(i)
                .and_then(|v| v.as_deref())
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        };
        if json(0)?.as_bool() != Some(true) {
            return None;
        }
        json(1)?
            .as_str()
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    }

    /// Records a gateway's last use and error, and counts its deliveries.
    async fn gateway_outcome(&self, id: &str, now: i64, error: Option<&serde_json::Value>) {
        let fields = Gateway::outcome_fields(now, error);
        let mut result = self.store.put_gateway(id, &fields, &[]).await.map(drop);
        if result.is_ok() && error.is_none() {
            result = self.store.count_gateway_delivery(id).await;
        }
        if let Err(e) = result {
            tracing::warn!(gateway = id, err = %e, "Failed to record a gateway delivery");
        }
    }

    async fn send_routed(
        &self,
        account: &str,
        route: &Result<Route, Failure>,
        entry: &OutboxEntry,
    ) -> Result<String, Failure> {
        match route {
            Ok(route) => self.pool.send(account, route, entry).await,
            Err(f) => Err(Failure {
                message: f.message.clone(),
                code: f.code,
                permanent: f.permanent,
            }),
        }
    }

    async fn attempt(&self, item: OutboxItem) {
        let Some(mut entry) = OutboxEntry::decode(&item.entry) else {
            tracing::error!(queueId = %item.queue_id, "Unreadable outbox entry removed");
            let _ = self.store.remove_outbox(&item.queue_id).await;
            return;
        };
        entry.attempts_made += 1;
        let mut route = self.route(&item.account, &entry).await;
        let mut result = self.send_routed(&item.account, &route, &entry).await;
        // A refused OAuth2 token is renewed and tried once more (spec §15.2).
        if let (Ok(Route { settings, .. }), Err(f)) = (&route, &result)
            && f.code == Some(535)
            && let Some(token) = &settings.token
        {
            if let Err(e) = self
                .oauth
                .invalidate(&item.account, &token.access_token)
                .await
            {
                tracing::warn!(account = %item.account, err = %e, "Failed to mark the refused token for renewal");
            }
            route = self.route(&item.account, &entry).await;
            result = self.send_routed(&item.account, &route, &entry).await;
        }
        let routing = match &route {
            Ok(r) if r.local_ip.is_some() || r.proxy.is_some() => {
                let mut routing = serde_json::Map::new();
                if let Some(ip) = r.local_ip {
                    routing.insert("localAddress".into(), json!(ip.to_string()));
                }
                if let Some(p) = &r.proxy {
                    routing.insert("proxy".into(), json!(redact_proxy(p)));
                }
                serde_json::Value::Object(routing)
            }
            _ => serde_json::Value::Null,
        };
        let sink = &self.events;
        let envelope = json!({"from": entry.envelope_from, "to": entry.envelope_to});
        let now = chrono::Utc::now().timestamp_millis();
        let mut batch = sink.batch().await;
        let sent = result.is_ok();
        let outcome_error = result.as_ref().err().map(|f| (f.message.clone(), f.code));
        match result {
            Ok(response) => {
                tracing::info!(account = %item.account, queueId = %entry.queue_id, response = %response, "Message sent");
                batch.event(&item.account, "messageSent", None, None, json!({
                    "messageId": entry.message_id, "response": response, "queueId": entry.queue_id, "envelope": envelope,
                    "networkRouting": routing,
                }));
                batch.change(Change::RemoveOutbox {
                    queue_id: entry.queue_id.clone(),
                });
            }
            Err(failure) => {
                let last = failure.permanent || entry.attempts_made >= entry.max_attempts;
                if last {
                    tracing::warn!(account = %item.account, queueId = %entry.queue_id, err = %failure.message, "Message delivery failed");
                    batch.event(&item.account, "messageFailed", None, None, json!({
                        "messageId": entry.message_id, "queueId": entry.queue_id, "error": failure.message,
                        "networkRouting": null,
                    }));
                    batch.change(Change::RemoveOutbox {
                        queue_id: entry.queue_id.clone(),
                    });
                } else {
                    let delay = self.base_delay.as_millis() as i64
                        * (1i64 << (entry.attempts_made - 1).min(16));
                    let next = now + delay.min(3_600_000);
                    entry.last_error = Some(failure.message.clone());
                    batch.event(&item.account, "messageDeliveryError", None, None, json!({
                        "queueId": entry.queue_id, "envelope": envelope, "messageId": entry.message_id,
                        "error": failure.message, "smtpResponseCode": failure.code,
                        "networkRouting": routing,
                        "job": {"attemptsMade": entry.attempts_made, "attempts": entry.max_attempts,
                                "nextAttempt": emailengine_core::units::iso_time(next)},
                    }));
                    batch.change(Change::PutOutbox {
                        account: item.account.clone(),
                        queue_id: entry.queue_id.clone(),
                        entry: entry.encode(),
                        due: next,
                    });
                }
            }
        }
        self.record(&entry.queue_id, batch).await;
        if let Ok(Route {
            gateway: Some(id), ..
        }) = &route
        {
            let error = outcome_error.as_ref().map(|(message, code)| {
                json!({"created": now, "status": "error", "response": message, "responseCode": code})
            });
            self.gateway_outcome(id, now, error.as_ref()).await;
        }
        if let Some(key) = &entry.feedback_key {
            let value = match &outcome_error {
                None => json!({"success": true}),
                Some((message, _)) => json!({"success": false, "error": message}),
            };
            if let Err(e) = self
                .store
                .put_transient(key, &value.to_string(), 3600, false)
                .await
            {
                tracing::warn!(err = %e, "Failed to store delivery feedback");
            }
        }
        let counter = if sent {
            "submit:success"
        } else {
            "submit:fail"
        };
        if let Err(e) = self.store.add_counters(&[(counter.into(), 1)], now).await {
            tracing::warn!(err = %e, "Failed to count a delivery");
        }
        if sent && entry.copy {
            self.copy_to_sent(&item.account, &entry).await;
        }
    }

    /// Records an attempt's outcome: its event and the outbox change, together. The SMTP
    /// server has answered, so the outcome must not be lost: a store that refuses is retried
    /// until it takes it, and meanwhile the entry is not claimed again (a sent message is
    /// never handed to SMTP a second time by this process).
    async fn record(&self, queue_id: &str, batch: EventBatch) {
        let sink = &self.events;
        let mut attempt = 0u32;
        loop {
            match sink.commit(batch.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    if attempt == 0 {
                        self.unrecorded_insert(queue_id);
                    }
                    attempt += 1;
                    tracing::error!(queueId = %queue_id, attempt, err = %e, "Failed to record a delivery; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt.min(10))))
                        .await;
                }
            }
        }
        if attempt > 0
            && let Ok(mut set) = self.unrecorded.lock()
        {
            set.remove(queue_id);
        }
    }

    fn unrecorded_insert(&self, queue_id: &str) {
        if let Ok(mut set) = self.unrecorded.lock() {
            set.insert(queue_id.to_string());
        }
    }

    /// True for entries whose last attempt is still being recorded.
    fn is_unrecorded(&self, queue_id: &str) -> bool {
        self.unrecorded
            .lock()
            .is_ok_and(|set| set.contains(queue_id))
    }

    async fn copy_to_sent(&self, account: &str, entry: &OutboxEntry) {
        let copied = match self.mail.backend(account, SENT_COPY_WAIT).await {
            Ok(mail) => {
                mail.copy_to_sent(&entry.raw, entry.sent_mail_path.as_deref())
                    .await
            }
            Err(e) => Err(e),
        };
        match copied {
            Ok(true) => {}
            Ok(false) => tracing::debug!(account, "No Sent folder; copy skipped"),
            Err(e) => tracing::warn!(account, err = %e, "Failed to copy a sent message to Sent"),
        }
    }
}

/// How long the Sent copy waits for one of the account's connections.
const SENT_COPY_WAIT: Duration = Duration::from_secs(60);

/// Connects and authenticates without sending (`POST /v1/verifyAccount`). The error is
/// `(message, code)`.
pub async fn verify_smtp(settings: &ServerSettings) -> Result<(), (String, &'static str)> {
    let builder = smtp_builder(settings).map_err(|f| (f.message, "InvalidSettings"))?;
    let classify = |e: mail_send::Error| match e {
        mail_send::Error::AuthenticationFailed(r) => {
            (reply_text(r.code, r.esc, &r.message), "EAUTH")
        }
        other => (other.to_string(), "ConnectionError"),
    };
    if settings.secure || settings.starttls == Some(true) {
        builder.connect().await.map(drop).map_err(classify)
    } else if settings.starttls == Some(false) {
        builder.connect_plain().await.map(drop).map_err(classify)
    } else {
        match builder.connect().await {
            Ok(_) => Ok(()),
            Err(mail_send::Error::MissingStartTls) => {
                builder.connect_plain().await.map(drop).map_err(classify)
            }
            Err(e) => Err(classify(e)),
        }
    }
}

fn smtp_builder(
    settings: &ServerSettings,
) -> Result<mail_send::SmtpClientBuilder<String>, Failure> {
    let mut builder = mail_send::SmtpClientBuilder::new(settings.host.clone(), settings.port)
        .map_err(|e| Failure {
            message: e,
            code: None,
            permanent: true,
        })?
        .implicit_tls(settings.secure)
        .timeout(SMTP_TIMEOUT);
    if let Some(credentials) = credentials(settings) {
        builder = builder.credentials(credentials);
    }
    if settings.accept_invalid_certs {
        builder = builder.allow_invalid_certs();
    }
    Ok(builder)
}

/// An open SMTP session, over TLS or not, and whether the server takes DSN parameters.
struct Connection {
    session: Session,
    dsn: bool,
}

enum Session {
    Tls(Box<mail_send::SmtpClient<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
    Plain(mail_send::SmtpClient<tokio::net::TcpStream>),
}

/// EHLO and AUTH on a fresh session, keeping the capabilities (mail-send discards them).
async fn greet<T>(
    client: &mut mail_send::SmtpClient<T>,
    settings: &ServerSettings,
) -> mail_send::Result<bool>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let host = ehlo_name();
    let caps = client.capabilities(&host, false).await?;
    if let Some(credentials) = credentials(settings) {
        client.authenticate(&credentials, &caps).await?;
    }
    Ok(caps.has_capability(smtp_proto::EXT_DSN))
}

/// AUTH credentials: the password, or an OAuth2 token as XOAUTH2 (OAUTHBEARER when the
/// account's app asks for it).
fn credentials(settings: &ServerSettings) -> Option<mail_send::Credentials<String>> {
    let user = settings.user.clone();
    match &settings.token {
        Some(TokenLogin {
            access_token,
            mechanism: Some(TokenMechanism::OAuthBearer),
        }) => Some(mail_send::Credentials::new_oauth(format!(
            "n,a={user},\x01host={}\x01port={}\x01auth=Bearer {access_token}\x01\x01",
            settings.host, settings.port
        ))),
        Some(token) => Some(mail_send::Credentials::new_xoauth2(
            user,
            token.access_token.clone(),
        )),
        None if !user.is_empty() => Some(mail_send::Credentials::new(user, settings.pass.clone())),
        None => None,
    }
}

/// The name this host gives in EHLO.
fn ehlo_name() -> String {
    gethostname()
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Connection {
    /// Opens a session. `plain_known` skips the STARTTLS attempt for a server already seen
    /// without it (each attempt costs a connection).
    async fn open(route: &Route, plain_known: bool) -> Result<Self, Failure> {
        if let Some(proxy) = &route.proxy {
            return Self::open_tunneled(route, proxy).await;
        }
        let settings = &route.settings;
        let mut builder = smtp_builder(settings)?
            .say_ehlo(false)
            .helo_host(ehlo_name());
        if let Some(ip) = route.local_ip {
            builder = builder.local_ip(ip);
        }
        let tls = async |b: &mail_send::SmtpClientBuilder<String>| -> mail_send::Result<Self> {
            let mut c = b.connect().await?;
            let dsn = greet(&mut c, settings).await?;
            Ok(Self {
                session: Session::Tls(Box::new(c)),
                dsn,
            })
        };
        let plain = async |b: &mail_send::SmtpClientBuilder<String>| -> mail_send::Result<Self> {
            let mut c = b.connect_plain().await?;
            let dsn = greet(&mut c, settings).await?;
            Ok(Self {
                session: Session::Plain(c),
                dsn,
            })
        };
        if plain_known && settings.starttls.is_none() && !settings.secure {
            return plain(&builder).await.map_err(failure);
        }
        if settings.secure || settings.starttls == Some(true) {
            return tls(&builder).await.map_err(failure);
        }
        if settings.starttls == Some(false) {
            return plain(&builder).await.map_err(failure);
        }
        match tls(&builder).await {
            Ok(c) => Ok(c),
            Err(mail_send::Error::MissingStartTls) => plain(&builder).await.map_err(failure),
            Err(e) => Err(failure(e)),
        }
    }

    /// Opens a session through a proxy tunnel: TLS, greeting, EHLO, STARTTLS and AUTH over it.
    async fn open_tunneled(route: &Route, proxy: &str) -> Result<Self, Failure> {
        use mail_send::smtp::AssertReply;
        let settings = &route.settings;
        let tcp = crate::proxy::tunnel(
            proxy,
            &settings.host,
            settings.port,
            route.local_ip,
            SMTP_TIMEOUT,
        )
        .await
        .map_err(|e| Failure {
            permanent: matches!(
                e,
                crate::proxy::ProxyError::InvalidUrl | crate::proxy::ProxyError::Unsupported(_)
            ),
            message: e.to_string(),
            code: None,
        })?;
        let connector = mail_send::smtp::tls::build_tls_connector(settings.accept_invalid_certs)
            .map_err(|e| Failure {
                message: e,
                code: None,
                permanent: true,
            })?;
        let mut client = mail_send::SmtpClient {
            stream: tcp,
            timeout: SMTP_TIMEOUT,
        };
        if settings.secure {
            let mut tls = client
                .into_tls(&connector, &settings.host)
                .await
                .map_err(failure)?;
            tls.read()
                .await
                .and_then(AssertReply::assert_positive_completion)
                .map_err(failure)?;
            let dsn = greet(&mut tls, settings).await.map_err(failure)?;
            return Ok(Self {
                session: Session::Tls(Box::new(tls)),
                dsn,
            });
        }
        client
            .read()
            .await
            .and_then(AssertReply::assert_positive_completion)
            .map_err(failure)?;
        let caps = client
            .capabilities(&ehlo_name(), false)
            .await
            .map_err(failure)?;
        if settings.starttls != Some(false) && caps.has_capability(smtp_proto::EXT_START_TLS) {
            let mut tls = client
                .start_tls(&connector, &settings.host)
                .await
                .map_err(failure)?;
            let dsn = greet(&mut tls, settings).await.map_err(failure)?;
            return Ok(Self {
                session: Session::Tls(Box::new(tls)),
                dsn,
            });
        }
        if settings.starttls == Some(true) {
            return Err(failure(mail_send::Error::MissingStartTls));
        }
        let dsn = greet(&mut client, settings).await.map_err(failure)?;
        Ok(Self {
            session: Session::Plain(client),
            dsn,
        })
    }

    fn is_plain(&self) -> bool {
        matches!(self.session, Session::Plain(_))
    }

    async fn send(&mut self, entry: &OutboxEntry) -> mail_send::Result<String> {
        use mail_send::smtp::message::{Address, Message};
        let dsn = entry.dsn.as_ref().filter(|_| self.dsn);
        let message = Message {
            mail_from: Address::new(
                entry.envelope_from.as_str(),
                dsn.map(Dsn::mail_parameters).unwrap_or_default(),
            ),
            rcpt_to: entry
                .envelope_to
                .iter()
                .map(|to| {
                    Address::new(
                        to.as_str(),
                        dsn.map(Dsn::rcpt_parameters).unwrap_or_default(),
                    )
                })
                .collect(),
            body: smtp_body(&entry.raw).into(),
        };
        let r = match &mut self.session {
            Session::Tls(c) => c.send(message).await?,
            Session::Plain(c) => c.send(message).await?,
        };
        Ok(reply_text(r.code, r.esc, &r.message))
    }

    async fn rset(&mut self) -> bool {
        match &mut self.session {
            Session::Tls(c) => c.rset().await.is_ok(),
            Session::Plain(c) => c.rset().await.is_ok(),
        }
    }
}

/// The message as handed to mail-send, which ends the data with CRLF before the final dot
/// itself: a message that already ends with a line break gives up that one, so the body
/// arrives byte for byte.
fn smtp_body(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(raw)
}

/// A proxy URL without its password, for events.
fn redact_proxy(proxy: &str) -> String {
    match url::Url::parse(proxy) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("******"));
            u.to_string()
        }
        Ok(_) => proxy.to_string(),
        Err(_) => String::new(),
    }
}

/// Where one message goes out: the server and credentials (the account's or a gateway's) and
/// the local address to bind.
struct Route {
    settings: ServerSettings,
    local_ip: Option<std::net::IpAddr>,
    /// The proxy the connection goes through, when one is set.
    proxy: Option<String>,
    /// The gateway used, when one was.
    gateway: Option<String>,
}

/// Idle SMTP sessions kept for reuse, per account and server settings: opening a session
/// (TCP, greeting, EHLO, STARTTLS, AUTH) costs several round trips per message otherwise.
#[derive(Default)]
pub struct SmtpPool {
    idle: std::sync::Mutex<HashMap<String, Vec<(std::time::Instant, Connection)>>>,
    /// Servers (by pool key) that answered without STARTTLS.
    plain: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Sessions idle longer than this are not reused (servers drop them).
const POOL_IDLE: Duration = Duration::from_secs(30);
const POOL_PER_KEY: usize = 4;

impl SmtpPool {
    fn take(&self, key: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some((at, conn)) = list.pop() {
            if at.elapsed() < POOL_IDLE {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, key: String, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            list.retain(|(at, _)| at.elapsed() < POOL_IDLE);
            if list.len() < POOL_PER_KEY {
                list.push((std::time::Instant::now(), conn));
            }
        }
    }

    /// One SMTP transaction on a pooled session (or a new one); returns the server's reply.
    async fn send(
        &self,
        account: &str,
        route: &Route,
        entry: &OutboxEntry,
    ) -> Result<String, Failure> {
        let settings = &route.settings;
        let key = format!(
            "{account}\0{}:{}:{}:{}\0{:?}\0{:?}",
            settings.host,
            settings.port,
            settings.user,
            settings.secure,
            route.local_ip,
            route.proxy
        );
        if let Some(mut conn) = self.take(&key) {
            match conn.send(entry).await {
                Ok(reply) => {
                    self.put(key, conn);
                    return Ok(reply);
                }
                // The server answered: that answer stands, and the session may serve again.
                Err(e @ mail_send::Error::UnexpectedReply(_)) => {
                    if conn.rset().await {
                        self.put(key, conn);
                    }
                    return Err(failure(e));
                }
                // The pooled session had gone stale: try once more on a new one.
                Err(_) => {}
            }
        }
        let plain_known = self.plain.lock().is_ok_and(|p| p.contains(&key));
        let mut conn = Connection::open(route, plain_known).await?;
        if conn.is_plain()
            && settings.starttls.is_none()
            && let Ok(mut p) = self.plain.lock()
        {
            p.insert(key.clone());
        }
        match conn.send(entry).await {
            Ok(reply) => {
                self.put(key, conn);
                Ok(reply)
            }
            Err(e) => {
                if matches!(e, mail_send::Error::UnexpectedReply(_)) && conn.rset().await {
                    self.put(key, conn);
                }
                Err(failure(e))
            }
        }
    }
}

/// The server's reply as it was sent: code, enhanced status code when there is one, text.
fn reply_text(code: u16, esc: [u8; 3], message: &str) -> String {
    match esc {
        [0, 0, 0] => format!("{code} {message}"),
        [a, b, c] => format!("{code} {a}.{b}.{c} {message}"),
    }
}

fn failure(e: mail_send::Error) -> Failure {
    match e {
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
            Failure {
                permanent: (500..600).contains(&r.code),
                message: format!("{} {}", r.code, r.message),
                code: Some(r.code),
            }
        }
        other => Failure {
            message: other.to_string(),
            code: None,
            permanent: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_final_line_break_is_left_to_the_smtp_client() {
        assert_eq!(smtp_body(b"a\r\n\r\n"), b"a\r\n");
        assert_eq!(smtp_body(b"a\n"), b"a");
        assert_eq!(smtp_body(b"a"), b"a");
    }

    #[test]
    fn dsn_parameters_are_xtext() {
        let d = Dsn {
            id: Some("a+b=c d".into()),
            ret: "full".into(),
            notify: vec!["success".into(), "failure".into()],
            recipient: Some("x@y".into()),
        };
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        let m = mail_send::smtp::message::Address::new("a@x", d.mail_parameters());
        assert_eq!(m.parameters.to_string(), " RET=FULL ENVID=a+2Bb+3Dc+20d");
        let r = mail_send::smtp::message::Address::new("b@x", d.rcpt_parameters());
        assert_eq!(
            r.parameters.to_string(),
            " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y"
        );
    }

    #[test]
    fn queue_ids_are_19_hex_chars() {
        let id = new_queue_id(1_700_000_000_000);
        assert_eq!(id.len(), 19);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn entry_round_trip() {
        let e = OutboxEntry {
            queue_id: "q".into(),
            message_id: "<m@x>".into(),
            envelope_from: "a@x".into(),
            envelope_to: vec!["b@x".into()],
            subject: Some("s".into()),
            raw: b"raw".to_vec(),
            created: 1,
            send_at: 2,
            attempts_made: 1,
            max_attempts: 10,
            copy: false,
            last_error: None,
            gateway: Some("g1".into()),
            dsn: Some(Dsn {
                id: Some("env 1".into()),
                ret: "headers".into(),
                notify: vec!["failure".into(), "delay".into()],
                recipient: Some("b@x".into()),
            }),
            local_address: Some("127.0.0.2".into()),
            proxy: Some("socks5://127.0.0.1:1080".into()),
            sent_mail_path: None,
            feedback_key: None,
        };
        assert_eq!(OutboxEntry::decode(&e.encode()), Some(e));
    }
}
