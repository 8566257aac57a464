//! What every handler shares: the store, the settings facade, the API's configuration, and the
//! activity buffer that turns per-request bookkeeping into periodic batched writes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::RwLock;

use emailengine_core::secret::FieldCipher;
use emailengine_core::token::TokenAccess;
use emailengine_mail::MailRegistry;
use emailengine_mail::events::EventSink;
use emailengine_mail::oauth::OAuthLogins;
use emailengine_store::{BackendInfo, Settings, Store};

use crate::error::ApiResult;

/// API settings from the server configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body, in bytes (`api.maxBodySize`).
    pub max_body_size: usize,
    /// Honour `X-Forwarded-For` for the client address (`api.proxy` / `EENGINE_API_PROXY`).
    pub trust_proxy: bool,
    /// Browser origins allowed to call the API (`cors.origin` / `EENGINE_CORS_ORIGIN`); `*` for
    /// any. Empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// How long browsers may cache a preflight answer, in seconds.
    pub cors_max_age: u64,
    /// How long a mail call waits for a connection when the request has no `x-ee-timeout`
    /// header (`service.commandTimeout` / `EENGINE_TIMEOUT`).
    pub command_timeout: Duration,
    /// Mail server discovery (`GET /v1/autoconfig`, the hosted IMAP form).
    pub autoconfig: emailengine_autoconfig::DiscoveryConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_size: 50 * 1024 * 1024,
            trust_proxy: false,
            cors_origins: Vec::new(),
            cors_max_age: 60,
            command_timeout: Duration::from_secs(10),
            autoconfig: emailengine_autoconfig::DiscoveryConfig::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    /// Where each account's mail backend is found, and its connection controlled.
    pub mail: Arc<dyn MailRegistry>,
    /// Where account events go (`accountAdded`, `accountDeleted`).
    pub events: EventSink,
    /// Encrypts account secrets at rest when a service secret is configured.
    pub cipher: Option<Arc<FieldCipher>>,
    /// Logins (and token renewals) of OAuth2 accounts.
    pub oauth: Arc<OAuthLogins>,
    pub settings: Settings,
    pub config: ApiConfig,
    pub metrics: Option<PrometheusHandle>,
    /// Finds an address's mail servers (one resolver and HTTP client set for the process).
    pub discovery: emailengine_autoconfig::Discovery,
    pub activity: Activity,
    pub started: Instant,
    pub backend_info: RwLock<Option<(Instant, BackendInfo)>>,
    /// `serviceSecret`, read at most every [`SECRET_TTL`] for the public link routes.
    service_secret: Mutex<Option<(Instant, Arc<Vec<u8>>)>>,
    /// The `tokenAuditLog` setting, re-read every 10 seconds (and when this instance sets it).
    pub audit_enabled: RwLock<Option<(Instant, bool)>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// How long the `tokenAuditLog` setting is reused before it is read again.
const AUDIT_SETTING_TTL: Duration = Duration::from_secs(10);

/// How long `/v1/stats` reuses the backend's version details.
const BACKEND_INFO_TTL: Duration = Duration::from_secs(30);
/// How long a read of `serviceSecret` is reused; a rotated secret applies after this.
const SECRET_TTL: Duration = Duration::from_secs(2);

impl AppState {
    // One argument per shared service, built once by the binary; a builder would only move
    // the same list elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        settings: Settings,
        mail: Arc<dyn MailRegistry>,
        events: EventSink,
        cipher: Option<Arc<FieldCipher>>,
        oauth: Arc<OAuthLogins>,
        config: ApiConfig,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        let discovery = emailengine_autoconfig::Discovery::new(config.autoconfig.clone());
        Self(Arc::new(Inner {
            discovery,
            store,
            mail,
            events,
            cipher,
            oauth,
            settings,
            config,
            metrics,
            activity: Activity::default(),
            started: Instant::now(),
            backend_info: RwLock::new(None),
            service_secret: Mutex::new(None),
            audit_enabled: RwLock::new(None),
        }))
    }

    /// The `serviceSecret` setting that signs tracking and unsubscribe links. Cached for
    /// [`SECRET_TTL`]: the public link routes are hit once per opened message and click.
    pub async fn service_secret(&self) -> ApiResult<Arc<Vec<u8>>> {
        if let Ok(cached) = self.service_secret.lock()
            && let Some((at, secret)) = &*cached
            && at.elapsed() < SECRET_TTL
        {
            return Ok(secret.clone());
        }
        let secret = Arc::new(
            self.settings
                .get_one("serviceSecret")
                .await?
                .and_then(|v| v.as_str().map(|s| s.as_bytes().to_vec()))
                .unwrap_or_default(),
        );
        if let Ok(mut cached) = self.service_secret.lock() {
            *cached = Some((Instant::now(), secret.clone()));
        }
        Ok(secret)
    }

    /// The `disableTokens` setting: requests without a token are let through.
    pub async fn tokens_disabled(&self) -> ApiResult<bool> {
        Ok(self
            .settings
            .get_one("disableTokens")
            .await?
            .is_some_and(|v| v == serde_json::Value::Bool(true)))
    }

    /// Whether token requests are written to the audit log (`tokenAuditLog`).
    pub async fn audit_enabled(&self) -> bool {
        if let Some((at, on)) = *self.audit_enabled.read().await
            && at.elapsed() < AUDIT_SETTING_TTL
        {
            return on;
        }
        let on = matches!(
            self.settings.get_one("tokenAuditLog").await,
            Ok(Some(serde_json::Value::Bool(true)))
        );
        *self.audit_enabled.write().await = Some((Instant::now(), on));
        on
    }

    /// The backend's version details, refreshed every 30 seconds.
    pub async fn backend_info(&self) -> BackendInfo {
        if let Some((at, info)) = &*self.backend_info.read().await
            && at.elapsed() < BACKEND_INFO_TTL
        {
            return info.clone();
        }
        let info = match self.store.backend_info().await {
            Ok(info) => info,
            Err(e) => BackendInfo {
                version: e.to_string(),
                ..Default::default()
            },
        };
        *self.backend_info.write().await = Some((Instant::now(), info.clone()));
        info
    }

    /// Writes buffered activity to the store.
    pub async fn flush_activity(&self) {
        self.activity.flush(self.store.as_ref()).await;
    }

    /// Flushes buffered activity every `period` until the returned task is aborted.
    pub fn spawn_activity_flusher(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                state.flush_activity().await;
            }
        })
    }
}

/// Per-request bookkeeping kept in memory and written in batches: the last use of each token
/// (instead of a Redis write on every request) and the `apiCall:*` counters.
#[derive(Default)]
pub struct Activity {
    access: Mutex<HashMap<String, TokenAccess>>,
    api_success: AtomicU64,
    api_fail: AtomicU64,
}

impl Activity {
    pub fn touch(&self, token_id: &str, ip: Option<IpAddr>, now_ms: i64) {
        let entry = TokenAccess {
            time: Some(now_ms),
            ip: ip.map(|i| i.to_string()),
        };
        if let Ok(mut map) = self.access.lock() {
            match map.get_mut(token_id) {
                Some(existing) => *existing = entry,
                None => {
                    map.insert(token_id.to_string(), entry);
                }
            }
        }
    }

    pub fn api_call(&self, success: bool) {
        let counter = if success {
            &self.api_success
        } else {
            &self.api_fail
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub async fn flush(&self, store: &dyn Store) {
        let access: Vec<(String, TokenAccess)> = match self.access.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => Vec::new(),
        };
        if let Err(e) = store.record_access(&access).await {
            tracing::warn!(err = %e, entries = access.len(), "Failed to store token access times");
        }
        let deltas = vec![
            (
                "apiCall:success".to_string(),
                self.api_success.swap(0, Ordering::Relaxed),
            ),
            (
                "apiCall:fail".to_string(),
                self.api_fail.swap(0, Ordering::Relaxed),
            ),
        ];
        if deltas.iter().any(|(_, n)| *n > 0) {
            let now = chrono::Utc::now().timestamp_millis();
            if let Err(e) = store.add_counters(&deltas, now).await {
                tracing::warn!(err = %e, "Failed to store API counters");
                for (name, n) in deltas {
                    let counter = if name == "apiCall:success" {
                        &self.api_success
                    } else {
                        &self.api_fail
                    };
                    counter.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }

    /// The last use of a token not yet written to the store, if any.
    pub fn pending_access(&self, token_id: &str) -> Option<TokenAccess> {
        self.access.lock().ok()?.get(token_id).cloned()
    }
}
