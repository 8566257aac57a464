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

use emailengine_core::account::{AccountRecord, ServerSettings};
use emailengine_core::msgpack;
use emailengine_core::secret::FieldCipher;
use emailengine_mail::MailRegistry;
use emailengine_mail::events::{EventBatch, EventSink};
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
}

impl OutboxEntry {
    pub fn encode(&self) -> Vec<u8> {
        let s = |v: &str| Value::from(v);
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
        base_delay: Duration,
        owner: String,
    ) -> Self {
        Self {
            store,
            mail,
            events,
            cipher,
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

    async fn smtp_settings(&self, account: &str) -> Result<ServerSettings, Failure> {
        let fail = |m: &str| Failure {
            message: m.to_string(),
            code: None,
            permanent: true,
        };
        let fields = self
            .store
            .account(account)
            .await
            .map_err(|e| Failure {
                message: e.to_string(),
                code: None,
                permanent: false,
            })?
            .ok_or_else(|| fail("Account was deleted"))?;
        let record = AccountRecord::from_fields(account, fields);
        if !record.has_smtp() {
            return Err(fail("Account has no SMTP settings"));
        }
        record
            .smtp(self.cipher.as_deref())
            .map_err(|e| fail(&e.to_string()))?
            .ok_or_else(|| fail("Invalid SMTP settings"))
    }

    async fn attempt(&self, item: OutboxItem) {
        let Some(mut entry) = OutboxEntry::decode(&item.entry) else {
            tracing::error!(queueId = %item.queue_id, "Unreadable outbox entry removed");
            let _ = self.store.remove_outbox(&item.queue_id).await;
            return;
        };
        entry.attempts_made += 1;
        let result = match self.smtp_settings(&item.account).await {
            Ok(settings) => self.pool.send(&item.account, &settings, &entry).await,
            Err(f) => Err(f),
        };
        let sink = &self.events;
        let envelope = json!({"from": entry.envelope_from, "to": entry.envelope_to});
        let now = chrono::Utc::now().timestamp_millis();
        let mut batch = sink.batch().await;
        let sent = result.is_ok();
        match result {
            Ok(response) => {
                tracing::info!(account = %item.account, queueId = %entry.queue_id, response = %response, "Message sent");
                batch.event(&item.account, "messageSent", None, None, json!({
                    "messageId": entry.message_id, "response": response, "queueId": entry.queue_id, "envelope": envelope,
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
            Ok(mail) => mail.copy_to_sent(&entry.raw).await,
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
    if !settings.user.is_empty() {
        builder = builder.credentials((settings.user.clone(), settings.pass.clone()));
    }
    if settings.accept_invalid_certs {
        builder = builder.allow_invalid_certs();
    }
    Ok(builder)
}

/// An open SMTP session, over TLS or not.
enum Connection {
    Tls(Box<mail_send::SmtpClient<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
    Plain(mail_send::SmtpClient<tokio::net::TcpStream>),
}

impl Connection {
    /// Opens a session. `plain_known` skips the STARTTLS attempt for a server already seen
    /// without it (each attempt costs a connection).
    async fn open(settings: &ServerSettings, plain_known: bool) -> Result<Self, Failure> {
        let builder = smtp_builder(settings)?;
        if plain_known && settings.starttls.is_none() && !settings.secure {
            return builder
                .connect_plain()
                .await
                .map(Connection::Plain)
                .map_err(failure);
        }
        if settings.secure || settings.starttls == Some(true) {
            return builder
                .connect()
                .await
                .map(|c| Connection::Tls(Box::new(c)))
                .map_err(failure);
        }
        if settings.starttls == Some(false) {
            return builder
                .connect_plain()
                .await
                .map(Connection::Plain)
                .map_err(failure);
        }
        match builder.connect().await {
            Ok(c) => Ok(Connection::Tls(Box::new(c))),
            Err(mail_send::Error::MissingStartTls) => builder
                .connect_plain()
                .await
                .map(Connection::Plain)
                .map_err(failure),
            Err(e) => Err(failure(e)),
        }
    }

    async fn send(&mut self, entry: &OutboxEntry) -> mail_send::Result<String> {
        let message = mail_send::smtp::message::Message::new(
            entry.envelope_from.as_str(),
            entry.envelope_to.iter().map(String::as_str),
            entry.raw.as_slice(),
        );
        let r = match self {
            Connection::Tls(c) => c.send(message).await?,
            Connection::Plain(c) => c.send(message).await?,
        };
        Ok(reply_text(r.code, r.esc, &r.message))
    }

    async fn rset(&mut self) -> bool {
        match self {
            Connection::Tls(c) => c.rset().await.is_ok(),
            Connection::Plain(c) => c.rset().await.is_ok(),
        }
    }
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
        settings: &ServerSettings,
        entry: &OutboxEntry,
    ) -> Result<String, Failure> {
        let key = format!(
            "{account}\0{}:{}:{}:{}",
            settings.host, settings.port, settings.user, settings.secure
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
        let mut conn = Connection::open(settings, plain_known).await?;
        if matches!(conn, Connection::Plain(_))
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
        };
        assert_eq!(OutboxEntry::decode(&e.encode()), Some(e));
    }
}
